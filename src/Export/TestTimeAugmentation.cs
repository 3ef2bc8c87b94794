using MLNetExt.Torch;

namespace MLNetExt.Export;

/// <summary>What a trained model scores besides the image itself when it predicts (test-time augmentation). Carried by
/// the model (<see cref="Training.ModelDescriptor.TestTimeAugmentation"/>), so every scorer of it — libtorch, its ONNX export,
/// the ML.NET model.zip — gives the same scores.</summary>
public enum TestTimeAugmentation
{
    /// <summary>The image as framed for evaluation, once.</summary>
    None,
    /// <summary>The framed image and its left-right mirror in one batch; the logits are their mean (so
    /// <c>Score = softmax(mean logits / T)</c>, the normalised geometric mean of the two views' probabilities). Twice the
    /// compute; suits photos whose classes do not depend on left and right, as training's random flip assumes.</summary>
    Flip,
}

/// <summary>The views of test-time augmentation as tensor operations, shared by the libtorch scorers and the ONNX
/// exporter's traced forward pass (so both compute the same graph).</summary>
internal static class TestTimeViews
{
    /// <summary>The batch the network scores: <paramref name="images"/> [N,3,H,W] itself, or with
    /// <see cref="TestTimeAugmentation.Flip"/> the images followed by their mirrors [2N,3,H,W].</summary>
    public static Tensor Expand(Tensor images, TestTimeAugmentation tta) =>
        tta == TestTimeAugmentation.None ? images : Tensor.Cat([images, images.Flip(3)], 0);

    /// <summary>Per-image outputs [N,D] from the network's outputs [views·N,D] of <see cref="Expand"/>: the mean over
    /// the views.</summary>
    public static Tensor Merge(Tensor outputs, TestTimeAugmentation tta) =>
        tta == TestTimeAugmentation.None ? outputs : outputs.View(2, -1, outputs.Size(1)).Mean(0);

    /// <summary>The logits of <paramref name="network"/> on <paramref name="images"/> under <paramref name="tta"/>.</summary>
    public static Tensor Logits(Func<Tensor, Tensor> network, Tensor images, TestTimeAugmentation tta) =>
        Merge(network(Expand(images, tta)), tta);

    /// <summary>The command-line spelling ("none", "flip").</summary>
    public static string Name(TestTimeAugmentation tta) => tta.ToString().ToLowerInvariant();

    /// <summary>The value of a spelling, or null.</summary>
    public static TestTimeAugmentation? FromName(string? text) => text switch
    {
        "none" => TestTimeAugmentation.None,
        "flip" => TestTimeAugmentation.Flip,
        _ => null,
    };
}

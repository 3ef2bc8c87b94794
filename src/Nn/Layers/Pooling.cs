using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary>Adaptive average pooling to a fixed output size (PyTorch's bins: [floor(i·L/n), ceil((i+1)·L/n))).</summary>
public sealed class AdaptiveAvgPool2d : Module<Tensor, Tensor>
{
    readonly long _h, _w;

    /// <summary>Pools to <paramref name="outputHeight"/> x <paramref name="outputWidth"/>.</summary>
    public AdaptiveAvgPool2d(long outputHeight, long outputWidth)
    {
        if (outputHeight < 1 || outputWidth < 1)
            throw new ArgumentOutOfRangeException(nameof(outputHeight), $"AdaptiveAvgPool2d output size must be positive, got {outputHeight}x{outputWidth}.");
        (_h, _w) = (outputHeight, outputWidth);
    }

    /// <summary>Pools to a square output.</summary>
    public AdaptiveAvgPool2d(long outputSize) : this(outputSize, outputSize) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.AdaptiveAvgPool2d(input, _h, _w);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"output_size=({_h}, {_w})";
}

using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>Stochastic-depth rates of the blocks, in network order, as the official code computes them.</summary>
internal static class DropPathSchedule
{
    /// <summary><c>[x.item() for x in torch.linspace(0, rate, total)]</c>: float32 values widened (TransNeXt, SMT).</summary>
    public static double[] TorchLinspace(double rate, int total)
    {
        if (total <= 0) return Array.Empty<double>();
        using var lin = Tensor.Linspace(0, rate, total);
        return lin.ToArray<float>().Select(v => (double)v).ToArray();
    }

    /// <summary>rate·i / (total − 1) in double, 0 for a single block (TransXNet's per-block formula, MixFormer's
    /// <c>np.linspace</c> as the port computes it).</summary>
    public static double[] Linear(double rate, int total) =>
        Enumerable.Range(0, Math.Max(0, total)).Select(i => total > 1 ? rate * i / (total - 1) : 0.0).ToArray();
}

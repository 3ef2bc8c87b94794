using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Optim;

/// <summary>Gradient clipping.</summary>
public static class GradClip
{
    /// <summary><c>clip_grad_norm_</c>: scales all gradients so their global p-norm is at most <paramref name="maxNorm"/>
    /// (computed exactly as torch 1.13: norm of the per-tensor norms, coefficient max/(norm+1e-6) clamped to 1).
    /// Returns the total norm before clipping. Throws when it is not finite and <paramref name="errorIfNonFinite"/>.</summary>
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm, double normType = 2, bool errorIfNonFinite = false)
    {
        using var scope = TensorScope.Begin();
        using var _ = Autograd.NoGrad();
        var grads = parameters.Select(p => p.Grad).Where(g => g is not null).Select(g => g!).ToArray();
        if (grads.Length == 0) return 0;
        Tensor total;
        if (double.IsPositiveInfinity(normType))
        {
            var norms = grads.Select(g => g.Abs().Max()).ToArray();
            total = norms.Length == 1 ? norms[0] : Tensor.Stack(norms).Max();
        }
        else
        {
            var norms = grads.Select(g => g.Norm(normType)).ToArray();
            total = Tensor.Stack(norms).Norm(normType);
        }
        double value = total.ToDouble();
        if (errorIfNonFinite && !double.IsFinite(value))
            throw new InvalidOperationException($"The total norm of order {normType} of the gradients is {value}, so they cannot be clipped.");
        var coef = total.Add(1e-6).Reciprocal().Mul(maxNorm).Clamp(max: 1.0);
        foreach (var g in grads) g.Mul_(coef);
        return value;
    }
}

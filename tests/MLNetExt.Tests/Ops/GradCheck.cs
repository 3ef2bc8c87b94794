using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Checks autograd against central finite differences in float64: for a fixed weight tensor w, the
/// gradient of L = sum(f(inputs) * w) w.r.t. every element of every float64 input, with step
/// <see cref="Tolerances.FiniteDifference"/>.</summary>
internal static class GradCheck
{
    /// <param name="f">The function under test; called once with autograd and twice per input element without.</param>
    /// <param name="inputs">float64 inputs are checked; other inputs (int64 targets) are passed through.</param>
    /// <param name="beforeEachEvaluation">Runs before every call of <paramref name="f"/>, e.g. to reseed so that
    /// a random mask is the same in every evaluation.</param>
    public static void Check(string what, Func<Tensor[], Tensor> f, Tensor[] inputs, Action? beforeEachEvaluation = null)
    {
        using var scope = TensorScope.Begin();
        var values = inputs.Select(t => t.DType == DType.Float64 ? t.ToArray<double>() : null).ToArray();
        Assert.IsTrue(values.Any(v => v is not null), $"{what}: no float64 input to check");
        var shapes = inputs.Select(t => t.Shape).ToArray();

        Tensor[] Build(bool requiresGrad) =>
            inputs.Select((t, k) => values[k] is { } v ? Tensor.From(v, shapes[k]).RequiresGrad_(requiresGrad) : t).ToArray();

        beforeEachEvaluation?.Invoke();
        var leaves = Build(requiresGrad: true);
        var output = f(leaves);
        Assert.AreEqual(DType.Float64, output.DType, $"{what}: output dtype");
        (output * Weights(output.Shape)).Sum().Backward();

        double Loss()
        {
            using var evaluation = TensorScope.Begin();
            using var noGrad = Autograd.NoGrad();
            beforeEachEvaluation?.Invoke();
            var o = f(Build(requiresGrad: false));
            return (o * Weights(o.Shape)).Sum().ToDouble();
        }

        double h = Tolerances.FiniteDifference;
        for (int k = 0; k < inputs.Length; k++)
        {
            if (values[k] is not { } v) continue;
            var analytic = leaves[k].Grad?.ToArray<double>() ?? new double[v.Length];
            for (int i = 0; i < v.Length; i++)
            {
                double x = v[i];
                v[i] = x + h;
                double plus = Loss();
                v[i] = x - h;
                double minus = Loss();
                v[i] = x;
                double numeric = (plus - minus) / (2 * h);
                double bound = Tolerances.FiniteDifferenceAbs + Tolerances.FiniteDifferenceRel * Math.Abs(analytic[i]);
                if (!(Math.Abs(numeric - analytic[i]) <= bound))
                    Assert.Fail($"{what}: d/d input{k}[{i}] is {analytic[i]:R} by autograd but {numeric:R} by finite differences (bound {bound:G3})");
            }
        }
    }

    /// <summary>Fixed, irregular weights of the given shape.</summary>
    static Tensor Weights(long[] shape)
    {
        long n = 1;
        foreach (var s in shape) n *= s;
        var w = new double[n];
        for (int i = 0; i < w.Length; i++) w[i] = Math.Sin(0.37 + 1.3 * i);
        return Tensor.From(w, shape);
    }
}

using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Optim;

/// <summary>AdamW (decoupled weight decay), step for step as torch 1.13's single-tensor implementation:
/// <c>p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; p -= lr/(1-β1ᵗ) · m / (sqrt(v)/sqrt(1-β2ᵗ) + eps)</c>.</summary>
public sealed class AdamW : Optimizer
{
    /// <summary>Exponential decay rates of the moment estimates.</summary>
    public double Beta1 { get; }

    /// <summary>Second-moment decay rate.</summary>
    public double Beta2 { get; }

    /// <summary>Denominator epsilon.</summary>
    public double Eps { get; }

    /// <summary>One group of all <paramref name="parameters"/>.</summary>
    public AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 1e-2)
        : this(new[] { new ParamGroup(parameters, lr, weightDecay) }, beta1, beta2, eps) { }

    /// <summary>Several groups with their own learning rate and weight decay.</summary>
    public AdamW(IEnumerable<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8) : base(groups)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "beta1 must lie in [0, 1).");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "beta2 must lie in [0, 1).");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be >= 0.");
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
    }

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Parameter p, Tensor grad, ParamState state)
    {
        if (!state.TryGet("exp_avg", out var expAvg))
        {
            state.Set("exp_avg", expAvg = p.ZerosLike());
            state.Set("exp_avg_sq", p.ZerosLike());
        }
        var expAvgSq = state.Get("exp_avg_sq");
        state.Step++;
        double lr = group.LearningRate;
        p.Mul_(1 - lr * group.WeightDecay);
        expAvg.Mul_(Beta1).Add_(grad, 1 - Beta1);
        expAvgSq.Mul_(Beta2).Addcmul_(grad, grad, 1 - Beta2);
        double biasCorrection1 = 1 - Math.Pow(Beta1, state.Step);
        double biasCorrection2 = 1 - Math.Pow(Beta2, state.Step);
        double stepSize = lr / biasCorrection1;
        using var sqrt = expAvgSq.Sqrt();
        using var denom = sqrt.Div(Math.Sqrt(biasCorrection2));
        denom.Add_(Eps);
        p.Addcdiv_(expAvg, denom, -stepSize);
    }
}

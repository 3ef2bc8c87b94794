using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Optim;

/// <summary>SGD with optional momentum, dampening, Nesterov and L2 weight decay, as torch 1.13 computes it.</summary>
public sealed class Sgd : Optimizer
{
    /// <summary>Momentum factor (0 disables the buffer).</summary>
    public double Momentum { get; }

    /// <summary>Dampening of the momentum update.</summary>
    public double Dampening { get; }

    /// <summary>Nesterov momentum.</summary>
    public bool Nesterov { get; }

    /// <summary>One group of all <paramref name="parameters"/>.</summary>
    public Sgd(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0, double weightDecay = 0, bool nesterov = false)
        : this(new[] { new ParamGroup(parameters, lr, weightDecay) }, momentum, dampening, nesterov) { }

    /// <summary>Several groups with their own learning rate and weight decay.</summary>
    public Sgd(IEnumerable<ParamGroup> groups, double momentum = 0, double dampening = 0, bool nesterov = false) : base(groups)
    {
        if (!(momentum >= 0)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must be >= 0.");
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires a momentum > 0 and zero dampening.", nameof(nesterov));
        Momentum = momentum;
        Dampening = dampening;
        Nesterov = nesterov;
    }

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Parameter p, Tensor grad, ParamState state)
    {
        state.Step++;
        using var scope = TensorScope.Begin();
        var d = group.WeightDecay != 0 ? grad.Add(p, group.WeightDecay) : grad;
        if (Momentum != 0)
        {
            if (!state.TryGet("momentum_buffer", out var buf))
                state.Set("momentum_buffer", buf = d.Clone().Detach());
            else
                buf.Mul_(Momentum).Add_(d, 1 - Dampening);
            d = Nesterov ? d.Add(buf, Momentum) : buf;
        }
        p.Add_(d, -group.LearningRate);
    }
}

using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary><c>nn.GELU</c>: exact (erf) by default, or the tanh approximation.</summary>
public sealed class GELU(bool tanhApproximation = false) : Module<Tensor, Tensor>
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Gelu(input, tanhApproximation);

    /// <inheritdoc/>
    protected override string ExtraRepr() => tanhApproximation ? "approximate='tanh'" : "approximate='none'";
}

/// <summary><c>nn.ReLU</c>.</summary>
public sealed class ReLU : Module<Tensor, Tensor>
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Relu(input);
}

/// <summary><c>nn.SiLU</c> (swish).</summary>
public sealed class SiLU : Module<Tensor, Tensor>
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Silu(input);
}

/// <summary><c>nn.Sigmoid</c>.</summary>
public sealed class Sigmoid : Module<Tensor, Tensor>
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Sigmoid(input);
}

/// <summary><c>nn.Identity</c>: returns a new handle to its input (so the caller always owns the result).</summary>
public sealed class Identity : Module<Tensor, Tensor>
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => input.Alias();
}

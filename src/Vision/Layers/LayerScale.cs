using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>
/// Per-channel residual-branch scale. Two official forms exist and both keep their state_dict names:
/// <list type="bullet">
/// <item>the module (TransXNet <c>layer_scale_1/2</c>, NCHW): y = w[c]·x + b[c], the weight stored (C, 1, 1, 1) like
/// the official depth-wise 1×1 conv, with a bias (<c>weight</c>, <c>bias</c>);</item>
/// <item>a bare γ vector owned by the block (SMT <c>gamma_1/2</c>, channels last): <see cref="Gamma"/> makes it and
/// <see cref="Scale"/> applies it.</item>
/// </list>
/// </summary>
internal sealed class LayerScale : Module<Tensor, Tensor>
{
    readonly Parameter _weight, _bias;

    public LayerScale(long dim, double initValue)
    {
        _weight = RegisterParameter("weight", new Parameter(Tensor.Full(new[] { dim, 1, 1, 1 }, initValue)));
        _bias = RegisterParameter("bias", new Parameter(Tensor.Zeros(new[] { dim })));
    }

    /// <summary>NCHW input, one scale and bias per channel (a depth-wise 1×1 conv).</summary>
    public override Tensor Forward(Tensor x) => F.Conv2d(x, _weight, _bias, groups: x.Size(1));

    /// <summary>A γ vector of <paramref name="dim"/> entries set to <paramref name="initValue"/>, for a block to register.</summary>
    public static Parameter Gamma(long dim, double initValue) => new(Tensor.Full(new long[] { dim }, initValue));

    /// <summary>x·γ over the last (channel) axis, or an alias of x without a γ.</summary>
    public static Tensor Scale(Tensor x, Parameter? gamma) => gamma is null ? x.Alias() : x.Mul(gamma);
}

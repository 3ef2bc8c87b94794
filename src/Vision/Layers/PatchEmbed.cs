using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>
/// PVT-v2's <c>OverlapPatchEmbed</c> (TransNeXt's stem and downsamplings, SMT's downsamplings): a strided k×k conv with
/// bias and padding k/2 (<c>proj</c>), flattened to tokens, then LayerNorm eps 1e-5 (<c>norm</c>). Returns (B, H·W, C)
/// tokens and the grid.
/// </summary>
internal sealed class OverlapPatchEmbed : Module
{
    readonly Conv2d _proj;
    readonly LayerNorm _norm;

    public OverlapPatchEmbed(long inChannels, long embedDim, int kernel, int stride, WeightInit init)
    {
        _proj = RegisterModule("proj", init.NewConv(inChannels, embedDim, kernel, stride, kernel / 2));
        _norm = RegisterModule("norm", new LayerNorm(embedDim, 1e-5));
    }

    /// <summary>(B, Cin, H', W') image → tokens (B, H·W, C) and the grid size.</summary>
    public (Tensor Tokens, long H, long W) Forward(Tensor x)
    {
        using var y = _proj.Call(x);
        long h = y.Size(2), w = y.Size(3);
        using var t = TokenLayout.ToTokens(y);
        return (_norm.Call(t), h, w);
    }
}

/// <summary>mmcv's <c>ConvModule</c> as TransXNet configures it: conv without bias (<c>conv</c>) → BatchNorm (<c>bn</c>)
/// → optional GELU.</summary>
internal sealed class ConvBn : Module<Tensor, Tensor>
{
    readonly Conv2d _conv;
    readonly BatchNorm2d _bn;
    readonly bool _gelu;

    public ConvBn(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0, long groups = 1, bool gelu = false)
    {
        _conv = RegisterModule("conv", new Conv2d(inChannels, outChannels, kernel, stride, padding, groups: groups, bias: false));
        _bn = RegisterModule("bn", new BatchNorm2d(outChannels));
        _gelu = gelu;
    }

    public override Tensor Forward(Tensor x)
    {
        using var c = _conv.Call(x);
        if (!_gelu) return _bn.Call(c);
        using var n = _bn.Call(c);
        return F.Gelu(n);
    }
}

/// <summary>TransXNet's stem and downsampling <c>PatchEmbed</c>: <c>proj</c> = <see cref="ConvBn"/> (conv without bias →
/// BatchNorm, no activation), NCHW in and out.</summary>
internal sealed class ConvBnPatchEmbed : Module<Tensor, Tensor>
{
    readonly ConvBn _proj;

    public ConvBnPatchEmbed(long inChannels, long embedDim, long patchSize, long stride, long padding) =>
        _proj = RegisterModule("proj", new ConvBn(inChannels, embedDim, patchSize, stride, padding));

    public override Tensor Forward(Tensor x) => _proj.Call(x);
}

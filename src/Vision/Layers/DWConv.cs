using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>The PVT-v2 <c>DWConv</c> wrapper (TransNeXt's ConvGLU, SMT's FFN): a depth-wise 3×3 conv with bias, registered
/// as <c>dwconv</c> (so its keys read <c>….dwconv.dwconv.weight</c>), applied to (B, N, C) tokens as an H×W image.</summary>
internal sealed class DWConv : Module
{
    readonly Conv2d _dwconv;
    readonly long _dim;

    public DWConv(long dim, WeightInit init)
    {
        _dim = dim;
        _dwconv = RegisterModule("dwconv", init.NewConv(dim, dim, 3, 1, 1, groups: dim));
    }

    /// <summary>(B, H·W, C) tokens → (B, H·W, C) tokens.</summary>
    public Tensor Forward(Tensor tokens, long h, long w)
    {
        using var img = TokenLayout.ToImage(tokens, _dim, h, w);
        using var y = _dwconv.Call(img);
        return TokenLayout.ToTokens(y);
    }
}

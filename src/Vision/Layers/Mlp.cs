using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>
/// The token MLP (timm's <c>Mlp</c>): <c>fc1</c> → GELU → dropout → <c>fc2</c> → dropout on (B, N, C) tokens; keys
/// <c>fc1.*</c>, <c>fc2.*</c>. With a depth-wise conv (dwConv) the official SMT "detail-specific FFN": a depth-wise 3×3
/// conv (<c>dwconv.dwconv.*</c>, registered between fc1 and fc2) with a residual before the activation,
/// fc1 → GELU(x + DW(x)) → dropout → fc2 → dropout. MixFormer uses the plain form.
/// </summary>
internal sealed class Mlp : Module<Tensor, Tensor>
{
    readonly Linear _fc1, _fc2;
    readonly DWConv? _dwconv;
    readonly Dropout _drop;

    public Mlp(long dim, long hidden, double drop, WeightInit init, bool dwConv = false)
    {
        _fc1 = RegisterModule("fc1", init.NewLinear(dim, hidden));
        if (dwConv) _dwconv = RegisterModule("dwconv", new DWConv(hidden, init));
        _fc2 = RegisterModule("fc2", init.NewLinear(hidden, dim));
        _drop = RegisterModule("drop", new Dropout(drop));
    }

    /// <summary>Hidden width (fc1 outputs).</summary>
    public long Hidden => _fc1.Weight.Size(0);

    /// <summary>The plain MLP (no depth-wise conv): tokens of any layout with features last.</summary>
    public override Tensor Forward(Tensor x)
    {
        if (_dwconv is not null) throw new InvalidOperationException("This Mlp has a depth-wise conv: call Forward(x, h, w) with the token grid.");
        using var a = _fc1.Call(x);
        using var g = F.Gelu(a);
        using var d = _drop.Call(g);
        using var o = _fc2.Call(d);
        return _drop.Call(o);
    }

    /// <summary>(B, H·W, C) tokens of an H×W grid.</summary>
    public Tensor Forward(Tensor x, long h, long w)
    {
        if (_dwconv is null) return Forward(x);
        using var a = _fc1.Call(x);
        using var dw = _dwconv.Forward(a, h, w);
        using var s = a.Add(dw);
        using var g = F.Gelu(s);
        using var d = _drop.Call(g);
        using var o = _fc2.Call(d);
        return _drop.Call(o);
    }
}

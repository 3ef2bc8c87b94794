using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.Smt;

// Building blocks of SMT (Scale-Aware Modulation Transformer), leaf first. Names, registration order and the
// order of operations follow the official classification model (AFeng-x/SMT models/smt.py) as described in
// docs/specs: tokens are (B, N, C) with N = H·W in row-major (y, x) order; H and W travel alongside. The downsampling
// (OverlapPatchEmbed), the FFN (Mlp with its depth-wise conv) and the layer-scale γ come from ../Layers.

/// <summary>The stem (<c>patch_embed1</c>, official class <c>Head</c>): conv k×k stride 2 without bias
/// (padding 3 when k = 7, else 1), BatchNorm, ReLU, conv 2×2 stride 2 with bias, flatten, LayerNorm (eps 1e-5).</summary>
internal sealed class SmtStem : Module
{
    readonly Sequential _conv;
    readonly LayerNorm _norm;

    public SmtStem(int headConv, int dim)
    {
        _conv = RegisterModule("conv", new Sequential(
            new Conv2d(3, dim, headConv, stride: 2, padding: headConv == 7 ? 3 : 1, bias: false),
            new BatchNorm2d(dim),
            new ReLU(),
            new Conv2d(dim, dim, 2, stride: 2)));
        _norm = RegisterModule("norm", new LayerNorm(dim));
    }

    public (Tensor Tokens, long H, long W) Forward(Tensor images)
    {
        using var x = _conv.Call(images);
        long h = x.Size(2), w = x.Size(3);
        using var t = TokenLayout.ToTokens(x);
        return (_norm.Call(t), h, w);
    }
}

/// <summary>The token mixer of a block: SAM (scale-aware modulation) or MSA (global attention with a
/// depthwise-conv local enhancement of V).</summary>
internal abstract class SmtMixer : Module
{
    public abstract Tensor Forward(Tensor x, long h, long w);
}

/// <summary>
/// Scale-Aware Modulation (official <c>Attention</c> with ca_attention = 1). The modulator input <c>s</c> is split
/// head-major into <c>ca_num_heads</c> heads of c = C/heads channels; head i gets a depthwise conv of kernel 3+2i
/// (MHMC). The head outputs are interleaved (channel g·heads + i = channel g of head i) before the grouped 1×1
/// <c>proj0</c> (groups = c, so every group sees one channel of every head), then BatchNorm, GELU and <c>proj1</c>
/// (SAA). The result modulates <c>v</c> element-wise, followed by <c>proj</c>.
/// </summary>
internal sealed class SmtSam : SmtMixer
{
    readonly Linear _proj, _v, _s;
    readonly Dropout _projDrop;
    readonly Conv2d[] _localConvs;
    readonly Conv2d _proj0, _proj1;
    readonly BatchNorm2d _bn;
    readonly long _dim, _heads, _split;

    public SmtSam(int dim, int caNumHeads, bool qkvBias, double projDrop, int expandRatio)
    {
        _dim = dim;
        _heads = caNumHeads;
        _split = dim / caNumHeads;
        // registration order of the official module: proj, proj_drop, v, s, local_conv_1..n, proj0, bn, proj1
        _proj = RegisterModule("proj", new Linear(dim, dim));
        _projDrop = RegisterModule("proj_drop", new Dropout(projDrop));
        _v = RegisterModule("v", new Linear(dim, dim, qkvBias));
        _s = RegisterModule("s", new Linear(dim, dim, qkvBias));
        _localConvs = new Conv2d[caNumHeads];
        int c = dim / caNumHeads;
        for (int i = 0; i < caNumHeads; i++)
            _localConvs[i] = RegisterModule($"local_conv_{i + 1}", new Conv2d(c, c, 3 + 2 * i, stride: 1, padding: 1 + i, groups: c));
        _proj0 = RegisterModule("proj0", new Conv2d(dim, dim * expandRatio, 1, groups: c));
        _bn = RegisterModule("bn", new BatchNorm2d(dim * expandRatio));
        _proj1 = RegisterModule("proj1", new Conv2d(dim * expandRatio, dim, 1));
    }

    public override Tensor Forward(Tensor x, long h, long w)
    {
        long n = h * w;
        using var v = _v.Call(x);
        using var s = _s.Call(x);
        // (B, N, C) → (B, H, W, heads, c) → (heads, B, c, H, W): head i is s[i]
        using var s5 = s.Reshape(-1, h, w, _heads, _split);
        using var sh = s5.Permute(3, 0, 4, 1, 2);
        var outs = new Tensor[_heads];
        try
        {
            for (int i = 0; i < _heads; i++)
            {
                using var si = sh.Select(0, (int)i);
                outs[i] = _localConvs[i].Call(si);
            }
            // stack after the channel axis: (B, c, heads, H, W) → channel g·heads + i
            using var stacked = Tensor.Stack(outs, 2);
            using var mixed = stacked.Reshape(-1, _dim, h, w);
            using var p0 = _proj0.Call(mixed);
            using var b = _bn.Call(p0);
            using var g = F.Gelu(b);
            using var m = _proj1.Call(g);
            using var m3 = m.Reshape(-1, _dim, n);
            using var mt = m3.Permute(0, 2, 1);
            using var z = mt.Mul(v);
            using var o = _proj.Call(z);
            return _projDrop.Call(o);
        }
        finally
        {
            foreach (var t in outs) t?.Dispose();
        }
    }
}

/// <summary>Multi-head self-attention (official <c>Attention</c> with ca_attention = 0): separate <c>q</c> and fused
/// <c>kv</c> projections (first C outputs K, last C V), global softmax attention without key reduction, plus a
/// depthwise 3×3 <c>local_conv</c> of V (head-major channels) added before <c>proj</c>.</summary>
internal sealed class SmtMsa : SmtMixer
{
    readonly Linear _proj, _q, _kv;
    readonly Dropout _projDrop, _attnDrop;
    readonly Conv2d _localConv;
    readonly long _dim, _heads, _headDim;
    readonly double _scale;

    public SmtMsa(int dim, int saNumHeads, bool qkvBias, double? qkScale, double attnDrop, double projDrop)
    {
        _dim = dim;
        _heads = saNumHeads;
        _headDim = dim / saNumHeads;
        // Python: qk_scale or head_dim ** -0.5 (a scale of 0 falls back to the default, as `or` does)
        _scale = qkScale is double q && q != 0 ? q : Math.Pow(_headDim, -0.5);
        _proj = RegisterModule("proj", new Linear(dim, dim));
        _projDrop = RegisterModule("proj_drop", new Dropout(projDrop));
        _q = RegisterModule("q", new Linear(dim, dim, qkvBias));
        _attnDrop = RegisterModule("attn_drop", new Dropout(attnDrop));
        _kv = RegisterModule("kv", new Linear(dim, dim * 2, qkvBias));
        _localConv = RegisterModule("local_conv", new Conv2d(dim, dim, 3, stride: 1, padding: 1, groups: dim));
    }

    public double Scale => _scale;

    public override Tensor Forward(Tensor x, long h, long w)
    {
        long n = h * w;
        using var q0 = _q.Call(x);
        using var q4 = q0.Reshape(-1, n, _heads, _headDim);
        using var q = q4.Permute(0, 2, 1, 3);
        using var kv0 = _kv.Call(x);
        using var kv5 = kv0.Reshape(-1, n, 2, _heads, _headDim);
        using var kv = kv5.Permute(2, 0, 3, 1, 4);
        using var k = kv.Select(0, 0);
        using var v = kv.Select(0, 1);
        using var kt = k.Transpose(-2, -1);
        using var qk = q.Matmul(kt);
        using var logits = qk.Mul(_scale);
        using var attn0 = logits.Softmax(-1);
        using var attn = _attnDrop.Call(attn0);
        using var av = attn.Matmul(v);
        using var avt = av.Transpose(1, 2);
        using var o = avt.Reshape(-1, n, _dim);
        // local enhancement: V as (B, N, C) with head-major channels → (B, C, H, W) → DW 3×3 → tokens
        using var vt = v.Transpose(1, 2);
        using var vtok = vt.Reshape(-1, n, _dim);
        using var vimg = TokenLayout.ToImage(vtok, _dim, h, w);
        using var lc = _localConv.Call(vimg);
        using var lc3 = lc.Reshape(-1, _dim, n);
        using var lct = lc3.Transpose(1, 2);
        using var sum = o.Add(lct);
        using var p = _proj.Call(sum);
        return _projDrop.Call(p);
    }
}

/// <summary>One SMT block (official <c>Block</c>): t + DropPath(γ1·Mixer(LN1(t))), then t + DropPath(γ2·FFN(LN2(t)))
/// with the detail-specific FFN (<see cref="Mlp"/> with its depth-wise conv);
/// LayerNorms with eps 1e-6; γ1/γ2 (<c>gamma_1</c>/<c>gamma_2</c>) exist only with layer scale.</summary>
internal sealed class SmtBlock : Module
{
    readonly LayerNorm _norm1, _norm2;
    readonly SmtMixer _attn;
    readonly DropPath _dropPath;
    readonly Mlp _mlp;
    readonly Parameter? _gamma1, _gamma2;

    public bool IsSam => _attn is SmtSam;
    public bool HasLayerScale => _gamma1 is not null;
    public double DropPathRate => _dropPath.P;
    internal SmtMixer Mixer => _attn;

    public SmtBlock(int dim, bool sam, int caNumHeads, int saNumHeads, double mlpRatio, bool qkvBias, double? qkScale,
                    bool useLayerScale, double layerScaleValue, double drop, double attnDrop, double dropPath, int expandRatio)
    {
        if (useLayerScale)
        {
            _gamma1 = RegisterParameter("gamma_1", LayerScale.Gamma(dim, layerScaleValue));
            _gamma2 = RegisterParameter("gamma_2", LayerScale.Gamma(dim, layerScaleValue));
        }
        _norm1 = RegisterModule("norm1", new LayerNorm(dim, 1e-6));
        _attn = RegisterModule<SmtMixer>("attn", sam
            ? new SmtSam(dim, caNumHeads, qkvBias, drop, expandRatio)
            : new SmtMsa(dim, saNumHeads, qkvBias, qkScale, attnDrop, drop));
        _dropPath = RegisterModule("drop_path", new DropPath(dropPath));
        _norm2 = RegisterModule("norm2", new LayerNorm(dim, 1e-6));
        _mlp = RegisterModule("mlp", new Mlp(dim, (int)(dim * mlpRatio), drop, WeightInit.Deferred, dwConv: true));
    }

    public Tensor Forward(Tensor x, long h, long w)
    {
        Tensor y;
        using (var n1 = _norm1.Call(x))
        using (var a = _attn.Forward(n1, h, w))
        using (var ga = LayerScale.Scale(a, _gamma1))
        using (var d = _dropPath.Call(ga))
            y = x.Add(d);
        using (y)
        using (var n2 = _norm2.Call(y))
        using (var m = _mlp.Forward(n2, h, w))
        using (var gm = LayerScale.Scale(m, _gamma2))
        using (var d = _dropPath.Call(gm))
            return y.Add(d);
    }
}

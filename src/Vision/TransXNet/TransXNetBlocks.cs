// TransXNet building blocks, leaf first. Paper: Lou et al., "TransXNet: Learning Both Global and Local Dynamics with
// a Dual Dynamic Token Mixer for Visual Recognition" (TNNLS 2025). Computation follows the official code
// (LMMMEng/TransXNet, models/transxnet.py) as measured in ../shared/specs/transxnet.md; state_dict names match it.
// IDConv's per-sample depthwise convolution is one bridge operator (the official batch-folded grouped conv; exported
// with a dynamic batch). ConvBn (mmcv ConvModule), the stem/downsampling
// ConvBnPatchEmbed and LayerScale come from ../Layers.
using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.TransXNet;

/// <summary>OSRA (<c>global_unit</c>): attention whose keys and values come from an overlapping spatial reduction
/// (strided depthwise conv → BN → GELU → 1×1 depthwise → BN, only when sr &gt; 1) plus a 3×3 depthwise local
/// refinement; a dense learnable position bias per (query, key) pair is added to the logits, bicubically resized
/// with PyTorch's rules when the token grid differs from the one it was built for. No output projection.</summary>
internal sealed class Osra : Module
{
    readonly Conv2d _q, _kv, _localConv;
    readonly Sequential? _sr;
    readonly long _heads;
    readonly double _scale;

    public Osra(long dim, long heads, long srRatio)
    {
        if (dim % heads != 0) throw new ArgumentException($"OSRA: dim {dim} must be divisible by num_heads {heads}.");
        _heads = heads;
        _scale = Math.Pow(dim / heads, -0.5);
        _q = RegisterModule("q", new Conv2d(dim, dim, 1));
        _kv = RegisterModule("kv", new Conv2d(dim, dim * 2, 1));
        if (srRatio > 1)
            _sr = RegisterModule("sr", new Sequential(
                new ConvBn(dim, dim, srRatio + 3, srRatio, (srRatio + 3) / 2, groups: dim, gelu: true),
                new ConvBn(dim, dim, 1, groups: dim)));
        _localConv = RegisterModule("local_conv", new Conv2d(dim, dim, 3, padding: 1, groups: dim));
    }

    public Tensor Forward(Tensor x, Tensor positionBias)
    {
        using var scope = TensorScope.Begin();
        var (c, h, w) = (x.Size(1), x.Size(2), x.Size(3));
        long d = c / _heads;
        var q = _q.Call(x).Reshape(-1, _heads, d, h * w).Transpose(-1, -2);        // (B, heads, N, d)
        var reduced = _sr is null ? x : _sr.Call(x);
        reduced = _localConv.Call(reduced).Add(reduced);
        long m = reduced.Size(2) * reduced.Size(3);
        var kv = _kv.Call(reduced).Chunk(2, 1);                                      // keys first, then values
        var k = kv[0].Reshape(-1, _heads, d, m);                                     // (B, heads, d, M)
        var v = kv[1].Reshape(-1, _heads, d, m).Transpose(-1, -2);                   // (B, heads, M, d)
        var attn = q.Matmul(k).Mul(_scale);
        var bias = positionBias.Size(2) == h * w && positionBias.Size(3) == m
            ? positionBias
            : F.Interpolate(positionBias, h * w, m, InterpolationMode.Bicubic, alignCorners: false);
        attn = attn.Add(bias).Softmax(-1);
        return attn.Matmul(v).Transpose(-1, -2).Reshape(-1, c, h, w).MoveToOuterScope();
    }
}

/// <summary>IDConv (<c>local_unit</c>): an input-dependent depthwise convolution. Attention maps from adaptive
/// pooling (K×K) and from the global mean (1×1), both through the same <c>proj</c>, softmax-mix G kernel and bias
/// banks per sample; the mixed kernels are applied per sample.</summary>
/// <remarks>The per-sample convolution is the bridge's <c>mlnetext::depthwise_conv2d_per_sample</c>: the official
/// batch-folded grouped convolution when run, a Scan over the batch with one depthwise Conv per sample when exported
/// (an ONNX Conv's group count cannot depend on the batch).</remarks>
internal sealed class DynamicConv2d : Module<Tensor, Tensor>
{
    readonly Parameter _weight, _bias;
    readonly Sequential _proj;
    readonly long _groups, _k, _dim;

    public DynamicConv2d(long dim, long kernelSize, long numGroups, long reductionRatio = 4)
    {
        if (numGroups < 2) throw new ArgumentException($"IDConv: num_groups must be greater than 1, got {numGroups}.");
        (_dim, _k, _groups) = (dim, kernelSize, numGroups);
        _weight = RegisterParameter("weight", new Parameter(Tensor.Empty(new[] { numGroups, dim, kernelSize, kernelSize })));
        _proj = RegisterModule("proj", new Sequential(
            new ConvBn(dim, dim / reductionRatio, 1, gelu: true),
            new Conv2d(dim / reductionRatio, dim * numGroups, 1)));
        _bias = RegisterParameter("bias", new Parameter(Tensor.Empty(new[] { numGroups, dim })));
        Init.TruncNormal_(_weight, std: 0.02);
        Init.TruncNormal_(_bias, std: 0.02);
    }

    public override Tensor Forward(Tensor x)
    {
        using var scope = TensorScope.Begin();
        // Kernels: (B, G·C', K, K) viewed group-major as (B, G, C', K, K), softmax over G, mixed with the bank.
        var scale = _proj.Call(F.AdaptiveAvgPool2d(x, _k, _k)).Reshape(-1, _groups, _dim, _k, _k).Softmax(1);
        var kernels = scale.Mul(_weight.Unsqueeze(0)).Sum(1);                              // (B, C', K, K)
        // Bias: the same proj on the spatial mean (its BN runs a second time, as in the official code).
        var biasScale = _proj.Call(x.Mean(new long[] { -2, -1 }, keepDim: true)).Reshape(-1, _groups, _dim).Softmax(1);
        var bias = biasScale.Mul(_bias.Unsqueeze(0)).Sum(1);                               // (B, C')
        return F.DepthwiseConv2dPerSample(x, kernels, bias, _k / 2).MoveToOuterScope();
    }
}

/// <summary>D-Mixer (<c>token_mixer</c>): the first half of the channels goes to IDConv, the second half to OSRA,
/// concatenated in that order, then the squeezed token enhancer (conv → GELU → BN order) with a residual.</summary>
internal sealed class HybridTokenMixer : Module
{
    readonly DynamicConv2d _local;
    readonly Osra _global;
    readonly Sequential _proj;

    public HybridTokenMixer(long dim, long kernelSize, long numGroups, long numHeads, long srRatio, long reductionRatio = 8)
    {
        if (dim % 2 != 0) throw new ArgumentException($"D-Mixer: the stage width {dim} must be even.");
        _local = RegisterModule("local_unit", new DynamicConv2d(dim / 2, kernelSize, numGroups));
        _global = RegisterModule("global_unit", new Osra(dim / 2, numHeads, srRatio));
        long inner = Math.Max(16, dim / reductionRatio);
        _proj = RegisterModule("proj", new Sequential(
            new Conv2d(dim, dim, 3, padding: 1, groups: dim), new GELU(), new BatchNorm2d(dim),
            new Conv2d(dim, inner, 1), new GELU(), new BatchNorm2d(inner),
            new Conv2d(inner, dim, 1), new BatchNorm2d(dim)));
    }

    public Tensor Forward(Tensor x, Tensor positionBias)
    {
        using var scope = TensorScope.Begin();
        var halves = x.Chunk(2, 1);
        // Both halves come back contiguous (the per-sample conv and the attention reshape); back to channels-last
        // for the convolutions of proj and the residual stream (TransXNetModel.RunStages).
        var mixed = Tensor.Cat(new[] { _local.Call(halves[0]), _global.Forward(halves[1], positionBias) }, 1).ChannelsLast();
        return _proj.Call(mixed).Add(mixed).MoveToOuterScope();
    }
}

/// <summary>Depthwise convs with kernels 1, 3, 5, 7 on four consecutive channel chunks (the first takes the remainder).</summary>
internal sealed class MultiScaleDWConv : Module<Tensor, Tensor>
{
    readonly ModuleList<Conv2d> _proj;
    readonly long[] _channels;

    public MultiScaleDWConv(long dim)
    {
        long[] kernels = { 1, 3, 5, 7 };
        _channels = kernels.Select((_, i) => i == 0 ? dim - dim / 4 * 3 : dim / 4).ToArray();
        _proj = RegisterModule("proj", new ModuleList<Conv2d>(
            kernels.Select((k, i) => new Conv2d(_channels[i], _channels[i], k, padding: k / 2, groups: _channels[i])).ToArray()));
    }

    public override Tensor Forward(Tensor x)
    {
        using var scope = TensorScope.Begin();
        var parts = x.Split(_channels, 1);
        return Tensor.Cat(parts.Select((p, i) => _proj[i].Call(p)).ToArray(), 1).MoveToOuterScope();
    }
}

/// <summary>MS-FFN (<c>mlp</c>): 1×1 (no bias) → GELU → BN, multi-scale depthwise with an inner residual, GELU → BN,
/// dropout, 1×1 (no bias) → BN, dropout.</summary>
internal sealed class MsFfn : Module<Tensor, Tensor>
{
    readonly Sequential _fc1, _fc2;
    readonly MultiScaleDWConv _dwconv;
    readonly BatchNorm2d _norm;
    readonly Dropout _drop;

    public MsFfn(long dim, long hidden, double drop)
    {
        _fc1 = RegisterModule("fc1", new Sequential(new Conv2d(dim, hidden, 1, bias: false), new GELU(), new BatchNorm2d(hidden)));
        _dwconv = RegisterModule("dwconv", new MultiScaleDWConv(hidden));
        RegisterModule("act", new GELU());
        _norm = RegisterModule("norm", new BatchNorm2d(hidden));
        _fc2 = RegisterModule("fc2", new Sequential(new Conv2d(hidden, dim, 1, bias: false), new BatchNorm2d(dim)));
        _drop = RegisterModule("drop", new Dropout(drop));
    }

    public override Tensor Forward(Tensor x)
    {
        using var scope = TensorScope.Begin();
        var h = _fc1.Call(x);
        h = _dwconv.Call(h).Add(h);
        h = _drop.Call(_norm.Call(F.Gelu(h)));
        return _drop.Call(_fc2.Call(h)).MoveToOuterScope();
    }
}

/// <summary>One block: x += DWConv7(x); x += DropPath(LS1(D-Mixer(GN1(x)))); x += DropPath(LS2(MS-FFN(GN1(x)))).</summary>
internal sealed class Block : Module
{
    readonly Conv2d _posEmbed;
    readonly GroupNorm _norm1, _norm2;
    readonly HybridTokenMixer _mixer;
    readonly MsFfn _mlp;
    readonly Module<Tensor, Tensor> _dropPath, _ls1, _ls2;

    public Block(long dim, long kernelSize, long srRatio, long numGroups, long numHeads, double mlpRatio,
                 double drop, double dropPath, double? layerScaleInit)
    {
        _posEmbed = RegisterModule("pos_embed", new Conv2d(dim, dim, 7, padding: 3, groups: dim));
        _norm1 = RegisterModule("norm1", new GroupNorm(1, dim));
        _mixer = RegisterModule("token_mixer", new HybridTokenMixer(dim, kernelSize, numGroups, numHeads, srRatio));
        _norm2 = RegisterModule("norm2", new GroupNorm(1, dim));
        _mlp = RegisterModule("mlp", new MsFfn(dim, (long)(dim * mlpRatio), drop));
        _dropPath = RegisterModule<Module<Tensor, Tensor>>("drop_path", dropPath > 0 ? new DropPath(dropPath) : new Identity());
        _ls1 = RegisterModule<Module<Tensor, Tensor>>("layer_scale_1", layerScaleInit is double v1 ? new LayerScale(dim, v1) : new Identity());
        _ls2 = RegisterModule<Module<Tensor, Tensor>>("layer_scale_2", layerScaleInit is double v2 ? new LayerScale(dim, v2) : new Identity());
        DropPathRate = dropPath;
    }

    public double DropPathRate { get; }

    public Tensor Forward(Tensor x, Tensor positionBias)
    {
        using var scope = TensorScope.Begin();
        x = x.Add(_posEmbed.Call(x));
        x = x.Add(_dropPath.Call(_ls1.Call(_mixer.Forward(_norm1.Call(x), positionBias))));
        x = x.Add(_dropPath.Call(_ls2.Call(_mlp.Call(_norm2.Call(x)))));
        return x.MoveToOuterScope();
    }
}

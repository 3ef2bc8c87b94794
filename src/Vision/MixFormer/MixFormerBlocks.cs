using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.MixFormer;

// The blocks of MixFormer (official code: PaddleClas pull request #1820, ppcls/arch/backbone/model_zoo/mixformer.py),
// leaf first. Module and attribute names follow the Paddle module tree so state_dict keys equal the official ones up
// to the PyTorch conventions (BatchNorm running_mean/running_var/num_batches_tracked, Linear weights [out, in]).
// Linear and Conv2d layers are initialised as Paddle does (WeightInit.Paddle); the MLP is the kit's plain Mlp.

/// <summary>The relative position index of MixFormer's windows.</summary>
internal static class MixFormerWindows
{
    /// <summary>Relative position index of an M×M window: row (ri−rj+M−1)·(2M−1) + (ci−cj+M−1), int64 [M², M²].</summary>
    public static Tensor RelativePositionIndex(int m)
    {
        int n = m * m;
        var idx = new long[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                idx[i * n + j] = (i / m - j / m + m - 1) * (2L * m - 1) + (i % m - j % m + m - 1);
        return Tensor.FromArray<long>(idx, new long[] { n, n });
    }
}

/// <summary>Mixing Attention: window attention on C/2 channels in parallel with a depth-wise conv branch, with the
/// channel interaction (conv → V) and the spatial interaction (attention → conv) between them.</summary>
internal sealed class MixingAttention : Module
{
    readonly int _window, _heads;
    readonly long _dim, _headDim;
    readonly double _scale, _attnDrop, _projDrop;
    readonly Parameter _table;
    readonly Tensor _index;
    readonly Linear _projAttn, _projCnn, _qkv, _proj;
    readonly LayerNorm _projAttnNorm, _projCnnNorm, _attnNorm;
    readonly Sequential _dwconv, _channelInteraction, _spatialInteraction;
    readonly Conv2d _projection;
    readonly BatchNorm2d _convNorm;

    public MixingAttention(long dim, int windowSize, int dwconvKernelSize, int numHeads, bool qkvBias, double? qkScale,
                           double attnDrop, double projDrop)
    {
        _dim = dim;
        _window = windowSize;
        _heads = numHeads;
        long half = dim / 2;
        _headDim = half / numHeads;
        // Python's `qk_scale or head_dim ** -0.5`: a zero scale also falls back to the default.
        _scale = qkScale is double s && s != 0 ? s : Math.Pow(_headDim, -0.5);
        _attnDrop = attnDrop;
        _projDrop = projDrop;

        _table = RegisterParameter("relative_position_bias_table",
            new Parameter(Tensor.Empty(new long[] { (2L * windowSize - 1) * (2L * windowSize - 1), numHeads })));
        Init.TruncNormal_(_table, 0, 0.02, -0.04, 0.04);
        _index = RegisterBuffer("relative_position_index", MixFormerWindows.RelativePositionIndex(windowSize));
        _projAttn = RegisterModule("proj_attn", WeightInit.Paddle.NewLinear(dim, half));
        _projAttnNorm = RegisterModule("proj_attn_norm", new LayerNorm(half));
        _projCnn = RegisterModule("proj_cnn", WeightInit.Paddle.NewLinear(dim, dim));
        _projCnnNorm = RegisterModule("proj_cnn_norm", new LayerNorm(dim));
        _dwconv = RegisterModule("dwconv3x3", new Sequential(
            WeightInit.Paddle.NewConv(dim, dim, dwconvKernelSize, padding: dwconvKernelSize / 2, groups: dim),
            new BatchNorm2d(dim), new GELU()));
        _channelInteraction = RegisterModule("channel_interaction", new Sequential(
            WeightInit.Paddle.NewConv(dim, dim / 8, 1), new BatchNorm2d(dim / 8), new GELU(), WeightInit.Paddle.NewConv(dim / 8, half, 1)));
        _projection = RegisterModule("projection", WeightInit.Paddle.NewConv(dim, half, 1));
        _convNorm = RegisterModule("conv_norm", new BatchNorm2d(half));
        _qkv = RegisterModule("qkv", WeightInit.Paddle.NewLinear(half, half * 3, qkvBias));
        _spatialInteraction = RegisterModule("spatial_interaction", new Sequential(
            WeightInit.Paddle.NewConv(half, dim / 16, 1), new BatchNorm2d(dim / 16), new GELU(), WeightInit.Paddle.NewConv(dim / 16, 1, 1)));
        _attnNorm = RegisterModule("attn_norm", new LayerNorm(half));
        _proj = RegisterModule("proj", WeightInit.Paddle.NewLinear(dim, dim));
    }

    /// <summary>(B, Hp, Wp, C) tokens of a padded Hp×Wp grid → the same. The official code takes window tokens
    /// (B·nW, M², C) and returns them; every step but the attention acts per token or per image, so here only the
    /// attention's input goes into windows and only its output comes out of them, and the conv branch, the spatial
    /// interaction and <c>proj</c> run on the image: the same values with fewer layout copies (a window
    /// partition or reverse is a 6-D transpose that ONNX Runtime cannot fold into a convolution's reorder).</summary>
    public Tensor Forward(Tensor x, long hp, long wp)
    {
        long m = _window, n = m * m, h = _heads, d = _headDim, half = _dim / 2;
        long nH = hp / m, nW = wp / m;

        using var a0 = _projAttn.Call(x);
        using var a1 = _projAttnNorm.Call(a0);
        using var a2 = a1.Reshape(-1, nH, m, nW, m, half);
        using var a3 = a2.Permute(0, 1, 3, 2, 4, 5);
        using var a = a3.Reshape(-1, n, half);                                  // (B·nW, M², C/2), Paddle window_partition
        using var g0 = _projCnn.Call(x);
        using var g1 = _projCnnNorm.Call(g0);
        using var g2 = g1.Permute(0, 3, 1, 2);                                  // (B, C, Hp, Wp), channels-last view

        // conv branch
        using var g = _dwconv.Call(g2);
        using var pooled = g.Mean(new long[] { 2, 3 }, keepDim: true);
        using var ci = _channelInteraction.Call(pooled);                        // (B, C/2, 1, 1), no sigmoid yet
        using var p0 = _projection.Call(g);                                     // (B, C/2, Hp, Wp)

        // attention branch
        using var qkv0 = _qkv.Call(a);
        using var qkv1 = qkv0.Reshape(-1, n, 3, h, d);
        using var qkv = qkv1.Permute(2, 0, 3, 1, 4);                            // (3, Bw, h, N, d)
        using var q = qkv.Select(0, 0);
        using var k = qkv.Select(0, 1);
        using var v0 = qkv.Select(0, 2);
        using var gate0 = F.Sigmoid(ci);
        using var gate = gate0.Reshape(-1, 1, h, 1, d);                         // channel c → head c / d, slot c % d
        using var v1 = v0.Reshape(-1, nW * nH, h, n, d);
        using var v2 = v1 * gate;                                               // shared by all windows of an image
        using var v = v2.Reshape(-1, h, n, d);

        using var qs = q * _scale;
        using var kt = k.Transpose(-2, -1);
        using var scores = qs.Matmul(kt);
        using var flatIndex = _index.Reshape(-1);
        using var bias0 = _table.IndexSelect(0, flatIndex);
        using var bias1 = bias0.Reshape(n, n, h);
        using var bias2 = bias1.Permute(2, 0, 1);
        using var bias = bias2.Unsqueeze(0);
        using var scored = scores + bias;
        using var attn0 = F.Softmax(scored, -1);
        using var attn = F.Dropout(attn0, _attnDrop, Training);
        using var o0 = attn.Matmul(v);                                          // (B·nW, h, M², d)
        // out of the windows in one move: (B, nH, nW, h, M, M, d) → (B, nH, M, nW, M, h, d), head-major channels
        using var o1 = o0.Reshape(-1, nH, nW, h, m, m, d);
        using var o2 = o1.Permute(0, 1, 4, 2, 5, 3, 6);
        using var o = o2.Reshape(-1, hp, wp, half);                             // (B, Hp, Wp, C/2)

        // spatial interaction: from the attention output before attn_norm, gates the projected conv branch
        using var oMap = o.Permute(0, 3, 1, 2);
        using var si = _spatialInteraction.Call(oMap);                          // (B, 1, Hp, Wp)
        using var siGate = F.Sigmoid(si);
        using var p1 = siGate * p0;
        using var p2 = _convNorm.Call(p1);
        using var p = p2.Permute(0, 2, 3, 1);                                   // (B, Hp, Wp, C/2)

        using var on = _attnNorm.Call(o);
        using var y0 = Tensor.Cat(new[] { on, p }, -1);                         // attention half first
        using var y1 = _proj.Call(y0);
        return F.Dropout(y1, _projDrop, Training);
    }
}

/// <summary>Pre-norm block: x + DropPath(window-attention mixing), then x + DropPath(MLP). The grid is zero-padded at
/// the bottom/right to a multiple of the window after norm1, without a mask, and cropped back.</summary>
internal sealed class MixingBlock : Module
{
    readonly int _window;
    readonly long _dim;
    readonly LayerNorm _norm1, _norm2;
    readonly MixingAttention _attn;
    readonly Mlp _mlp;

    public MixingBlock(long dim, int numHeads, int windowSize, int dwconvKernelSize, double mlpRatio, bool qkvBias,
                       double? qkScale, double drop, double attnDrop, double dropPath)
    {
        _dim = dim;
        _window = windowSize;
        DropPathRate = dropPath;
        _norm1 = RegisterModule("norm1", new LayerNorm(dim));
        _attn = RegisterModule("attn", new MixingAttention(dim, windowSize, dwconvKernelSize, numHeads, qkvBias, qkScale, attnDrop, drop));
        _norm2 = RegisterModule("norm2", new LayerNorm(dim));
        _mlp = RegisterModule("mlp", new Mlp(dim, (long)(dim * mlpRatio), drop, WeightInit.Paddle));
    }

    public double DropPathRate { get; }

    /// <summary>(B, H·W, C) tokens of an H×W grid → same shape.</summary>
    public Tensor Forward(Tensor x, long height, long width)
    {
        long m = _window, c = _dim;
        long padB = (m - height % m) % m, padR = (m - width % m) % m;
        long hp = height + padB, wp = width + padR;

        using var t0 = _norm1.Call(x);
        using var t1 = t0.Reshape(-1, height, width, c);
        // torch pad order: last axis first — C (0, 0), W (0, padR) on the right, H (0, padB) at the bottom.
        using var t2 = padB > 0 || padR > 0 ? F.Pad(t1, new long[] { 0, 0, 0, padR, 0, padB }) : t1.Alias();
        using var r2 = _attn.Forward(t2, hp, wp);                             // windows inside, (B, Hp, Wp, C) out
        using var r3a = r2.Slice(1, 0, height);                                // crop the padding (views)
        using var r3 = r3a.Slice(2, 0, width);
        using var r4 = r3.Reshape(-1, height * width, c);
        using var d1 = F.DropPath(r4, DropPathRate, Training);
        using var x1 = x + d1;

        using var n2 = _norm2.Call(x1);
        using var f = _mlp.Call(n2);
        using var d2 = F.DropPath(f, DropPathRate, Training);
        return x1 + d2;
    }
}

/// <summary>Down-sampler between stages: BatchNorm first, then a 2×2 stride-2 conv C → C'. No activation.</summary>
internal sealed class ConvMerging : Module
{
    readonly Conv2d _reduction;
    readonly BatchNorm2d _norm;

    public ConvMerging(long dim, long outDim)
    {
        _reduction = RegisterModule("reduction", WeightInit.Paddle.NewConv(dim, outDim, 2, 2));
        _norm = RegisterModule("norm", new BatchNorm2d(dim));
    }

    /// <summary>(B, H·W, C) → (B, H/2·W/2, C').</summary>
    public Tensor Forward(Tensor x, long height, long width)
    {
        long c = x.Size(2);
        using var b = TokenLayout.ToImage(x, c, height, width);
        using var n = _norm.Call(b);
        using var r = _reduction.Call(n);
        return TokenLayout.ToTokens(r);
    }
}

/// <summary>One stage: its blocks, then (stages 1..n-1) the down-sampler.</summary>
internal sealed class MixFormerStage : Module
{
    readonly ModuleList<MixingBlock> _blocks;

    public MixFormerStage(long dim, int depth, int numHeads, int windowSize, int dwconvKernelSize, double mlpRatio, bool qkvBias,
                          double? qkScale, double drop, double attnDrop, double[] dropPath, long outDim)
    {
        _blocks = RegisterModule("blocks", new ModuleList<MixingBlock>());
        for (int i = 0; i < depth; i++)
            _blocks.Add(new MixingBlock(dim, numHeads, windowSize, dwconvKernelSize, mlpRatio, qkvBias, qkScale, drop, attnDrop, dropPath[i]));
        if (outDim > 0) Downsample = RegisterModule("downsample", new ConvMerging(dim, outDim));
    }

    public ConvMerging? Downsample { get; }

    public IReadOnlyList<MixingBlock> Blocks => _blocks;

    /// <summary>Runs the blocks on (B, H·W, C) tokens; the caller applies <see cref="Downsample"/>.</summary>
    public Tensor ForwardBlocks(Tensor x, long height, long width)
    {
        var t = x.Alias();
        foreach (var b in _blocks)
        {
            var next = b.Forward(t, height, width);
            t.Dispose();
            t = next;
        }
        return t;
    }
}

/// <summary>Conv stem: right/bottom zero padding to a multiple of the patch size, three conv(3×3)–BN–GELU to E/2 (the
/// first with stride p/2), a p/2×p/2 stride-p/2 conv to E and a per-pixel LayerNorm.</summary>
internal sealed class ConvEmbed : Module
{
    readonly int _patch;
    readonly long _embed;
    readonly Sequential _stem;
    readonly Conv2d _proj;
    readonly LayerNorm _norm;

    public ConvEmbed(int patchSize, int inChans, long embedDim)
    {
        _patch = patchSize;
        _embed = embedDim;
        long e = embedDim / 2;
        int s = patchSize / 2;
        _stem = RegisterModule("stem", new Sequential(
            WeightInit.Paddle.NewConv(inChans, e, 3, s, 1), new BatchNorm2d(e), new GELU(),
            WeightInit.Paddle.NewConv(e, e, 3, 1, 1), new BatchNorm2d(e), new GELU(),
            WeightInit.Paddle.NewConv(e, e, 3, 1, 1), new BatchNorm2d(e), new GELU()));
        _proj = RegisterModule("proj", WeightInit.Paddle.NewConv(e, embedDim, s, s));
        _norm = RegisterModule("norm", new LayerNorm(embedDim));
    }

    /// <summary>Grid (height or width) after the stem for an input side <paramref name="side"/>.</summary>
    public static long OutputSide(long side, int patchSize)
    {
        long s = patchSize / 2;
        long padded = (side + patchSize - 1) / patchSize * patchSize;
        long afterStem = (padded + 2 - 3) / s + 1;
        return afterStem / s;
    }

    /// <summary>(B, 3, H, W) images → (B, E, H', W') normalised map.</summary>
    public Tensor Forward(Tensor x)
    {
        long h = x.Size(2), w = x.Size(3);
        long padR = (_patch - w % _patch) % _patch, padB = (_patch - h % _patch) % _patch;
        using var xp = padR > 0 || padB > 0 ? F.Pad(x, new long[] { 0, padR, 0, padB }) : x.Alias();
        using var s = _stem.Call(xp);
        using var p = _proj.Call(s);
        long gh = p.Size(2), gw = p.Size(3);
        using var t = TokenLayout.ToTokens(p);
        using var n = _norm.Call(t);
        return TokenLayout.ToImage(n, _embed, gh, gw);
    }
}

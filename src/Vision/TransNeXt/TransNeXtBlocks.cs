using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.TransNeXt;

/// <summary>Convolutional GLU: <c>fc1</c> (C → 2·hid; first half gate, second half value), gate through the
/// depth-wise conv and exact GELU, times the value, dropout, <c>fc2</c>, dropout. hid = int(2·hidden/3).</summary>
internal sealed class ConvolutionalGLU : Module
{
    readonly Linear _fc1, _fc2;
    readonly DWConv _dwconv;
    readonly Dropout _drop;

    public int Hidden { get; }

    public ConvolutionalGLU(int inFeatures, int hiddenFeatures, double drop)
    {
        Hidden = (int)(2.0 * hiddenFeatures / 3.0);
        _fc1 = RegisterModule("fc1", WeightInit.Timm.NewLinear(inFeatures, 2L * Hidden));
        _dwconv = RegisterModule("dwconv", new DWConv(Hidden, WeightInit.Timm));
        _fc2 = RegisterModule("fc2", WeightInit.Timm.NewLinear(Hidden, inFeatures));
        _drop = RegisterModule("drop", new Dropout(drop));
    }

    public Tensor Forward(Tensor x, long h, long w)
    {
        using var scope = TensorScope.Begin();
        var parts = _fc1.Call(x).Chunk(2, -1);
        var gate = F.Gelu(_dwconv.Forward(parts[0], h, w));
        var y = _drop.Call(gate * parts[1]);
        y = _drop.Call(_fc2.Call(y));
        return y.MoveToOuterScope();
    }
}

/// <summary>Shared by both attention kinds: the log-CPB MLP (<c>cpb_fc1</c> 2→512, ReLU, <c>cpb_fc2</c> 512→heads)
/// evaluated on a stage's unique-coordinate table and gathered to a (heads, N, keys) bias.</summary>
internal static class CpbBias
{
    public static Tensor Compute(Linear fc1, Linear fc2, Tensor coordsTable, Tensor index, long n, long keys)
    {
        using var scope = TensorScope.Begin();
        var hidden = F.Relu(fc1.Call(coordsTable));
        var perRow = fc2.Call(hidden).Transpose(0, 1);              // (heads, T)
        var gathered = perRow.IndexSelect(1, index);               // (heads, N·keys)
        return gathered.View(-1, n, keys).MoveToOuterScope();
    }
}

/// <summary>
/// Stage-4 <c>Attention</c>: length-scaled cosine multi-head self-attention with query embedding and a log-CPB
/// bias. Logits = ((l2norm(q) + query_embedding) · softplus(temperature) · log N) @ l2norm(k)ᵀ + bias.
/// </summary>
internal sealed class LengthScaledAttention : Module
{
    readonly int _heads, _headDim;
    readonly Parameter _temperature, _queryEmbedding;
    readonly Tensor _seqLengthScale;
    readonly Linear _qkv, _proj, _cpbFc1, _cpbFc2;
    readonly Dropout _attnDrop, _projDrop;

    public LengthScaledAttention(int dim, int height, int width, int heads, bool qkvBias, double attnDrop, double projDrop)
    {
        _heads = heads;
        _headDim = dim / heads;
        _temperature = RegisterParameter("temperature", new Parameter(Tensor.Full(new long[] { heads, 1, 1 }, Math.Log(Math.Exp(1 / 0.24) - 1))));
        // float64 0-dim scalar as in the official code (numpy origin); multiplying a float32 tensor keeps float32.
        _seqLengthScale = RegisterBuffer("seq_length_scale", Tensor.Scalar(Math.Log((double)height * width), DType.Float64), persistent: false);
        _qkv = RegisterModule("qkv", WeightInit.Timm.NewLinear(dim, dim * 3L, qkvBias));
        _queryEmbedding = RegisterParameter("query_embedding", WeightInit.TruncNormalParameter(new long[] { heads, 1, _headDim }, 0.02));
        _attnDrop = RegisterModule("attn_drop", new Dropout(attnDrop));
        _proj = RegisterModule("proj", WeightInit.Timm.NewLinear(dim, dim));
        _projDrop = RegisterModule("proj_drop", new Dropout(projDrop));
        _cpbFc1 = RegisterModule("cpb_fc1", WeightInit.Timm.NewLinear(2, 512));
        _cpbFc2 = RegisterModule("cpb_fc2", WeightInit.Timm.NewLinear(512, heads));
    }

    public Tensor Forward(Tensor x, long h, long w, Tensor relativePosIndex, Tensor relativeCoordsTable)
    {
        using var scope = TensorScope.Begin();
        long n = x.Size(1), c = x.Size(2);
        var qkv = _qkv.Call(x).Reshape(-1, n, 3L * _heads, _headDim).Permute(0, 2, 1, 3);
        var parts = qkv.Chunk(3, 1);
        var bias = CpbBias.Compute(_cpbFc1, _cpbFc2, relativeCoordsTable, relativePosIndex, n, n);
        var qs = (F.Normalize(parts[0], dim: -1) + _queryEmbedding) * F.Softplus(_temperature) * _seqLengthScale;
        var attn = qs.Matmul(F.Normalize(parts[1], dim: -1).Transpose(-2, -1)) + bias;
        attn = _attnDrop.Call(attn.Softmax(-1));
        var y = attn.Matmul(parts[2]).Transpose(1, 2).Reshape(-1, n, c);
        return _projDrop.Call(_proj.Call(y)).MoveToOuterScope();
    }
}

/// <summary>
/// Aggregated attention (stages 1–3, and stage 4 of A-A-A-A models): one softmax over a k×k zero-padded sliding
/// window of keys around each pixel (out-of-grid positions masked) and the keys of an "activate and pool" grid
/// (1×1 conv <c>sr</c>, GELU, adaptive average pool, LayerNorm eps 1e-5), with length-scaled cosine similarity,
/// query embedding, local and log-CPB position biases, and the learnable-token term added after the softmax.
/// The window is built from zero-padded shifted slices (no unfold, no batch-dependent shapes).
/// </summary>
internal sealed class AggregatedAttention : Module
{
    readonly int _heads, _headDim, _window, _localLen;
    readonly int _poolH, _poolW;
    readonly Parameter _temperature, _queryEmbedding, _relativePosBiasLocal, _learnableTokens, _learnableBias;
    readonly Linear _q, _kv, _proj, _cpbFc1, _cpbFc2;
    readonly Conv2d _sr;
    readonly LayerNorm _norm;
    readonly Dropout _attnDrop, _projDrop;
    readonly Tensor _seqLengthScale, _paddingMask;

    public int PoolLength => _poolH * _poolW;

    public AggregatedAttention(int dim, int height, int width, int heads, int window, bool qkvBias, double attnDrop, double projDrop,
                               int srRatio, int? fixedPoolSize)
    {
        _heads = heads;
        _headDim = dim / heads;
        _window = window;
        _localLen = window * window;
        if (fixedPoolSize is int fp) { _poolH = fp; _poolW = fp; }
        else { _poolH = height / srRatio; _poolW = width / srRatio; }

        _temperature = RegisterParameter("temperature", new Parameter(Tensor.Full(new long[] { heads, 1, 1 }, Math.Log(Math.Exp(1 / 0.24) - 1))));
        _q = RegisterModule("q", WeightInit.Timm.NewLinear(dim, dim, qkvBias));
        _queryEmbedding = RegisterParameter("query_embedding", WeightInit.TruncNormalParameter(new long[] { heads, 1, _headDim }, 0.02));
        _kv = RegisterModule("kv", WeightInit.Timm.NewLinear(dim, dim * 2L, qkvBias));
        _attnDrop = RegisterModule("attn_drop", new Dropout(attnDrop));
        _proj = RegisterModule("proj", WeightInit.Timm.NewLinear(dim, dim));
        _projDrop = RegisterModule("proj_drop", new Dropout(projDrop));
        _sr = RegisterModule("sr", WeightInit.Timm.NewConv(dim, dim, 1, 1, 0));
        _norm = RegisterModule("norm", new LayerNorm(dim, 1e-5));
        _cpbFc1 = RegisterModule("cpb_fc1", WeightInit.Timm.NewLinear(2, 512));
        _cpbFc2 = RegisterModule("cpb_fc2", WeightInit.Timm.NewLinear(512, heads));
        _relativePosBiasLocal = RegisterParameter("relative_pos_bias_local", WeightInit.TruncNormalParameter(new long[] { heads, _localLen }, 0.0004));
        var (mask, scale) = TransNeXtTables.SeqLengthAndMask(height, width, window, PoolLength);
        _seqLengthScale = RegisterBuffer("seq_length_scale", scale, persistent: false);
        _paddingMask = RegisterBuffer("padding_mask", mask, persistent: false);
        _learnableTokens = RegisterParameter("learnable_tokens", WeightInit.TruncNormalParameter(new long[] { heads, _headDim, _localLen }, 0.02));
        _learnableBias = RegisterParameter("learnable_bias", new Parameter(Tensor.Zeros(new long[] { heads, 1, _localLen })));
    }

    public Tensor Forward(Tensor x, long h, long w, Tensor relativePosIndex, Tensor relativeCoordsTable)
    {
        using var scope = TensorScope.Begin();
        long n = x.Size(1), c = x.Size(2);

        // queries: l2-normalised, plus query embedding, times softplus(temperature) and the per-pixel length scale
        var qNorm = F.Normalize(_q.Call(x).Reshape(-1, n, _heads, _headDim).Permute(0, 2, 1, 3), dim: -1);
        var qScaled = (qNorm + _queryEmbedding) * F.Softplus(_temperature) * _seqLengthScale;

        // local keys (l2-normalised per head before windowing) and values, each windowed per pixel: (B, N, k², heads, d)
        var kvParts = _kv.Call(x).Chunk(2, -1);
        var kWindows = SlidingWindow(F.Normalize(kvParts[0].Reshape(-1, h, w, _heads, _headDim), dim: -1).Reshape(-1, h, w, c), h, w, n);
        var vWindows = SlidingWindow(kvParts[1].Reshape(-1, h, w, c), h, w, n);

        // q · k over each pixel's window as a product and a sum over d in the window layout, plus the local position
        // bias with −∞ at window positions outside the grid. Same values as the official unfold + permute + matmul and
        // masking of the sum; but no permute of the windowed keys (a third of the exported graph's time), and the
        // masked bias is a constant once exported instead of a Where over the whole batch.
        var localBias = _relativePosBiasLocal.Unsqueeze(1).MaskedFill(_paddingMask, double.NegativeInfinity);
        var attnLocal = qScaled.Permute(0, 2, 1, 3).Unsqueeze(2).Mul(kWindows).Sum(-1).Permute(0, 3, 1, 2) + localBias;   // (B, heads, N, k²)

        // pooled keys and values ("activate and pool")
        var xImg = TokenLayout.ToImage(x, c, h, w).Contiguous();
        var pooled = F.AdaptiveAvgPool2d(F.Gelu(_sr.Call(xImg)), _poolH, _poolW).Reshape(-1, c, PoolLength).Permute(0, 2, 1);
        pooled = _norm.Call(pooled);
        var kvPool = _kv.Call(pooled).Reshape(-1, PoolLength, 2L * _heads, _headDim).Permute(0, 2, 1, 3).Chunk(2, 1);

        var poolBias = CpbBias.Compute(_cpbFc1, _cpbFc2, relativeCoordsTable, relativePosIndex, n, PoolLength);
        var attnPool = qScaled.Matmul(F.Normalize(kvPool[0], dim: -1).Transpose(-2, -1)) + poolBias;

        // one softmax over both paths
        var attn = _attnDrop.Call(Tensor.Cat(new[] { attnLocal, attnPool }, -1).Softmax(-1));
        var split = attn.Split(new long[] { _localLen, PoolLength }, -1);

        // learnable tokens + learnable bias (from the normalised query alone) added after the softmax
        var localWeights = qNorm.Matmul(_learnableTokens) + _learnableBias + split[0];
        var xLocal = localWeights.Permute(0, 2, 3, 1).Unsqueeze(-1).Mul(vWindows).Sum(2);   // (B, N, heads, d)
        var xPool = split[1].Matmul(kvPool[1]);
        var y = (xLocal + xPool.Transpose(1, 2)).Reshape(-1, n, c);
        return _projDrop.Call(_proj.Call(y)).MoveToOuterScope();
    }

    /// <summary>The k×k neighbourhoods of a channels-last (B, H, W, C) image, zero outside the grid, as (B, N, k², heads,
    /// d): window position row-major from the top-left, as nn.Unfold orders it.</summary>
    Tensor SlidingWindow(Tensor image, long h, long w, long n)
    {
        int half = _window / 2;
        var padded = F.Pad(image, new long[] { 0, 0, half, half, half, half });
        var shifts = new Tensor[_localLen];
        for (int a = 0; a < _window; a++)
            for (int b = 0; b < _window; b++)
                shifts[a * _window + b] = padded.Slice(1, a, a + h).Slice(2, b, b + w);
        return Tensor.Stack(shifts, 3).Reshape(-1, n, _localLen, _heads, _headDim);
    }
}

/// <summary>Pre-norm residual block: x + DropPath(attn(norm1(x))), x + DropPath(ConvGLU(norm2(x))). Aggregated
/// attention when the stage's sr_ratio ≠ 1, length-scaled MHSA otherwise.</summary>
internal sealed class TransNeXtBlock : Module
{
    readonly LayerNorm _norm1, _norm2;
    readonly AggregatedAttention? _aggregated;
    readonly LengthScaledAttention? _mhsa;
    readonly ConvolutionalGLU _mlp;
    readonly DropPath _dropPath;

    public TransNeXtBlock(int dim, int heads, int height, int width, int window, double mlpRatio, bool qkvBias, double drop,
                          double attnDrop, double dropPath, double normEps, int srRatio, int? fixedPoolSize)
    {
        _norm1 = RegisterModule("norm1", new LayerNorm(dim, normEps));
        if (srRatio == 1)
            _mhsa = RegisterModule("attn", new LengthScaledAttention(dim, height, width, heads, qkvBias, attnDrop, drop));
        else
            _aggregated = RegisterModule("attn", new AggregatedAttention(dim, height, width, heads, window, qkvBias, attnDrop, drop, srRatio, fixedPoolSize));
        _norm2 = RegisterModule("norm2", new LayerNorm(dim, normEps));
        _mlp = RegisterModule("mlp", new ConvolutionalGLU(dim, (int)(dim * mlpRatio), drop));
        _dropPath = RegisterModule("drop_path", new DropPath(dropPath));
    }

    public Tensor Forward(Tensor x, long h, long w, Tensor relativePosIndex, Tensor relativeCoordsTable)
    {
        using var scope = TensorScope.Begin();
        var n1 = _norm1.Call(x);
        var a = _aggregated is not null
            ? _aggregated.Forward(n1, h, w, relativePosIndex, relativeCoordsTable)
            : _mhsa!.Forward(n1, h, w, relativePosIndex, relativeCoordsTable);
        x = x + _dropPath.Call(a);
        x = x + _dropPath.Call(_mlp.Forward(_norm2.Call(x), h, w));
        return x.MoveToOuterScope();
    }
}

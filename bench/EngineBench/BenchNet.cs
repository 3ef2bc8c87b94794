using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Bench;

// The benchmark network. It must stay identical (shapes, operations, order) to BenchNet in bench/engine_bench.py.
//
//   stem    Conv2d(3, 64, 4, stride 4) -> BatchNorm2d -> GELU                       (B, 64, 56, 56)
//   stage1  ConvBlock(64) -> AttnBlock(64, 2 heads, 7x7 windows)                   (B, 64, 56, 56)
//   down    BatchNorm2d(64) -> Conv2d(64, 128, 2, stride 2)                         (B, 128, 28, 28)
//   stage2  ConvBlock(128) -> AttnBlock(128, 4 heads, global over 784 tokens)       (B, 128, 28, 28)
//   head    mean over (H, W) -> LayerNorm(128) -> Linear(128, 10)
//
// Forward methods run inside the caller's TensorScope (one per training step). ConvBlock and AttnBlock open their
// own nested scope too, so their intermediates are freed when the block returns rather than when the step ends.

/// <summary><c>x + pw2(gelu(pw1(bn(dw7x7(x)))))</c>: depthwise conv and a pointwise (1x1 conv) MLP, residual.</summary>
sealed class ConvBlock : Module<Tensor, Tensor>
{
    readonly Conv2d _dw, _pw1, _pw2;
    readonly Module<Tensor, Tensor> _norm;
    readonly GELU _act;

    public ConvBlock(long dim, long mlpRatio = 4)
    {
        _dw = RegisterModule("dw", new Conv2d(dim, dim, 7, padding: 3, groups: dim));
        _norm = RegisterModule("norm", new BatchNorm2d(dim));
        _pw1 = RegisterModule("pw1", new Conv2d(dim, dim * mlpRatio, 1));
        _act = RegisterModule("act", new GELU());
        _pw2 = RegisterModule("pw2", new Conv2d(dim * mlpRatio, dim, 1));
    }

    public override Tensor Forward(Tensor x)
    {
        // A block-level scope frees the block's intermediates as soon as it returns (autograd keeps its own
        // references to what backward needs), as Python's reference counting does; only the output moves out.
        using var scope = TensorScope.Begin();
        return (x + _pw2.Call(_act.Call(_pw1.Call(_norm.Call(_dw.Call(x)))))).MoveToOuterScope();
    }
}

/// <summary>Multi-head self-attention over tokens, pre-norm, residual: LayerNorm -> Linear qkv -> heads ->
/// softmax(q kᵀ · scale) v -> Linear proj. window > 0 attends within non-overlapping window x window patches.</summary>
sealed class AttnBlock : Module<Tensor, Tensor>
{
    readonly long _heads, _headDim, _window;
    readonly double _scale;
    readonly LayerNorm _norm;
    readonly Linear _qkv, _proj;

    public AttnBlock(long dim, long heads, long window = 0)
    {
        _heads = heads;
        _headDim = dim / heads;
        _scale = Math.Pow(_headDim, -0.5);
        _window = window;
        _norm = RegisterModule("norm", new LayerNorm(dim));
        _qkv = RegisterModule("qkv", new Linear(dim, dim * 3));
        _proj = RegisterModule("proj", new Linear(dim, dim));
    }

    public override Tensor Forward(Tensor x)
    {
        // Block-level scope (see ConvBlock): without it the (b, h, n, n) score matrices that backward does not
        // need (q kᵀ and its scaled copy, 2 x 157 MB in stage 2) would live until the end of the training step.
        using var scope = TensorScope.Begin();
        var s = x.Shape;
        long B = s[0], C = s[1], H = s[2], W = s[3], ws = _window;
        Tensor t = ws > 0
            ? x.Reshape(B, C, H / ws, ws, W / ws, ws).Permute(0, 2, 4, 3, 5, 1).Reshape(-1, ws * ws, C)
            : x.Flatten(2).Transpose(1, 2);                                             // b, n, C
        long b = t.Size(0), n = t.Size(1);
        var qkv = _qkv.Call(_norm.Call(t)).Reshape(b, n, 3, _heads, _headDim).Permute(2, 0, 3, 1, 4);
        Tensor q = qkv.Select(0, 0), k = qkv.Select(0, 1), v = qkv.Select(0, 2);     // b, h, n, d
        var attn = q.Matmul(k.Transpose(-2, -1)) * _scale;                              // b, h, n, n
        attn = attn.Softmax(-1);
        var o = attn.Matmul(v).Transpose(1, 2).Reshape(b, n, C);                        // b, n, C
        t = t + _proj.Call(o);
        var y = ws > 0
            ? t.Reshape(B, H / ws, W / ws, ws, ws, C).Permute(0, 5, 1, 3, 2, 4).Reshape(B, C, H, W)
            : t.Transpose(1, 2).Reshape(B, C, H, W);
        return y.MoveToOuterScope();
    }
}

/// <summary>The whole network; <see cref="Forward"/> returns (B, classes) logits.</summary>
sealed class BenchNet : Module<Tensor, Tensor>
{
    readonly Sequential _stem, _stage1, _down, _stage2;
    readonly LayerNorm _norm;
    readonly Linear _head;

    public BenchNet(long dim1 = 64, long dim2 = 128, long heads1 = 2, long heads2 = 4, long classes = 10)
    {
        _stem = RegisterModule("stem", new Sequential(new Conv2d(3, dim1, 4, stride: 4), new BatchNorm2d(dim1), new GELU()));
        _stage1 = RegisterModule("stage1", new Sequential(new ConvBlock(dim1), new AttnBlock(dim1, heads1, window: 7)));
        _down = RegisterModule("down", new Sequential(new BatchNorm2d(dim1), new Conv2d(dim1, dim2, 2, stride: 2)));
        _stage2 = RegisterModule("stage2", new Sequential(new ConvBlock(dim2), new AttnBlock(dim2, heads2)));
        _norm = RegisterModule("norm", new LayerNorm(dim2));
        _head = RegisterModule("head", new Linear(dim2, classes));
    }

    public override Tensor Forward(Tensor x)
    {
        x = _stem.Call(x);
        x = _stage1.Call(x);
        x = _down.Call(x);
        x = _stage2.Call(x);
        x = x.Mean(new long[] { 2, 3 });
        return _head.Call(_norm.Call(x));
    }
}

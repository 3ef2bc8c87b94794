using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary><c>gelu(self, approximate='none'|'tanh')</c>: exact GELU through Erf below opset 20, the Gelu operator from 20.</summary>
[Aten("""aten::gelu(Tensor self, *, str approximate="none") -> Tensor""")]
internal sealed class GeluMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string x = c.In("self");
        string inner;
        if ((c.String("approximate") ?? "none") == "tanh")
        {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            var cube = c.Emit("Mul", new[] { c.Emit("Mul", new[] { x, x }), x });
            var poly = c.Emit("Add", new[] { x, c.Emit("Mul", new[] { cube, c.Scalar(0.044715, t) }) });
            inner = c.Emit("Tanh", new[] { c.Emit("Mul", new[] { poly, c.Scalar(Math.Sqrt(2 / Math.PI), t) }) });
        }
        else inner = c.Emit("Erf", new[] { c.Emit("Div", new[] { x, c.Scalar(Math.Sqrt(2), t) }) });
        var half = c.Emit("Mul", new[] { x, c.Scalar(0.5, t) });
        c.EmitOut("Mul", new[] { half, c.Emit("Add", new[] { inner, c.Scalar(1, t) }) });
    }

    [Opset(20)]
    public void V20(MapContext c) => c.EmitOut("Gelu", new[] { c.In("self") }, Attr.S("approximate", c.String("approximate") ?? "none"));
}

[Aten("aten::silu(Tensor self) -> Tensor")]
internal sealed class SiluMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Mul", new[] { c.In("self"), c.Emit("Sigmoid", new[] { c.In("self") }) });
}

[Aten("aten::hardswish(Tensor self) -> Tensor")]
internal sealed class HardswishMapper : OpMapper
{
    [Opset(14)]
    public void V14(MapContext c) => c.EmitOut("HardSwish", new[] { c.In("self") });
}

[Aten("aten::leaky_relu(Tensor self, Scalar negative_slope=0.01) -> Tensor")]
internal sealed class LeakyReluMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("LeakyRelu", new[] { c.In("self") }, Attr.F("alpha", c.Double("negative_slope", 0.01)));
}

/// <summary><c>softplus(self, beta, threshold)</c>: <c>x</c> where <c>beta x &gt; threshold</c>, else <c>log(1 + exp(beta x)) / beta</c>.</summary>
[Aten("aten::softplus(Tensor self, Scalar beta=1, Scalar threshold=20) -> Tensor")]
internal sealed class SoftplusMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        double beta = c.Double("beta", 1), threshold = c.Double("threshold", 20);
        string x = c.In("self");
        string bx = beta == 1 ? x : c.Emit("Mul", new[] { x, c.Scalar(beta, t) });
        string sp = c.Emit("Softplus", new[] { bx });
        if (beta != 1) sp = c.Emit("Div", new[] { sp, c.Scalar(beta, t) });
        c.EmitOut("Where", new[] { c.Emit("Greater", new[] { bx, c.Scalar(threshold, t) }), x, sp });
    }
}

/// <summary>softmax / log_softmax over one axis (opset 13 semantics: a single axis), with optional dtype.</summary>
internal abstract class SoftmaxBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int("dim", -1), c.Rank("self"));
        c.EmitOut(onnxOp, new[] { c.InAs("self", c.OutDType()) }, Attr.I("axis", axis));
    }
}

[Aten("aten::softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor")]
internal sealed class SoftmaxMapper() : SoftmaxBase("Softmax");

[Aten("aten::log_softmax.int(Tensor self, int dim, ScalarType? dtype=None) -> Tensor")]
internal sealed class LogSoftmaxMapper() : SoftmaxBase("LogSoftmax");

/// <summary><c>conv2d(input, weight, bias, stride, padding, dilation, groups)</c> with integer padding.</summary>
[Aten("aten::conv2d(Tensor input, Tensor weight, Tensor? bias=None, int[2] stride=1, int[2] padding=0, int[2] dilation=1, int groups=1) -> Tensor")]
internal sealed class Conv2dMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        long[] Pair(string name, long d) { var v = c.IsNone(name) ? new[] { d } : c.Ints(name); return v.Length == 1 ? new[] { v[0], v[0] } : v; }
        var w = c.Shape("weight");
        var stride = Pair("stride", 1);
        var pad = Pair("padding", 0);
        var dil = Pair("dilation", 1);
        long groups = c.Int("groups", 1);
        var inputs = c.IsNone("bias") ? new[] { c.In("input"), c.In("weight") } : new[] { c.In("input"), c.In("weight"), c.In("bias") };
        c.EmitOut("Conv", inputs,
            Attr.Ints("kernel_shape", new[] { w[2], w[3] }), Attr.Ints("strides", stride),
            Attr.Ints("pads", new[] { pad[0], pad[1], pad[0], pad[1] }), Attr.Ints("dilations", dil), Attr.I("group", groups));
    }
}

/// <summary>
/// The bridge's <c>depthwise_conv2d_per_sample(self, weight, bias, padding)</c> (TransXNet's IDConv): a Scan over the
/// batch whose body is one depthwise Conv (group = C) with that sample's kernels and bias. An ONNX Conv's group count is
/// an attribute, so the eager batch-folded form (group = B·C) would fix the batch size; the Scan keeps it dynamic and
/// runs as fast as the fixed-batch Conv in ONNX Runtime (5–10x faster than im2col + batched matmul, measured).
/// </summary>
[Aten("mlnetext::depthwise_conv2d_per_sample(Tensor self, Tensor weight, Tensor bias, int padding) -> Tensor")]
internal sealed class DepthwiseConv2dPerSampleMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        long ch = c.StaticDim("self", 1), k = c.StaticDim("weight", 2), pad = c.Int("padding", 0);
        long h = c.StaticDim("self", 2), w = c.StaticDim("self", 3), ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
        int type = OnnxTypes.Of(c.OutDType());
        // per sample: x (1, C, H, W), weight (C, 1, K, K), bias (C) -> (1, C, H', W')
        string xs = c.Graph.Fresh("sample_input"), ws = c.Graph.Fresh("sample_weight"), bs = c.Graph.Fresh("sample_bias"), ys = c.Graph.Fresh("sample_output");
        var body = new GraphProto { Name = c.Graph.Fresh("depthwise_conv2d_per_sample") };
        body.Input.Add(GraphEdits.Value(xs, type, 1, ch, h, w));
        body.Input.Add(GraphEdits.Value(ws, type, ch, 1, k, k));
        body.Input.Add(GraphEdits.Value(bs, type, ch));
        body.Output.Add(GraphEdits.Value(ys, type, 1, ch, ho, wo));
        body.Node.Add(GraphEdits.Node("Conv", [xs, ws, bs], [ys], Attr.Ints("kernel_shape", [k, k]), Attr.Ints("pads", [pad, pad, pad, pad]),
            Attr.I("group", ch)));
        var scanned = c.Emit("Scan", [c.Unsqueeze(c.In("self"), 1), c.Unsqueeze(c.In("weight"), 2), c.In("bias")],
            Attr.Graph("body", body), Attr.I("num_scan_inputs", 3));
        c.EmitOut("Squeeze", [scanned, c.ConstI64(1)]);
    }
}

/// <summary><c>linear(input, weight, bias)</c>: Gemm for 2-D input, MatMul with the transposed weight otherwise.</summary>
[Aten("aten::linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor")]
internal sealed class LinearMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        if (c.Rank("input") == 2)
        {
            var ins = c.IsNone("bias") ? new[] { c.In("input"), c.In("weight") } : new[] { c.In("input"), c.In("weight"), c.In("bias") };
            c.EmitOut("Gemm", ins, Attr.I("transB", 1));
            return;
        }
        var wt = c.Emit("Transpose", new[] { c.In("weight") }, Attr.Ints("perm", new long[] { 1, 0 }));
        var y = c.Emit("MatMul", new[] { c.In("input"), wt });
        if (c.IsNone("bias")) c.Alias(0, y); else c.EmitOut("Add", new[] { y, c.In("bias") });
    }
}

/// <summary><c>layer_norm(input, normalized_shape, weight, bias, eps)</c>: decomposed below 17, LayerNormalization from 17.</summary>
[Aten("aten::layer_norm(Tensor input, int[] normalized_shape, Tensor? weight=None, Tensor? bias=None, float eps=1.0000000000000001e-05, bool cudnn_enable=True) -> Tensor")]
internal sealed class LayerNormMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        int n = c.Ints("normalized_shape").Length, rank = c.Rank("input");
        var axes = Enumerable.Range(rank - n, n).Select(a => (long)a).ToArray();
        string x = c.In("input");
        var mean = c.Reduce("ReduceMean", x, axes, true);
        var d = c.Emit("Sub", new[] { x, mean });
        var var_ = c.Reduce("ReduceMean", c.Emit("Mul", new[] { d, d }), axes, true);
        var y = c.Emit("Div", new[] { d, c.Emit("Sqrt", new[] { c.Emit("Add", new[] { var_, c.Scalar(c.Double("eps", 1e-5), t) }) }) });
        if (!c.IsNone("weight")) y = c.Emit("Mul", new[] { y, c.In("weight") });
        if (!c.IsNone("bias")) y = c.Emit("Add", new[] { y, c.In("bias") });
        c.Alias(0, y);
    }

    [Opset(17)]
    public void V17(MapContext c)
    {
        var t = c.OutDType();
        int n = c.Ints("normalized_shape").Length, rank = c.Rank("input");
        var normShape = c.Ints("normalized_shape");
        string scale = c.IsNone("weight") ? c.Graph.Const(t, Enumerable.Repeat(1.0, (int)normShape.Aggregate(1L, (a, b) => a * b)).ToArray(), normShape) : c.In("weight");
        var ins = c.IsNone("bias") ? new[] { c.In("input"), scale } : new[] { c.In("input"), scale, c.In("bias") };
        c.EmitOut("LayerNormalization", ins, Attr.I("axis", rank - n), Attr.F("epsilon", c.Double("eps", 1e-5)));
    }
}

/// <summary><c>group_norm(input, num_groups, weight, bias, eps)</c>: InstanceNormalization over [N, G, rest], then the
/// per-channel affine (valid at every opset; GroupNormalization changed meaning between 18 and 21).</summary>
[Aten("aten::group_norm(Tensor input, int num_groups, Tensor? weight=None, Tensor? bias=None, float eps=1.0000000000000001e-05, bool cudnn_enabled=True) -> Tensor")]
internal sealed class GroupNormMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        long groups = c.Int("num_groups", 1);
        int rank = c.Rank("input");
        string x = c.In("input");
        var grouped = c.Emit("Reshape", new[] { x, c.ConstI64(0, groups, -1) });
        var ones = c.Graph.Const(t, Enumerable.Repeat(1.0, (int)groups).ToArray(), new[] { groups });
        var zeros = c.Graph.Const(t, new double[groups], new[] { groups });
        var normed = c.Emit("InstanceNormalization", new[] { grouped, ones, zeros }, Attr.F("epsilon", c.Double("eps", 1e-5)));
        var y = c.Emit("Reshape", new[] { normed, c.Emit("Shape", new[] { x }) });
        var affineShape = new long[rank - 1];
        affineShape[0] = -1;
        for (int k = 1; k < affineShape.Length; k++) affineShape[k] = 1;
        if (!c.IsNone("weight")) y = c.Emit("Mul", new[] { y, c.Emit("Reshape", new[] { c.In("weight"), c.ConstI64(affineShape) }) });
        if (!c.IsNone("bias")) y = c.Emit("Add", new[] { y, c.Emit("Reshape", new[] { c.In("bias"), c.ConstI64(affineShape) }) });
        c.Alias(0, y);
    }
}

/// <summary><c>batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn)</c> in eval mode.</summary>
[Aten("aten::batch_norm(Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, Tensor? running_var, bool training, float momentum, float eps, bool cudnn_enabled) -> Tensor")]
internal sealed class BatchNormMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        if (c.Bool("training", false)) throw c.Unsupported("batch_norm in training mode");
        if (c.IsNone("running_mean") || c.IsNone("running_var")) throw c.Unsupported("batch_norm without running statistics");
        var t = c.OutDType();
        long ch = c.StaticDim("input", 1);
        string scale = c.IsNone("weight") ? c.Graph.Const(t, Enumerable.Repeat(1.0, (int)ch).ToArray(), new[] { ch }) : c.In("weight");
        string bias = c.IsNone("bias") ? c.Graph.Const(t, new double[ch], new[] { ch }) : c.In("bias");
        c.EmitOut("BatchNormalization", new[] { c.In("input"), scale, bias, c.In("running_mean"), c.In("running_var") }, Attr.F("epsilon", c.Double("eps", 1e-5)));
    }
}

/// <summary>avg_pool2d(input, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override).</summary>
[Aten("aten::avg_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None) -> Tensor")]
internal sealed class AvgPool2dMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var (k, s, p) = PoolWindow(c);
        if (!c.IsNone("divisor_override")) throw c.Unsupported("divisor_override");
        c.EmitOut("AveragePool", new[] { c.In("self") }, Attr.Ints("kernel_shape", k), Attr.Ints("strides", s),
            Attr.Ints("pads", new[] { p[0], p[1], p[0], p[1] }), Attr.I("ceil_mode", c.Bool("ceil_mode", false) ? 1 : 0),
            Attr.I("count_include_pad", c.Bool("count_include_pad", true) ? 1 : 0));
    }

    /// <summary>kernel_size, stride (empty or None = kernel) and padding (None = 0) of a 2-D pool, each widened from one
    /// value to two as torch allows.</summary>
    internal static (long[] Kernel, long[] Stride, long[] Padding) PoolWindow(MapContext c)
    {
        var k = Pair(c.Ints("kernel_size"));
        var s = c.IsNone("stride") || c.Ints("stride").Length == 0 ? k : Pair(c.Ints("stride"));
        var p = c.IsNone("padding") ? new long[] { 0, 0 } : Pair(c.Ints("padding"));
        return (k, s, p);
    }

    /// <summary>One value for both spatial axes, or the two given.</summary>
    internal static long[] Pair(long[] v) => v.Length == 1 ? new[] { v[0], v[0] } : v;
}

/// <summary>max_pool2d(input, kernel, stride, padding, dilation, ceil_mode).</summary>
[Aten("aten::max_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, int[2] dilation=1, bool ceil_mode=False) -> Tensor")]
internal sealed class MaxPool2dMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var (k, s, p) = AvgPool2dMapper.PoolWindow(c);
        var d = c.IsNone("dilation") ? new long[] { 1, 1 } : AvgPool2dMapper.Pair(c.Ints("dilation"));
        c.EmitOut("MaxPool", new[] { c.In("self") }, Attr.Ints("kernel_shape", k), Attr.Ints("strides", s),
            Attr.Ints("pads", new[] { p[0], p[1], p[0], p[1] }), Attr.Ints("dilations", d), Attr.I("ceil_mode", c.Bool("ceil_mode", false) ? 1 : 0));
    }
}

/// <summary>
/// adaptive_avg_pool2d(input, output_size): GlobalAveragePool for 1x1, AveragePool when the sizes divide, and otherwise
/// two MatMuls with constant averaging matrices whose rows hold 1/len over torch's windows
/// [floor(i*in/out), ceil((i+1)*in/out)).
/// </summary>
[Aten("aten::adaptive_avg_pool2d(Tensor self, SymInt[2] output_size) -> Tensor")]
internal sealed class AdaptiveAvgPool2dMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var o = c.Ints("output_size");
        long oh = o[0], ow = o.Length > 1 ? o[1] : o[0];
        long h = c.StaticDim("self", -2), w = c.StaticDim("self", -1);
        if (oh == 1 && ow == 1) { c.EmitOut("GlobalAveragePool", new[] { c.In("self") }); return; }
        if (h % oh == 0 && w % ow == 0)
        {
            var k = new[] { h / oh, w / ow };
            c.EmitOut("AveragePool", new[] { c.In("self") }, Attr.Ints("kernel_shape", k), Attr.Ints("strides", k));
            return;
        }
        var t = c.OutDType();
        var rows = c.Graph.Const(t, Windows(h, oh, transpose: false), new[] { oh, h });   // [oh, H]
        var cols = c.Graph.Const(t, Windows(w, ow, transpose: true), new[] { w, ow });    // [W, ow]
        c.EmitOut("MatMul", new[] { c.Emit("MatMul", new[] { rows, c.In("self") }), cols });
    }

    static double[] Windows(long n, long m, bool transpose)
    {
        var a = new double[n * m];
        for (long i = 0; i < m; i++)
        {
            long start = i * n / m, end = ((i + 1) * n + m - 1) / m;
            for (long j = start; j < end; j++) a[transpose ? j * m + i : i * n + j] = 1.0 / (end - start);
        }
        return a;
    }
}

/// <summary>upsample_{nearest,bilinear,bicubic}2d.vec(input, output_size?, [align_corners,] scale_factors?) as Resize
/// (nearest has no align_corners).</summary>
internal abstract class UpsampleBase(string mode) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        bool align = c.Has("align_corners") && c.Bool("align_corners", false);
        var outShape = c.OutShape();
        string coord = mode == "nearest" ? "asymmetric" : align ? "align_corners" : mode == "linear" ? "pytorch_half_pixel" : "half_pixel";
        if (c.OutValue(0).DynamicDims.Skip(2).Any(d => d)) throw c.Unsupported("an output size that depends on the batch");
        var x = c.In("input");
        var sizes = c.Emit("Concat", new[] { c.Emit("Slice", new[] { c.Emit("Shape", new[] { x }), c.ConstI64(0), c.ConstI64(2) }), c.ConstI64(outShape[2], outShape[3]) },
            Attr.I("axis", 0));
        var attrs = new List<Onnx.AttributeProto> { Attr.S("mode", mode), Attr.S("coordinate_transformation_mode", coord) };
        if (mode == "nearest") attrs.Add(Attr.S("nearest_mode", "floor"));
        if (mode == "cubic") { attrs.Add(Attr.F("cubic_coeff_a", -0.75)); attrs.Add(Attr.I("exclude_outside", 0)); }
        if (!c.IsNone("scale_factors")) throw c.Unsupported("scale factors (export resizes to the traced output size; pass sizes)");
        c.EmitOut("Resize", new[] { x, "", "", sizes }, attrs.ToArray());
    }
}

[Aten("aten::upsample_nearest2d.vec(Tensor input, SymInt[]? output_size, float[]? scale_factors) -> Tensor")]
internal sealed class UpsampleNearestMapper() : UpsampleBase("nearest");

[Aten("aten::upsample_bilinear2d.vec(Tensor input, SymInt[]? output_size, bool align_corners, float[]? scale_factors) -> Tensor")]
internal sealed class UpsampleBilinearMapper() : UpsampleBase("linear");

[Aten("aten::upsample_bicubic2d.vec(Tensor input, SymInt[]? output_size, bool align_corners, float[]? scale_factors) -> Tensor")]
internal sealed class UpsampleBicubicMapper() : UpsampleBase("cubic");

/// <summary>
/// im2col(self, kernel_size, dilation, padding, stride) (nn.Unfold): (B, C, H, W) → (B, C·kH·kW, L), kernel position
/// fastest. Written as one convolution of every channel (folded into the batch) with kH·kW one-hot kernels, which
/// copies each tap exactly, then a reshape that keeps the batch dynamic.
/// </summary>
[Aten("aten::im2col(Tensor self, int[2] kernel_size, int[2] dilation, int[2] padding, int[2] stride) -> Tensor")]
internal sealed class Im2ColMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        long[] P(long[] v) => v.Length == 1 ? new[] { v[0], v[0] } : v;
        var k = P(c.Ints("kernel_size"));
        var d = P(c.Ints("dilation"));
        var p = P(c.Ints("padding"));
        var s = P(c.Ints("stride"));
        long ch = c.StaticDim("self", 1), h = c.StaticDim("self", 2), w = c.StaticDim("self", 3);
        long taps = k[0] * k[1];
        var t = c.OutDType();
        var eye = new double[taps * taps];
        for (long i = 0; i < taps; i++) eye[i * taps + i] = 1;
        var kernel = c.Graph.Const(t, eye, new[] { taps, 1, k[0], k[1] });
        var perChannel = c.Emit("Reshape", new[] { c.In("self"), c.ConstI64(-1, 1, h, w) });
        var cols = c.Emit("Conv", new[] { perChannel, kernel }, Attr.Ints("kernel_shape", k), Attr.Ints("strides", s),
            Attr.Ints("pads", new[] { p[0], p[1], p[0], p[1] }), Attr.Ints("dilations", d));
        c.EmitOut("Reshape", new[] { cols, c.ConstI64(-1, ch * taps, c.OutShape()[2]) });
    }
}

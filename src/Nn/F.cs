using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary>Interpolation modes of <c>F.Interpolate</c>.</summary>
public enum InterpolationMode
{
    /// <summary>torch's "nearest".</summary>
    Nearest,
    /// <summary>torch's "bilinear".</summary>
    Bilinear,
    /// <summary>torch's "bicubic" (a = −0.75).</summary>
    Bicubic,
}

/// <summary>Loss reductions; values are aten's <c>Reduction</c> codes.</summary>
public enum Reduction
{
    /// <summary>One value per element.</summary>
    None = 0,
    /// <summary>The mean (weighted mean with class weights).</summary>
    Mean = 1,
    /// <summary>The sum.</summary>
    Sum = 2,
}

/// <summary>Functional neural-network operations (<c>torch.nn.functional</c>). Each names the aten op it
/// calls; composites follow PyTorch's Python implementation step for step so results match bit for bit.</summary>
public static class F
{
    static long[] Pair(long v) => new[] { v, v };

    /// <summary>2-D convolution (aten::conv2d); <paramref name="groups"/> = channels gives a depthwise conv.</summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, long stride = 1, long padding = 0,
                                long dilation = 1, long groups = 1) =>
        Ops.Conv2d.Call(input, weight, bias, Pair(stride), Pair(padding), Pair(dilation), groups);

    /// <summary>2-D convolution with per-axis stride, padding and dilation (each of length 2).</summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, long[] stride, long[] padding, long[] dilation, long groups) =>
        Ops.Conv2d.Call(input, weight, bias, stride, padding, dilation, groups);

    /// <summary><c>x @ weight.T + bias</c> (aten::linear).</summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null) => Ops.Linear.Call(input, weight, bias);

    /// <summary>aten::layer_norm over the trailing <paramref name="normalizedShape"/>.</summary>
    public static Tensor LayerNorm(Tensor input, long[] normalizedShape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5) =>
        Ops.LayerNorm.Call(NormInput(input, weight), normalizedShape, weight, bias, eps);

    /// <summary>aten::group_norm (one group normalises over C, H and W jointly).</summary>
    public static Tensor GroupNorm(Tensor input, long numGroups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5) =>
        Ops.GroupNorm.Call(NormInput(input, weight), numGroups, weight, bias, eps);

    // Under autocast a norm gets a bfloat16 activation while its affine parameters stay float32. CUDA autocast runs
    // layer_norm and group_norm in float32; libtorch 1.13's CPU autocast leaves them alone, and its CPU kernels refuse
    // the mixed types ("expected scalar type BFloat16 but found Float"). So the norm reads float32 here, as on CUDA.
    static Tensor NormInput(Tensor input, Tensor? weight) =>
        weight is not null && input.DType != weight.DType && Autocast.IsEnabled(input.Device.Type) ? input.To(weight.DType) : input;

    /// <summary>aten::batch_norm; in training mode it updates the running statistics in place.</summary>
    public static Tensor BatchNorm(Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null, Tensor? bias = null,
                                   bool training = false, double momentum = 0.1, double eps = 1e-5) =>
        Ops.BatchNorm.Call(input, weight, bias, runningMean, runningVar, training, momentum, eps, true);

    /// <summary>GELU, exact (erf) by default or the tanh approximation (aten::gelu).</summary>
    public static Tensor Gelu(Tensor input, bool tanhApproximation = false)
    {
        // libtorch 1.13's CPU GELU, forward and backward, runs 2-5x slower on a channels-last tensor than on the same
        // memory seen as a contiguous (B, H, W, C) tensor (bench/README.md, "Channels-last"); GELU is elementwise, so
        // the permuted view gives the same values and gradients. Not while tracing: the graph keeps one Gelu node.
        if (OpTrace.Recorder is null && input.IsChannelsLast)
        {
            using var nhwc = input.Permute(0, 2, 3, 1);
            using var y = Gelu(nhwc, tanhApproximation);
            return y.Permute(0, 3, 1, 2);
        }
        return tanhApproximation ? Ops.Gelu.Call(input, "tanh") : Ops.Gelu.Call(input);
    }

    /// <summary>aten::silu.</summary>
    public static Tensor Silu(Tensor input) => Ops.Silu.Call(input);

    /// <summary>aten::relu.</summary>
    public static Tensor Relu(Tensor input) => Ops.Relu.Call(input);

    /// <summary>aten::hardswish.</summary>
    public static Tensor Hardswish(Tensor input) => Ops.Hardswish.Call(input);

    /// <summary>aten::leaky_relu.</summary>
    public static Tensor LeakyRelu(Tensor input, double negativeSlope = 0.01) => Ops.LeakyRelu.Call(input, negativeSlope);

    /// <summary><c>log(1 + exp(beta x)) / beta</c>, linear above <paramref name="threshold"/> (aten::softplus).</summary>
    public static Tensor Softplus(Tensor input, double beta = 1, double threshold = 20) => Ops.Softplus.Call(input, beta, threshold);

    /// <summary>aten::sigmoid.</summary>
    public static Tensor Sigmoid(Tensor input) => Ops.Sigmoid.Call(input);

    /// <summary>aten::softmax.int.</summary>
    public static Tensor Softmax(Tensor input, int dim) => Ops.Softmax.Call(input, dim);

    /// <summary>aten::log_softmax.int.</summary>
    public static Tensor LogSoftmax(Tensor input, int dim) => Ops.LogSoftmax.Call(input, dim);

    /// <summary>Element-wise dropout, scaling kept values by 1/(1-p) (aten::dropout). Identity when not training.</summary>
    public static Tensor Dropout(Tensor input, double p, bool training)
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "Dropout probability must lie in [0, 1].");
        return Ops.Dropout.Call(input, p, training);
    }

    /// <summary>Stochastic depth (timm's drop_path): zeroes whole samples with probability <paramref name="p"/> and
    /// rescales survivors by 1/(1-p). Identity when not training or p = 0.</summary>
    public static Tensor DropPath(Tensor input, double p, bool training, bool scaleByKeep = true)
    {
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), p, "Drop-path probability must lie in [0, 1).");
        if (p == 0 || !training) return input.Alias();
        double keep = 1 - p;
        var shape = new long[input.Dim];
        shape[0] = input.Size(0);
        for (int k = 1; k < shape.Length; k++) shape[k] = 1;
        using var mask = Ops.Empty.Call(shape, input.DType, Arg.None, input.Device).Bernoulli_(keep);
        if (scaleByKeep) mask.Div_(keep);
        return input * mask;
    }

    /// <summary>Average pooling (aten::avg_pool2d); stride defaults to the kernel size.</summary>
    public static Tensor AvgPool2d(Tensor input, long kernelSize, long? stride = null, long padding = 0, bool ceilMode = false,
                                   bool countIncludePad = true) =>
        Ops.AvgPool2d.Call(input, Pair(kernelSize), Pair(stride ?? kernelSize), Pair(padding), ceilMode, countIncludePad);

    /// <summary>Max pooling (aten::max_pool2d); stride defaults to the kernel size.</summary>
    public static Tensor MaxPool2d(Tensor input, long kernelSize, long? stride = null, long padding = 0, long dilation = 1, bool ceilMode = false) =>
        Ops.MaxPool2d.Call(input, Pair(kernelSize), Pair(stride ?? kernelSize), Pair(padding), Pair(dilation), ceilMode);

    /// <summary>aten::adaptive_avg_pool2d: bin i covers [floor(i n / o), ceil((i + 1) n / o)).</summary>
    public static Tensor AdaptiveAvgPool2d(Tensor input, long outH, long outW) => Ops.AdaptiveAvgPool2d.Call(input, new[] { outH, outW });

    /// <summary>aten::adaptive_max_pool2d (values only).</summary>
    public static Tensor AdaptiveMaxPool2d(Tensor input, long outH, long outW)
    {
        var r = Ops.AdaptiveMaxPool2d.CallMany(input, new[] { outH, outW });
        r[1].Dispose();
        return r[0];
    }

    /// <summary><c>F.interpolate</c> to an explicit output size (aten::upsample_*2d.vec).</summary>
    public static Tensor Interpolate(Tensor input, long outH, long outW, InterpolationMode mode, bool alignCorners = false)
    {
        var size = new[] { outH, outW };
        return mode switch
        {
            InterpolationMode.Nearest => Ops.UpsampleNearest.Call(input, size, Arg.None),
            InterpolationMode.Bilinear => Ops.UpsampleBilinear.Call(input, size, alignCorners, Arg.None),
            InterpolationMode.Bicubic => Ops.UpsampleBicubic.Call(input, size, alignCorners, Arg.None),
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        };
    }

    /// <summary><c>F.interpolate(scale_factor=...)</c>: the output size is floor(size * scale) and the kernel uses the
    /// given scale, as PyTorch does when recompute_scale_factor is not set.</summary>
    public static Tensor Interpolate(Tensor input, double scaleFactor, InterpolationMode mode, bool alignCorners = false)
    {
        var scales = new[] { scaleFactor, scaleFactor };
        return mode switch
        {
            InterpolationMode.Nearest => Ops.UpsampleNearest.Call(input, Arg.None, scales),
            InterpolationMode.Bilinear => Ops.UpsampleBilinear.Call(input, Arg.None, alignCorners, scales),
            InterpolationMode.Bicubic => Ops.UpsampleBicubic.Call(input, Arg.None, alignCorners, scales),
            _ => throw new ArgumentOutOfRangeException(nameof(mode)),
        };
    }

    /// <summary>Constant padding; <paramref name="pad"/> lists (before, after) pairs starting from the LAST
    /// dimension, as in PyTorch (aten::constant_pad_nd).</summary>
    public static Tensor Pad(Tensor input, long[] pad, double value = 0)
    {
        if (pad.Length % 2 != 0) throw new ArgumentException($"Padding must have an even length; got {pad.Length} values.", nameof(pad));
        return Ops.ConstantPad.Call(input, pad, value);
    }

    /// <summary>Reflect, replicate or circular padding (aten::pad with a mode).</summary>
    public static Tensor Pad(Tensor input, long[] pad, string mode) => Ops.Pad.Call(input, pad, mode);

    /// <summary>A depthwise convolution whose kernels differ per sample: <c>y[b, c] = bias[b, c] + weight[b, c] ⋆ x[b, c]</c>
    /// with input (B, C, H, W), weight (B, C, K, K), bias (B, C), stride 1 and zero padding. Runs as one grouped
    /// convolution with the batch folded into the channels; exported to ONNX with a dynamic batch
    /// (mlnetext::depthwise_conv2d_per_sample, a bridge operator).</summary>
    public static Tensor DepthwiseConv2dPerSample(Tensor input, Tensor weight, Tensor bias, long padding) =>
        Ops.DepthwiseConv2dPerSample.Call(input, weight, bias, padding);

    /// <summary><c>nn.Unfold</c>/im2col: (B, C, H, W) → (B, C·kH·kW, L) with kernel position fastest (aten::im2col).</summary>
    public static Tensor Unfold(Tensor input, long kernelSize, long dilation = 1, long padding = 0, long stride = 1) =>
        Ops.Im2Col.Call(input, Pair(kernelSize), Pair(dilation), Pair(padding), Pair(stride));

    /// <summary><c>F.normalize</c>: <c>x / max(‖x‖_p, eps)</c> along <paramref name="dim"/>, computed as PyTorch does
    /// (norm with keepdim, clamp_min, expand_as, divide).</summary>
    public static Tensor Normalize(Tensor input, double p = 2, int dim = 1, double eps = 1e-12)
    {
        using var norm = input.Norm(p, new long[] { dim }, keepDim: true);
        using var clamped = norm.ClampMin(eps);
        // torch divides by the norm expanded to the input's shape; broadcasting divides element by element the same,
        // and an exported graph then needs no Expand (a copy of the input's size in ONNX Runtime)
        return input / clamped;
    }

    /// <summary>Cross entropy over class logits (aten::cross_entropy_loss). <paramref name="target"/> holds int64 class
    /// indices, or float class probabilities of the input's shape.</summary>
    public static Tensor CrossEntropy(Tensor input, Tensor target, Tensor? weight = null, Reduction reduction = Reduction.Mean,
                                      long ignoreIndex = -100, double labelSmoothing = 0)
    {
        if (labelSmoothing < 0 || labelSmoothing > 1)
            throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "Label smoothing must lie in [0, 1].");
        return Ops.CrossEntropy.Call(input, target, weight, (long)reduction, ignoreIndex, labelSmoothing);
    }

    /// <summary>aten::nll_loss.</summary>
    public static Tensor NllLoss(Tensor input, Tensor target, Tensor? weight = null, Reduction reduction = Reduction.Mean, long ignoreIndex = -100) =>
        Ops.NllLoss.Call(input, target, weight, (long)reduction, ignoreIndex);

    /// <summary>aten::mse_loss.</summary>
    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean) =>
        Ops.MseLoss.Call(input, target, (long)reduction);

    /// <summary>aten::one_hot (int64 result).</summary>
    public static Tensor OneHot(Tensor indices, long numClasses = -1) => Ops.OneHot.Call(indices, numClasses);

    /// <summary>Bernoulli samples with per-element probabilities (aten::bernoulli).</summary>
    public static Tensor Bernoulli(Tensor probabilities) => Ops.Bernoulli.Call(probabilities);
}

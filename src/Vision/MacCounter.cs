using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Vision;

/// <summary>
/// Counts the multiply-accumulates (MACs) of one forward pass by recording every operator call on the engine's single
/// operator door (the hook the ONNX exporter's tracer uses) and applying, per call, the formula of its operator to the
/// shapes of its arguments and results.
/// <para>Counted, as fvcore counts them (the convention the four papers' "FLOPs" columns follow: one
/// multiply-accumulate = one "FLOP"): convolutions (grouped, depth-wise and per-sample depth-wise included: output elements × input channels
/// per group × kernel area; transposed: input elements × output channels per group × kernel area),
/// <c>linear</c> (output elements × input features), <c>mm</c>/<c>matmul</c>/<c>bmm</c> and their fused forms
/// <c>addmm</c>/<c>baddbmm</c>/<c>addbmm</c> (output elements × the contracted size), two-operand <c>einsum</c>
/// (the product of every index size) and <c>scaled_dot_product_attention</c> (both products). So the attention
/// products (<c>q·kᵀ</c> and <c>attn·v</c>) are counted wherever they appear as matmuls.</para>
/// <para>Not counted: element-wise operations (additions, biases, activations, softmax, normalisation layers, element-wise
/// products), reductions, pooling and resampling. Only calls made through the engine are seen, each once: an operator
/// that libtorch decomposes internally counts as the operator that was called.</para>
/// </summary>
public static class MacCounter
{
    /// <summary>MACs of one eval-mode forward of <paramref name="model"/> on one image of
    /// <paramref name="height"/>×<paramref name="width"/> (batch 1, no grad). The model's training mode is restored.</summary>
    /// <exception cref="InputSizeException">The model cannot take that size.</exception>
    /// <exception cref="InvalidOperationException">Another trace (an ONNX export or a count) already runs on this thread,
    /// or the forward pass uses an operator form whose MACs this counter cannot compute.</exception>
    public static long Count(Backbone model, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.CheckInputSize(height, width);
        var device = model.Parameters().FirstOrDefault()?.Device;
        return Measure(model, () =>
        {
            var x = Tensor.Zeros(new long[] { 1, model.InputChannels, height, width }, device: device);
            model.Call(x); // freed with the scope Measure opens
        }).Total;
    }

    /// <summary>Runs <paramref name="forward"/> on <paramref name="module"/> in eval mode without grad and returns the
    /// total and the MACs per operator (for diagnostics and tests).</summary>
    internal static (long Total, IReadOnlyDictionary<string, long> ByOperator) Measure(Module module, Action forward)
    {
        if (OpTrace.Recorder is not null)
            throw new InvalidOperationException("MacCounter: another trace (an ONNX export or a MAC count) is already running on this thread.");
        bool wasTraining = module.Training;
        var recorder = new Recorder();
        module.Eval();
        try
        {
            using var scope = TensorScope.Begin();
            using var noGrad = Autograd.NoGrad();
            OpTrace.Recorder = recorder;
            try { forward(); }
            finally { OpTrace.Recorder = null; }
        }
        finally { module.Train(wasTraining); }
        return (recorder.Total, recorder.ByOperator);
    }

    /// <summary>MACs of one call, or 0 for operators that are not counted.</summary>
    internal static long MacsOf(string op, long[]?[] inputs, long[][] outputs, ReadOnlySpan<Arg> args)
    {
        long[]? In(int k) => k < inputs.Length ? inputs[k] : null;
        long OutElements() => outputs.Length > 0 ? Elements(outputs[0]) : throw new InvalidOperationException($"MacCounter: {op} returned no tensor.");
        switch (op)
        {
            case "aten::conv1d" or "aten::conv2d" or "aten::conv3d" or "aten::convolution" or "aten::_convolution":
                {
                    var w = In(1) ?? throw Missing(op, "weight");
                    bool transposed = op is "aten::convolution" or "aten::_convolution" && args.Length > 6 && args[6].I != 0;
                    // weight: [Cout, Cin/groups, k...] (transposed: [Cin, Cout/groups, k...])
                    long perElement = Elements(w) / w[0];
                    return transposed ? Elements(In(0) ?? throw Missing(op, "input")) * perElement : OutElements() * perElement;
                }
            case "mlnetext::depthwise_conv2d_per_sample":
                {
                    var w = In(1) ?? throw Missing(op, "weight");   // [B, C, K, K]: K·K per output element
                    return OutElements() * w[2] * w[3];
                }
            case "aten::conv_transpose1d" or "aten::conv_transpose2d" or "aten::conv_transpose3d":
                {
                    var w = In(1) ?? throw Missing(op, "weight");
                    return Elements(In(0) ?? throw Missing(op, "input")) * (Elements(w) / w[0]);
                }
            case "aten::linear":
                {
                    var w = In(1) ?? throw Missing(op, "weight");
                    return OutElements() * (w.Length == 2 ? w[1] : w[0]);
                }
            case "aten::mm" or "aten::matmul" or "aten::bmm":
                {
                    var a = In(0) ?? throw Missing(op, "self");
                    return OutElements() * a[^1];
                }
            case "aten::addmm" or "aten::baddbmm":
                {
                    var a = In(1) ?? throw Missing(op, "mat1/batch1");
                    return OutElements() * a[^1];
                }
            case "aten::addbmm":
                {
                    // sum over the batch of [n, k] @ [k, m]: every batch element's product is computed
                    var a = In(1) ?? throw Missing(op, "batch1");
                    return a[0] * OutElements() * a[^1];
                }
            case "aten::scaled_dot_product_attention":
                {
                    var q = In(0) ?? throw Missing(op, "query");
                    var k = In(1) ?? throw Missing(op, "key");
                    long heads = Elements(q) / (q[^1] * q[^2]);
                    long l = q[^2], s = k[^2], e = q[^1];
                    // q·kᵀ (L×S×E) and attn·v (L×S×Ev = output elements × S)
                    return heads * l * s * e + OutElements() * s;
                }
            case "aten::einsum":
                return EinsumMacs(args);
            default:
                return 0;
        }
    }

    static long EinsumMacs(ReadOnlySpan<Arg> args)
    {
        var equation = (string)args[0].Ref!;
        var operands = (Tensor?[])args[1].Ref!;
        if (operands.Length == 1) return 0; // a permutation, diagonal or sum: no products
        var inputs = equation.Split("->")[0].Split(',');
        if (operands.Length != 2 || equation.Contains("...", StringComparison.Ordinal) || inputs.Length != 2)
            throw new InvalidOperationException($"MacCounter: cannot count einsum '{equation}' with {operands.Length} operands; " +
                "only two operands with explicit indices (no '...') are supported.");
        var sizes = new Dictionary<char, long>();
        for (int t = 0; t < 2; t++)
        {
            var shape = operands[t]!.Shape;
            var letters = inputs[t].Trim();
            if (letters.Length != shape.Length)
                throw new InvalidOperationException($"MacCounter: einsum '{equation}' operand {t} has {shape.Length} dimensions for '{letters}'.");
            for (int i = 0; i < letters.Length; i++) sizes[letters[i]] = Math.Max(sizes.GetValueOrDefault(letters[i], 1), shape[i]);
        }
        return sizes.Values.Aggregate(1L, (p, v) => p * v);
    }

    static InvalidOperationException Missing(string op, string what) => new($"MacCounter: {op} was called without a tensor '{what}'.");

    static long Elements(long[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        return n;
    }

    static readonly HashSet<string> Counted = new()
    {
        "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::convolution", "aten::_convolution",
        "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d", "aten::linear",
        "aten::mm", "aten::matmul", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::addbmm",
        "aten::scaled_dot_product_attention", "aten::einsum", "mlnetext::depthwise_conv2d_per_sample",
    };

    /// <summary>Sums the MACs of every recorded call.</summary>
    sealed class Recorder : IOpRecorder
    {
        public long Total;
        public readonly Dictionary<string, long> ByOperator = new();

        public void OnCall(Op op, ReadOnlySpan<Arg> args, ReadOnlySpan<Tensor> results, bool inPlace)
        {
            if (inPlace && op.Name is "aten::addmm_" or "aten::baddbmm_" or "aten::addbmm_")
                throw new InvalidOperationException($"MacCounter: the in-place form {op} is not counted; use the out-of-place operator.");
            if (!Counted.Contains(op.Name)) return;
            var inputs = new long[]?[args.Length];
            for (int k = 0; k < args.Length; k++) inputs[k] = args[k].Kind == ValueKind.Tensor ? ((Tensor)args[k].Ref!).Shape : null;
            var outputs = new long[results.Length][];
            for (int k = 0; k < results.Length; k++) outputs[k] = results[k].Shape;
            long macs = MacsOf(op.Name, inputs, outputs, args);
            if (macs == 0) return;
            Total += macs;
            ByOperator[op.Name] = ByOperator.GetValueOrDefault(op.Name) + macs;
        }

        public void OnHostValue(Op op, ReadOnlySpan<Arg> args) { }
        public void OnHostRead(Tensor tensor) { }
        public void OnAlias(Tensor source, Tensor alias) { }
    }
}

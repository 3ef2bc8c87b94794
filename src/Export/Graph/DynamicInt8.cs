using Google.Protobuf;
using MLNetExt.Export.Onnx;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Dynamic INT8 quantization of the linear layers of an exported graph, in standard ONNX operators that ONNX Runtime
/// fuses into its integer matrix-multiply kernels. Each <c>MatMul(x, Transpose(W))</c> of a linear layer becomes
/// <code>
///   xq, xs, xz = DynamicQuantizeLinear(x)                      uint8, per tensor, range measured on each run
///   y = Cast(MatMulInteger(xq, Wq, xz), float) * (xs * Ws)     Wq int8 [in, out], Ws float [out]
/// </code>
/// with the weight quantized once, per output channel and symmetric: <c>Ws = max|W[o, :]| / 63</c>,
/// <c>Wq = round(W / Ws)</c> in [-63, 63]. Seven bits ("reduce range") because the u8×s8 kernels of CPUs without VNNI
/// add pairs of products in 16 bits, where full-range weights can saturate; with 7 bits no CPU saturates, so a model
/// gives the same answers wherever it runs. Convolutions (ONNX Runtime's ConvInteger was measured slower than its
/// float convolution: smt_t went from 1.36x to 1.02x with them), the classifier (a Gemm) and matrix products of two
/// activations stay float32; inputs and outputs of the graph stay float32, so ML.NET pipelines do not change.
/// </summary>
internal static class DynamicInt8
{
    /// <summary>Largest quantized weight magnitude (7-bit symmetric).</summary>
    internal const int WeightLimit = 63;

    /// <summary>Layers smaller than this on either side stay float32 (quantizing them costs more than it saves).</summary>
    internal const int DefaultMinSide = 16;

    /// <summary>Rewrites the graph in place; returns how many linear layers were quantized.</summary>
    public static int Apply(ModelProto model, int minSide = DefaultMinSide)
    {
        var g = model.Graph;
        var initializers = g.Initializer.ToDictionary(t => t.Name);
        var producer = GraphEdits.Producers(g);
        var quantized = new Dictionary<string, (string Weights, string Scales)>();
        var nodes = new List<NodeProto>(g.Node.Count);
        int count = 0, fresh = 0;
        string Name(string hint) => $"int8_{hint}_{fresh++}";

        foreach (var node in g.Node)
        {
            if (!(node.OpType == "MatMul" && node.Domain.Length == 0
                  && producer.TryGetValue(node.Input[1], out var transpose) && transpose.OpType == "Transpose"
                  && transpose.Attribute.FirstOrDefault(a => a.Name == "perm") is { } perm && perm.Ints.SequenceEqual([1L, 0L])
                  && initializers.TryGetValue(transpose.Input[0], out var w)
                  && w.DataType == (int)TensorProto.Types.DataType.Float && w.Dims.Count == 2
                  && w.Dims[0] >= minSide && w.Dims[1] >= minSide && w.RawData.Length == w.Dims[0] * w.Dims[1] * 4))
            {
                nodes.Add(node);
                continue;
            }
            if (!quantized.TryGetValue(w.Name, out var q))
            {
                var (wq, ws) = QuantizeWeight(w, Name("weight"), Name("scale"));
                g.Initializer.Add(wq);
                g.Initializer.Add(ws);
                quantized[w.Name] = q = (wq.Name, ws.Name);
            }
            string xq = Name("xq"), xs = Name("xs"), xz = Name("xz"), yi = Name("yi"), yf = Name("yf"), s = Name("s");
            nodes.Add(GraphEdits.Node("DynamicQuantizeLinear", [node.Input[0]], [xq, xs, xz]));
            nodes.Add(GraphEdits.Node("MatMulInteger", [xq, q.Weights, xz], [yi]));
            nodes.Add(GraphEdits.Cast(yi, yf, TensorProto.Types.DataType.Float));
            nodes.Add(GraphEdits.Node("Mul", [xs, q.Scales], [s]));
            nodes.Add(GraphEdits.Node("Mul", [yf, s], [node.Output[0]]));
            count++;
        }
        g.Node.Clear();
        g.Node.AddRange(nodes);
        GraphEdits.RemoveDead(g);   // the float weights and their Transposes
        return count;
    }

    /// <summary>W [out, in] float32 → Wq int8 [in, out] (the MatMul's B) and per-output scales [out].</summary>
    static (TensorProto Weights, TensorProto Scales) QuantizeWeight(TensorProto w, string weightsName, string scalesName)
    {
        int rows = (int)w.Dims[0], cols = (int)w.Dims[1];
        var (rowMajor, scales) = QuantizeRows(GraphEdits.Floats(w), rows);
        var q = new byte[rows * cols];
        for (int o = 0; o < rows; o++)
            for (int i = 0; i < cols; i++) q[i * rows + o] = rowMajor[o * cols + i];
        var wq = new TensorProto { Name = weightsName, DataType = (int)TensorProto.Types.DataType.Int8, RawData = ByteString.CopyFrom(q) };
        wq.Dims.AddRange([cols, rows]);
        return (wq, GraphEdits.FloatTensor(scalesName, scales, [rows]));
    }

    /// <summary>Symmetric int8 per row of <paramref name="values"/> (<paramref name="rows"/> equal rows, row-major):
    /// scale = max|row| / <see cref="WeightLimit"/>, q = round(v / scale) in [-WeightLimit, WeightLimit], as int8 bytes.
    /// The weight quantization of both INT8 passes (linear layers here, convolutions in <see cref="StaticInt8"/>).</summary>
    internal static (byte[] Quantized, float[] Scales) QuantizeRows(float[] values, int rows)
    {
        int per = values.Length / rows;
        var q = new byte[values.Length];
        var scales = new float[rows];
        for (int o = 0; o < rows; o++)
        {
            var row = values.AsSpan(o * per, per);
            float max = 0;
            foreach (var v in row) max = Math.Max(max, Math.Abs(v));
            scales[o] = max > 0 ? max / WeightLimit : 1f;
            for (int i = 0; i < per; i++)
                q[o * per + i] = (byte)(sbyte)Math.Clamp((int)MathF.Round(row[i] / scales[o], MidpointRounding.ToEven), -WeightLimit, WeightLimit);
        }
        return (q, scales);
    }
}

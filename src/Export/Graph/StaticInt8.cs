using System.Runtime.InteropServices;
using Google.Protobuf;
using MLNetExt.Export.Onnx;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Static INT8 quantization of an exported graph's convolutions in the QDQ form (ONNX QuantizeLinear/DequantizeLinear
/// pairs around float operators), which ONNX Runtime's CPU provider runs as integer kernels: QLinearConv, and between
/// convolutions QLinearAdd, QLinearConcat, QLinearAveragePool and uint8 data movement (Transpose, Reshape, ...).
/// The linear layers get <see cref="DynamicInt8"/> (ranges measured on each run: as fast, and closer to float32, than
/// static scales there). Steps:
/// <list type="number">
/// <item><see cref="BatchNormFolding.IntoPrecedingConvolutions"/>: a BatchNormalization right after a convolution goes
/// into its weights and bias (ONNX Runtime does that itself for float graphs, but not across a Quantize/Dequantize pair);
/// the norms left become Mul + Add (<see cref="BatchNormFolding.AsMulAdd"/>), which ONNX Runtime's layout Transposes
/// around its channels-last QLinearConv can cross.</item>
/// <item><see cref="FuseGelu"/>: the exact GELU as one operator (ONNX Runtime's own fusion fails next to dequantized values).</item>
/// <item><see cref="Plan"/>: which activations become uint8 — the inputs and outputs of convolutions and average pools,
/// of sums and concatenations between them, and the values moved by data-movement operators between them (a group
/// shares one scale, so the bytes move unchanged). Residual streams stay float32.</item>
/// <item><see cref="Apply"/>: with each group's range measured on calibration images (<see cref="Int8Calibration"/>),
/// a Quantize/Dequantize pair after each planned activation (uint8, per tensor, asymmetric), weights int8 per output
/// channel (symmetric, 7 bits as <see cref="DynamicInt8"/>), biases int32 at the scale of input × weight.</item>
/// </list>
/// Everything else (normalisations, GELU, softmax, attention's products of two activations, the classifier Gemm, the
/// graph's inputs and outputs) stays float32, reading the dequantized values. Measured and left out: QLinearSoftmax
/// (slower than ONNX Runtime's float Softmax), static scales for attention's matrix products (TransNeXt's top-1
/// agreement with float32 fell from 93 % to 47 %) and for linear layers (slower than dynamic).
/// </summary>
internal static class StaticInt8
{
    const TensorProto.Types.DataType Float = TensorProto.Types.DataType.Float;

    /// <summary>Which activations to quantize: groups of values that share one scale (a value and what data-movement
    /// operators make of it), each group listed with the values whose ranges together make its range;
    /// <paramref name="Uint8Readers"/>: the operators (by first output) that read planned values as uint8;
    /// <paramref name="FloatProduced"/>: planned values a float32 operator computes, which its float32 readers keep
    /// reading unrounded.</summary>
    internal sealed record QuantPlan(IReadOnlyList<IReadOnlyList<string>> Groups, IReadOnlySet<string> Uint8Readers, IReadOnlySet<string> FloatProduced)
    {
        /// <summary>Every planned value (what calibration measures).</summary>
        public IEnumerable<string> Values => Groups.SelectMany(g => g);
    }

    /// <summary>Operators that move or select elements without changing them: uint8 passes through them unchanged.</summary>
    static readonly HashSet<string> DataMovement = ["Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Gather", "Split", "Expand"];

    /// <summary>The steps on <paramref name="model"/> in place, calibrated on <paramref name="images"/>, then the linear
    /// layers with at least <paramref name="minSide"/> inputs and outputs dynamically.</summary>
    public static (int FoldedBatchNorms, int Convolutions, int LinearLayers, int QuantizedValues) Quantize(ModelProto model, IReadOnlyList<Data.ImageItem> images,
        int minSide = DynamicInt8.DefaultMinSide)
    {
        int folded = BatchNormFolding.IntoPrecedingConvolutions(model.Graph);
        BatchNormFolding.AsMulAdd(model.Graph);
        FuseGelu(model);
        var plan = Plan(model.Graph);
        var ranges = Int8Calibration.Measure(model, plan.Values, images);
        int convolutions = Apply(model, plan, ranges);
        int linears = DynamicInt8.Apply(model, minSide);
        return (folded, convolutions, linears, plan.Groups.Sum(grp => grp.Count));
    }

    /// <summary>
    /// Rewrites the exporter's exact GELU below opset 20, <c>Mul(Mul(x, 0.5), Add(Erf(Div(x, √2)), 1))</c>, as one
    /// Gelu operator (ONNX Runtime's <c>com.microsoft</c> Gelu; the standard one from opset 20 is exported as such).
    /// ONNX Runtime fuses the five operators itself in a float graph, but not when x is dequantized: it gives each
    /// reader of a dequantized value its own DequantizeLinear, and the pattern no longer reads one x.
    /// Returns how many.
    /// </summary>
    public static int FuseGelu(ModelProto model)
    {
        var g = model.Graph;
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var producer = GraphEdits.Producers(g);
        var readers = GraphEdits.Readers(g);
        bool Const(string v, double value) => inits.TryGetValue(v, out var t) && GraphEdits.IsRawFloat(t) && GraphEdits.Floats(t) is [var f] && Math.Abs(f - value) < 1e-6 * Math.Max(1, value);
        NodeProto? Sole(string v) => readers.TryGetValue(v, out var r) && r.Count == 1 && !g.Output.Any(o => o.Name == v) ? r[0] : null;
        var replacement = new Dictionary<NodeProto, NodeProto[]>();
        int fused = 0;
        foreach (var erf in g.Node.Where(n => n.OpType == "Erf" && n.Domain.Length == 0))
        {
            if (!producer.TryGetValue(erf.Input[0], out var div) || div.OpType != "Div" || !Const(div.Input[1], Math.Sqrt(2)) || Sole(div.Output[0]) != erf) continue;
            var x = div.Input[0];
            if (Sole(erf.Output[0]) is not { OpType: "Add" } add || !add.Input.Contains(erf.Output[0]) || !add.Input.Any(i => Const(i, 1))) continue;
            if (Sole(add.Output[0]) is not { OpType: "Mul" } mul) continue;
            var halfName = mul.Input.FirstOrDefault(i => i != add.Output[0]);
            if (halfName is null || !producer.TryGetValue(halfName, out var half) || half.OpType != "Mul" || Sole(half.Output[0]) != mul
                || !half.Input.Contains(x) || !half.Input.Any(i => Const(i, 0.5))) continue;
            var gelu = GraphEdits.Node("Gelu", [x], [mul.Output[0]]);
            gelu.Domain = "com.microsoft";
            foreach (var n in new[] { div, erf, add, half }) replacement[n] = [];
            replacement[mul] = [gelu];
            fused++;
        }
        if (fused == 0) return 0;
        GraphEdits.ReplaceNodes(g, replacement);
        if (!model.OpsetImport.Any(o => o.Domain == "com.microsoft")) model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = 1 });
        return fused;
    }

    /// <summary>The activations to quantize (see the class summary).</summary>
    public static QuantPlan Plan(GraphProto g)
    {
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var floats = FloatValues(g);
        var outputs = g.Output.Select(o => o.Name).ToHashSet();
        // values a subgraph (a Scan body) reads from outside keep their names
        var captured = g.Node.SelectMany(GraphEdits.Subgraphs).SelectMany(s => s.Node).SelectMany(n => n.Input).ToHashSet();
        bool Activation(string v) => v.Length > 0 && floats.Contains(v) && !inits.ContainsKey(v) && !outputs.Contains(v) && !captured.Contains(v);

        var planned = new HashSet<string>();
        var integer = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);   // operators ONNX Runtime will run on uint8
        void Plan(NodeProto n)
        {
            integer.Add(n);
            foreach (var v in (n.OpType is "Add" or "Concat" ? n.Input : n.Input.Take(1)).Append(n.Output[0]))
                if (Activation(v)) planned.Add(v);
        }
        foreach (var n in g.Node.Where(n => n.Domain.Length == 0))
            if ((n.OpType == "Conv" && inits.TryGetValue(n.Input[1], out var w) && GraphEdits.IsRawFloat(w) && (n.Input.Count < 3 || inits.ContainsKey(n.Input[2])))
                || (n.OpType is "AveragePool" or "GlobalAveragePool" && Activation(n.Input[0])))
                Plan(n);
        // Sums and concatenations run on uint8 (QLinearAdd, QLinearConcat) only between integer operators: every input
        // computed by one (directly or through data movement) and the result read as uint8 by one. A residual stream
        // (a float32 value plus a branch) stays float32: as uint8 it cost the trained TransXNet 8-10 points of top-1
        // agreement with float32, every later block reading the rounded stream.
        var readers = GraphEdits.Readers(g);
        var producer = GraphEdits.Producers(g);
        bool ReadAsUint8(string v) => readers.TryGetValue(v, out var rs) && rs.Any(r =>
            (integer.Contains(r) && (r.OpType is "Add" or "Concat" || r.Input[0] == v))
            || (DataMovement.Contains(r.OpType) && r.Domain.Length == 0 && r.Input[0] == v && r.Output.Any(ReadAsUint8)));
        bool ComputedAsUint8(string v) => producer.TryGetValue(v, out var p)
            && (integer.Contains(p) || (DataMovement.Contains(p.OpType) && p.Domain.Length == 0 && ComputedAsUint8(p.Input[0])));
        var joins = g.Node.Where(n => n.Domain.Length == 0 && n.OpType is "Add" or "Concat" && n.Input.All(Activation)).ToList();
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var n in joins.Where(n => !integer.Contains(n) && n.Input.All(ComputedAsUint8) && ReadAsUint8(n.Output[0])))
            {
                Plan(n);
                changed = true;
            }
        }
        // data movement: a planned value moved to another planned one shares its scale; a planned result of moving an
        // activation quantizes that activation too, so the bytes move as uint8 (until nothing changes: chains)
        var parent = new Dictionary<string, string>();
        string Root(string v) { while (parent.TryGetValue(v, out var p)) v = p; return v; }
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var n in g.Node.Where(n => n.Domain.Length == 0 && DataMovement.Contains(n.OpType)))
            {
                var src = n.Input[0];
                if (!Activation(src) || !n.Output.Any(planned.Contains)) continue;
                if (planned.Add(src)) changed = true;
                foreach (var o in n.Output.Where(Activation))
                {
                    if (planned.Add(o)) changed = true;
                    if (Root(o) != Root(src)) { parent[Root(o)] = Root(src); changed = true; }
                }
            }
        }
        var groups = planned.GroupBy(Root).Select(grp => (IReadOnlyList<string>)grp.OrderBy(v => v, StringComparer.Ordinal).ToList())
            .OrderBy(grp => grp[0], StringComparer.Ordinal).ToList();
        // uint8 readers: the integer operators and the data movement between planned values. A planned value an integer
        // operator computes is read by all its readers through Dequantize (ONNX Runtime fuses an operator with its
        // Quantize only when nothing else reads its result); one a float32 operator computes (a residual sum read by a
        // convolution) stays exact for its float32 readers, so rounding does not pile up along a residual stream.
        var uint8Readers = g.Node.Where(n => integer.Contains(n)
                || (n.Domain.Length == 0 && DataMovement.Contains(n.OpType) && planned.Contains(n.Input[0]) && n.Output.Any(planned.Contains)))
            .Select(n => n.Output[0]).ToHashSet();
        var floatProduced = planned.Where(v => !producer.TryGetValue(v, out var p) || !uint8Readers.Contains(p.Output[0])).ToHashSet();
        return new QuantPlan(groups, uint8Readers, floatProduced);
    }

    /// <summary>Rewrites the graph in place: Quantize/Dequantize after each planned value (its group's
    /// <paramref name="ranges"/>), int8 weights and int32 biases for the convolutions whose input is quantized.
    /// Returns how many convolutions read quantized weights.</summary>
    public static int Apply(ModelProto model, QuantPlan plan, IReadOnlyDictionary<string, (float Min, float Max)> ranges)
    {
        var g = model.Graph;
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var names = UniqueNames.Of(g);

        // per value: its scale and zero point (uint8 asymmetric over the group's range, which always includes 0)
        var quant = new Dictionary<string, (float Scale, byte Zero, string ScaleName, string ZeroName)>();
        foreach (var group in plan.Groups)
        {
            var measured = group.Where(ranges.ContainsKey).Select(v => ranges[v]).ToList();
            if (measured.Count == 0) continue;
            float lo = Math.Min(0, measured.Min(r => r.Min)), hi = Math.Max(0, measured.Max(r => r.Max));
            // a range with infinities (TransNeXt's attention mask is -inf outside the window) stays float32
            if (!float.IsFinite(lo) || !float.IsFinite(hi)) continue;
            float scale = hi > lo ? (hi - lo) / 255f : 1f;
            byte zero = (byte)Math.Clamp((int)MathF.Round(-lo / scale, MidpointRounding.ToEven), 0, 255);
            string sName = names.Fresh($"{group[0]}_scale"), zName = names.Fresh($"{group[0]}_zero_point");
            g.Initializer.Add(GraphEdits.FloatTensor(sName, [scale], []));
            g.Initializer.Add(new TensorProto { Name = zName, DataType = (int)TensorProto.Types.DataType.Uint8, RawData = ByteString.CopyFrom(zero) });
            foreach (var v in group) quant[v] = (scale, zero, sName, zName);
        }

        var nodes = new List<NodeProto>(g.Node.Count * 2);
        var rename = new Dictionary<string, string>();       // planned value -> its dequantized copy
        var dequantizedOf = new Dictionary<string, string>(); // and back
        var weightDq = new Dictionary<string, (string Name, float[] Scales)>();
        int quantizedWeights = 0;
        // a convolution weight as int8 + DequantizeLinear (once per weight), with its per-output-channel scales
        (string Name, float[] Scales) Dequantized(TensorProto weight)
        {
            if (weightDq.TryGetValue(weight.Name, out var dq)) return dq;
            var (wq, ws, wz, scales) = QuantizeWeight(weight, names.Fresh($"{weight.Name}_int8"), names.Fresh($"{weight.Name}_int8_scale"), names.Fresh($"{weight.Name}_int8_zero_point"));
            g.Initializer.Add(wq); g.Initializer.Add(ws); g.Initializer.Add(wz);
            var name = names.Fresh($"{weight.Name}_dequantized");
            nodes.Add(GraphEdits.Node("DequantizeLinear", [wq.Name, ws.Name, wz.Name], [name], Attr.I("axis", 0)));
            return weightDq[weight.Name] = (name, scales);
        }
        foreach (var n in g.Node)
        {
            bool readsUint8 = plan.Uint8Readers.Contains(n.Output[0]);
            for (int k = 0; k < n.Input.Count; k++)
                if (rename.TryGetValue(n.Input[k], out var r) && (readsUint8 || !plan.FloatProduced.Contains(n.Input[k]))) n.Input[k] = r;
            var x = n.Input.Count > 0 && dequantizedOf.TryGetValue(n.Input[0], out var xName) ? quant[xName] : default;
            if (n.Domain.Length == 0 && x.ScaleName is not null && n.OpType == "Conv" && inits.TryGetValue(n.Input[1], out var w) && GraphEdits.IsRawFloat(w))
            {
                var dw = Dequantized(w);
                n.Input[1] = dw.Name;
                if (n.Input.Count > 2) n.Input[2] = QuantizedBias(inits[n.Input[2]], x.Scale, dw.Scales);
                quantizedWeights++;
            }
            nodes.Add(n);
            foreach (var o in n.Output)
            {
                if (!quant.TryGetValue(o, out var q)) continue;
                string qName = names.Fresh($"{o}_quantized"), dqName = names.Fresh($"{o}_dequantized");
                nodes.Add(GraphEdits.Node("QuantizeLinear", [o, q.ScaleName, q.ZeroName], [qName]));
                nodes.Add(GraphEdits.Node("DequantizeLinear", [qName, q.ScaleName, q.ZeroName], [dqName]));
                rename[o] = dqName;
                dequantizedOf[dqName] = o;
            }
        }
        g.Node.Clear();
        g.Node.AddRange(nodes);
        GraphEdits.RemoveDead(g);
        return quantizedWeights;

        string QuantizedBias(TensorProto bias, float inputScale, float[] ws)
        {
            var b = GraphEdits.Floats(bias);
            var bq = new int[b.Length];
            var scales = new float[b.Length];
            for (int o = 0; o < b.Length; o++)
            {
                scales[o] = inputScale * ws[o];
                bq[o] = (int)Math.Clamp(Math.Round(b[o] / (double)scales[o], MidpointRounding.ToEven), int.MinValue, int.MaxValue);
            }
            string qn = names.Fresh($"{bias.Name}_int32"), sn = names.Fresh($"{bias.Name}_int32_scale"), zn = names.Fresh($"{bias.Name}_int32_zero_point");
            var t = new TensorProto { Name = qn, DataType = (int)TensorProto.Types.DataType.Int32, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(bq.AsSpan())) };
            t.Dims.Add(b.Length);
            var z = new TensorProto { Name = zn, DataType = (int)TensorProto.Types.DataType.Int32, RawData = ByteString.CopyFrom(new byte[4 * b.Length]) };
            z.Dims.Add(b.Length);
            g.Initializer.Add(t); g.Initializer.Add(GraphEdits.FloatTensor(sn, scales, [b.Length])); g.Initializer.Add(z);
            var dq = names.Fresh($"{bias.Name}_dequantized");
            nodes.Add(GraphEdits.Node("DequantizeLinear", [qn, sn, zn], [dq], Attr.I("axis", 0)));
            return dq;
        }
    }

    /// <summary>A convolution weight [O, I/g, kh, kw] as symmetric int8 per output channel (7 bits, see
    /// <see cref="DynamicInt8.WeightLimit"/>), with its scales.</summary>
    static (TensorProto Weights, TensorProto Scales, TensorProto Zeros, float[] ScaleValues) QuantizeWeight(TensorProto w, string wName, string sName, string zName)
    {
        int channels = (int)w.Dims[0];
        var (q, scales) = DynamicInt8.QuantizeRows(GraphEdits.Floats(w), channels);
        var wq = new TensorProto { Name = wName, DataType = (int)TensorProto.Types.DataType.Int8, RawData = ByteString.CopyFrom(q) };
        wq.Dims.AddRange(w.Dims);
        var zeros = new TensorProto { Name = zName, DataType = (int)TensorProto.Types.DataType.Int8, RawData = ByteString.CopyFrom(new byte[channels]) };
        zeros.Dims.Add(channels);
        return (wq, GraphEdits.FloatTensor(sName, scales, [channels]), zeros, scales);
    }

    /// <summary>Values the graph declares float32 (inputs, intermediates with a traced shape).</summary>
    static HashSet<string> FloatValues(GraphProto g) =>
        g.Input.Concat(g.ValueInfo).Concat(g.Output).Where(v => v.Type?.TensorType?.ElemType == (int)Float).Select(v => v.Name).ToHashSet();

}

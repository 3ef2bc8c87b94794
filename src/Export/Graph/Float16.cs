using Google.Protobuf;
using MLNetExt.Export.Onnx;
using DataType = MLNetExt.Export.Onnx.TensorProto.Types.DataType;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Half-precision (IEEE float16) arithmetic for an exported float32 graph, for GPU serving. Weights are stored as
/// float16 (values beyond ±65504 saturate instead of becoming infinite), the graph input is cast to float16 on entry and
/// the outputs back to float32 on exit, so the graph's interface and ML.NET pipelines do not change.
/// Sums of squares are where float16 overflows (a value of 256 squares to 65536, past float16's largest finite number),
/// so reductions, the squares and powers that feed them, and the arithmetic that finishes them (adding epsilon, square
/// roots, reciprocals) stay float32: <c>LayerNormalization</c> (opset 17 and above) already accumulates in float32
/// inside ONNX Runtime; the decomposed norms, variances and pooling means get the same treatment here.
/// Every other operator runs in float16, where GPU kernels are fastest; ONNX Runtime's CPU provider runs the same
/// graph by casting around the kernels it has only in float32.
/// The float16 weights are <c>Constant</c> nodes, not initializers: ML.NET's OnnxTransformer reads the type of every
/// initializer and knows no float16, while ONNX Runtime turns Constant nodes into initializers when it loads the graph.
/// </summary>
internal static class Float16
{
    /// <summary>Operators that always compute in float32 (their float inputs are cast up, outputs cast back down).</summary>
    internal static readonly HashSet<string> Float32Ops = ["ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Pow", "Sqrt", "Reciprocal"];

    /// <summary>Arithmetic that stays float32 when every float operand is already float32 or a constant (e.g. the
    /// <c>variance + eps</c> after a float32 reduction).</summary>
    static readonly HashSet<string> Arithmetic = ["Add", "Sub", "Mul", "Div"];

    const float MaxHalf = 65504f;

    /// <summary>Rewrites the graph in place; returns how many nodes compute in float32.</summary>
    public static int Apply(ModelProto model)
    {
        var g = model.Graph;
        var types = InferTypes(g);
        var names = UniqueNames.Of(g);
        bool IsFloat(string name) => name.Length > 0 && types.TryGetValue(name, out var t) && t == (int)DataType.Float;

        // squares and powers that feed a reduction are the values that overflow: they join the float32 islands
        var producer = GraphEdits.Producers(g);
        var squares = new HashSet<NodeProto>();
        foreach (var n in g.Node.Where(n => n.OpType.StartsWith("Reduce") && IsFloat(n.Input[0])))
            if (producer.TryGetValue(n.Input[0], out var p) && p.OpType == "Mul" && p.Input[0] == p.Input[1]) squares.Add(p);

        // float32 constants: the originals stay available for the islands, the graph's copies become float16
        var floatInitializers = g.Initializer.Where(t => t.DataType == (int)DataType.Float).ToDictionary(t => t.Name, t => t.Clone());
        foreach (var t in g.Initializer.Where(t => t.DataType == (int)DataType.Float)) ToHalf(t);

        var nodes = new List<NodeProto>(g.Node.Count * 2);
        var float32 = new Dictionary<string, string>();  // a float16 value's float32 twin
        var rename = new Dictionary<string, string>();
        string Float32Of(string name)
        {
            if (float32.TryGetValue(name, out var f)) return f;
            if (floatInitializers.TryGetValue(name, out var init))
            {
                var copy = init.Clone();
                copy.Name = names.Fresh(name + "_fp32");
                g.Initializer.Add(copy);
                return float32[name] = copy.Name;
            }
            var cast = names.Fresh(name + "_fp32");
            nodes.Add(GraphEdits.Cast(name, cast, DataType.Float));
            return float32[name] = cast;
        }

        // the float32 input enters as float16; its float32 twin is the input itself
        foreach (var input in g.Input.Where(i => i.Type.TensorType.ElemType == (int)DataType.Float))
        {
            var half = names.Fresh(input.Name + "_fp16");
            nodes.Add(GraphEdits.Cast(input.Name, half, DataType.Float16));
            rename[input.Name] = half;
            float32[half] = input.Name;
        }
        // float32 outputs leave through a cast; inside the graph they are float16 values under another name
        var outputs = g.Output.Where(o => o.Type.TensorType.ElemType == (int)DataType.Float).Select(o => o.Name).ToHashSet();
        foreach (var o in outputs) rename[o] = names.Fresh(o + "_fp16");

        int islands = 0;
        foreach (var node in g.Node)
        {
            // which values are float is known by their names in the float32 graph, before the renaming
            var floatInputs = Enumerable.Range(0, node.Input.Count).Where(k => IsFloat(node.Input[k])).ToList();
            var floatOutputs = Enumerable.Range(0, node.Output.Count).Where(k => IsFloat(node.Output[k])).ToList();
            for (int k = 0; k < node.Input.Count; k++)
                if (rename.TryGetValue(node.Input[k], out var r)) node.Input[k] = r;
            for (int k = 0; k < node.Output.Count; k++)
                if (rename.TryGetValue(node.Output[k], out var r)) node.Output[k] = r;
            if (node.OpType == "Cast" && node.Attribute.Single(a => a.Name == "to").I == (int)DataType.Float)
                node.Attribute.Single(a => a.Name == "to").I = (int)DataType.Float16;

            bool inFloat32 = floatInputs.Count > 0 && (Float32Ops.Contains(node.OpType) || squares.Contains(node)
                || Arithmetic.Contains(node.OpType) && floatInputs.All(k => float32.ContainsKey(node.Input[k]) || floatInitializers.ContainsKey(node.Input[k]))
                                                  && floatInputs.Any(k => float32.ContainsKey(node.Input[k])));
            if (!inFloat32)
            {
                nodes.Add(node);
                continue;
            }
            islands++;
            foreach (var k in floatInputs) node.Input[k] = Float32Of(node.Input[k]);
            var casts = new List<NodeProto>();
            foreach (var k in floatOutputs)
            {
                var half = node.Output[k];
                var single = names.Fresh(half + "_fp32");
                node.Output[k] = single;
                float32[half] = single;
                casts.Add(GraphEdits.Cast(single, half, DataType.Float16));  // dropped below when only float32 readers remain
            }
            nodes.Add(node);
            nodes.AddRange(casts);
        }
        foreach (var o in outputs)
            nodes.Add(float32.TryGetValue(rename[o], out var single) ? GraphEdits.Node("Identity", [single], [o]) : GraphEdits.Cast(rename[o], o, DataType.Float));

        // every float value under its float32 name now holds float16 (islands compute under new names), and a
        // subgraph (a Scan's body) computes in float16 like the operators around it
        foreach (var v in g.ValueInfo.Where(v => v.Type.TensorType.ElemType == (int)DataType.Float)) v.Type.TensorType.ElemType = (int)DataType.Float16;
        foreach (var sub in nodes.SelectMany(GraphEdits.Subgraphs)) Retype(sub, DataType.Float, DataType.Float16);

        g.Node.Clear();
        g.Node.AddRange(nodes);
        GraphEdits.RemoveDead(g);   // the casts back to float16 that only float32 readers needed
        var halves = g.Initializer.Where(t => t.DataType == (int)DataType.Float16).ToList();
        foreach (var t in halves) g.Initializer.Remove(t);
        var computed = g.Node.ToList();
        g.Node.Clear();
        foreach (var t in halves)
        {
            g.Node.Add(GraphEdits.Node("Constant", [], [t.Name], new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = t }));
        }
        g.Node.AddRange(computed);
        return islands;
    }

    /// <summary>Element types of every value of a graph written by this exporter: from the initializers and inputs,
    /// forward through the operators it emits (outputs take the first input's type except where the operator says
    /// otherwise).</summary>
    internal static Dictionary<string, int> InferTypes(GraphProto g)
    {
        var types = new Dictionary<string, int>();
        foreach (var t in g.Initializer) types[t.Name] = t.DataType;
        foreach (var i in g.Input) types[i.Name] = i.Type.TensorType.ElemType;
        foreach (var n in g.Node)
        {
            int first = n.Input.Count > 0 && types.TryGetValue(n.Input[0], out var t0) ? t0 : 0;
            int type = n.OpType switch
            {
                "Cast" => (int)n.Attribute.Single(a => a.Name == "to").I,
                "Constant" => n.Attribute.Single(a => a.Name == "value").T.DataType,
                "Shape" or "Size" or "ArgMax" or "ArgMin" or "NonZero" => (int)DataType.Int64,
                "Equal" or "Greater" or "Less" or "GreaterOrEqual" or "LessOrEqual" or "Not" or "And" or "Or" or "Xor" or "IsNaN" or "IsInf" => (int)DataType.Bool,
                "Where" => types.GetValueOrDefault(n.Input[1]),
                "DynamicQuantizeLinear" => (int)DataType.Uint8,
                "MatMulInteger" => (int)DataType.Int32,
                "LabelEncoder" => (int)DataType.Int64,
                _ => first,
            };
            for (int k = 0; k < n.Output.Count; k++)
                types[n.Output[k]] = n.OpType switch
                {
                    "DynamicQuantizeLinear" when k == 1 => (int)DataType.Float,
                    "TopK" when k == 1 => (int)DataType.Int64,
                    _ => type,
                };
        }
        return types;
    }

    /// <summary>Declares a subgraph's values of one element type as another (its inputs, outputs and value infos).</summary>
    internal static void Retype(GraphProto g, DataType from, DataType to)
    {
        if (g.Initializer.Any(t => t.DataType == (int)from))
            throw new InvalidOperationException($"Internal error: subgraph {g.Name} holds {from} constants, which the float16 pass does not convert.");
        foreach (var v in g.Input.Concat(g.Output).Concat(g.ValueInfo).Where(v => v.Type.TensorType.ElemType == (int)from))
            v.Type.TensorType.ElemType = (int)to;
    }

    /// <summary>float32 raw data to float16 in place; finite values beyond float16's range saturate.</summary>
    static void ToHalf(TensorProto t)
    {
        var values = GraphEdits.Floats(t);
        var halves = new Half[values.Length];
        for (int i = 0; i < values.Length; i++)
            halves[i] = (Half)(float.IsFinite(values[i]) ? Math.Clamp(values[i], -MaxHalf, MaxHalf) : values[i]);
        t.DataType = (int)DataType.Float16;
        t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()));
    }
}

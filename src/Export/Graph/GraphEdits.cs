using MLNetExt.Export.Onnx;

namespace MLNetExt.Export.Graph;

/// <summary>Names not used yet in a graph: the hint itself, else the hint with the first free suffix _1, _2, ...</summary>
internal sealed class UniqueNames(IEnumerable<string> taken)
{
    readonly HashSet<string> _used = new(taken);

    /// <summary>Every name <paramref name="g"/> uses: its nodes' inputs and outputs, initializers, inputs and outputs.</summary>
    public static UniqueNames Of(GraphProto g) =>
        new(g.Node.SelectMany(n => n.Input.Concat(n.Output)).Concat(g.Initializer.Select(t => t.Name))
            .Concat(g.Input.Select(i => i.Name)).Concat(g.Output.Select(o => o.Name)));

    /// <summary>Marks <paramref name="name"/> as used.</summary>
    public void Add(string name) => _used.Add(name);

    /// <summary>A name not used yet, derived from <paramref name="hint"/> (and now used).</summary>
    public string Fresh(string hint)
    {
        if (_used.Add(hint)) return hint;
        for (int k = 1; ; k++)
            if (_used.Add($"{hint}_{k}")) return $"{hint}_{k}";
    }
}

/// <summary>Edits of a built ONNX graph, shared by the passes that rewrite it after mapping (<see cref="DynamicInt8"/>,
/// <see cref="StaticInt8"/>, <see cref="Float16"/>).</summary>
internal static class GraphEdits
{
    /// <summary>The node that computes each value.</summary>
    public static Dictionary<string, NodeProto> Producers(GraphProto g)
    {
        var p = new Dictionary<string, NodeProto>();
        foreach (var n in g.Node) foreach (var o in n.Output) p[o] = n;
        return p;
    }

    /// <summary>The nodes that read each value (an empty list for computed values nothing reads).</summary>
    public static Dictionary<string, List<NodeProto>> Readers(GraphProto g)
    {
        var r = new Dictionary<string, List<NodeProto>>();
        foreach (var n in g.Node)
        {
            foreach (var o in n.Output) r.TryAdd(o, []);
            foreach (var i in n.Input) if (i.Length > 0) (r.TryGetValue(i, out var l) ? l : r[i] = []).Add(n);
        }
        return r;
    }

    /// <summary>The values of a float32 tensor (raw or typed data).</summary>
    public static float[] Floats(TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float) throw new InvalidOperationException($"Internal error: initializer '{t.Name}' is not float32.");
        if (t.RawData.Length > 0) return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray();
        return t.FloatData.ToArray();
    }

    /// <summary>A float32 tensor whose values are all in its raw data (what <see cref="Floats"/> reads without copying
    /// typed data, and never a tensor whose data lies in an external file).</summary>
    public static bool IsRawFloat(TensorProto t) =>
        t.DataType == (int)TensorProto.Types.DataType.Float && t.RawData.Length == 4 * t.Dims.Aggregate(1L, (a, b) => a * b);

    /// <summary>The values of an int64 tensor (raw or typed data), or null for another type.</summary>
    public static long[]? Int64s(TensorProto t)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Int64) return null;
        if (t.RawData.Length > 0) return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(t.RawData.Span).ToArray();
        return t.Int64Data.ToArray();
    }

    /// <summary>A float32 tensor with raw data.</summary>
    public static TensorProto FloatTensor(string name, float[] values, IEnumerable<long> dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float,
            RawData = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())) };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>A node named after its first output.</summary>
    public static NodeProto Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = outputs[0] };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    /// <summary>A typed value of a fixed shape (a subgraph's input or output).</summary>
    public static ValueInfoProto Value(string name, int elemType, params long[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }));
        return Value(name, elemType, shape);
    }

    /// <summary>A typed value (a graph's input, output or intermediate).</summary>
    public static ValueInfoProto Value(string name, int elemType, TensorShapeProto shape) =>
        new() { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } } };

    /// <summary>The graphs a node holds in its attributes (a Scan's body), and theirs in turn.</summary>
    public static IEnumerable<GraphProto> Subgraphs(NodeProto n) =>
        n.Attribute.Where(a => a.G is not null).Select(a => a.G)
            .SelectMany(g => g.Node.SelectMany(Subgraphs).Prepend(g));

    /// <summary>The values the graph's subgraphs (Scan bodies) read from outside: their producers must stay.</summary>
    public static HashSet<string> CapturedBySubgraphs(GraphProto g) =>
        g.Node.SelectMany(Subgraphs).SelectMany(s => s.Node).SelectMany(n => n.Input).ToHashSet();

    public static NodeProto Cast(string input, string output, TensorProto.Types.DataType to) =>
        Node("Cast", [input], [output], Attr.I("to", (int)to));

    /// <summary>Rebuilds the node list in order with each key of <paramref name="replacement"/> replaced by its nodes
    /// (none: removed), then drops what no output needs (<see cref="RemoveDead"/>). Nothing to replace: nothing done.</summary>
    public static void ReplaceNodes(GraphProto g, IReadOnlyDictionary<NodeProto, NodeProto[]> replacement)
    {
        if (replacement.Count == 0) return;
        var nodes = g.Node.SelectMany(n => replacement.TryGetValue(n, out var r) ? r : [n]).ToList();
        g.Node.Clear();
        g.Node.AddRange(nodes);
        RemoveDead(g);
    }

    /// <summary>Drops the nodes no graph output depends on, the initializers nothing reads and the shapes of values no
    /// longer computed. ML.NET's slot-name nodes (domain ai.onnx.ml), which ML.NET reads rather than the graph, stay.</summary>
    public static void RemoveDead(GraphProto g)
    {
        var live = new HashSet<string>(g.Output.Select(o => o.Name));
        var keep = new bool[g.Node.Count];
        for (int i = g.Node.Count - 1; i >= 0; i--)
        {
            var n = g.Node[i];
            if (!n.Output.Any(live.Contains) && n.Domain != "ai.onnx.ml") continue;
            keep[i] = true;
            foreach (var input in n.Input) if (input.Length > 0) live.Add(input);
        }
        var kept = g.Node.Where((_, i) => keep[i]).ToList();
        g.Node.Clear();
        g.Node.AddRange(kept);
        foreach (var t in g.Initializer.Where(t => !live.Contains(t.Name)).ToList()) g.Initializer.Remove(t);
        var computed = kept.SelectMany(n => n.Output).ToHashSet();
        foreach (var v in g.ValueInfo.Where(v => !computed.Contains(v.Name)).ToList()) g.ValueInfo.Remove(v);
    }
}

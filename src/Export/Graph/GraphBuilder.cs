using Google.Protobuf;
using MLNetExt.Export.Onnx;
using MLNetExt.Export.Tracing;
using MLNetExt.Torch;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Builds the ONNX graph from a trace, in the manner of ML.NET's <c>OnnxContext</c>: unique names, initializers keyed by
/// state_dict name, typed attributes. Values that do not depend on the input were computed by libtorch during the
/// trace and become initializers when a graph node needs them (constant folding); parameters keep their state_dict
/// keys. Mappers write nodes through this class.
/// </summary>
internal sealed class GraphBuilder
{
    readonly Dictionary<int, string> _names = new();
    readonly UniqueNames _used = new([]);
    readonly Dictionary<string, TensorProto> _initializers = new();
    readonly List<string> _initializerOrder = new();
    readonly Dictionary<string, string> _constCache = new();
    string? _batch;

    public GraphBuilder(Trace trace, int opset, string inputName)
    {
        Trace = trace;
        Opset = opset;
        InputName = inputName;
        _used.Add(inputName);
        _names[trace.InputId] = inputName;
    }

    public Trace Trace { get; }
    public int Opset { get; }
    public string InputName { get; }
    public List<NodeProto> Nodes { get; } = new();
    public IEnumerable<TensorProto> Initializers => _initializerOrder.Select(n => _initializers[n]);
    public void RemoveInitializer(string name)
    {
        if (_initializers.Remove(name)) _initializerOrder.Remove(name);
    }

    /// <summary>A name not used yet, derived from <paramref name="hint"/>.</summary>
    public string Fresh(string hint) => _used.Fresh(hint);

    /// <summary>The ONNX name of a traced value; constants become initializers on first use.</summary>
    public string NameOf(int valueId)
    {
        if (_names.TryGetValue(valueId, out var n)) return n;
        var v = Trace[valueId];
        if (v.Dynamic)
            throw new InvalidOperationException($"Internal error: value %{valueId} is used before the node that computes it was mapped.");
        if (v.Constant is null)
            throw new InvalidOperationException($"Internal error: constant value %{valueId} has no data.");
        string name = Fresh(v.StateKey ?? (v.Hint ?? "const") + "_" + valueId);
        AddInitializer(name, v.Constant);
        return _names[valueId] = name;
    }

    /// <summary>Names a traced value (a mapper's output, or an alias for an existing name).</summary>
    public void Bind(int valueId, string name) => _names[valueId] = name;

    public bool IsBound(int valueId) => _names.ContainsKey(valueId);

    public void AddInitializer(string name, Tensor t)
    {
        var proto = new TensorProto { Name = name, DataType = OnnxTypes.Of(t.DType) };
        proto.Dims.AddRange(t.Shape);
        proto.RawData = ByteString.CopyFrom(t.Contiguous().ToBytes());
        _initializers[name] = proto;
        _initializerOrder.Add(name);
        _used.Add(name);
    }

    public void AddInitializer(TensorProto proto)
    {
        _initializers[proto.Name] = proto;
        _initializerOrder.Add(proto.Name);
        _used.Add(proto.Name);
    }

    public string AddInitializer(string hint, int dataType, long[] dims, byte[] raw)
    {
        var name = Fresh(hint);
        var proto = new TensorProto { Name = name, DataType = dataType, RawData = ByteString.CopyFrom(raw) };
        proto.Dims.AddRange(dims);
        _initializers[name] = proto;
        _initializerOrder.Add(name);
        return name;
    }

    /// <summary>An int64 constant of the given shape (1-D by default, 0-D with <paramref name="scalar"/>).</summary>
    public string ConstI64(long[] values, bool scalar = false)
    {
        string key = (scalar ? "s:" : "i:") + string.Join(",", values);
        if (_constCache.TryGetValue(key, out var n)) return n;
        var raw = new byte[values.Length * 8];
        Buffer.BlockCopy(values, 0, raw, 0, raw.Length);
        return _constCache[key] = AddInitializer("const_i64", (int)TensorProto.Types.DataType.Int64,
            scalar ? Array.Empty<long>() : new long[] { values.Length }, raw);
    }

    public string ConstI64(params long[] values) => ConstI64(values, false);

    /// <summary>A 0-D (or shaped) constant of a torch dtype holding <paramref name="values"/>.</summary>
    public string Const(DType dtype, double[] values, long[]? dims = null)
    {
        string key = $"{dtype}:{string.Join(",", dims ?? Array.Empty<long>())}:{string.Join(",", values.Select(v => v.ToString("R")))}";
        if (_constCache.TryGetValue(key, out var n)) return n;
        byte[] raw = dtype switch
        {
            DType.Float32 => values.SelectMany(v => BitConverter.GetBytes((float)v)).ToArray(),
            DType.Float64 => values.SelectMany(v => BitConverter.GetBytes(v)).ToArray(),
            DType.Float16 => values.SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray(),
            DType.BFloat16 => values.SelectMany(v => BitConverter.GetBytes(BFloat16.FromSingle((float)v).Bits)).ToArray(),
            DType.Int64 => values.SelectMany(v => BitConverter.GetBytes((long)v)).ToArray(),
            DType.Int32 => values.SelectMany(v => BitConverter.GetBytes((int)v)).ToArray(),
            DType.Int16 => values.SelectMany(v => BitConverter.GetBytes((short)v)).ToArray(),
            DType.Int8 => values.Select(v => (byte)(sbyte)v).ToArray(),
            DType.UInt8 => values.Select(v => (byte)v).ToArray(),
            DType.Bool => values.Select(v => v != 0 ? (byte)1 : (byte)0).ToArray(),
            _ => throw new NotSupportedException($"No ONNX constant for dtype {dtype}."),
        };
        return _constCache[key] = AddInitializer("const", OnnxTypes.Of(dtype), dims ?? Array.Empty<long>(), raw);
    }

    public string Scalar(DType dtype, double value) => Const(dtype, new[] { value });

    /// <summary>The batch size as an int64 tensor of shape [1], from the graph input's shape.</summary>
    public string BatchSize()
    {
        if (_batch is not null) return _batch;
        var shape = Emit("Shape", new[] { InputName }, "input_shape");
        return _batch = Emit("Gather", new[] { shape, ConstI64(0) }, "batch", Attr.I("axis", 0));
    }

    /// <summary>An int64 1-D tensor holding a size list whose entries may depend on the batch size.</summary>
    public string Ints(long[] values, SymInt?[]? sym)
    {
        if (sym is null || sym.All(s => s is null)) return ConstI64(values);
        var parts = new List<string>();
        var run = new List<long>();
        for (int k = 0; k < values.Length; k++)
        {
            if (sym[k] is { } s)
            {
                if (run.Count > 0) { parts.Add(ConstI64(run.ToArray())); run.Clear(); }
                string term = s.A == 1 ? BatchSize() : Emit("Mul", new[] { BatchSize(), ConstI64(s.A) }, "sym");
                if (s.B != 0) term = Emit("Add", new[] { term, ConstI64(s.B) }, "sym");
                parts.Add(term);
            }
            else run.Add(values[k]);
        }
        if (run.Count > 0) parts.Add(ConstI64(run.ToArray()));
        return parts.Count == 1 ? parts[0] : Emit("Concat", parts.ToArray(), "sizes", Attr.I("axis", 0));
    }

    /// <summary>Adds a node and returns its (first) output name.</summary>
    public string Emit(string opType, string[] inputs, string outputHint, params AttributeProto[] attributes) =>
        EmitMany(opType, inputs, new[] { Fresh(outputHint) }, attributes)[0];

    /// <summary>Adds a node writing into the given output names.</summary>
    public string[] EmitMany(string opType, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = Fresh("n" + Nodes.Count + "_" + opType) };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        Nodes.Add(node);
        return outputs;
    }

    /// <summary>Adds a node writing into one output name.</summary>
    public string EmitTo(string opType, string[] inputs, string output, params AttributeProto[] attributes) =>
        EmitMany(opType, inputs, new[] { output }, attributes)[0];

    /// <summary>Removes nodes whose outputs nobody reads and initializers nobody uses.</summary>
    public void RemoveDeadNodes(IEnumerable<string> graphOutputs)
    {
        var live = new HashSet<string>(graphOutputs);
        var keep = new bool[Nodes.Count];
        for (int i = Nodes.Count - 1; i >= 0; i--)
        {
            if (!Nodes[i].Output.Any(live.Contains)) continue;
            keep[i] = true;
            foreach (var inp in Nodes[i].Input) if (inp.Length > 0) live.Add(inp);
        }
        var kept = Nodes.Where((_, i) => keep[i]).ToList();
        Nodes.Clear();
        Nodes.AddRange(kept);
        foreach (var name in _initializerOrder.Where(n => !live.Contains(n)).ToList()) RemoveInitializer(name);
    }
}

/// <summary>Typed ONNX attributes.</summary>
internal static class Attr
{
    public static AttributeProto I(string name, long v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = v };
    public static AttributeProto F(string name, double v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = (float)v };
    public static AttributeProto S(string name, string v) => new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(v) };
    public static AttributeProto Graph(string name, GraphProto g) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Graph, G = g };
    public static AttributeProto Ints(string name, IEnumerable<long> v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(v);
        return a;
    }
    public static AttributeProto Floats(string name, IEnumerable<float> v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        a.Floats.AddRange(v);
        return a;
    }
    public static AttributeProto Strings(string name, IEnumerable<string> v)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Strings };
        a.Strings.AddRange(v.Select(ByteString.CopyFromUtf8));
        return a;
    }
}

/// <summary>torch dtypes as ONNX element types.</summary>
internal static class OnnxTypes
{
    public static int Of(DType t) => (int)(t switch
    {
        DType.Float32 => TensorProto.Types.DataType.Float,
        DType.Float64 => TensorProto.Types.DataType.Double,
        DType.Float16 => TensorProto.Types.DataType.Float16,
        DType.BFloat16 => TensorProto.Types.DataType.Bfloat16,
        DType.Int64 => TensorProto.Types.DataType.Int64,
        DType.Int32 => TensorProto.Types.DataType.Int32,
        DType.Int16 => TensorProto.Types.DataType.Int16,
        DType.Int8 => TensorProto.Types.DataType.Int8,
        DType.UInt8 => TensorProto.Types.DataType.Uint8,
        DType.Bool => TensorProto.Types.DataType.Bool,
        _ => throw new NotSupportedException($"dtype {t} has no ONNX element type"),
    });
}

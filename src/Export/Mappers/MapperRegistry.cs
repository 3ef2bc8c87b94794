using System.Reflection;
using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using MLNetExt.Export.Tracing;
using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>Names the aten operator (without overload: one mapper handles every overload) a mapper class maps.</summary>
[AttributeUsage(AttributeTargets.Class)]
internal sealed class AtenAttribute(string name) : Attribute
{
    public string Name { get; } = name;
}

/// <summary>Marks a mapper method as the form of the operator from this opset on (tf2onnx style: the registry
/// picks the highest version not above the target).</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class OpsetAttribute(int version) : Attribute
{
    public int Version { get; } = version;
}

/// <summary>Base of the per-operator mappers: one class per aten operator, one method per minimum opset.</summary>
internal abstract class OpMapper;

/// <summary>Every mapper in this assembly, keyed by aten operator name.</summary>
internal static class MapperRegistry
{
    public const int MinOpset = 13, MaxOpset = 21, DefaultOpset = 17;

    sealed record Entry(string Op, Type Type, (int Opset, Action<MapContext> Map)[] Versions);

    static readonly Lazy<Dictionary<string, Entry>> s_entries = new(Build);

    static Dictionary<string, Entry> Build()
    {
        var result = new Dictionary<string, Entry>();
        foreach (var type in typeof(MapperRegistry).Assembly.GetTypes())
        {
            if (type.GetCustomAttribute<AtenAttribute>() is not { } aten) continue;
            if (!typeof(OpMapper).IsAssignableFrom(type))
                throw new InvalidOperationException($"{type.Name} is tagged [Aten] but is not an OpMapper.");
            var instance = Activator.CreateInstance(type)!;
            var versions = type.GetMethods(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
                .Where(m => m.GetCustomAttribute<OpsetAttribute>() is not null)
                .Select(m => (m.GetCustomAttribute<OpsetAttribute>()!.Version, (Action<MapContext>)m.CreateDelegate(typeof(Action<MapContext>), instance)))
                .OrderBy(v => v.Version).ToArray();
            if (versions.Length == 0) throw new InvalidOperationException($"Mapper {type.Name} has no [Opset] method.");
            if (!result.TryAdd(aten.Name, new Entry(aten.Name, type, versions)))
                throw new InvalidOperationException($"Two mappers for {aten.Name}: {result[aten.Name].Type.Name} and {type.Name}.");
        }
        return result;
    }

    /// <summary>Every mapped aten operator.</summary>
    public static IReadOnlyCollection<string> Operators => s_entries.Value.Keys;

    /// <summary>The lowest opset at which <paramref name="op"/> can be exported, or null when it has no mapper.</summary>
    public static int? LowestOpset(string op) => s_entries.Value.TryGetValue(op, out var e) ? Math.Max(MinOpset, e.Versions[0].Opset) : null;

    /// <summary>The opset versions a mapper defines.</summary>
    public static int[] Versions(string op) => s_entries.Value[op].Versions.Select(v => v.Opset).ToArray();

    public static Action<MapContext> Find(TNode node, int opset)
    {
        string op = node.Op.Name;
        if (!s_entries.Value.TryGetValue(op, out var entry))
            throw new OnnxExportException($"No ONNX mapper for {node.OpName} (target opset {opset}, module {Module(node)}). " +
                $"Mapped operators: {string.Join(", ", Operators.OrderBy(o => o).Select(o => o.Replace("aten::", "")))}.", node.OpName, opset, node.ModulePath);
        Action<MapContext>? best = null;
        foreach (var (v, map) in entry.Versions) if (v <= opset) best = map;
        if (best is null)
            throw new OnnxExportException($"{node.OpName} needs ONNX opset {entry.Versions[0].Opset} or higher; the target opset is {opset} " +
                $"(module {Module(node)}). Export with opset {Math.Max(MinOpset, entry.Versions[0].Opset)} or later.", node.OpName, opset, node.ModulePath)
            { LowestWorkingOpset = entry.Versions[0].Opset };
        return best;
    }

    static string Module(TNode node) => node.ModulePath.Length == 0 ? "(before any parameter was used)" : node.ModulePath;
}

/// <summary>What a mapper sees: the recorded call (arguments, shapes and types of the traced values) and the
/// graph builder it writes to.</summary>
internal sealed class MapContext
{
    public MapContext(GraphBuilder graph, TNode node)
    {
        Graph = graph;
        Node = node;
    }

    public GraphBuilder Graph { get; }
    public TNode Node { get; }
    public int Opset => Graph.Opset;
    public string Overload => Node.Op.Overload;
    Trace Trace => Graph.Trace;

    public int ArgCount => Node.Args.Length;
    TArg? A(int k) => k < Node.Args.Length ? Node.Args[k] : null;

    /// <summary>True when argument <paramref name="k"/> is absent, None, or the schema default.</summary>
    public bool IsNone(int k) => A(k) is not { } a || a.Kind is TArgKind.None or TArgKind.Default;

    public bool IsTensor(int k) => A(k)?.Kind == TArgKind.Tensor;

    public long Int(int k, long @default)
    {
        if (IsNone(k)) return @default;
        var a = A(k)!;
        if (a.IsSymbolic) throw Unsupported($"argument {k} depends on the batch size ({a})");
        return a.Kind switch
        {
            TArgKind.Int or TArgKind.Bool => a.I,
            TArgKind.Double when a.D == Math.Floor(a.D) => (long)a.D,
            _ => throw Unsupported($"argument {k} is {a.Kind} where an integer was expected"),
        };
    }

    public double Double(int k, double @default)
    {
        if (IsNone(k)) return @default;
        var a = A(k)!;
        return a.Kind switch
        {
            TArgKind.Double => a.D,
            TArgKind.Int or TArgKind.Bool when !a.IsSymbolic => a.I,
            _ => throw Unsupported($"argument {k} is {a.Kind} where a number was expected"),
        };
    }

    public double? OptDouble(int k) => IsNone(k) ? null : Double(k, 0);

    public bool Bool(int k, bool @default) => IsNone(k) ? @default : A(k)!.I != 0;

    public string? String(int k) => IsNone(k) ? null : (string)A(k)!.Ref!;

    /// <summary>A constant integer list (a single int is a list of one).</summary>
    public long[] Ints(int k)
    {
        var a = A(k) ?? throw Unsupported($"argument {k} is missing");
        if (a.IsSymbolic) throw Unsupported($"argument {k} depends on the batch size ({a})");
        return a.Kind switch
        {
            TArgKind.IntList => (long[])a.Ref!,
            TArgKind.Int => new[] { a.I },
            _ => throw Unsupported($"argument {k} is {a.Kind} where an integer list was expected"),
        };
    }

    /// <summary>An integer list as an int64 graph tensor; entries computed from the batch size become graph computations.</summary>
    public string IntsTensor(int k)
    {
        var a = A(k) ?? throw Unsupported($"argument {k} is missing");
        return a.Kind switch
        {
            TArgKind.IntList => Graph.Ints((long[])a.Ref!, a.Sym),
            TArgKind.Int => Graph.Ints(new[] { a.I }, a.Sym),
            _ => throw Unsupported($"argument {k} is {a.Kind} where an integer list was expected"),
        };
    }

    public bool IsSymbolic(int k) => A(k)?.IsSymbolic == true;

    public double[] Doubles(int k) => (double[])A(k)!.Ref!;

    /// <summary>The ONNX name of tensor argument <paramref name="k"/>.</summary>
    public string In(int k)
    {
        var a = A(k);
        if (a?.Kind != TArgKind.Tensor) throw Unsupported($"argument {k} is {(a is null ? "missing" : a.Kind.ToString())} where a tensor was expected");
        return Graph.NameOf(a.ValueId);
    }

    /// <summary>The ONNX names of a tensor-list argument.</summary>
    public string[] InList(int k) => ((int?[])A(k)!.Ref!).Select(v => Graph.NameOf(v ?? throw Unsupported($"argument {k} holds None"))).ToArray();

    public TValue ArgValue(int k) => Trace[A(k)!.ValueId];
    public TValue[] ArgValues(int k) => ((int?[])A(k)!.Ref!).Select(v => Trace[v!.Value]).ToArray();
    public long[] Shape(int k) => ArgValue(k).Shape;
    public int Rank(int k) => ArgValue(k).Shape.Length;
    public DType DTypeOf(int k) => ArgValue(k).DType;

    /// <summary>A dimension size of a tensor argument that must not depend on the batch.</summary>
    public long StaticDim(int k, int dim)
    {
        var v = ArgValue(k);
        int d = dim < 0 ? dim + v.Shape.Length : dim;
        if (v.DynamicDims.Length > d && v.DynamicDims[d])
            throw Unsupported($"dimension {dim} of argument {k} depends on the batch size and is needed as a constant");
        return v.Shape[d];
    }

    public int OutCount => Node.Outputs.Length;
    public TValue OutValue(int j) => Trace[Node.Outputs[j]];
    public DType OutDType(int j = 0) => OutValue(j).DType;
    public long[] OutShape(int j = 0) => OutValue(j).Shape;

    /// <summary>The name of output <paramref name="j"/>; a mapper must write it (or <see cref="Alias"/> it).</summary>
    public string Out(int j = 0)
    {
        int id = Node.Outputs[j];
        if (Graph.IsBound(id)) throw new InvalidOperationException($"Internal error: output {j} of {Node.OpName} is already bound.");
        var name = Graph.Fresh("t" + id);
        Graph.Bind(id, name);
        return name;
    }

    /// <summary>Output <paramref name="j"/> is the existing value <paramref name="name"/> (no node).</summary>
    public void Alias(int j, string name) => Graph.Bind(Node.Outputs[j], name);

    /// <summary>Writes one node into output <paramref name="j"/>.</summary>
    public void EmitOut(string opType, string[] inputs, int j = 0, params AttributeProto[] attributes) =>
        Graph.EmitTo(opType, inputs, Out(j), attributes);

    public void EmitOut(string opType, string[] inputs, params AttributeProto[] attributes) =>
        Graph.EmitTo(opType, inputs, Out(0), attributes);

    public string Emit(string opType, string[] inputs, params AttributeProto[] attributes) =>
        Graph.Emit(opType, inputs, "t", attributes);

    public string ConstI64(params long[] v) => Graph.ConstI64(v);

    /// <summary>A scalar constant of dtype <paramref name="dtype"/>.</summary>
    public string Scalar(double v, DType dtype) => Graph.Scalar(dtype, v);

    /// <summary>Casts <paramref name="name"/> (of type <paramref name="from"/>) to <paramref name="to"/> when they differ.</summary>
    public string Cast(string name, DType from, DType to) =>
        from == to ? name : Emit("Cast", new[] { name }, Attr.I("to", OnnxTypes.Of(to)));

    /// <summary>Tensor argument <paramref name="k"/> cast to the output dtype (type promotion).</summary>
    public string InAs(int k, DType to) => Cast(In(k), DTypeOf(k), to);

    /// <summary>Argument <paramref name="k"/> as an operand of dtype <paramref name="to"/>: a tensor (cast if needed) or a number.</summary>
    public string Operand(int k, DType to) => IsTensor(k) ? InAs(k, to) : Scalar(Double(k, 0), to);

    public int NormDim(long dim, int rank) => (int)(dim < 0 ? dim + rank : dim);

    public OnnxExportException Unsupported(string what) =>
        new($"{Node.OpName} cannot be exported at opset {Opset} (module {(Node.ModulePath.Length == 0 ? "(before any parameter was used)" : Node.ModulePath)}): {what}.",
            Node.OpName, Opset, Node.ModulePath);

    /// <summary>Axes as the reduce operators take them: an attribute before opset 18 (13 for ReduceSum), an input after.</summary>
    public string Reduce(string op, string x, long[] axes, bool keepDims)
    {
        bool axesAsInput = op == "ReduceSum" ? Opset >= 13 : Opset >= 18;
        if (axesAsInput)
            return Emit(op, new[] { x, ConstI64(axes) }, Attr.I("keepdims", keepDims ? 1 : 0));
        return Emit(op, new[] { x }, Attr.Ints("axes", axes), Attr.I("keepdims", keepDims ? 1 : 0));
    }

    public string Unsqueeze(string x, params long[] axes) => Emit("Unsqueeze", new[] { x, ConstI64(axes) });
    public string Squeeze(string x, params long[] axes) => Emit("Squeeze", new[] { x, ConstI64(axes) });
}

using System.Reflection;
using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using MLNetExt.Export.Tracing;
using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>
/// The aten schema of one overload a mapper class maps, written as libtorch 1.13 prints it (the overload the engine's
/// op table <c>src/Torch/Ops.cs</c> calls), e.g.
/// <c>[Aten("aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor")]</c>. A class carries one per
/// overload it maps (all of one operator); its mapper reads the recorded arguments by these names. The schema test
/// (tests/MLNetExt.Tests/Export/MapperSchemaTests.cs) checks each against libtorch's.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
internal sealed class AtenAttribute(string schema) : Attribute
{
    public string Schema { get; } = schema;
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

/// <summary>A mapper found for one recorded call: its form for the target opset and the schema of the call's overload.</summary>
internal readonly record struct Mapping(Action<MapContext> Map, AtenSchema Schema);

/// <summary>Every mapper in this assembly, keyed by aten operator name; each knows the schemas of the overloads it maps.</summary>
internal static class MapperRegistry
{
    public const int MinOpset = 13, MaxOpset = 21, DefaultOpset = 17;

    /// <summary>One mapper class: its operator, its schemas by overload name, its forms by lowest opset.</summary>
    internal sealed record Entry(string Op, Type Type, IReadOnlyDictionary<string, AtenSchema> Schemas, (int Opset, Action<MapContext> Map)[] Versions);

    static readonly Lazy<Dictionary<string, Entry>> s_entries = new(() => Build(typeof(MapperRegistry).Assembly.GetTypes()));

    /// <summary>Reads the <see cref="AtenAttribute"/> mapper classes among <paramref name="types"/> (the assembly's, or a
    /// test's). Malformed schemas, schemas of two operators on one class, a repeated overload or two classes for one
    /// operator are errors naming the class.</summary>
    internal static Dictionary<string, Entry> Build(IEnumerable<Type> types)
    {
        var result = new Dictionary<string, Entry>();
        foreach (var type in types)
        {
            var atens = type.GetCustomAttributes<AtenAttribute>(inherit: false).ToArray();
            if (atens.Length == 0) continue;
            if (!typeof(OpMapper).IsAssignableFrom(type))
                throw new InvalidOperationException($"{type.Name} is tagged [Aten] but is not an OpMapper.");
            var schemas = new Dictionary<string, AtenSchema>();
            foreach (var aten in atens)
            {
                AtenSchema schema;
                try { schema = AtenSchema.Parse(aten.Schema); }
                catch (FormatException e) { throw new InvalidOperationException($"Mapper {type.Name}: {e.Message}", e); }
                if (schemas.Count > 0 && schemas.Values.First().Name != schema.Name)
                    throw new InvalidOperationException($"Mapper {type.Name} names schemas of two operators: {schemas.Values.First().Name} and {schema.Name}.");
                if (!schemas.TryAdd(schema.Overload, schema))
                    throw new InvalidOperationException($"Mapper {type.Name} names {schema.QualifiedName} twice.");
            }
            string op = schemas.Values.First().Name;
            var instance = Activator.CreateInstance(type)!;
            var versions = type.GetMethods(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
                .Where(m => m.GetCustomAttribute<OpsetAttribute>() is not null)
                .Select(m => (m.GetCustomAttribute<OpsetAttribute>()!.Version, (Action<MapContext>)m.CreateDelegate(typeof(Action<MapContext>), instance)))
                .OrderBy(v => v.Version).ToArray();
            if (versions.Length == 0) throw new InvalidOperationException($"Mapper {type.Name} has no [Opset] method.");
            if (!result.TryAdd(op, new Entry(op, type, schemas, versions)))
                throw new InvalidOperationException($"Two mappers for {op}: {result[op].Type.Name} and {type.Name}.");
        }
        return result;
    }

    /// <summary>Every mapped aten operator.</summary>
    public static IReadOnlyCollection<string> Operators => s_entries.Value.Keys;

    /// <summary>Every mapper class with the schemas it names.</summary>
    internal static IReadOnlyCollection<Entry> Entries => s_entries.Value.Values;

    /// <summary>Whether a mapper maps this overload of the operator.</summary>
    public static bool Maps(Op op) => s_entries.Value.TryGetValue(op.Name, out var e) && e.Schemas.ContainsKey(op.Overload);

    /// <summary>The opset versions a mapper defines.</summary>
    public static int[] Versions(string op) => s_entries.Value[op].Versions.Select(v => v.Opset).ToArray();

    /// <summary>The mapper of a recorded call at the target opset, with the schema of the call's overload. No mapper,
    /// an overload the mapper does not name, a target below the mapper's lowest opset, or more recorded arguments than
    /// the schema has are errors naming the operator.</summary>
    public static Mapping Find(TNode node, int opset)
    {
        string op = node.Op.Name;
        if (!s_entries.Value.TryGetValue(op, out var entry))
            throw new OnnxExportException($"No ONNX mapper for {node.OpName} (target opset {opset}, module {Module(node)}). " +
                $"Mapped operators: {string.Join(", ", Operators.OrderBy(o => o).Select(o => o.Replace("aten::", "")))}.", node.OpName, opset, node.ModulePath);
        if (!entry.Schemas.TryGetValue(node.Op.Overload, out var schema))
            throw new OnnxExportException($"No ONNX mapper for {node.OpName} (target opset {opset}, module {Module(node)}): the mapper of {op} " +
                $"maps {string.Join(", ", entry.Schemas.Values.Select(s => s.QualifiedName).OrderBy(s => s))}.", node.OpName, opset, node.ModulePath);
        Action<MapContext>? best = null;
        foreach (var (v, map) in entry.Versions) if (v <= opset) best = map;
        if (best is null)
            throw new OnnxExportException($"{node.OpName} needs ONNX opset {entry.Versions[0].Opset} or higher; the target opset is {opset} " +
                $"(module {Module(node)}). Export with opset {Math.Max(MinOpset, entry.Versions[0].Opset)} or later.", node.OpName, opset, node.ModulePath)
            { LowestWorkingOpset = entry.Versions[0].Opset };
        if (node.Args.Length > schema.Arguments.Count)
            throw new OnnxExportException($"{node.OpName} was called with {node.Args.Length} arguments, but the schema its mapper {entry.Type.Name} " +
                $"names has {schema.Arguments.Count}: {schema}. The mapper's schema does not match the engine's operator.", node.OpName, opset, node.ModulePath);
        return new Mapping(best, schema);
    }

    static string Module(TNode node) => node.ModulePath.Length == 0 ? "(before any parameter was used)" : node.ModulePath;
}

/// <summary>What a mapper sees: the recorded call, whose arguments it reads by their schema names (arguments the
/// engine left out for their defaults read as absent), the shapes and types of the traced values, and the graph
/// builder it writes to.</summary>
internal sealed class MapContext
{
    public MapContext(GraphBuilder graph, TNode node, AtenSchema schema)
    {
        Graph = graph;
        Node = node;
        Schema = schema;
    }

    public GraphBuilder Graph { get; }
    public TNode Node { get; }

    /// <summary>The schema of the recorded overload, as the mapper names it.</summary>
    public AtenSchema Schema { get; }

    public int Opset => Graph.Opset;
    Trace Trace => Graph.Trace;

    /// <summary>Whether this overload's schema has an argument <paramref name="name"/> (overloads of one operator differ,
    /// e.g. <c>sum</c> and <c>sum.dim_IntList</c>).</summary>
    public bool Has(string name) => Schema.IndexOf(name) >= 0;

    /// <summary>The recorded argument <paramref name="name"/>, or null when the call left it to its default. A name the
    /// schema does not have is a mapper bug.</summary>
    TArg? A(string name)
    {
        int k = Schema.IndexOf(name);
        if (k < 0)
            throw new InvalidOperationException($"Internal error: the mapper of {Node.OpName} reads argument '{name}', which its schema does not have: {Schema}.");
        return k < Node.Args.Length ? Node.Args[k] : null;
    }

    /// <summary>True when argument <paramref name="name"/> is absent, None, or the schema default.</summary>
    public bool IsNone(string name) => A(name) is not { } a || a.Kind is TArgKind.None or TArgKind.Default;

    public bool IsTensor(string name) => A(name)?.Kind == TArgKind.Tensor;

    public long Int(string name, long @default)
    {
        if (IsNone(name)) return @default;
        var a = A(name)!;
        if (a.IsSymbolic) throw Unsupported($"argument '{name}' depends on the batch size ({a})");
        return a.Kind switch
        {
            TArgKind.Int or TArgKind.Bool => a.I,
            TArgKind.Double when a.D == Math.Floor(a.D) => (long)a.D,
            _ => throw Unsupported($"argument '{name}' is {a.Kind} where an integer was expected"),
        };
    }

    public double Double(string name, double @default)
    {
        if (IsNone(name)) return @default;
        var a = A(name)!;
        return a.Kind switch
        {
            TArgKind.Double => a.D,
            TArgKind.Int or TArgKind.Bool when !a.IsSymbolic => a.I,
            _ => throw Unsupported($"argument '{name}' is {a.Kind} where a number was expected"),
        };
    }

    public double? OptDouble(string name) => IsNone(name) ? null : Double(name, 0);

    public bool Bool(string name, bool @default) => IsNone(name) ? @default : A(name)!.I != 0;

    public string? String(string name) => IsNone(name) ? null : (string)A(name)!.Ref!;

    /// <summary>A constant integer list (a single int is a list of one).</summary>
    public long[] Ints(string name)
    {
        var a = A(name) ?? throw Unsupported($"argument '{name}' is missing");
        if (a.IsSymbolic) throw Unsupported($"argument '{name}' depends on the batch size ({a})");
        return a.Kind switch
        {
            TArgKind.IntList => (long[])a.Ref!,
            TArgKind.Int => new[] { a.I },
            _ => throw Unsupported($"argument '{name}' is {a.Kind} where an integer list was expected"),
        };
    }

    /// <summary>An integer list as an int64 graph tensor; entries computed from the batch size become graph computations.</summary>
    public string IntsTensor(string name)
    {
        var a = A(name) ?? throw Unsupported($"argument '{name}' is missing");
        return a.Kind switch
        {
            TArgKind.IntList => Graph.Ints((long[])a.Ref!, a.Sym),
            TArgKind.Int => Graph.Ints(new[] { a.I }, a.Sym),
            _ => throw Unsupported($"argument '{name}' is {a.Kind} where an integer list was expected"),
        };
    }

    public bool IsSymbolic(string name) => A(name)?.IsSymbolic == true;

    /// <summary>The ONNX name of tensor argument <paramref name="name"/>.</summary>
    public string In(string name)
    {
        var a = A(name);
        if (a?.Kind != TArgKind.Tensor) throw Unsupported($"argument '{name}' is {(a is null ? "missing" : a.Kind.ToString())} where a tensor was expected");
        return Graph.NameOf(a.ValueId);
    }

    /// <summary>The ONNX names of a tensor-list argument.</summary>
    public string[] InList(string name) => ((int?[])A(name)!.Ref!).Select(v => Graph.NameOf(v ?? throw Unsupported($"argument '{name}' holds None"))).ToArray();

    public TValue ArgValue(string name) => Trace[A(name)!.ValueId];
    public TValue[] ArgValues(string name) => ((int?[])A(name)!.Ref!).Select(v => Trace[v!.Value]).ToArray();
    public long[] Shape(string name) => ArgValue(name).Shape;
    public int Rank(string name) => ArgValue(name).Shape.Length;
    public DType DTypeOf(string name) => ArgValue(name).DType;

    /// <summary>A dimension size of a tensor argument that must not depend on the batch.</summary>
    public long StaticDim(string name, int dim)
    {
        var v = ArgValue(name);
        int d = dim < 0 ? dim + v.Shape.Length : dim;
        if (v.DynamicDims.Length > d && v.DynamicDims[d])
            throw Unsupported($"dimension {dim} of argument '{name}' depends on the batch size and is needed as a constant");
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

    /// <summary>Tensor argument <paramref name="name"/> cast to <paramref name="to"/> (type promotion).</summary>
    public string InAs(string name, DType to) => Cast(In(name), DTypeOf(name), to);

    /// <summary>Argument <paramref name="name"/> as an operand of dtype <paramref name="to"/>: a tensor (cast if needed) or a number.</summary>
    public string Operand(string name, DType to) => IsTensor(name) ? InAs(name, to) : Scalar(Double(name, 0), to);

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

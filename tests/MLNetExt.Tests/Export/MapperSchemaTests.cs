using System.Reflection;
using System.Text.Json;
using MLNetExt.Export;
using MLNetExt.Export.Graph;
using MLNetExt.Export.Mappers;
using MLNetExt.Export.Tracing;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Export;

/// <summary>
/// Ties the engine's op table (<c>src/Torch/Ops.cs</c>), the ONNX mappers and libtorch 1.13's schemas together: every
/// row of the table is mapped or on <see cref="NeverExported"/>; every schema a mapper names is libtorch's (argument
/// names, count and text), checked against tests/fixtures/export/aten_schemas.json (written by make_aten_schemas.py
/// with Debian's torch 1.13) and against the libtorch the engine links.
/// </summary>
[TestClass]
public sealed class MapperSchemaTests
{
    /// <summary>One schema of the fixture: torch's text and the argument names torch parsed.</summary>
    sealed record TorchSchema(string Overload, string Text, string[] Arguments);

    sealed record SchemaFixture(string Torch, Dictionary<string, TorchSchema[]> Operators, string[] Unknown);

    static readonly Lazy<SchemaFixture> s_fixture = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("export/aten_schemas.json")));
        var root = doc.RootElement;
        var ops = root.GetProperty("operators").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.EnumerateArray()
            .Select(s => new TorchSchema(s.GetProperty("overload").GetString()!, s.GetProperty("schema").GetString()!,
                s.GetProperty("arguments").EnumerateArray().Select(a => a.GetString()!).ToArray())).ToArray());
        return new SchemaFixture(root.GetProperty("torch").GetString()!, ops, root.GetProperty("unknown").EnumerateArray().Select(a => a.GetString()!).ToArray());
    });

    static SchemaFixture Fixture => s_fixture.Value;

    /// <summary>Every row of the engine's op table: the <see cref="Op"/> fields of <see cref="Ops"/>.</summary>
    static IReadOnlyList<(string Field, Op Op)> EngineOps() =>
        typeof(Ops).GetFields(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Where(f => f.FieldType == typeof(Op)).Select(f => (f.Name, (Op)f.GetValue(null)!)).ToList();

    /// <summary>The bridge's own operators (src/Native/ops.cpp), which libtorch does not have.</summary>
    static bool IsBridgeOp(string name) => name.StartsWith("mlnetext::", StringComparison.Ordinal);

    const string Regenerate = "regenerate with /usr/bin/python3 tests/fixtures/export/make_aten_schemas.py";

    /// <summary>What is wrong with the schemas the given mappers name, against libtorch 1.13's (empty when nothing is).</summary>
    static List<string> SchemaProblems(IEnumerable<MapperRegistry.Entry> entries)
    {
        var problems = new List<string>();
        foreach (var entry in entries.OrderBy(e => e.Op))
            foreach (var schema in entry.Schemas.Values.OrderBy(s => s.Overload))
            {
                string who = $"{entry.Type.Name} names {schema.QualifiedName}";
                if (IsBridgeOp(schema.Name))
                {
                    // the bridge's own operators: the authority is the schema src/Native/ops.cpp registers
                    string live = new Op(schema.Name, schema.Overload).Schema;
                    if (schema.Text != live) problems.Add($"{who} as\n    {schema.Text}\n  the bridge registers\n    {live}");
                    continue;
                }
                if (!Fixture.Operators.TryGetValue(schema.Name, out var overloads))
                {
                    problems.Add(Fixture.Unknown.Contains(schema.Name)
                        ? $"{who}, but libtorch {Fixture.Torch} has no operator {schema.Name}"
                        : $"{who}, which is not in aten_schemas.json ({Regenerate}; if it is still missing, libtorch has no such operator)");
                    continue;
                }
                var torch = overloads.FirstOrDefault(o => o.Overload == schema.Overload);
                if (torch is null)
                {
                    problems.Add($"{who}, but libtorch {Fixture.Torch} has no such overload; {schema.Name} has " +
                        string.Join(", ", overloads.Select(o => o.Overload.Length == 0 ? "(none)" : o.Overload)));
                    continue;
                }
                var mine = schema.ArgumentNames.ToArray();
                if (mine.Length != torch.Arguments.Length)
                    problems.Add($"{who} with {mine.Length} arguments; libtorch's has {torch.Arguments.Length}: {torch.Text}");
                else if (!mine.SequenceEqual(torch.Arguments))
                    problems.Add($"{who} with arguments ({string.Join(", ", mine)}); libtorch's are ({string.Join(", ", torch.Arguments)}): {torch.Text}");
                else if (schema.Text != torch.Text)
                    problems.Add($"{who} as\n    {schema.Text}\n  libtorch prints\n    {torch.Text}");
            }
        return problems;
    }

    [TestMethod]
    public void TheFixtureIsTorch113AndOurParserReadsEverySchemaAsTorchDoes()
    {
        StringAssert.StartsWith(Fixture.Torch, "1.13", "the fixture must come from the torch whose libtorch the engine links");
        int n = 0;
        foreach (var (name, overloads) in Fixture.Operators)
            foreach (var torch in overloads)
            {
                var s = AtenSchema.Parse(torch.Text);
                Assert.AreEqual(name, s.Name, torch.Text);
                Assert.AreEqual(torch.Overload, s.Overload, torch.Text);
                CollectionAssert.AreEqual(torch.Arguments, s.ArgumentNames.ToArray(), torch.Text);
                n++;
            }
        Assert.IsGreaterThan(500, n, "the fixture lists every overload of each operator");
    }

    [TestMethod]
    public void EveryMapperNamesLibtorchsSchema()
    {
        var problems = SchemaProblems(MapperRegistry.Entries);
        Assert.AreEqual(0, problems.Count, "mapper schemas that are not libtorch 1.13's:\n  " + string.Join("\n  ", problems));
    }

    [TestMethod]
    public void EveryOpOfTheEngineIsMappedOrNeverExported()
    {
        var engine = EngineOps();
        var problems = new List<string>();
        foreach (var (field, op) in engine)
        {
            string key = op.ToString();
            bool mapped = MapperRegistry.Maps(op), listed = NeverExported.Operators.ContainsKey(key);
            if (mapped && listed) problems.Add($"Ops.{field} ({key}) has a mapper and is on NeverExported");
            if (!mapped && !listed)
                problems.Add($"Ops.{field} ({key}) has neither a mapper naming its schema nor an entry on NeverExported (src/Export/Mappers/NeverExported.cs)");
            if (!IsBridgeOp(op.Name) && (!Fixture.Operators.TryGetValue(op.Name, out var overloads) || overloads.All(o => o.Overload != op.Overload)))
                problems.Add($"Ops.{field} ({key}) is not in aten_schemas.json ({Regenerate})");
        }
        var rows = engine.Select(e => e.Op.ToString()).ToHashSet();
        foreach (var key in NeverExported.Operators.Keys.Where(k => !rows.Contains(k)))
            problems.Add($"NeverExported lists {key}, which is not a row of the engine's op table");
        foreach (var entry in MapperRegistry.Entries)
            foreach (var schema in entry.Schemas.Values.Where(s => !rows.Contains(s.QualifiedName)))
                problems.Add($"{entry.Type.Name} names {schema.QualifiedName}, which the engine never calls (not a row of src/Torch/Ops.cs)");
        foreach (var (key, reason) in NeverExported.Operators.Where(kv => kv.Value == NotExportedReason.Random))
            if (!Tracer.RandomOps.Contains(key.Split('.')[0]))
                problems.Add($"NeverExported lists {key} as random, but the tracer does not reject it (Tracer.RandomOps)");
        Assert.AreEqual(0, problems.Count, string.Join("\n", problems));

        int mappedRows = engine.Count(e => MapperRegistry.Maps(e.Op));
        Assert.AreEqual(engine.Count, mappedRows + NeverExported.Operators.Count);
        Console.WriteLine($"engine op table: {engine.Count} rows; {mappedRows} mapped by {MapperRegistry.Operators.Count} mappers; " +
            $"{NeverExported.Operators.Count} never exported ({string.Join(", ", NeverExported.Operators.GroupBy(kv => kv.Value).Select(g => $"{g.Key} {g.Count()}"))})");
    }

    [TestMethod]
    public void TheFixtureAgreesWithTheLibtorchTheEngineLinks()
    {
        var problems = new List<string>();
        foreach (var (field, op) in EngineOps().Where(e => !IsBridgeOp(e.Op.Name)))
        {
            var torch = Fixture.Operators.GetValueOrDefault(op.Name)?.FirstOrDefault(o => o.Overload == op.Overload);
            if (torch is null) { problems.Add($"Ops.{field} ({op}) is not in the fixture ({Regenerate})"); continue; }
            string live = op.Schema;
            if (live != torch.Text) problems.Add($"Ops.{field}: the engine's libtorch has\n    {live}\n  the fixture\n    {torch.Text}");
        }
        Assert.AreEqual(0, problems.Count, string.Join("\n", problems));
    }

    // ---- the check catches what it is for: mappers declared here are not registered (the registry reads MLNetExt's types) ----

    [Aten("aten::not_an_operator(Tensor self) -> Tensor")]
    sealed class NoSuchOperatorMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [Aten("aten::add.NotAnOverload(Tensor self, Tensor other) -> Tensor")]
    sealed class NoSuchOverloadMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [Aten("""aten::gelu(Tensor self, *, str approximate="none", bool extra=False) -> Tensor""")]
    sealed class WrongArityMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [Aten("aten::softplus(Tensor self, Scalar threshold=20, Scalar beta=1) -> Tensor")]
    sealed class SwappedNamesMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [Aten("aten::leaky_relu(Tensor self, Scalar negative_slope=0.02) -> Tensor")]
    sealed class OtherDefaultMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [TestMethod]
    public void AMapperForAnOperatorThatDoesNotExistOrWithTheWrongSchemaFails()
    {
        string Problem(Type t) => SchemaProblems(MapperRegistry.Build(new[] { t }).Values).Single();
        StringAssert.Contains(Problem(typeof(NoSuchOperatorMapper)), "aten::not_an_operator");
        StringAssert.Contains(Problem(typeof(NoSuchOverloadMapper)), "aten::add.NotAnOverload");
        StringAssert.Contains(Problem(typeof(NoSuchOverloadMapper)), "no such overload");
        StringAssert.Contains(Problem(typeof(WrongArityMapper)), "aten::gelu with 3 arguments; libtorch's has 2");
        StringAssert.Contains(Problem(typeof(SwappedNamesMapper)), "arguments (self, threshold, beta); libtorch's are (self, beta, threshold)");
        StringAssert.Contains(Problem(typeof(OtherDefaultMapper)), "libtorch prints");
    }

    [Aten("aten::relu(Tensor self) -> Tensor")]
    [Aten("aten::sigmoid(Tensor self) -> Tensor")]
    sealed class TwoOperatorsMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [Aten("aten::relu(Tensor self -> Tensor")]
    sealed class MalformedMapper : OpMapper
    {
        [Opset(13)]
        public void V13(MapContext c) => c.Alias(0, c.In("self"));
    }

    [TestMethod]
    public void TheRegistryRejectsMalformedOrMixedSchemas()
    {
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => MapperRegistry.Build(new[] { typeof(TwoOperatorsMapper) }));
        StringAssert.Contains(e.Message, "two operators");
        e = Assert.ThrowsExactly<InvalidOperationException>(() => MapperRegistry.Build(new[] { typeof(MalformedMapper) }));
        StringAssert.Contains(e.Message, "MalformedMapper");
        StringAssert.Contains(e.Message, "aten::relu(Tensor self -> Tensor");
    }

    [TestMethod]
    public void MoreArgumentsThanTheSchemaIsAnErrorNamingTheOp()
    {
        var arg = new TArg { Kind = TArgKind.Int, I = 1 };
        var node = new TNode { Op = Ops.Gelu, Args = new[] { new TArg { Kind = TArgKind.Tensor, Ref = 0 }, arg, arg }, Outputs = new[] { 1 }, ModulePath = "blocks.0" };
        var e = Assert.ThrowsExactly<OnnxExportException>(() => MapperRegistry.Find(node, 17));
        StringAssert.Contains(e.Message, "aten::gelu was called with 3 arguments");
        StringAssert.Contains(e.Message, """aten::gelu(Tensor self, *, str approximate="none") -> Tensor""");
        Assert.AreEqual("aten::gelu", e.Op);
        Assert.AreEqual("blocks.0", e.ModulePath);

        // an overload the mapper of the operator does not name
        var other = new TNode { Op = new Op("aten::add", "out"), Args = Array.Empty<TArg>(), Outputs = new[] { 1 } };
        e = Assert.ThrowsExactly<OnnxExportException>(() => MapperRegistry.Find(other, 17));
        StringAssert.Contains(e.Message, "No ONNX mapper for aten::add.out");
        StringAssert.Contains(e.Message, "aten::add.Scalar, aten::add.Tensor");
        Assert.IsFalse(MapperRegistry.Maps(other.Op));
        Assert.IsTrue(MapperRegistry.Maps(Ops.Add));
    }

    [TestMethod]
    public void ArgumentsAreReadByNameAndAnUnknownNameIsAMapperBug()
    {
        using var trace = new Trace();
        var node = new TNode
        {
            Op = Ops.LeakyRelu,
            Args = new[] { new TArg { Kind = TArgKind.Tensor, Ref = 0 }, new TArg { Kind = TArgKind.Double, D = 0.25 } },
            Outputs = new[] { 1 },
        };
        var c = new MapContext(new GraphBuilder(trace, 17, "input"), node, MapperRegistry.Find(node, 17).Schema);
        Assert.AreEqual(0.25, c.Double("negative_slope", 0.01));
        Assert.IsTrue(c.Has("negative_slope"));
        Assert.IsFalse(c.Has("alpha"));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => c.Double("alpha", 0.01));
        StringAssert.Contains(e.Message, "aten::leaky_relu");
        StringAssert.Contains(e.Message, "'alpha'");

        // an argument the call left to its default reads as absent
        node.Args = node.Args[..1];
        Assert.IsTrue(c.IsNone("negative_slope"));
        Assert.AreEqual(0.01, c.Double("negative_slope", 0.01));
    }

    [TestMethod]
    public void SchemaParser()
    {
        var s = AtenSchema.Parse("aten::split.Tensor(Tensor(a -> *) self, int split_size, int dim=0) -> Tensor(a)[]");
        Assert.AreEqual("aten::split", s.Name);
        Assert.AreEqual("Tensor", s.Overload);
        Assert.AreEqual("aten::split.Tensor", s.QualifiedName);
        CollectionAssert.AreEqual(new[] { "self", "split_size", "dim" }, s.ArgumentNames.ToArray());
        Assert.AreEqual("Tensor(a -> *)", s.Arguments[0].Type);
        Assert.AreEqual("0", s.Arguments[2].Default);
        Assert.AreEqual("Tensor(a)[]", s.Returns);
        Assert.AreEqual(2, s.IndexOf("dim"));
        Assert.AreEqual(-1, s.IndexOf("chunks"));

        s = AtenSchema.Parse("aten::f(int[2] stride=[1, 1], *, str mode=\"a, b\", float eps=1e-05) -> (Tensor values, Tensor indices)");
        CollectionAssert.AreEqual(new[] { "stride", "mode", "eps" }, s.ArgumentNames.ToArray());
        Assert.AreEqual("[1, 1]", s.Arguments[0].Default);
        Assert.IsFalse(s.Arguments[0].KeywordOnly);
        Assert.IsTrue(s.Arguments[1].KeywordOnly);
        Assert.AreEqual("aten::f(int[2] stride, *, str mode, float eps)", s.Signature);
        Assert.AreEqual(0, AtenSchema.Parse("aten::g() -> Tensor").Arguments.Count);

        foreach (var bad in new[] { "aten::f(Tensor self", "aten::f(Tensor self)", "f(Tensor self) -> Tensor", "aten::f(Tensor) -> Tensor",
                     "aten::f(Tensor self, Tensor self) -> Tensor", "aten::f(Tensor a,, Tensor b) -> Tensor", "aten::f.(Tensor a) -> Tensor" })
        {
            var e = Assert.ThrowsExactly<FormatException>(() => AtenSchema.Parse(bad), bad);
            StringAssert.Contains(e.Message, bad);
        }
    }
}

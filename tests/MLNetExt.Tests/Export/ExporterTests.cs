using System.Diagnostics;
using MLNetExt.Export;
using MLNetExt.Export.Mappers;
using MLNetExt.Export.Onnx;
using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Export;

/// <summary>The tracer and graph writer without a runtime: errors, symbolic batch, structure, the ONNX checker.</summary>
[TestClass]
public sealed class ExporterTests
{
    /// <summary>A module with one linear layer (named "proj") followed by a caller-chosen computation.</summary>
    sealed class Probe : Module<Tensor, Tensor>
    {
        readonly Linear _proj;
        readonly Func<Tensor, Tensor> _then;

        public Probe(Func<Tensor, Tensor> then)
        {
            _proj = RegisterModule("proj", new Linear(4, 4));
            _then = then;
        }

        public override Tensor Forward(Tensor x) => _then(_proj.Call(x));
    }

    static ModelProto Build(Module? m, long[] item, Func<Tensor, Tensor> f, int opset = 17) =>
        OnnxExporter.BuildModel(m, item, x => new[] { f(x) }, "input", new[] { "y" }, opset, Array.Empty<(string, string)>());

    [TestMethod]
    public void UnmappedOperatorNamesOpOverloadOpsetAndModule()
    {
        using var scope = TensorScope.Begin();
        using var m = new Probe(h => h.Cumsum(1));
        m.Eval();
        var e = Assert.ThrowsExactly<OnnxExportException>(() => Build(m, new long[] { 4 }, m.Forward));
        StringAssert.Contains(e.Message, "aten::cumsum");
        StringAssert.Contains(e.Message, "opset 17");
        StringAssert.Contains(e.Message, "module proj");
        Assert.AreEqual("aten::cumsum", e.Op);
        Assert.AreEqual("proj", e.ModulePath);
    }

    [TestMethod]
    public void OverloadIsNamed()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<OnnxExportException>(() => Build(null, new long[] { 4 }, x => x.Max(1).Values));
        StringAssert.Contains(e.Message, "aten::max.dim");
    }

    [TestMethod]
    public void OpsetBelowWhatAnOperatorNeedsNamesTheLowestWorkingOpset()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<OnnxExportException>(() => Build(null, new long[] { 4 }, F.Hardswish, opset: 13));
        StringAssert.Contains(e.Message, "aten::hardswish");
        StringAssert.Contains(e.Message, "opset 14");
        Assert.AreEqual(14, e.LowestWorkingOpset);
        Assert.AreEqual(13, e.Opset);
        Build(null, new long[] { 4 }, F.Hardswish, opset: 14);
    }

    [TestMethod]
    public void UnsupportedOpsetIsRejected()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Build(null, new long[] { 4 }, F.Relu, opset: 12));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Build(null, new long[] { 4 }, F.Relu, opset: 22));
    }

    [TestMethod]
    public void HostReadOfATracedValueFails()
    {
        using var scope = TensorScope.Begin();
        using var m = new Probe(h => h.Mul(h.Sum().ToDouble()));
        m.Eval();
        var e = Assert.ThrowsExactly<OnnxExportException>(() => Build(m, new long[] { 4 }, m.Forward));
        StringAssert.Contains(e.Message, "Host read during tracing");
        StringAssert.Contains(e.Message, "aten::item");
        StringAssert.Contains(e.Message, "proj");
        var e2 = Assert.ThrowsExactly<OnnxExportException>(() => Build(null, new long[] { 4 }, x => x.Add(x.ToArray<float>()[0])));
        StringAssert.Contains(e2.Message, "copied to host memory");
    }

    [TestMethod]
    public void ReadingAParameterDuringTheTraceIsAllowed()
    {
        using var scope = TensorScope.Begin();
        using var m = new Probe(h => h);
        m.Eval();
        var w = m.StateDict().First(kv => kv.Key == "proj.weight").Value;
        var model = Build(m, new long[] { 4 }, x => m.Forward(x).Mul(w.Sum().ToDouble()));
        Assert.IsTrue(model.Graph.Initializer.Any(t => t.Name == "proj.weight"), "parameters are initializers named by state_dict key");
    }

    [TestMethod]
    public void RandomOperatorsAreRejected()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<OnnxExportException>(() => Build(null, new long[] { 4 }, x => F.Dropout(x, 0.5, training: true)));
        StringAssert.Contains(e.Message, "aten::dropout");
    }

    [TestMethod]
    public void SizesComputedFromTheBatchBecomeGraphComputations()
    {
        using var scope = TensorScope.Begin();
        // the batch size read in C# and used in a reshape and an expand
        var model = Build(null, new long[] { 2, 3 }, x => x.Reshape(x.Size(0) * 2, 3).Expand(x.Size(0) * 2, 3).Mul(2.0));
        var ops = model.Graph.Node.Select(n => n.OpType).ToList();
        CollectionAssert.Contains(ops, "Shape");
        Assert.AreEqual("N", model.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam);
        // the output's first dimension is 2N: batch-dependent, so neither a number nor N
        Assert.AreEqual(TensorShapeProto.Types.Dimension.ValueOneofCase.None, model.Graph.Output[0].Type.TensorType.Shape.Dim[0].ValueCase);
        Assert.AreEqual(3, model.Graph.Output[0].Type.TensorType.Shape.Dim[1].DimValue);
        // every computed value carries its shape: batch-dependent sizes unnamed, the batch dimension as N
        var reshaped = model.Graph.ValueInfo.Single(v => v.Name == model.Graph.Node.Single(n => n.OpType == "Reshape").Output[0]).Type.TensorType.Shape;
        Assert.AreEqual(TensorShapeProto.Types.Dimension.ValueOneofCase.None, reshaped.Dim[0].ValueCase);
        Assert.AreEqual(3, reshaped.Dim[1].DimValue);
        var scaled = Build(null, new long[] { 2, 3 }, x => x.Mul(2.0).Add(1.0)).Graph;
        var shape = scaled.ValueInfo.Single(v => v.Name == scaled.Node.Single(n => n.OpType == "Mul").Output[0]).Type.TensorType.Shape;
        CollectionAssert.AreEqual(new[] { "N", "", "" }, shape.Dim.Select(d => d.DimParam).ToArray());
        CollectionAssert.AreEqual(new long[] { 0, 2, 3 }, shape.Dim.Select(d => d.DimValue).ToArray());
        Assert.IsFalse(model.Graph.Initializer.Any(t => t.DataType == (int)TensorProto.Types.DataType.Int64 && t.Dims.Count == 1 && t.Dims[0] == 2
            && BitConverter.ToInt64(t.RawData.Span) == 4), "no batch-2 size [4, 3] is baked in");
    }

    [TestMethod]
    public void BatchDependentControlFlowIsRejected()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<OnnxExportException>(() => Build(null, new long[] { 3 }, x => x.Size(0) == 2 ? x.Relu() : x.Sigmoid()));
        StringAssert.Contains(e.Message, "differs between batch 2 and batch 3");
    }

    [TestMethod]
    public void ConstantSubgraphsAreFoldedAndDeadNodesRemoved()
    {
        using var scope = TensorScope.Begin();
        using var c = Tensor.FromArray<float>(new float[] { 1, 2, 3 }, new long[] { 3 });
        var model = Build(null, new long[] { 3 }, x =>
        {
            var unused = x.Exp();                      // dead
            return x.Add(c.Mul(2.0).Add(1.0));         // c*2+1 computed at export time
        });
        Assert.AreEqual(2, model.Graph.Node.Count, string.Join(", ", model.Graph.Node.Select(n => n.OpType)));  // Add + output Identity
        var folded = model.Graph.Initializer.Single(t => t.Dims.SequenceEqual(new long[] { 3 }) && t.DataType == 1);
        var values = new float[3];
        Buffer.BlockCopy(folded.RawData.ToByteArray(), 0, values, 0, 12);
        CollectionAssert.AreEqual(new float[] { 3, 5, 7 }, values);
    }

    [TestMethod]
    public void EveryMapperHasOneVersionPerOpsetChangeAndGeluLayerNormFollowTheSpec()
    {
        CollectionAssert.AreEqual(new[] { 13, 20 }, MapperRegistry.Versions("aten::gelu"));
        CollectionAssert.AreEqual(new[] { 13, 17 }, MapperRegistry.Versions("aten::layer_norm"));
        using var scope = TensorScope.Begin();
        string[] Ops(int opset, Func<Tensor, Tensor> f) => Build(null, new long[] { 4 }, f, opset).Graph.Node.Select(n => n.OpType).ToArray();
        CollectionAssert.Contains(Ops(17, x => F.Gelu(x)), "Erf");
        CollectionAssert.Contains(Ops(20, x => F.Gelu(x)), "Gelu");
        CollectionAssert.DoesNotContain(Ops(16, x => F.LayerNorm(x, new long[] { 4 })), "LayerNormalization");
        CollectionAssert.Contains(Ops(17, x => F.LayerNorm(x, new long[] { 4 })), "LayerNormalization");
    }

    [TestMethod]
    public void WritesAtomicallyAndUsesExternalDataPastTheThreshold()
    {
        using var scope = TensorScope.Begin();
        var dir = Directory.CreateTempSubdirectory("mlnetext-export-");
        try
        {
            using var m = MLNetExt.Vision.Backbones.CreateCustom("transxnet", TinyConfig.Kwargs);
            var path = Path.Combine(dir.FullName, "m.onnx");
            var r = OnnxExporter.Export(m, path, new OnnxExportOptions { ImageSize = (64, 64), ExternalDataThreshold = 1000 });
            Assert.IsNotNull(r.ExternalDataPath);
            Assert.IsTrue(File.Exists(r.ExternalDataPath));
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var big = model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
            Assert.IsGreaterThan(0, big.Count);
            Assert.IsTrue(big.All(t => t.ExternalData.Any(e => e.Key == "location" && e.Value == "m.onnx.data")));
            CollectionAssert.AreEquivalent(new[] { "m.onnx", "m.onnx.data" }, dir.GetFiles().Select(f => f.Name).ToArray(), "no temporary files left");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void MetadataAndSlotNames()
    {
        using var scope = TensorScope.Begin();
        var dir = Directory.CreateTempSubdirectory("mlnetext-export-");
        try
        {
            using var m = MLNetExt.Vision.Backbones.CreateCustom("transxnet", TinyConfig.Kwargs, numClasses: 3);
            var path = Path.Combine(dir.FullName, "m.onnx");
            OnnxExporter.Export(m, path, new OnnxExportOptions { ImageSize = (64, 64), CropPct = 0.875, Labels = new[] { "ant", "bee", "wasp" }, IncludeFeatures = true });
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var meta = model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
            Assert.AreEqual("transxnet", meta["mlnetext.backbone"]);
            // the graph takes the evaluation resize size (floor(64 / 0.875) = 73) and crops the centre 64x64 at (4, 4)
            Assert.AreEqual("3,73,73", meta["mlnetext.input_size"]);
            Assert.AreEqual("73,73", meta["mlnetext.resize_size"]);
            Assert.AreEqual("64,64", meta["mlnetext.crop_size"]);
            Assert.AreEqual("4,4", meta["mlnetext.crop_offset"]);
            Assert.AreEqual("0.875", meta["mlnetext.crop_pct"]);
            Assert.AreEqual("true", meta["mlnetext.crop_in_graph"]);
            Assert.AreEqual("shorter-side", meta["mlnetext.resize_mode"]);
            Assert.AreEqual("17", meta["mlnetext.opset"]);
            Assert.AreEqual("ant\nbee\nwasp", meta["mlnetext.labels"]);
            Assert.AreEqual("0.485,0.456,0.406", meta["mlnetext.mean"]);
            Assert.IsTrue(meta.ContainsKey("mlnetext.library_version"));
            CollectionAssert.AreEqual(new[] { "logits", "Score", "features" }, model.Graph.Output.Select(o => o.Name).ToArray());
            Assert.AreEqual("image", model.Graph.Input[0].Name);
            var slot = model.Graph.Node.Single(n => n.Name == "mlnet.Score.SlotNames");
            CollectionAssert.AreEqual(new[] { "ant", "bee", "wasp" }, slot.Attribute.Single(a => a.Name == "keys_strings").Strings.Select(s => s.ToStringUtf8()).ToArray());
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    [DataRow(17)]
    [DataRow(13)]
    public void OnnxCheckerAcceptsTheTinyTransXNet(int opset)
    {
        if (!PythonOnnx.Available(out var why)) Assert.Inconclusive(why);
        using var scope = TensorScope.Begin();
        var dir = Directory.CreateTempSubdirectory("mlnetext-export-");
        try
        {
            using var m = MLNetExt.Vision.Backbones.CreateCustom("transxnet", TinyConfig.Kwargs);
            var path = Path.Combine(dir.FullName, "m.onnx");
            OnnxExporter.Export(m, path, new OnnxExportOptions { Opset = opset, ImageSize = (64, 64), Labels = Enumerable.Range(0, m.NumClasses).Select(i => $"c{i}").ToArray() });
            var (code, output) = PythonOnnx.Run($"import onnx; m = onnx.load('{path}'); onnx.checker.check_model(m, full_check=True); print('ok', m.opset_import)");
            Assert.AreEqual(0, code, output);
            StringAssert.Contains(output, "ok");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void OnnxCheckerAcceptsTheOtherFamiliesSmallConfigurations()
    {
        if (!PythonOnnx.Available(out var why)) Assert.Inconclusive(why);
        using var scope = TensorScope.Begin();
        var dir = Directory.CreateTempSubdirectory("mlnetext-export-");
        try
        {
            using var smtFixture = Tests.Vision.Smt.SmtFixtures.Load("a");
            using var tnxFixture = MLNetExt.Serialization.SafeTensors.Load(Tests.Vision.TransNeXt.TransNeXtFixtures.Path("parity_a.safetensors"));
            var models = new (string Name, MLNetExt.Vision.Backbone Model)[]
            {
                ("transnext", Tests.Vision.TransNeXt.TransNeXtFixtures.Build(Tests.Vision.TransNeXt.TransNeXtFixtures.Json("parity_a.json"), tnxFixture)),
                ("smt", Tests.Vision.Smt.SmtFixtures.Build(smtFixture)),
                ("mixformer", Tests.Vision.MixFormer.MixFormerFixtures.Small()),
            };
            var paths = new List<string>();
            foreach (var (name, model) in models)
            {
                using (model)
                {
                    var path = Path.Combine(dir.FullName, name + ".onnx");
                    OnnxExporter.Export(model, path, new OnnxExportOptions { Labels = Enumerable.Range(0, model.NumClasses).Select(i => $"c{i}").ToArray() });
                    paths.Add(path);
                }
            }
            var script = "import onnx\n" + string.Join("", paths.Select(p => $"onnx.checker.check_model(onnx.load('{p}'), full_check=True); print('ok {Path.GetFileName(p)}')\n"));
            var (code, output) = PythonOnnx.Run(script);
            Assert.AreEqual(0, code, output);
            Assert.AreEqual(3, output.Split('\n').Count(l => l.StartsWith("ok ")), output);
        }
        finally { dir.Delete(true); }
    }
}

/// <summary>The tiny TransXNet configuration of the TransXNet fixture.</summary>
internal static class TinyConfig
{
    public static System.Text.Json.Nodes.JsonObject Kwargs =>
        MLNetExt.Vision.BackboneConfig.ParseObject(MLNetExt.Serialization.SafeTensors.Load(Fixtures.Path("transxnet/tiny.safetensors")).Metadata["kwargs"], "fixture kwargs");

    /// <summary>The fixture's weights (perturbed, so BN statistics and layer scales matter).</summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> Weights =>
        MLNetExt.Serialization.SafeTensors.Load(Fixtures.Path("transxnet/tiny.safetensors"))
            .Where(kv => kv.Key.StartsWith("weights.")).Select(kv => new KeyValuePair<string, Tensor>(kv.Key["weights.".Length..], kv.Value));
}

/// <summary>Debian's python3-onnx (onnx.checker), through /usr/bin/python3.</summary>
internal static class PythonOnnx
{
    public static bool Available(out string why)
    {
        if (!File.Exists("/usr/bin/python3")) { why = "/usr/bin/python3 is missing: install Debian's python3-onnx to run the ONNX checker test"; return false; }
        var (code, output) = Run("import onnx; print(onnx.__version__)");
        why = code == 0 ? "" : "python3-onnx is not installed (apt-get install python3-onnx): the ONNX checker test is skipped. " + output.Trim();
        return code == 0;
    }

    public static (int Code, string Output) Run(string script)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr);
    }
}

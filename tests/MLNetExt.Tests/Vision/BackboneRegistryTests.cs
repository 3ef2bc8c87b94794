using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Data;
using MLNetExt.Imaging;
using MLNetExt.Inference;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.OnnxRuntime;
using MLNetExt.Serialization;
using MLNetExt.Tests.MLNet;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Vision;

/// <summary>
/// The backbone contract, checked on every registered family through its test row (<see cref="BackboneFamily.TestVariant"/>,
/// a tiny configuration): the rows come from <see cref="Backbones.Families"/>, so a new family is covered as soon as it
/// is registered (timm's tests/test_models.py does the same over its registry). Weights are perturbed (BatchNorm
/// statistics included) so that nothing passes by symmetry.
/// </summary>
[TestClass]
public sealed class BackboneRegistryTests
{
    public static IEnumerable<object[]> Families => Backbones.Families.Select(f => new object[] { f.Name });

    static BackboneFamily Family(string name) => Backbones.Family(name);

    /// <summary>The family's test row with deterministic perturbed weights, in eval mode.</summary>
    static Backbone Tiny(string family, int seed = 1, int? numClasses = null)
    {
        var model = Backbones.CreateTest(Family(family), numClasses);
        Perturb(model, seed);
        model.Eval();
        return model;
    }

    /// <summary>Adds noise to every floating-point state entry (running variances are scaled, staying positive).</summary>
    static void Perturb(Backbone model, int seed)
    {
        TorchRuntime.ManualSeed((ulong)seed);
        using var scope = TensorScope.Begin();
        using var noGrad = Autograd.NoGrad();
        foreach (var (key, value) in model.StateDict())
        {
            if (value.DType != DType.Float32) continue;
            if (key.EndsWith("running_var", StringComparison.Ordinal)) value.Mul_(Tensor.Rand(value.Shape).Add(0.5));
            else value.Add_(Tensor.Randn(value.Shape).Mul(0.05));
        }
    }

    /// <summary>Normalised-looking input of the row's size.</summary>
    static Tensor Input(Backbone model, long batch, int seed, int? height = null, int? width = null)
    {
        TorchRuntime.ManualSeed((ulong)seed);
        return Tensor.Randn(new long[] { batch, model.InputChannels, height ?? model.PretrainedConfig.Height, width ?? model.PretrainedConfig.Width });
    }

    static Dictionary<string, Tensor> State(Backbone model) => model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);

    [TestMethod]
    public void EveryFamilyHasATestRow_ThatIsNotAnOfficialVariant()
    {
        foreach (var family in Backbones.Families)
        {
            var row = family.TestVariant;
            Assert.AreEqual(family.Name, row.Family);
            Assert.AreEqual($"{family.Name}_test", row.Name);
            Assert.IsFalse(family.Variants.Any(v => v.Name == row.Name), $"{row.Name} is listed as an official variant");
            Assert.IsFalse(Backbones.Variants.Any(v => v.Name == row.Name), $"{row.Name} is in the registry's variants");
            Assert.ThrowsExactly<ArgumentException>(() => Backbones.Find(row.Name));

            using var model = Backbones.CreateTest(family);
            Assert.AreEqual(row.Name, model.Variant);
            Assert.AreEqual(family.Name, model.Family);
            Assert.AreEqual(row.ParameterCount, model.ParameterCount(), $"{row.Name}: parameter count of the row");
            Assert.IsLessThan(2_000_000L, row.ParameterCount, $"{row.Name} is meant to be tiny");
            model.CheckInputSize(row.Pretrained.Height, row.Pretrained.Width);

            // names taken from the pretrained configuration exist: the first conv takes the input channels, the
            // classifier has one row per class, and its keys are the last entries of the state_dict
            var state = State(model);
            Assert.IsTrue(state.ContainsKey(model.FirstConvWeightKey), $"{row.Name}: first conv '{model.FirstConvWeightKey}'");
            Assert.AreEqual(model.InputChannels, state[model.FirstConvWeightKey].Size(1), $"{row.Name}: first conv input channels");
            CollectionAssert.AreEqual(new[] { model.PretrainedConfig.Classifier + ".weight", model.PretrainedConfig.Classifier + ".bias" }, model.ClassifierKeys.ToArray());
            Assert.AreEqual(model.NumClasses, state[model.ClassifierKeys[0]].Size(0));
            CollectionAssert.AreEqual(model.ClassifierKeys.ToArray(), model.StateDict().TakeLast(2).Select(kv => kv.Key).ToArray(), $"{row.Name}: classifier last");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void FeatureInfo_MatchesForwardStages(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family);
        var info = model.FeatureInfo;
        Assert.HasCount(model.StageDepths.Count, info);
        CollectionAssert.AreEqual(new[] { 4, 8, 16, 32 }, info.Select(f => f.Reduction).ToArray(), $"{family}: reductions");
        var modules = model.NamedModules().Select(m => m.Name).ToHashSet();
        foreach (var f in info) Assert.IsTrue(modules.Contains(f.Module), $"{family}: FeatureInfo names module '{f.Module}', which the model lacks");

        // the row's size, and a non-square size that is not a multiple of 32 where the family takes one
        var sizes = new List<(int H, int W)> { (model.PretrainedConfig.Height, model.PretrainedConfig.Width) };
        try { model.CheckInputSize(100, 76); sizes.Add((100, 76)); } catch (InputSizeException) { }
        using var noGrad = Autograd.NoGrad();
        foreach (var (h, w) in sizes)
        {
            var x = Input(model, 2, 3, h, w);
            var stages = model.ForwardStages(x);
            Assert.HasCount(info.Count, stages);
            for (int s = 0; s < info.Count; s++)
                CollectionAssert.AreEqual(new long[] { 2, info[s].Channels, (h + info[s].Reduction - 1) / info[s].Reduction, (w + info[s].Reduction - 1) / info[s].Reduction },
                    stages[s].Shape, $"{family} {h}x{w}: stage {s} against FeatureInfo");
            var features = model.ForwardFeatures(x);
            TensorAssert.Equal(stages[^1], features, $"{family} {h}x{w}: ForwardFeatures = last stage");
            var pre = model.ForwardHead(features, preLogits: true);
            CollectionAssert.AreEqual(new long[] { 2, model.NumFeatures }, pre.Shape, $"{family}: pre-logits width");
            TensorAssert.Close(model.Call(x), model.ForwardHead(features), 1e-6, 1e-6, $"{family} {h}x{w}: Forward = ForwardHead(ForwardFeatures)");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void EveryParameterFallsInADepthGroup_AndStagesAreConsistent(string family)
    {
        using var model = Backbones.CreateTest(Family(family));
        int n = model.NumDepthGroups, stages = model.StageDepths.Count;
        Assert.AreEqual(model.StageDepths.Sum() + 2, n);
        var depths = model.ParameterDepths();
        Assert.AreEqual(model.Parameters().Count(), depths.Count);
        foreach (var (name, _, group) in depths)
        {
            Assert.IsTrue(group >= 0 && group < n, $"{family}: '{name}' in group {group}, outside [0, {n})");
            int stage = model.StageOf(name);
            Assert.IsTrue(stage >= 0 && stage <= stages + 1, $"{family}: '{name}' in stage {stage}");
            Assert.AreEqual(group == 0, stage == 0, $"{family}: '{name}': stage 0 is exactly group 0");
            Assert.AreEqual(group == n - 1, stage == stages + 1, $"{family}: '{name}': the last stage is exactly the last group");
        }
        // every group is used; stage s holds as many block groups as it has blocks; the first conv is the stem and
        // the classifier the head
        CollectionAssert.AreEqual(Enumerable.Range(0, n).ToArray(), depths.Select(d => d.Group).Distinct().OrderBy(g => g).ToArray(), $"{family}: groups used");
        for (int s = 1; s <= stages; s++)
            Assert.AreEqual(model.StageDepths[s - 1], depths.Where(d => model.StageOf(d.Name) == s).Select(d => d.Group).Distinct().Count(), $"{family}: block groups of stage {s}");
        Assert.AreEqual(0, model.DepthGroupOf(model.FirstConvWeightKey));
        foreach (var key in model.ClassifierKeys) Assert.AreEqual(n - 1, model.DepthGroupOf(key), key);
    }

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void ResetClassifier_ReplacesOnlyTheClassifier(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family);
        var x = Input(model, 2, 5);
        var keys = model.ClassifierKeys.ToArray();
        var before = model.StateDict().Where(kv => !keys.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        using var noGrad = Autograd.NoGrad();
        var pre = model.ForwardHead(model.ForwardFeatures(x), preLogits: true);

        model.ResetClassifier(3);
        Assert.AreEqual(3, model.NumClasses);
        CollectionAssert.AreEqual(keys, model.ClassifierKeys.ToArray(), $"{family}: classifier keys from the pretrained configuration");
        var state = State(model);
        Assert.AreEqual(3, state[keys[0]].Size(0));
        Assert.AreEqual(model.NumFeatures, state[keys[0]].Size(1));
        CollectionAssert.AreEqual(new long[] { 3 }, state[keys[1]].Shape);
        Assert.AreEqual(0.0, state[keys[1]].Abs().Max().ToDouble(), $"{family}: fresh bias is zero");
        CollectionAssert.AreEqual(keys, model.StateDict().TakeLast(2).Select(kv => kv.Key).ToArray(), $"{family}: classifier last in the state_dict");
        foreach (var (key, value) in before) TensorAssert.Equal(value, state[key], $"{family}: {key} unchanged by ResetClassifier");
        foreach (var (name, m) in model.NamedModules()) Assert.IsFalse(m.Training, $"{family}: '{name}' follows the model's eval mode");
        CollectionAssert.AreEqual(new long[] { 2, 3 }, model.Call(x).Shape);
        TensorAssert.Equal(pre, model.ForwardHead(model.ForwardFeatures(x), preLogits: true), $"{family}: pre-logits unchanged");

        model.ResetClassifier(0);
        Assert.AreEqual(0, model.NumClasses);
        Assert.IsFalse(model.StateDict().Any(kv => keys.Contains(kv.Key)), $"{family}: no classifier entries at 0 classes");
        var pooled = model.Call(x);
        CollectionAssert.AreEqual(new long[] { 2, model.NumFeatures }, pooled.Shape);
        TensorAssert.Equal(model.ForwardHead(model.ForwardFeatures(x), preLogits: true), pooled, $"{family}: without a classifier the model returns the pre-logits");
        // a top-level classifier (head) is all the pre-logits skip; TransXNet's classifier.2 sits after its own norm,
        // which goes with it
        if (!model.PretrainedConfig.Classifier.Contains('.'))
            TensorAssert.Equal(pre, pooled, $"{family}: the pre-logits do not depend on the classifier");

        model.ResetClassifier(4);
        CollectionAssert.AreEqual(new long[] { 2, 4 }, model.Call(x).Shape);
        CollectionAssert.AreEqual(keys, model.ClassifierKeys.ToArray());
    }

    [TestMethod]
    [DynamicData(nameof(Families))]
    public void StateDict_SavedAndLoaded_GivesIdenticalOutputs(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 2);
        // one training step's worth of BatchNorm statistics, so the buffers differ from a fresh model's too
        model.Train();
        using (Autograd.NoGrad()) model.Call(Input(model, 2, 6));
        model.Eval();
        var path = Path.Combine(Path.GetTempPath(), $"mlnetext-{family}-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Save(path, model.StateDict());
            using var fresh = Backbones.CreateTest(Family(family));
            fresh.Eval();
            var x = Input(model, 2, 7);
            using var noGrad = Autograd.NoGrad();
            Assert.IsGreaterThan(1e-3, (fresh.Call(x) - model.Call(x)).Abs().Max().ToDouble(), $"{family}: a fresh model differs before loading");
            using var weights = Backbones.LoadWeightsFile(path);
            var load = fresh.LoadPretrained(weights);
            Assert.IsEmpty(load.SkippedHeadKeys);
            CollectionAssert.AreEqual(model.StateDict().Select(kv => kv.Key).ToArray(), fresh.StateDict().Select(kv => kv.Key).ToArray());
            foreach (var ((key, a), (_, b)) in model.StateDict().Zip(fresh.StateDict())) TensorAssert.Equal(a, b, $"{family}: {key}");
            TensorAssert.Equal(model.Call(x), fresh.Call(x), $"{family}: logits after the round trip");
            var stagesA = model.ForwardStages(x);
            var stagesB = fresh.ForwardStages(x);
            for (int s = 0; s < stagesA.Count; s++) TensorAssert.Equal(stagesA[s], stagesB[s], $"{family}: stage {s} after the round trip");
        }
        finally { File.Delete(path); }
    }

    /// <summary>The exported graph against libtorch at two batch sizes, with the normalised input (logits, Score and
    /// features) and with the ML.NET pixel layout (the graph crops and normalises).</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void OnnxExport_MatchesLibtorchAtTwoBatchSizes_InBothInputLayouts(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 3);
        var cfg = model.PretrainedConfig;
        int h = cfg.Height, w = cfg.Width;
        var dir = Directory.CreateTempSubdirectory("mlnetext-registry-");
        try
        {
            var nonePath = Path.Combine(dir.FullName, "none.onnx");
            var mlnetPath = Path.Combine(dir.FullName, "mlnet.onnx");
            OnnxExporter.Export(model, nonePath, new OnnxExportOptions { Preprocess = OnnxPreprocess.None, IncludeFeatures = true });
            OnnxExporter.Export(model, mlnetPath, new OnnxExportOptions());
            Assert.IsFalse(model.Training, "the exporter restores the mode");
            using var none = OnnxSession.FromFile(nonePath);
            using var mlnet = OnnxSession.FromFile(mlnetPath);
            var crop = EvalCrop.For(h, w, cfg.CropPct);
            int rh = crop.ResizeHeight, rw = crop.ResizeWidth;
            CollectionAssert.AreEqual(new long[] { -1, 3, h, w }, none.Inputs[0].Dimensions.ToArray(), $"{family}: dynamic batch");
            CollectionAssert.AreEqual(new long[] { -1, 3, rh, rw }, mlnet.Inputs[0].Dimensions.ToArray(), $"{family}: ML.NET layout at the resize size");
            foreach (long n in new long[] { 1, 3 })
            {
                using var inner = TensorScope.Begin();
                var raw = new float[n * 3 * rh * rw];
                var rng = new Random((int)n);
                for (int i = 0; i < raw.Length; i++) raw[i] = rng.Next(256);
                var x = CropAndNormalise(raw, n, crop, cfg);
                using var noGrad = Autograd.NoGrad();
                var logits = model.Call(x);
                var score = logits.Softmax(-1);
                var features = model.ForwardHead(model.ForwardFeatures(x), preLogits: true);
                long k = model.NumClasses;
                using var r1 = none.Run("input", OnnxTensor.FromArray(x.ToArray<float>(), n, 3, h, w));
                using var r2 = mlnet.Run("image", OnnxTensor.FromArray(raw, n, 3, rh, rw));
                string at = $"{family} batch {n}";
                TensorAssert.Close(logits, Tensor.FromArray<float>(r1["logits"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{at}: logits (normalised input)");
                TensorAssert.Close(score, Tensor.FromArray<float>(r1["Score"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{at}: Score (normalised input)");
                TensorAssert.Close(features, Tensor.FromArray<float>(r1["features"].ToArray<float>(), features.Shape), Tolerances.OnnxExportParity, 0, $"{at}: features");
                TensorAssert.Close(logits, Tensor.FromArray<float>(r2["logits"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{at}: logits (ML.NET layout)");
                TensorAssert.Close(score, Tensor.FromArray<float>(r2["Score"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{at}: Score (ML.NET layout)");
            }
        }
        finally { dir.Delete(true); }
    }

    /// <summary>Linear layers of a float32 export: MatMul by the Transpose of a weight.</summary>
    static int LinearLayers(MLNetExt.Export.Onnx.GraphProto f) =>
        f.Node.Count(n => n.OpType == "MatMul" && f.Node.Any(t => t.OpType == "Transpose" && t.Output[0] == n.Input[1] && f.Initializer.Any(i => i.Name == t.Input[0])));

    static void AssertSevenBitWeights(MLNetExt.Export.Onnx.GraphProto q)
    {
        foreach (var w in q.Initializer.Where(i => i.DataType == (int)MLNetExt.Export.Onnx.TensorProto.Types.DataType.Int8))
            Assert.IsTrue(w.RawData.Span.ToArray().All(v => (sbyte)v is >= -63 and <= 63), $"{w.Name}: 7-bit weights");
    }

    static double Cosine(double[] u, double[] v) => u.Zip(v, (x, y) => x * y).Sum() / Math.Sqrt(u.Sum(x => x * x) * v.Sum(y => y * y));

    /// <summary>The INT8 export quantizes every linear layer (MatMulInteger on 7-bit per-channel weights), keeps float32 at
    /// the graph's boundary and dynamic batch, and stays close to the float32 export. (TransXNet's tiny row, like its
    /// variants, has no linear layer: its MLPs are 1x1 convolutions, which stay float32, so its INT8 export is exact.)</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void Int8Export_QuantizesEveryLinearLayer_AndStaysCloseToFloat32(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 5);
        var dir = Directory.CreateTempSubdirectory("mlnetext-int8-");
        try
        {
            var fp32 = Path.Combine(dir.FullName, "fp32.onnx");
            var int8 = Path.Combine(dir.FullName, "int8.onnx");
            var a = OnnxExporter.Export(model, fp32, new OnnxExportOptions { Preprocess = OnnxPreprocess.None });
            var b = OnnxExporter.Export(model, int8, new OnnxExportOptions { Preprocess = OnnxPreprocess.None, Precision = OnnxPrecision.Int8, Int8MinSide = 1 });
            var f = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(fp32)).Graph;
            var q = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(int8)).Graph;
            int linears = LinearLayers(f);
            Assert.AreEqual(linears, q.Node.Count(n => n.OpType == "MatMulInteger"), $"{family}: every linear layer quantized");
            Assert.AreEqual(linears, q.Node.Count(n => n.OpType == "DynamicQuantizeLinear"));
            AssertSevenBitWeights(q);
            if (linears > 0) Assert.IsLessThan(a.InitializerBytes, b.InitializerBytes, "smaller");
            using var s32 = OnnxSession.FromFile(fp32);
            using var s8 = OnnxSession.FromFile(int8);
            Assert.AreEqual(("fp32", "int8"), (s32.Metadata.Custom["mlnetext.precision"], s8.Metadata.Custom["mlnetext.precision"]));
            Assert.AreEqual(-1L, s8.Inputs[0].Dimensions[0], "dynamic batch");
            foreach (long n in new long[] { 1, 3 })
            {
                using var inner = TensorScope.Begin();
                var x = Input(model, n, seed: 11).ToArray<float>();
                var cfg = model.PretrainedConfig;
                using var r32 = s32.Run("input", OnnxTensor.FromArray(x, n, 3, cfg.Height, cfg.Width));
                using var r8 = s8.Run("input", OnnxTensor.FromArray(x, n, 3, cfg.Height, cfg.Width));
                var (l32, l8) = (r32["logits"].ToArray<float>(), r8["logits"].ToArray<float>());
                double cosine = Cosine(l32.Select(v => (double)v).ToArray(), l8.Select(v => (double)v).ToArray());
                Assert.IsGreaterThanOrEqualTo(Tolerances.Int8LogitsCosine, cosine, $"{family} batch {n}: INT8 logits vs float32 (cosine {cosine:F4})");
                Assert.AreEqual(linears > 0, l32.Zip(l8, (u, v) => Math.Abs(u - v)).Max() > 0, "quantization changes the arithmetic");
            }
        }
        finally { dir.Delete(true); }
    }

    /// <summary>Where ONNX Runtime would run a pass of its own the exported graph has none: no BatchNormalization is left
    /// that only unpadded convolutions read (folded into them, e.g. TransXNet's conv → GELU → BN → 1×1 conv), no Split
    /// whose chunks go through convolutions into one Concat (merged into one depthwise convolution: TransXNet's MS-FFN;
    /// ONNX Runtime reorders its blocked layout around a Split), and in SMT no LayerNormalization reads a sum nothing else reads (ONNX Runtime fuses such a pair into a
    /// SkipLayerNormalization that took 3-4x their time apart on SMT's narrow stages). The export parity tests check
    /// the values.</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void Export_LeavesNoNormForOnnxRuntimeToRunAsAnExtraPass(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family);
        var dir = Directory.CreateTempSubdirectory("mlnetext-norms-");
        try
        {
            var path = Path.Combine(dir.FullName, "fp32.onnx");
            OnnxExporter.Export(model, path, new OnnxExportOptions { Preprocess = OnnxPreprocess.None });
            var g = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph;
            var readers = MLNetExt.Export.Graph.GraphEdits.Readers(g);
            var producers = MLNetExt.Export.Graph.GraphEdits.Producers(g);
            bool Unpadded(MLNetExt.Export.Onnx.NodeProto conv) => conv.Attribute.FirstOrDefault(a => a.Name == "pads") is not { } pads || pads.Ints.All(p => p == 0);
            var foldable = g.Node.Where(n => n.OpType == "BatchNormalization" && readers[n.Output[0]] is { Count: > 0 } rs
                && rs.All(r => r.OpType == "Conv" && Unpadded(r))
                && !(producers.TryGetValue(n.Input[0], out var p) && p.OpType == "Conv")).Select(n => n.Name).ToList();
            Assert.IsEmpty(foldable, $"{family}: norms only unpadded convolutions read: {string.Join(", ", foldable)}");
            var chunked = g.Node.Where(n => n.OpType == "Concat" && n.Input.All(i => producers.TryGetValue(i, out var c) && c.OpType == "Conv"
                && producers.TryGetValue(c.Input[0], out var s) && s.OpType == "Split")).Select(n => n.Name).ToList();
            Assert.IsEmpty(chunked, $"{family}: concatenations of convolved Split chunks: {string.Join(", ", chunked)}");
            if (family != "smt") return;
            var fusable = g.Node.Where(n => n.OpType == "LayerNormalization" && producers.TryGetValue(n.Input[0], out var p)
                && p.OpType == "Add" && readers[n.Input[0]].Count == 1).Select(n => n.Name).ToList();
            Assert.IsEmpty(fusable, $"LayerNormalization of a sum nothing else reads: {string.Join(", ", fusable)}");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>The graph rewrites the static INT8 export starts with change no result: BatchNormalization folded into the
    /// convolution before it or else written as Mul and Add, and the exact GELU's five operators as one Gelu (ONNX
    /// Runtime's), in ONNX Runtime against the float32 export.</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void Int8GraphRewrites_FoldBatchNormAndFuseGelu_ChangeNoResult(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 7);
        var dir = Directory.CreateTempSubdirectory("mlnetext-int8-rewrites-");
        try
        {
            var path = Path.Combine(dir.FullName, "fp32.onnx");
            OnnxExporter.Export(model, path, new OnnxExportOptions { Preprocess = OnnxPreprocess.None });
            var original = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            var rewritten = original.Clone();
            int batchNorms = original.Graph.Node.Count(n => n.OpType == "BatchNormalization");
            int folded = MLNetExt.Export.Graph.BatchNormFolding.IntoPrecedingConvolutions(rewritten.Graph);
            int affine = MLNetExt.Export.Graph.BatchNormFolding.AsMulAdd(rewritten.Graph);
            int gelus = MLNetExt.Export.Graph.StaticInt8.FuseGelu(rewritten);
            Assert.AreEqual(batchNorms, folded + affine, $"{family}: every BatchNormalization folded or rewritten");
            Assert.AreEqual(0, rewritten.Graph.Node.Count(n => n.OpType == "BatchNormalization"));
            Assert.AreEqual(original.Graph.Node.Count(n => n.OpType == "Erf"), gelus, $"{family}: every exact GELU fused");
            Assert.AreEqual(0, rewritten.Graph.Node.Count(n => n.OpType == "Erf"));
            Assert.IsGreaterThan(0, folded + gelus, $"{family}: something to rewrite");
            // ONNX Runtime without its own fusions: the rewritten arithmetic itself is compared
            var plain = new OnnxSessionOptions { GraphOptimization = OnnxGraphOptimization.Basic };
            using var before = OnnxSession.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(original), plain);
            using var after = OnnxSession.FromBytes(Google.Protobuf.MessageExtensions.ToByteArray(rewritten), plain);
            var cfg = model.PretrainedConfig;
            var x = Input(model, 2, seed: 3).ToArray<float>();
            using var r0 = before.Run("input", OnnxTensor.FromArray(x, 2, 3, cfg.Height, cfg.Width));
            using var r1 = after.Run("input", OnnxTensor.FromArray(x, 2, 3, cfg.Height, cfg.Width));
            var (l0, l1) = (r0["logits"].ToArray<float>(), r1["logits"].ToArray<float>());
            double diff = l0.Zip(l1, (a, b) => Math.Abs(a - b)).Max();
            Assert.IsLessThanOrEqualTo(Tolerances.OnnxExportParity, diff, $"{family}: logits after the rewrites (max abs {diff:G3})");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>The static INT8 export (calibrated on images): ONNX Runtime runs its convolutions as integer kernels
    /// (QLinearConv in the graph it optimises), the linear layers are dynamic INT8, the weights are 7-bit int8, the
    /// batch stays dynamic, the metadata says how it was quantized, and the logits stay close to the
    /// float32 export's on the calibration images and on others.</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void StaticInt8Export_RunsIntegerKernels_AndStaysCloseToFloat32(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 5);
        var dir = Directory.CreateTempSubdirectory("mlnetext-int8-static-");
        try
        {
            var cfg = model.PretrainedConfig;
            var images = ImageDataset.FindImages(SyntheticShapes.WriteFolder(Path.Combine(dir.FullName, "calibration"), 4, cfg.Height, 1, ["circle", "star"]));
            var unseen = ImageDataset.FindImages(SyntheticShapes.WriteFolder(Path.Combine(dir.FullName, "unseen"), 2, cfg.Height + 8, 2, ["square", "cross"]));
            var fp32 = Path.Combine(dir.FullName, "fp32.onnx");
            var int8 = Path.Combine(dir.FullName, "int8.onnx");
            var a = OnnxExporter.Export(model, fp32);
            var b = OnnxExporter.Export(model, int8, new OnnxExportOptions { Precision = OnnxPrecision.Int8, CalibrationImages = images, Int8MinSide = 1 });
            Assert.IsLessThan(a.InitializerBytes, b.InitializerBytes, "smaller");
            var f = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(fp32)).Graph;
            var q = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(int8)).Graph;
            int linears = LinearLayers(f);
            Assert.AreEqual(linears, q.Node.Count(n => n.OpType == "MatMulInteger"), $"{family}: the linear layers in dynamic INT8");
            AssertSevenBitWeights(q);
            var optimized = Path.Combine(dir.FullName, "optimized.onnx");
            using (OnnxSession.FromFile(int8, new OnnxSessionOptions { OptimizedModelPath = optimized })) { }
            var kernels = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph.Node.Select(n => n.OpType).ToList();
            Assert.IsTrue(kernels.Contains("QLinearConv"), $"{family}: integer convolutions ({string.Join(", ", kernels.Distinct())})");
            using var s32 = new OnnxImageScorer(fp32, batchSize: 3);
            using var s8 = new OnnxImageScorer(int8, batchSize: 3);
            using (var session = OnnxSession.FromFile(int8))
            {
                StringAssert.StartsWith(session.Metadata.Custom["mlnetext.int8"], $"static, calibrated on {images.Count} images");
                Assert.AreEqual(-1L, session.Inputs[0].Dimensions[0], "dynamic batch");
            }
            var files = images.Concat(unseen).ToList();
            var (p32, p8) = (s32.ScoreFiles(files), s8.ScoreFiles(files));
            for (int i = 0; i < files.Count; i++)
            {
                // log-scores less their mean = logits less theirs
                double[] Centred(float[] p) { var l = p.Select(v => Math.Log(v)).ToArray(); double m = l.Average(); return l.Select(v => v - m).ToArray(); }
                var (u, v) = (Centred(p32[i].Scores!), Centred(p8[i].Scores!));
                double cosine = Cosine(u, v);
                Assert.IsGreaterThanOrEqualTo(Tolerances.Int8LogitsCosine, cosine, $"{family} {Path.GetFileName(files[i])}: INT8 logits vs float32 (cosine {cosine:F4})");
            }
            var e = Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.Export(model, int8, new OnnxExportOptions { Precision = OnnxPrecision.Float16, CalibrationImages = images }));
            StringAssert.Contains(e.Message, "static INT8");
            var junk = Path.Combine(dir.FullName, "junk.jpg");
            File.WriteAllText(junk, "not an image");
            e = Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.Export(model, Path.Combine(dir.FullName, "never.onnx"), new OnnxExportOptions { Precision = OnnxPrecision.Int8, CalibrationImages = [junk] }));
            StringAssert.Contains(e.Message, "None of the 1 calibration images could be read (first: " + junk);
            Assert.IsFalse(File.Exists(Path.Combine(dir.FullName, "never.onnx")));
        }
        finally { dir.Delete(true); }
    }

    /// <summary>The FP16 export stores its weights in half precision, computes in float16 except the float32 islands
    /// (reductions, and the squares that feed them), keeps float32 at the graph's boundary and dynamic batch, runs in ONNX
    /// Runtime, and stays close to the float32 export, in the ML.NET layout with Score and features and at opset 13
    /// (LayerNorm decomposed into reductions). ONNX Runtime's CPU provider runs the graph in float32 chains around its few
    /// float16 kernels, so the arithmetic is checked on <see cref="MLNetExt.Tests.Export.Float16Emulation"/>, which rounds
    /// every float16 value through float16 as a GPU stores it: close to float32 on normal inputs, and on inputs 300 times
    /// larger, whose squares overflow float16 (without the islands TransNeXt, SMT and MixFormer were off by 36-160 % of
    /// the largest logit there; with them, 0.3 %).</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void Float16Export_HalvesTheWeights_AndStaysCloseToFloat32(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 6);
        var labels = Enumerable.Range(0, model.NumClasses).Select(i => $"c{i}").ToArray();
        var dir = Directory.CreateTempSubdirectory("mlnetext-fp16-");
        try
        {
            foreach (var (opset, preprocess) in new[] { (17, OnnxPreprocess.MLNet), (13, OnnxPreprocess.None) })
            {
                string at = $"{family} opset {opset}";
                var fp32 = Path.Combine(dir.FullName, $"fp32-{opset}.onnx");
                var fp16 = Path.Combine(dir.FullName, $"fp16-{opset}.onnx");
                var options = new OnnxExportOptions { Opset = opset, Preprocess = preprocess, Labels = labels, IncludeFeatures = true };
                var a = OnnxExporter.Export(model, fp32, options);
                var b = OnnxExporter.Export(model, fp16, options with { Precision = OnnxPrecision.Float16 });
                Assert.IsLessThan(0.55 * a.InitializerBytes, (double)b.InitializerBytes, $"{at}: half the weight bytes");
                var g = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(fp16)).Graph;
                var types = MLNetExt.Export.Graph.Float16.InferTypes(g);
                const int F32 = (int)MLNetExt.Export.Onnx.TensorProto.Types.DataType.Float, F16 = (int)MLNetExt.Export.Onnx.TensorProto.Types.DataType.Float16;
                foreach (var n in g.Node.Where(n => n.OpType is "Conv" or "MatMul" or "Gemm" or "LayerNormalization" or "BatchNormalization" or "Softmax" or "Erf"))
                    Assert.AreEqual(F16, types[n.Input[0]], $"{at}: {n.OpType} {n.Name} computes in float16");
                var islands = g.Node.Where(n => MLNetExt.Export.Graph.Float16.Float32Ops.Contains(n.OpType) && types[n.Input[0]] is F32 or F16).ToList();
                foreach (var n in islands) Assert.AreEqual(F32, types[n.Input[0]], $"{at}: {n.OpType} {n.Name} computes in float32");
                if (opset == 13) Assert.IsTrue(islands.Any(n => n.OpType == "ReduceMean"), $"{at}: decomposed norms have float32 reductions");
                Assert.IsTrue(g.Input.Concat(g.Output).All(v => v.Type.TensorType.ElemType == F32), $"{at}: float32 at the boundary");

                using var s32 = OnnxSession.FromFile(fp32);
                using var s16 = OnnxSession.FromFile(fp16);
                using var emulated = OnnxSession.FromBytes(MLNetExt.Tests.Export.Float16Emulation.Emulate(File.ReadAllBytes(fp16)),
                    new OnnxSessionOptions { GraphOptimization = OnnxGraphOptimization.Disabled });
                Assert.AreEqual("fp16", s16.Metadata.Custom["mlnetext.precision"]);
                Assert.AreEqual(-1L, s16.Inputs[0].Dimensions[0], "dynamic batch");
                foreach (var (n, scale) in new[] { (1L, 1.0), (3L, 1.0), (2L, opset == 13 ? 300.0 : 1.0) })
                {
                    using var inner = TensorScope.Begin();
                    var shape = s32.Inputs[0].Dimensions.Select((d, k) => k == 0 ? n : d).ToArray();
                    var x = (preprocess == OnnxPreprocess.MLNet ? Input(model, n, seed: 12, (int)shape[2], (int)shape[3]).Mul(60).Add(128) : Input(model, n, seed: 12).Mul(scale)).ToArray<float>();
                    using var r32 = s32.Run(s32.Inputs[0].Name, OnnxTensor.FromArray(x, shape));
                    using var r16 = s16.Run(s16.Inputs[0].Name, OnnxTensor.FromArray(x, shape));
                    using var re = emulated.Run(s16.Inputs[0].Name, OnnxTensor.FromArray(x, shape));
                    foreach (var output in new[] { "logits", "Score", "features" })
                    {
                        var u = r32[output].ToArray<float>();
                        double largest = u.Max(Math.Abs);
                        foreach (var (how, v) in new[] { ("ONNX Runtime", r16[output].ToArray<float>()), ("float16 emulated", re[output].ToArray<float>()) })
                        {
                            double diff = u.Zip(v, (p, q) => (double)Math.Abs(p - q)).Max();
                            string what = $"{at} batch {n} input x{scale} ({how}): {output}";
                            Assert.IsTrue(v.All(float.IsFinite), $"{what} finite");
                            Assert.IsLessThanOrEqualTo(Tolerances.Float16Relative * largest, diff, $"{what} max |fp16 - fp32| {diff:G3} of max |fp32| {largest:G3}");
                        }
                    }
                }
            }
            // float16 weights are written inline: past the external-data threshold the export is refused, nothing written
            var tooBig = Path.Combine(dir.FullName, "too-big.onnx");
            var e = Assert.ThrowsExactly<OnnxExportException>(() => OnnxExporter.Export(model, tooBig,
                new OnnxExportOptions { Precision = OnnxPrecision.Float16, ExternalDataThreshold = 1000 }));
            StringAssert.Contains(e.Message, "float16 weights");
            Assert.IsFalse(File.Exists(tooBig));
        }
        finally { dir.Delete(true); }
    }

    /// <summary>An ONNX export saved as an ML.NET model.zip, loaded with <c>mlContext.Model.Load</c>, scores a picture
    /// at the graph's input size as libtorch does on the same pixels, with the class names as slot names.</summary>
    [TestMethod]
    [DynamicData(nameof(Families))]
    public void MLNetModelZip_SavedAndLoaded_ScoresAsLibtorch(string family)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny(family, seed: 4);
        var cfg = model.PretrainedConfig;
        var labels = Enumerable.Range(0, model.NumClasses).Select(i => $"class {i}").ToArray();
        var dir = Directory.CreateTempSubdirectory("mlnetext-registry-mlnet-");
        try
        {
            var onnx = Path.Combine(dir.FullName, "model.onnx");
            var zip = Path.Combine(dir.FullName, "model.zip");
            OnnxExporter.Export(model, onnx, new OnnxExportOptions { Labels = labels });
            MLNetModelFile.Save(onnx, zip);

            var ml = new MLContext(seed: 1);
            var loaded = ml.Model.Load(zip, out var inputSchema);
            Assert.AreEqual(MLNetModelFile.ImagePathColumn, inputSchema.Single().Name);
            var crop = EvalCrop.For(cfg.Height, cfg.Width, cfg.CropPct);
            // a picture already at the resize size: ML.NET's resize leaves it as it is, so only the graph's crop acts
            var picture = ExportedClassifier.WritePicture(dir.FullName, "p.png", crop.ResizeWidth, crop.ResizeHeight, 7);
            var scored = loaded.Transform(ml.Data.LoadFromEnumerable(new[] { new ImageRow { ImagePath = picture } }));
            var slots = new VBuffer<ReadOnlyMemory<char>>();
            scored.Schema["Score"].GetSlotNames(ref slots);
            CollectionAssert.AreEqual(labels, slots.DenseValues().Select(s => s.ToString()).ToArray());
            var mlnetScore = scored.GetColumn<float[]>("Score").Single();

            var image = ImageDecoder.DecodeFile(picture);
            var raw = new float[3 * image.Height * image.Width];
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < image.Height * image.Width; i++)
                    raw[c * image.Height * image.Width + i] = image.Pixels[i * 3 + c];
            using var noGrad = Autograd.NoGrad();
            var expected = model.Call(CropAndNormalise(raw, 1, crop, cfg)).Softmax(-1);
            TensorAssert.Close(expected, Tensor.FromArray<float>(mlnetScore, new long[] { 1, labels.Length }), Tolerances.OnnxExportParity, 0, $"{family}: ML.NET Score vs libtorch");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>The evaluation centre crop of 0-255 planar RGB pixels at the resize size, normalised with the model's mean/std.</summary>
    static Tensor CropAndNormalise(float[] raw, long n, EvalCrop crop, PretrainedConfig cfg)
    {
        int h = crop.Height, w = crop.Width, rh = crop.ResizeHeight, rw = crop.ResizeWidth;
        var x = new float[n * 3 * h * w];
        for (int i = 0; i < x.Length; i++)
        {
            long b = i / (3 * h * w);
            int c = i / (h * w) % 3, y = i / w % h, xx = i % w;
            float v = raw[((b * 3 + c) * rh + crop.Top + y) * rw + crop.Left + xx];
            x[i] = (float)((v / 255.0 - cfg.Mean[c]) / cfg.Std[c]);
        }
        return Tensor.FromArray<float>(x, new[] { n, 3L, h, w });
    }
}

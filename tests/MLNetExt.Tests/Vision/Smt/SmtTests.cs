using System.Globalization;
using System.Text.Json.Nodes;
using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.Smt;

namespace MLNetExt.Tests.Vision.Smt;

/// <summary>Shared helpers: the deterministic fixture input and the parity fixtures of make_smt_fixtures.py.</summary>
internal static class SmtFixtures
{
    /// <summary>Input element i (row-major NCHW) = (((i·7919) mod 2003) − 1001) / 1001 in float32, as the generator.</summary>
    public static Tensor FormulaInput(long b, long h, long w)
    {
        long n = b * 3 * h * w;
        var data = new float[n];
        for (long i = 0; i < n; i++) data[i] = (float)((i * 7919) % 2003 - 1001) / 1001f;
        return Tensor.From(data, b, 3, h, w);
    }

    public static Tensor LossWeights(long n)
    {
        var data = new float[n];
        for (long i = 0; i < n; i++) data[i] = (float)((i * 31) % 17 - 8) / 8f;
        return Tensor.From(data, n);
    }

    /// <summary>Largest absolute difference (printed by the parity tests for the report).</summary>
    public static double MaxAbs(Tensor expected, Tensor actual)
    {
        using var d = expected.Sub(actual);
        using var a = d.Abs();
        using var m = a.Max();
        using var m64 = m.To(DType.Float64);
        return m64.ToArray<double>()[0];
    }

    public static StateDict Load(string tag) => SafeTensors.Load(Fixtures.Path($"smt/parity_{tag}.safetensors"));

    public static JsonObject Kwargs(StateDict fixture) => (JsonObject)JsonNode.Parse(fixture.Metadata["kwargs"])!;

    /// <summary>The official model's weights stored under 'model.' (as official checkpoints keep them under 'model').</summary>
    public static List<KeyValuePair<string, Tensor>> Weights(StateDict fixture) =>
        fixture.Where(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal)).ToList();

    /// <summary>Builds the fixture's configuration from its official kwargs and loads its perturbed weights.</summary>
    public static SmtModel Build(StateDict fixture)
    {
        var model = (SmtModel)Backbones.CreateCustom("smt", Kwargs(fixture));
        var result = model.LoadPretrained(Weights(fixture));
        Assert.AreEqual(0, result.SkippedHeadKeys.Count, "no head key may be skipped");
        Assert.AreEqual(model.StateDict().Count, result.LoadedKeys.Count);
        return model;
    }
}

[TestClass]
public sealed class SmtVariantTests
{
    /// <summary>Every official variant: state_dict keys, shapes, dtypes and order equal to the official model's
    /// (dumped by the generator), the exact parameter count, and one forward at 224² with batch 1.</summary>
    [TestMethod, TestCategory("Slow")]
    [DataRow("smt_t", 11_506_536L)]
    [DataRow("smt_s", 22_550_952L)]
    [DataRow("smt_b", 32_037_352L)]
    [DataRow("smt_l", 80_620_264L)]
    public void VariantMatchesOfficialKeysCountAndRuns(string variant, long expectedParams)
    {
        using var scope = TensorScope.Begin();
        var lines = File.ReadAllLines(Fixtures.Path($"smt/keys_{variant}.txt"));
        using var model = Backbones.Create(variant);
        BackboneAssert.StateDictMatches(model, $"smt/keys_{variant}.txt");
        Assert.AreEqual($"total_params\t{expectedParams}", lines[^1]);
        Assert.AreEqual(expectedParams, model.ParameterCount());
        Assert.AreEqual(expectedParams, Backbones.Find(variant).ParameterCount);
        Assert.AreEqual(variant, model.Variant);
        Assert.AreEqual("smt", model.Family);

        model.Eval();
        using var _ = Autograd.NoGrad();
        var cfg = model.PretrainedConfig;
        using var x = SmtFixtures.FormulaInput(1, cfg.Height, cfg.Width);
        using var logits = model.Call(x);
        CollectionAssert.AreEqual(new long[] { 1, 1000 }, logits.Shape);
        using var finite = logits.IsFinite().All();
        Assert.IsTrue(finite.ToArray<bool>()[0], "logits must be finite");
    }

    [TestMethod]
    public void RegistryListsTheOfficialVariantsWithTheirConfig()
    {
        var family = Backbones.Family("smt");
        CollectionAssert.AreEqual(new[] { "smt_t", "smt_s", "smt_b", "smt_l" }, family.Variants.Select(v => v.Name).ToArray());
        foreach (var v in family.Variants)
        {
            Assert.AreEqual("smt", v.Family);
            Assert.AreEqual(224, v.Pretrained.Height);
            Assert.AreEqual(0.875, v.Pretrained.CropPct);
            Assert.AreEqual("bicubic", v.Pretrained.Interpolation);
            CollectionAssert.AreEqual(PretrainedConfig.ImageNetMean, v.Pretrained.Mean);
            Assert.AreEqual("head", v.Pretrained.Classifier);
            Assert.AreEqual("patch_embed1.conv.0", v.Pretrained.FirstConv);
        }
        Assert.IsTrue(Backbones.Find("smt_l").KwargsObject()["use_layerscale"]!.GetValue<bool>(), "SMT-L checkpoints carry layer scale");
        Assert.IsFalse(Backbones.Find("smt_b").KwargsObject().ContainsKey("use_layerscale"));
        Assert.AreEqual(7, Backbones.Find("smt_b").KwargsObject()["head_conv"]!.GetValue<int>());
    }
}

[TestClass]
public sealed class SmtParityTests
{
    /// <summary>Logits of the official model (every parameter and buffer perturbed) at 224² and at the odd,
    /// non-square 161×225 (ceil/floor at every stride), batch 2, within 1e-5.</summary>
    [TestMethod]
    [DataRow("a", "224", 224, 224)]
    [DataRow("a", "161x225", 161, 225)]
    [DataRow("b", "224", 224, 224)]
    [DataRow("b", "161x225", 161, 225)]
    public void EvalLogitsMatchOfficial(string tag, string sizeTag, int h, int w)
    {
        using var scope = TensorScope.Begin();
        using var fixture = SmtFixtures.Load(tag);
        using var model = SmtFixtures.Build(fixture);
        model.Eval();
        using var _ = Autograd.NoGrad();
        using var x = SmtFixtures.FormulaInput(2, h, w);
        using var logits = model.Call(x);
        Console.WriteLine($"smt parity config {tag} at {sizeTag}: max abs error {SmtFixtures.MaxAbs(fixture[$"logits.{sizeTag}"], logits):E2}");
        TensorAssert.Close(fixture[$"logits.{sizeTag}"], logits, Tolerances.BackboneParity, 0, $"config {tag} logits at {sizeTag}");
    }

    /// <summary>eps of every LayerNorm (1e-5 in the patch embeddings, 1e-6 in blocks and stage norms) and BatchNorm
    /// equal to the official model's. Logits hardly move between 1e-5 and 1e-6 (checked: swapping the block norms'
    /// eps leaves the logit error at 3e-8), so they are compared directly.</summary>
    [TestMethod]
    [DataRow("a")]
    [DataRow("b")]
    public void NormalisationEpsMatchOfficial(string tag)
    {
        using var scope = TensorScope.Begin();
        using var fixture = SmtFixtures.Load(tag);
        var expected = (JsonObject)JsonNode.Parse(fixture.Metadata["norm_eps"])!;
        using var model = (SmtModel)Backbones.CreateCustom("smt", SmtFixtures.Kwargs(fixture));
        var actual = new Dictionary<string, double>();
        foreach (var (name, m) in model.NamedModules())
        {
            if (m is LayerNorm ln) actual[name] = ln.Eps;
            else if (m is BatchNorm2d bn) actual[name] = bn.Eps;
        }
        CollectionAssert.AreEquivalent(expected.Select(kv => kv.Key).ToArray(), actual.Keys.ToArray(), "normalisation layers");
        foreach (var (name, eps) in expected)
            Assert.AreEqual(eps!.GetValue<double>(), actual[name], 0, $"eps of {name}");
    }

    /// <summary>ForwardStages against the official stage outputs (after each stage norm, NCHW), and ForwardFeatures /
    /// ForwardHead consistent with them.</summary>
    [TestMethod]
    public void StagesMatchOfficialFeatureMaps()
    {
        using var scope = TensorScope.Begin();
        using var fixture = SmtFixtures.Load("a");
        using var model = SmtFixtures.Build(fixture);
        model.Eval();
        using var _ = Autograd.NoGrad();
        using var x = SmtFixtures.FormulaInput(2, 161, 225);
        var stages = model.ForwardStages(x);
        Assert.AreEqual(4, stages.Count);
        long[][] grids = { new long[] { 40, 56 }, new long[] { 20, 28 }, new long[] { 10, 14 }, new long[] { 5, 7 } };
        for (int i = 0; i < 4; i++)
        {
            CollectionAssert.AreEqual(new long[] { 2, model.FeatureInfo[i].Channels, grids[i][0], grids[i][1] }, stages[i].Shape);
            Console.WriteLine($"smt stage {i + 1} at 161x225: max abs error {SmtFixtures.MaxAbs(fixture[$"stage{i + 1}.161x225"], stages[i]):E2}");
            TensorAssert.Close(fixture[$"stage{i + 1}.161x225"], stages[i], Tolerances.BackboneParity, 0, $"stage {i + 1}");
        }
        using var features = model.ForwardFeatures(x);
        TensorAssert.Close(stages[3], features, Tolerances.BackboneParity, 0, "ForwardFeatures = stage 4");
        using var logits = model.ForwardHead(features);
        TensorAssert.Close(fixture["logits.161x225"], logits, Tolerances.BackboneParity, 0, "ForwardHead(ForwardFeatures)");
        using var pre = model.ForwardHead(features, preLogits: true);
        CollectionAssert.AreEqual(new long[] { 2, 32 }, pre.Shape);
        using var pooled = stages[3].Mean(new long[] { 2, 3 });
        TensorAssert.Close(pooled, pre, 1e-6, 0, "pre-logits = mean of the last stage");
        foreach (var s in stages) s.Dispose();
    }

    /// <summary>Training mode against the official model: batch statistics in every BatchNorm (logits), running
    /// statistics and counters updated as PyTorch does, and gradients of a fixed loss.</summary>
    [TestMethod]
    [DataRow("a")]
    [DataRow("b")]
    public void TrainingForwardAndBackwardMatchOfficial(string tag)
    {
        using var scope = TensorScope.Begin();
        using var fixture = SmtFixtures.Load(tag);
        using var model = SmtFixtures.Build(fixture);
        model.Train();
        using var x = SmtFixtures.FormulaInput(2, 161, 225);
        using var logits = model.Call(x);
        TensorAssert.Close(fixture["train.logits.161x225"], logits, Tolerances.BackboneParity, 0, "training-mode logits");
        var state = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        int bnEntries = 0;
        Console.WriteLine($"smt training-mode logits config {tag}: max abs error {SmtFixtures.MaxAbs(fixture["train.logits.161x225"], logits):E2}");
        foreach (var (key, expected) in fixture.Where(kv => kv.Key.StartsWith("train.", StringComparison.Ordinal) && kv.Key != "train.logits.161x225"))
        {
            var name = key["train.".Length..];
            TensorAssert.Close(expected, state[name], 1e-6, 1e-5, $"{name} after one training forward");
            bnEntries++;
        }
        Assert.AreEqual(3 * model.NamedModules().Count(m => m.Module is BatchNorm2d), bnEntries);

        using var w = SmtFixtures.LossWeights(logits.NumEl);
        using var wv = w.View(logits.Shape);
        using var prod = logits.Mul(wv);
        using var loss = prod.Sum();
        loss.Backward();
        var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        int grads = 0;
        foreach (var (key, expected) in fixture.Where(kv => kv.Key.StartsWith("grad.", StringComparison.Ordinal)))
        {
            var name = key["grad.".Length..];
            using var g = parameters[name].Grad!;
            TensorAssert.Close(expected, g, Tolerances.GradAbs, Tolerances.GradRel, $"gradient of {name}");
            grads++;
        }
        Assert.IsGreaterThan(8, grads);
    }

    /// <summary>A checkpoint saved the way the official training script saves them (weights under 'model', optimizer
    /// and scheduler state, a pickled yacs config) loads strictly through the registry and reproduces its logits;
    /// with another class count the head is re-initialised and reported.</summary>
    [TestMethod]
    public void OfficialCheckpointLayoutLoads()
    {
        using var scope = TensorScope.Begin();
        using var expected = SafeTensors.Load(Fixtures.Path("smt/checkpoint_tiny_expected.safetensors"));
        var kwargs = SmtFixtures.Kwargs(expected);
        string path = Fixtures.Path("smt/checkpoint_tiny.pth");
        var (model, load) = Backbones.Load("smt", path, customKwargs: kwargs);
        using (model)
        {
            Assert.AreEqual(0, load.SkippedHeadKeys.Count);
            Assert.AreEqual(model.StateDict().Count, load.LoadedKeys.Count);
            model.Eval();
            using var _ = Autograd.NoGrad();
            using var x = SmtFixtures.FormulaInput(1, 45, 38);
            using var logits = model.Call(x);
            TensorAssert.Close(expected["logits.45x38"], logits, Tolerances.BackboneParity, 0, "logits of the loaded checkpoint");
        }
        var (other, load2) = Backbones.Load("smt", path, numClasses: 5, customKwargs: kwargs);
        using (other)
        {
            CollectionAssert.AreEquivalent(new[] { "head.weight", "head.bias" }, load2.SkippedHeadKeys.ToArray());
            Assert.AreEqual(5, other.NumClasses);
        }
    }

    /// <summary>A checkpoint with a larger head converted by a class-map file (how the 22K→1K mapping is supplied).</summary>
    [TestMethod]
    public void ClassMapFileConvertsTheHead()
    {
        using var scope = TensorScope.Begin();
        using var expected = SafeTensors.Load(Fixtures.Path("smt/checkpoint_tiny_expected.safetensors"));
        var kwargs = SmtFixtures.Kwargs(expected);
        string map = Path.GetTempFileName();
        File.WriteAllLines(map, new[] { "2", "0" });
        try
        {
            var (model, load) = SmtFamily.LoadWithClassMap("smt", Fixtures.Path("smt/checkpoint_tiny.pth"), map, kwargs);
            using (model)
            {
                Assert.AreEqual(2, model.NumClasses);
                Assert.AreEqual(0, load.SkippedHeadKeys.Count);
                model.Eval();
                using var _ = Autograd.NoGrad();
                using var x = SmtFixtures.FormulaInput(1, 45, 38);
                using var logits = model.Call(x);
                using var idx = Tensor.From(new long[] { 2, 0 }, 2);
                using var rows = expected["logits.45x38"].IndexSelect(1, idx);
                TensorAssert.Close(rows, logits, Tolerances.BackboneParity, 0, "logits of the mapped classes");
            }
            File.WriteAllLines(map, new[] { "2", "3" });
            var e = Assert.ThrowsExactly<FormatException>(() => SmtFamily.LoadWithClassMap("smt", Fixtures.Path("smt/checkpoint_tiny.pth"), map, kwargs));
            StringAssert.Contains(e.Message, "[0, 3)");
        }
        finally { File.Delete(map); }
    }
}

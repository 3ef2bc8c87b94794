using System.Globalization;
using System.Text.Json.Nodes;
using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.TransNeXt;

namespace MLNetExt.Tests.Vision.TransNeXt;

/// <summary>Official variants (keys, shapes, order, parameter counts, one forward each), configuration errors,
/// resolution tables, and the backbone contract.</summary>
[TestClass]
public sealed class TransNeXtModelTests
{
    /// <summary>Small but complete: aggregated attention in stages 1–3, MHSA in stage 4.</summary>
    static JsonObject SmallKwargs(int img = 224) => new()
    {
        ["img_size"] = img,
        ["window_size"] = new JsonArray(3, 3, 3, null),
        ["patch_size"] = 4,
        ["embed_dims"] = new JsonArray(16, 24, 32, 48),
        ["num_heads"] = new JsonArray(2, 2, 4, 4),
        ["mlp_ratios"] = new JsonArray(4.0, 4.0, 3.0, 2.0),
        ["qkv_bias"] = true,
        ["norm_layer"] = new JsonObject { ["type"] = "LayerNorm", ["eps"] = 1e-6 },
        ["depths"] = new JsonArray(1, 1, 2, 1),
        ["sr_ratios"] = new JsonArray(8, 4, 2, 1),
        ["num_classes"] = 10,
    };

    static TransNeXtModel Small(Action<JsonObject>? edit = null, int img = 224)
    {
        var kw = SmallKwargs(img);
        edit?.Invoke(kw);
        return (TransNeXtModel)Backbones.CreateCustom("transnext", kw);
    }

    [TestMethod, TestCategory("Slow")]
    [DataRow("transnext_micro", 224)]
    [DataRow("transnext_tiny", 224)]
    [DataRow("transnext_small", 224)]
    [DataRow("transnext_base", 224)]
    [DataRow("transnext_micro_aaaa", 256)]
    public void OfficialVariantMatchesOfficialKeysCountAndRuns(string variant, int img)
    {
        using var scope = TensorScope.Begin();
        var lines = File.ReadAllLines(TransNeXtFixtures.Path($"keys/{variant}.txt"));
        var expected = lines[..^1];
        long expectedTotal = long.Parse(lines[^1].Split('\t')[1], CultureInfo.InvariantCulture);

        var row = Backbones.Find(variant);
        Assert.AreEqual("transnext", row.Family);
        Assert.AreEqual(expectedTotal, row.ParameterCount, "variant table count vs official");
        using var model = Backbones.Create(variant);
        Assert.AreEqual(variant, model.Variant);
        var actual = model.StateDict().Select(kv => $"{kv.Key}\t[{string.Join(", ", kv.Value.Shape)}]\t{kv.Value.DType.TorchName()}").ToArray();
        CollectionAssert.AreEqual(expected, actual, $"{variant}: state_dict keys/shapes/dtypes/order differ from the official model");
        Assert.AreEqual(expectedTotal, model.Parameters().Where(p => p.RequiresGrad).Sum(p => p.NumEl));
        Assert.AreEqual(img, model.PretrainedConfig.Height);

        // resolution tables exist as (non-persistent) buffers, none of them in the state_dict
        var buffers = model.NamedBuffers().Select(b => b.Name).ToList();
        Assert.IsTrue(buffers.Contains("relative_pos_index1") && buffers.Contains("relative_coords_table4"));
        Assert.IsTrue(buffers.Contains("block1.0.attn.padding_mask") && buffers.Contains("block1.0.attn.seq_length_scale"));
        var keys = model.StateDict().Select(kv => kv.Key).ToHashSet();
        Assert.IsFalse(buffers.Any(keys.Contains), "a resolution table leaked into the state_dict");

        model.Eval();
        using (Autograd.NoGrad())
        {
            using var x = TransNeXtFixtures.HashedInput(new long[] { 1, 3, img, img }, 3);
            using var logits = model.Call(x);
            CollectionAssert.AreEqual(new long[] { 1, 1000 }, logits.Shape);
            using var finite = logits.IsFinite().All();
            Assert.IsTrue(finite.ToBoolean(), $"{variant}: non-finite logits");
        }
    }

    [TestMethod]
    public void UnknownAndUnsupportedKeysAreRejectedByName()
    {
        var e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["window_sizes"] = new JsonArray(3, 3, 3, 3)));
        StringAssert.Contains(e.Message, "'window_sizes'");
        StringAssert.Contains(e.Message, "window_size");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["norm_layer"] = "BatchNorm2d"));
        StringAssert.Contains(e.Message, "'norm_layer'");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["patch_size"] = 16));
        StringAssert.Contains(e.Message, "'patch_size'");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["img_size"] = 240));
        StringAssert.Contains(e.Message, "'img_size'");
        StringAssert.Contains(e.Message, "240");
    }

    [TestMethod]
    public void ConfigurationErrorsNameTheKey()
    {
        using (Small(kw => kw["fixed_pool_size"] = 7)) { } // 7 < 14, the smallest aggregated-attention grid at 224
        var e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["fixed_pool_size"] = 14));
        StringAssert.Contains(e.Message, "'fixed_pool_size'");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["window_size"] = new JsonArray(3, 4, 3, null)));
        StringAssert.Contains(e.Message, "'window_size'");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["num_heads"] = new JsonArray(3, 2, 4, 4)));
        StringAssert.Contains(e.Message, "num_heads");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["depths"] = new JsonArray(1, 1, 2)));
        StringAssert.Contains(e.Message, "'depths'");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Small(kw => kw["pretrained"] = true));
        StringAssert.Contains(e.Message, "'pretrained'");
        using (Small(kw => { kw["pretrained"] = false; kw["norm_layer"] = "LayerNorm"; kw["pretrain_size"] = null; })) { }

        // a custom size as a user writes it: a JSON file of official keyword arguments (integers where Python has floats)
        const string text = """
            {"img_size": 64, "pretrain_size": 224, "window_size": [3, 3, 3, null], "patch_size": 4, "embed_dims": [8, 16, 16, 32],
             "num_heads": [1, 2, 2, 4], "mlp_ratios": [8, 8, 4, 4], "qkv_bias": true, "depths": [1, 1, 1, 1],
             "sr_ratios": [8, 4, 2, 1], "norm_layer": {"type": "LayerNorm", "eps": 1e-6}, "drop_path_rate": 0.1, "num_classes": 3}
            """;
        using var custom = (TransNeXtModel)Backbones.CreateCustom("transnext", BackboneConfig.ParseObject(text, "custom.json"));
        Assert.AreEqual("custom", custom.Variant);
        Assert.AreEqual(1e-6, custom.Config.NormEps);
        Assert.AreEqual(224, custom.Config.EffectivePretrainSize);
        Assert.AreEqual(64, custom.PretrainedConfig.Height);
        Assert.AreEqual(0.1, custom.DropPathRate);
        custom.Eval();
        using var scope = TensorScope.Begin();
        using var x = TransNeXtFixtures.HashedInput(new long[] { 2, 3, 64, 64 }, 4);
        using var y = custom.Call(x);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, y.Shape);
        var bad = BackboneConfig.ParseObject("""{"embed_dims": [8, 16, 16, 32], "layer_scale_init_value": 1e-6}""", "custom.json");
        e = Assert.ThrowsExactly<BackboneConfigException>(() => Backbones.CreateCustom("transnext", bad));
        StringAssert.Contains(e.Message, "'layer_scale_init_value'");
    }

    [TestMethod]
    public void InputOfAnotherSizeNamesVariantSizeAndAllowed()
    {
        using var scope = TensorScope.Begin();
        using var model = Small();
        using var x = Tensor.Zeros(new long[] { 1, 3, 256, 224 });
        var e = Assert.ThrowsExactly<InputSizeException>(() => model.Call(x));
        StringAssert.Contains(e.Message, "custom");
        StringAssert.Contains(e.Message, "256x224");
        StringAssert.Contains(e.Message, "224x224");
        using var gray = Tensor.Zeros(new long[] { 1, 1, 224, 224 });
        Assert.ThrowsExactly<InputSizeException>(() => model.Call(gray));
        using var micro = Backbones.Create("transnext_micro");
        using var big = Tensor.Zeros(new long[] { 1, 3, 384, 384 });
        e = Assert.ThrowsExactly<InputSizeException>(() => micro.Call(big));
        StringAssert.Contains(e.Message, "transnext_micro");
        StringAssert.Contains(e.Message, "384x384");
    }

    [TestMethod]
    public void ResolutionTablesFollowImgSizePretrainSizeAndLinearMode()
    {
        using var scope = TensorScope.Begin();
        Tensor Buffer(Module m, string name) => m.NamedBuffers().Single(b => b.Name == name).Buffer;
        using (var m = Small())
        {
            // stage 1 at 224: 56x56 queries, 7x7 pooled keys; 104 unique offsets per axis (spec §3.5)
            CollectionAssert.AreEqual(new long[] { 10816, 2 }, Buffer(m, "relative_coords_table1").Shape);
            CollectionAssert.AreEqual(new long[] { 3136L * 49 }, Buffer(m, "relative_pos_index1").Shape);
            CollectionAssert.AreEqual(new long[] { 2401 }, Buffer(m, "relative_pos_index4").Shape);
            var scale = Buffer(m, "block1.0.attn.seq_length_scale").ToArray<float>();
            Assert.AreEqual(Math.Log(4 + 49), scale[0], 1e-6);        // corner
            Assert.AreEqual(Math.Log(6 + 49), scale[1], 1e-6);        // edge
            Assert.AreEqual(Math.Log(9 + 49), scale[57], 1e-6);       // interior
            var mask = Buffer(m, "block1.0.attn.padding_mask");
            CollectionAssert.AreEqual(new long[] { 3136, 9 }, mask.Shape);
            using var maskCount = mask.Sum();
            Assert.AreEqual(4 * 56 * 3 - 4, maskCount.ToInt64()); // 3 masked per edge pixel, 5 per corner
            var s4 = Buffer(m, "block4.0.attn.seq_length_scale");
            Assert.AreEqual(DType.Float64, s4.DType);
            Assert.AreEqual(Math.Log(49), s4.ToDouble(), 1e-12);
        }
        using var at384 = Small(kw => kw["pretrain_size"] = 224, img: 384);
        using var at384Self = Small(img: 384);
        CollectionAssert.AreEqual(new long[] { 9216L * 144 }, Buffer(at384, "relative_pos_index1").Shape);
        using var maxPre = Buffer(at384, "relative_coords_table1").Abs().Max();
        using var maxSelf = Buffer(at384Self, "relative_coords_table1").Abs().Max();
        Assert.IsGreaterThan(1.2, maxPre.ToDouble(), "pretrain 224 extrapolates beyond the trained range at 384");
        Assert.IsLessThan(1.1, maxSelf.ToDouble());
        using var linear = Small(kw => { kw["fixed_pool_size"] = 7; kw["pretrain_size"] = 224; }, img: 384);
        CollectionAssert.AreEqual(new long[] { 9216L * 49 }, Buffer(linear, "relative_pos_index1").Shape);
        CollectionAssert.AreEqual(new long[] { 144L * 144 }, Buffer(linear, "relative_pos_index4").Shape, "stage 4 stays full MHSA");
        var ls = Buffer(linear, "block1.0.attn.seq_length_scale").ToArray<float>();
        Assert.AreEqual(Math.Log(9 + 49), ls[97], 1e-6);
    }

    [TestMethod]
    public void InitialisationFollowsTheOfficialCode()
    {
        using var scope = TensorScope.Begin();
        using var m = Small();
        var p = m.NamedParameters().ToDictionary(x => x.Name, x => x.Parameter);
        using var tau = MLNetExt.Nn.F.Softplus(p["block1.0.attn.temperature"]);
        foreach (var v in tau.ToArray<float>()) Assert.AreEqual(1 / 0.24, v, 1e-4);
        Assert.IsTrue(p["block1.0.attn.learnable_bias"].ToArray<float>().All(v => v == 0));
        Assert.IsTrue(p["block1.0.attn.q.bias"].ToArray<float>().All(v => v == 0));
        Assert.IsTrue(p["norm1.weight"].ToArray<float>().All(v => v == 1));
        using var rpbStd = p["block2.0.attn.relative_pos_bias_local"].Std();
        Assert.IsLessThan(0.002, rpbStd.ToDouble());
        using var fc1Std = p["block3.0.mlp.fc1.weight"].Std();
        Assert.AreEqual(0.02, fc1Std.ToDouble(), 0.003);
        using var dwStd = p["block3.0.mlp.dwconv.dwconv.weight"].Std();
        Assert.AreEqual(Math.Sqrt(2.0 / 9), dwStd.ToDouble(), 0.05);
        Assert.IsTrue(p["block3.0.mlp.dwconv.dwconv.bias"].ToArray<float>().All(v => v == 0));
    }

    [TestMethod]
    public void TrainAndEvalBehaviour()
    {
        using var scope = TensorScope.Begin();
        using var m = Small(kw => kw["drop_path_rate"] = 0.5);
        Assert.AreEqual(0.5, m.DropPathRate);
        using var x = TransNeXtFixtures.HashedInput(new long[] { 4, 3, 224, 224 }, 9);
        m.Eval();
        using var e1 = m.Call(x);
        using var e2 = m.Call(x);
        TensorAssert.Equal(e1, e2, "eval is deterministic");
        m.Train();
        using var t1 = m.Call(x);
        using var diff = (t1 - e1).Abs().Max();
        Assert.IsGreaterThan(1e-4, diff.ToDouble(), "drop-path is active in training");
        // without stochastic layers, training mode computes the eval function (no batch statistics anywhere)
        using var plain = Small();
        plain.LoadStateDict(m.StateDict());
        plain.Train();
        using var t2 = plain.Call(x);
        TensorAssert.Close(e1, t2, 1e-6, 0, "train without drop = eval");
    }

    [TestMethod]
    public void LoadPretrainedReinitialisesAnotherHeadAndRejectsOtherMismatches()
    {
        using var scope = TensorScope.Begin();
        using var source = Small();
        using var target = Small(kw => kw["num_classes"] = 3);
        var result = target.LoadPretrained(source.StateDict());
        CollectionAssert.AreEquivalent(new[] { "head.weight", "head.bias" }, result.SkippedHeadKeys.ToArray());
        TensorAssert.Equal(source.StateDict()[0].Value, target.StateDict()[0].Value, "body loaded");
        using var other = Small(kw => kw["mlp_ratios"] = new JsonArray(4.0, 4.0, 3.0, 3.0));
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() => other.LoadPretrained(source.StateDict()));
        StringAssert.Contains(e.Message, "block4.0.mlp.fc1.weight");
        // prefixed re-saves load unchanged
        using var prefixed = Small();
        prefixed.LoadPretrained(source.StateDict().Select(kv => new KeyValuePair<string, Tensor>("_orig_mod." + kv.Key, kv.Value)));
    }

    [TestMethod]
    public void DepthGroupsFeatureInfoAndPretrainedConfig()
    {
        using var scope = TensorScope.Begin();
        using var m = Small();
        Assert.AreEqual(1 + 5 + 1, m.NumDepthGroups);
        Assert.AreEqual(0, m.DepthGroupOf("patch_embed1.proj.weight"));
        Assert.AreEqual(1, m.DepthGroupOf("block1.0.attn.q.weight"));
        Assert.AreEqual(1, m.DepthGroupOf("norm1.weight"));
        Assert.AreEqual(2, m.DepthGroupOf("patch_embed2.proj.weight"));
        Assert.AreEqual(4, m.DepthGroupOf("block3.1.mlp.fc2.bias"));
        Assert.AreEqual(5, m.DepthGroupOf("block4.0.attn.qkv.weight"));
        Assert.AreEqual(6, m.DepthGroupOf("norm4.bias"));
        Assert.AreEqual(6, m.DepthGroupOf("head.weight"));
        var groups = m.ParameterDepths().Select(g => g.Group).ToList();
        for (int i = 1; i < groups.Count; i++) Assert.IsGreaterThanOrEqualTo(groups[i - 1], groups[i], "groups rise with depth");
        Assert.ThrowsExactly<ArgumentException>(() => m.DepthGroupOf("block9.0.x"));

        CollectionAssert.AreEqual(new[] { 16, 24, 32, 48 }, m.FeatureInfo.Select(f => f.Channels).ToArray());
        CollectionAssert.AreEqual(new[] { 4, 8, 16, 32 }, m.FeatureInfo.Select(f => f.Reduction).ToArray());
        Assert.AreEqual(48, m.NumFeatures);
        var pc = Backbones.Find("transnext_micro_aaaa").Pretrained;
        Assert.AreEqual(256, pc.Height);
        Assert.AreEqual(0.875, pc.CropPct);
        Assert.AreEqual("bicubic", pc.Interpolation);
        Assert.AreEqual("patch_embed1.proj", pc.FirstConv);
        Assert.AreEqual("head", pc.Classifier);
    }

    /// <summary>TransNeXt is built for one resolution; another square size that is a multiple of 32 is built with
    /// img_size = size and pretrain_size kept at the weights' resolution (the official 384 fine-tuning recipe). No
    /// other family needs keyword arguments for a size.</summary>
    [TestMethod]
    public void InputSizeKwargs_RebuildTransNeXtForTheSize_KeepingThePretrainSize_AndNothingElse()
    {
        Assert.AreEqual("""{"img_size":384,"pretrain_size":224}""", Backbones.InputSizeKwargs("transnext_micro", null, 384, 384)!.ToJsonString());
        Assert.AreEqual("""{"img_size":384,"pretrain_size":256}""", Backbones.InputSizeKwargs("transnext_micro_aaaa", null, 384, 384)!.ToJsonString());
        var custom = SmallKwargs(64);
        custom["pretrain_size"] = 224;
        Assert.AreEqual("""{"img_size":96,"pretrain_size":224}""", Backbones.InputSizeKwargs("transnext", custom, 96, 96)!.ToJsonString());
        Assert.IsNull(Backbones.InputSizeKwargs("transnext_micro", null, 224, 224), "its own size");
        Assert.IsNull(Backbones.InputSizeKwargs("transnext_micro", null, 100, 100), "not a multiple of 32: the model's own check says so");
        Assert.IsNull(Backbones.InputSizeKwargs("transnext_micro", null, 256, 320), "img_size is one side");
        foreach (var other in new[] { "transxnet_t", "smt_t", "mixformer_b0" })
            Assert.IsNull(Backbones.InputSizeKwargs(other, null, 384, 384), other);
        using var at224 = Backbones.Create("transnext_micro");
        StringAssert.Contains(Assert.Throws<InputSizeException>(() => at224.CheckInputSize(100, 100)).Message,
            "it can be built for another square size that is a multiple of 32 (--image-size, ImageClassificationOptions.ImageSize, or img_size with pretrain_size 224)");
    }

    /// <summary>Weights of the 224 build load unchanged into the 256 build (every table that depends on the size is
    /// computed, not stored), which then runs at 256; a saved classifier's descriptor rebuilds it at its size.</summary>
    [TestMethod]
    public void WeightsOfOneResolution_LoadIntoTheBuildForAnother_AndTheDescriptorRebuildsIt()
    {
        using var scope = TensorScope.Begin();
        var file = Path.Combine(Path.GetTempPath(), $"mlnetext-transnext-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var at224 = Small()) SafeTensors.Save(file, at224.StateDict());
            var sized = Backbones.InputSizeKwargs("transnext", SmallKwargs(), 256, 256);
            var (at256, load) = Backbones.Load("transnext", file, null, SmallKwargs(), sized);
            using (at256)
            {
                Assert.IsEmpty(load.SkippedHeadKeys);
                at256.Eval();
                using var logits = at256.Forward(Tensor.Randn([1, 3, 256, 256]));
                CollectionAssert.AreEqual(new long[] { 1, 10 }, logits.Shape);
            }
        }
        finally { File.Delete(file); }
        var descriptor = new MLNetExt.Training.ModelDescriptor("transnext", SmallKwargs(), ["a", "b"], 256, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 0.875, "bicubic");
        using (var rebuilt = descriptor.CreateBackbone()) rebuilt.CheckInputSize(256, 256);
        using (var variant = (descriptor with { Model = "transnext_micro", CustomKwargs = null, ImageSize = 288 }).CreateBackbone())
        {
            variant.CheckInputSize(288, 288);
            Assert.AreEqual("transnext_micro", variant.Variant);
        }
    }

    /// <summary>Training a TransNeXt at another size than it was built for builds it for that size: the run, the saved
    /// model and its reload all take that size (before, the first step failed on the size check).</summary>
    [TestMethod]
    public void Training_AtAnotherSize_BuildsForIt_AndTheSavedModelReloadsAtIt()
    {
        using var scope = TensorScope.Begin();
        var data = MLNetExt.Tests.Training.TrainerTests.ColorData(4, 21);
        var options = new MLNetExt.Training.ImageClassificationOptions
        {
            Model = "transnext", CustomKwargs = SmallKwargs(), ImageSize = 64, Epochs = 1, BatchSize = 6, ValidationFraction = 0, Workers = 1, Seed = 3,
        };
        using var model = new MLNetExt.MLNet.ImageClassificationEstimator(options).Fit(data);
        Assert.AreEqual(64, model.Descriptor.ImageSize);
        var file = Path.Combine(Path.GetTempPath(), $"mlnetext-transnext-{Guid.NewGuid():N}.safetensors");
        try
        {
            model.Save(file);
            using var loaded = MLNetExt.Inference.ImageClassificationModel.Load(file);
            var image = data.Items[0].Image!;
            Assert.AreEqual(model.Predict(image, topK: 2).Score, loaded.Predict(image, topK: 2).Score);
        }
        finally { File.Delete(file); }
    }
}

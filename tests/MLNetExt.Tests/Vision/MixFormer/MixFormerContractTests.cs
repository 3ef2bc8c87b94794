using System.Text.Json.Nodes;
using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.MixFormer;

namespace MLNetExt.Tests.Vision.MixFormer;

/// <summary>Variants, keyword arguments and the backbone contract.</summary>
[TestClass]
public sealed class MixFormerContractTests
{
    static readonly long[] s_counts = { 5_098_767, 7_887_877, 9_894_848, 16_747_808, 34_797_572, 61_692_403, 119_505_054 };

    /// <summary>Every official variant (the official B0/B5 factories crash; ours build): the state_dict keys, shapes,
    /// dtypes and order of the reference listing, the exact trainable-parameter count, one forward at batch 1.</summary>
    [TestMethod, TestCategory("Slow")]
    [DataRow("mixformer_b0", 0)]
    [DataRow("mixformer_b1", 1)]
    [DataRow("mixformer_b2", 2)]
    [DataRow("mixformer_b3", 3)]
    [DataRow("mixformer_b4", 4)]
    [DataRow("mixformer_b5", 5)]
    [DataRow("mixformer_b6", 6)]
    public void FullSizeVariantMatchesKeysCountAndRuns(string variant, int index)
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create(variant);
        var (lines, total) = MixFormerFixtures.Keys(variant);
        var ours = model.StateDict().Select(kv => $"{kv.Key}\t[{string.Join(", ", kv.Value.Shape)}]\t{kv.Value.DType.TorchName()}").ToList();
        CollectionAssert.AreEqual(lines, ours, $"{variant}: state_dict listing");
        long trainable = model.Parameters().Where(p => p.RequiresGrad).Sum(p => p.NumEl);
        Assert.AreEqual(total, trainable, $"{variant}: reference count");
        Assert.AreEqual(s_counts[index], trainable, $"{variant}: count");
        Assert.AreEqual(Backbones.Find(variant).ParameterCount, trainable, $"{variant}: registry row");
        Assert.AreEqual(variant, model.Variant);
        Assert.AreEqual("mixformer", model.Family);

        model.Eval();
        using var noGrad = Autograd.NoGrad();
        var logits = model.Call(MixFormerFixtures.Input(1, 3, 224, 224, 5));
        CollectionAssert.AreEqual(new long[] { 1, 1000 }, logits.Shape);
        using var finite = logits.IsFinite().All();
        Assert.IsTrue(finite.ToBoolean(), $"{variant}: non-finite logits");
    }

    [TestMethod]
    public void RegistryListsTheSevenOfficialVariants()
    {
        var family = Backbones.Family("mixformer");
        CollectionAssert.AreEqual(Enumerable.Range(0, 7).Select(i => $"mixformer_b{i}").ToArray(), family.Variants.Select(v => v.Name).ToArray());
        CollectionAssert.AreEqual(s_counts, family.Variants.Select(v => v.ParameterCount).ToArray());
        var cfg = family.Variants[0].Pretrained;
        Assert.AreEqual((3, 224, 224), (cfg.InputChannels, cfg.Height, cfg.Width));
        Assert.AreEqual("patch_embed.stem.0", cfg.FirstConv);
        Assert.AreEqual("head", cfg.Classifier);
    }

    [TestMethod]
    public void IntAndListEmbedDimBuildTheSameModel()
    {
        using var a = Backbones.CreateCustom("mixformer", new JsonObject { ["embed_dim"] = 16, ["depths"] = new JsonArray(1, 1, 1, 1), ["num_heads"] = new JsonArray(2, 2, 4, 4) }, 5);
        using var b = Backbones.CreateCustom("mixformer", new JsonObject { ["embed_dim"] = new JsonArray(16, 32, 64, 128), ["depths"] = new JsonArray(1, 1, 1, 1), ["num_heads"] = new JsonArray(2, 2, 4, 4) }, 5);
        CollectionAssert.AreEqual(a.StateDict().Select(kv => kv.Key + string.Join(",", kv.Value.Shape)).ToList(),
                                  b.StateDict().Select(kv => kv.Key + string.Join(",", kv.Value.Shape)).ToList());
        Assert.AreEqual("custom", a.Variant);
    }

    [TestMethod]
    public void OfficialArgumentsAreHonoured()
    {
        // class_num (official) without the registry override, qkv_bias=false drops the qkv bias, window 5 sizes the table.
        var kw = new JsonObject
        {
            ["embed_dim"] = 16, ["depths"] = new JsonArray(1, 1), ["num_heads"] = new JsonArray(2, 4), ["class_num"] = 3,
            ["qkv_bias"] = false, ["window_size"] = 5, ["qk_scale"] = null, ["norm_layer"] = "LayerNorm", ["ape"] = false,
            ["patch_norm"] = true, ["use_checkpoint"] = true, ["img_size"] = 160, ["mlp_ratio"] = 2.0,
        };
        using var scope = TensorScope.Begin();
        using var model = (MixFormerModel)Backbones.CreateCustom("mixformer", kw);
        var keys = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Shape);
        Assert.AreEqual(3, model.NumClasses);
        Assert.IsFalse(keys.ContainsKey("layers.0.blocks.0.attn.qkv.bias"));
        CollectionAssert.AreEqual(new long[] { 81, 2 }, keys["layers.0.blocks.0.attn.relative_position_bias_table"]);
        CollectionAssert.AreEqual(new long[] { 32, 16 }, keys["layers.0.blocks.0.mlp.fc1.weight"]);
        Assert.AreEqual(2, model.FeatureInfo.Count);
        model.Eval();
        var y = model.Call(MixFormerFixtures.Input(2, 3, 48, 40, 1));   // grids 12x10 → 15x10, then 6x5 → 10x5 (window 5)
        CollectionAssert.AreEqual(new long[] { 2, 3 }, y.Shape);
    }

    [TestMethod]
    [DataRow("{\"embed_dim\": 24, \"depth\": [1, 1, 1, 1]}", "'depth'")]
    [DataRow("{\"embed_dim\": 24, \"num_classes_typo\": 3}", "'num_classes_typo'")]
    [DataRow("{\"ape\": true}", "'ape'")]
    [DataRow("{\"patch_norm\": false}", "'patch_norm'")]
    [DataRow("{\"norm_layer\": \"BatchNorm\"}", "'norm_layer'")]
    [DataRow("{\"embed_dim\": 24, \"depths\": [1, 1, 1, 1], \"num_heads\": [5, 6, 12, 24]}", "num_heads 5")]
    [DataRow("{\"embed_dim\": 8, \"depths\": [1, 1], \"num_heads\": [1, 2]}", "width 8")]
    [DataRow("{\"depths\": [1, 1], \"num_heads\": [3, 6, 12, 24]}", "'num_heads' must have 2 entries")]
    [DataRow("{\"dwconv_kernel_size\": 4}", "'dwconv_kernel_size'")]
    [DataRow("{\"drop_path_rate\": 1.5}", "'drop_path_rate'")]
    public void BadArgumentsAreRejectedByName(string json, string fragment)
    {
        var kw = (JsonObject)JsonNode.Parse(json)!;
        var e = Assert.ThrowsExactly<BackboneConfigException>(() => Backbones.CreateCustom("mixformer", kw).Dispose());
        StringAssert.Contains(e.Message, fragment);
    }

    [TestMethod]
    [DataRow(200, 200)]
    [DataRow(224, 100)]
    [DataRow(0, 224)]
    public void UnsupportedInputSizeNamesVariantSizeAndAllowedSizes(int h, int w)
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create("mixformer_b0");
        var e = Assert.ThrowsExactly<InputSizeException>(() => model.Call(Tensor.Zeros(new long[] { 1, 3, h, w })));
        StringAssert.Contains(e.Message, "mixformer_b0");
        StringAssert.Contains(e.Message, $"{h}x{w}");
        StringAssert.Contains(e.Message, "multiples of 8");
        var e2 = Assert.ThrowsExactly<InputSizeException>(() => model.Call(Tensor.Zeros(new long[] { 1, 4, 224, 224 })));
        StringAssert.Contains(e2.Message, "3 input channels");
    }

    [TestMethod]
    public void SizesAccepted()
    {
        using var scope = TensorScope.Begin();
        using var model = MixFormerFixtures.Small();
        foreach (var (h, w) in new[] { (221, 224), (32, 29), (64, 61), (253, 256) })
            model.CheckInputSize(h, w);   // ceil(side/4) a multiple of 8: sides in (32k-4, 32k]
        Assert.ThrowsExactly<InputSizeException>(() => model.CheckInputSize(225, 224));
        Assert.ThrowsExactly<InputSizeException>(() => model.CheckInputSize(224, 220));
    }

    [TestMethod]
    public void FeatureInfoAndStagesHaveStrides4To32()
    {
        using var scope = TensorScope.Begin();
        using var model = MixFormerFixtures.Small();
        CollectionAssert.AreEqual(new[] { 16, 24, 32, 48 }, model.FeatureInfo.Select(f => f.Channels).ToArray());
        CollectionAssert.AreEqual(new[] { 4, 8, 16, 32 }, model.FeatureInfo.Select(f => f.Reduction).ToArray());
        CollectionAssert.AreEqual(new[] { "layers.0", "layers.1", "layers.2", "layers.3" }, model.FeatureInfo.Select(f => f.Module).ToArray());
        using var noGrad = Autograd.NoGrad();
        var stages = model.ForwardStages(MixFormerFixtures.Input(1, 3, 224, 224, 1));
        for (int i = 0; i < 4; i++)
            CollectionAssert.AreEqual(new long[] { 1, model.FeatureInfo[i].Channels, 224 / model.FeatureInfo[i].Reduction, 224 / model.FeatureInfo[i].Reduction }, stages[i].Shape);
        Assert.AreEqual(1280, model.NumFeatures);
    }

    [TestMethod]
    public void DepthGroupsRunFromStemThroughBlocksToHead()
    {
        using var model = MixFormerFixtures.Small();
        Assert.AreEqual(5 + 2, model.NumDepthGroups);   // depths [1, 2, 1, 1]
        Assert.AreEqual(0, model.DepthGroupOf("patch_embed.stem.0.weight"));
        Assert.AreEqual(1, model.DepthGroupOf("layers.0.blocks.0.norm1.weight"));
        Assert.AreEqual(2, model.DepthGroupOf("layers.0.downsample.reduction.weight"));
        Assert.AreEqual(2, model.DepthGroupOf("layers.1.blocks.0.attn.qkv.weight"));
        Assert.AreEqual(3, model.DepthGroupOf("layers.1.blocks.1.attn.qkv.weight"));
        Assert.AreEqual(5, model.DepthGroupOf("layers.3.blocks.0.mlp.fc2.bias"));
        Assert.AreEqual(6, model.DepthGroupOf("norm.weight"));
        Assert.AreEqual(6, model.DepthGroupOf("last_proj.weight"));
        Assert.AreEqual(6, model.DepthGroupOf("head.bias"));
        var groups = model.ParameterDepths();
        Assert.AreEqual(model.Parameters().Count(), groups.Count);
        CollectionAssert.AreEqual(Enumerable.Range(0, 7).ToArray(), groups.Select(g => g.Group).Distinct().OrderBy(g => g).ToArray());
        Assert.ThrowsExactly<ArgumentException>(() => model.DepthGroupOf("layers.9.blocks.0.norm1.weight"));
    }

    [TestMethod]
    public void DropPathActsOnlyInTraining()
    {
        using var scope = TensorScope.Begin();
        var kw = MixFormerFixtures.SmallKwargs();
        kw["drop_path_rate"] = 0.5;
        using var model = (MixFormerModel)Backbones.CreateCustom("mixformer", kw, 4);
        Assert.AreEqual(0.5, model.DropPathRate);
        var x = MixFormerFixtures.Input(4, 3, 64, 64, 2);
        using var noGrad = Autograd.NoGrad();
        model.Eval();
        var e1 = model.Call(x);
        var e2 = model.Call(x);
        Assert.AreEqual(0.0, MixFormerFixtures.MaxAbs(e1, e2), "eval is deterministic");
        // train mode with BatchNorm frozen in eval shows drop-path alone: outputs vary between calls
        model.Train();
        foreach (var (_, m) in model.NamedModules()) if (m is BatchNorm2d) m.Eval();
        var t1 = model.Call(x);
        var t2 = model.Call(x);
        Assert.IsGreaterThan(1e-4, MixFormerFixtures.MaxAbs(t1, t2), "drop-path samples differ in training");
    }

    [TestMethod]
    public void InitialisationFollowsTheOfficialCode()
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create("mixformer_b0");
        var sd = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var fc1 = sd["layers.2.blocks.0.mlp.fc1.weight"];
        Assert.IsLessThanOrEqualTo(0.04 + 1e-7, fc1.Abs().Max().ToDouble());
        Assert.AreEqual(0.02 * 0.88, fc1.Std().ToDouble(), 0.0015, "truncated normal std 0.02 at ±2σ has std ≈ 0.0176");
        Assert.AreEqual(0.0, sd["layers.2.blocks.0.mlp.fc1.bias"].Abs().Max().ToDouble());
        var dw = sd["layers.2.blocks.0.attn.dwconv3x3.0.weight"];   // 96 channels, depth-wise 3x3: Paddle uses fan 9·96
        Assert.AreEqual(Math.Sqrt(2.0 / (9 * 96)), dw.Std().ToDouble(), 0.2 * Math.Sqrt(2.0 / (9 * 96)));
        Assert.AreEqual(0.0, sd["layers.2.blocks.0.attn.dwconv3x3.0.bias"].Abs().Max().ToDouble());
        Assert.AreEqual(1.0, sd["layers.2.blocks.0.norm1.weight"].Mean().ToDouble());
        Assert.AreEqual(1.0, sd["layers.2.blocks.0.attn.conv_norm.running_var"].Mean().ToDouble());
        Assert.AreEqual(DType.Int64, sd["layers.2.blocks.0.attn.relative_position_index"].DType);
        Assert.IsLessThanOrEqualTo(0.04 + 1e-7, sd["layers.2.blocks.0.attn.relative_position_bias_table"].Abs().Max().ToDouble());
        // a head made by ResetClassifier is initialised the same way (moved here from the ResetClassifier test that
        // BackboneRegistryTests.ResetClassifier_ReplacesOnlyTheClassifier replaces)
        model.ResetClassifier(5);
        Assert.IsLessThanOrEqualTo(0.04 + 1e-7, model.StateDict().First(kv => kv.Key == "head.weight").Value.Abs().Max().ToDouble(), "trunc normal ±2σ");
    }
}

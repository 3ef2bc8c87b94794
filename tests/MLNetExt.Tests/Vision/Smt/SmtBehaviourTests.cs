using System.Text.Json.Nodes;
using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.Smt;

namespace MLNetExt.Tests.Vision.Smt;

/// <summary>The backbone contract on small custom configurations (kept light for CI).</summary>
[TestClass]
public sealed class SmtBehaviourTests
{
    // Every block type: SAM stages 1-2, stage 3 alternating SAM/MSA, MSA stage 4.
    const string Tiny = """{"embed_dims": [8, 16, 32, 32], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 4, 4], "mlp_ratios": [2, 2, 2, 2], "qkv_bias": true, "depths": [1, 2, 4, 1], "head_conv": 3, "num_classes": 5}""";

    static JsonObject Args(string json, Action<JsonObject>? edit = null)
    {
        var o = (JsonObject)JsonNode.Parse(json)!;
        edit?.Invoke(o);
        return o;
    }

    static SmtModel Custom(Action<JsonObject>? edit = null) => (SmtModel)Backbones.CreateCustom("smt", Args(Tiny, edit));

    [TestMethod]
    public void FeatureInfoDepthGroupsAndIdentity()
    {
        using var scope = TensorScope.Begin();
        using var m = Custom(o => o["drop_path_rate"] = 0.2);
        Assert.AreEqual("custom", m.Variant);
        Assert.AreEqual(5, m.NumClasses);
        Assert.AreEqual(32, m.NumFeatures);
        Assert.AreEqual(0.2, m.DropPathRate);
        CollectionAssert.AreEqual(new[] { 8, 16, 32, 32 }, m.FeatureInfo.Select(f => f.Channels).ToArray());
        CollectionAssert.AreEqual(new[] { 4, 8, 16, 32 }, m.FeatureInfo.Select(f => f.Reduction).ToArray());
        CollectionAssert.AreEqual(new[] { "norm1", "norm2", "norm3", "norm4" }, m.FeatureInfo.Select(f => f.Module).ToArray());
        CollectionAssert.AreEqual(new[] { "head.weight", "head.bias" }, m.ClassifierKeys.ToArray());

        // stage-3 alternation: SAM first, then MSA, SAM, MSA; stages 1-2 SAM, stage 4 MSA
        var kinds = m.AllBlocks().Select(b => b.IsSam ? "S" : "A");
        Assert.AreEqual("SSSSASAA", string.Concat(kinds));
        // drop-path: linspace(0, 0.2, 8) over all blocks in order
        var rates = m.AllBlocks().Select(b => b.DropPathRate).ToArray();
        Assert.AreEqual(0.0, rates[0]);
        Assert.AreEqual(0.2, rates[^1], 1e-7);
        Assert.AreEqual(0.2 * 3 / 7, rates[3], 1e-7);

        // depth groups: stem 0, blocks 1..8, norm4 + head 9
        Assert.AreEqual(10, m.NumDepthGroups);
        Assert.AreEqual(0, m.DepthGroupOf("patch_embed1.conv.0.weight"));
        Assert.AreEqual(0, m.DepthGroupOf("patch_embed1.norm.bias"));
        Assert.AreEqual(1, m.DepthGroupOf("block1.0.attn.local_conv_4.weight"));
        Assert.AreEqual(1, m.DepthGroupOf("norm1.weight"));
        Assert.AreEqual(2, m.DepthGroupOf("patch_embed2.proj.weight"));
        Assert.AreEqual(3, m.DepthGroupOf("block2.1.mlp.fc1.weight"));
        Assert.AreEqual(5, m.DepthGroupOf("block3.1.attn.kv.weight"));
        Assert.AreEqual(8, m.DepthGroupOf("block4.0.norm1.weight"));
        Assert.AreEqual(9, m.DepthGroupOf("norm4.weight"));
        Assert.AreEqual(9, m.DepthGroupOf("head.bias"));
        Assert.ThrowsExactly<ArgumentException>(() => m.DepthGroupOf("block3.9.norm1.weight"));
        var depths = m.ParameterDepths();
        Assert.AreEqual(m.Parameters().Count(), depths.Count);
        for (int i = 1; i < depths.Count; i++)
            Assert.IsTrue(depths[i].Group >= depths[i - 1].Group, $"groups must not decrease in state_dict order ({depths[i].Name})");
    }

    [TestMethod]
    public void InitialisationFollowsTheOfficialCode()
    {
        using var scope = TensorScope.Begin();
        using var m = Custom(o => { o["embed_dims"] = new JsonArray(64, 64, 64, 64); o["depths"] = new JsonArray(1, 0, 1, 0); o["use_layerscale"] = true; });
        var sd = m.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        double Std(string k) { using var s = sd[k].Std(); return s.ToArray<float>()[0]; }
        double AbsMax(string k) { using var a = sd[k].Abs(); using var mx = a.Max(); return mx.ToArray<float>()[0]; }
        Assert.AreEqual(0.02, Std("block1.0.attn.v.weight"), 0.002);              // trunc_normal(0.02)
        Assert.AreEqual(0.5, Std("block1.0.attn.proj0.weight"), 0.05);            // sqrt(2 / (1·1·128/16))
        Assert.AreEqual(Math.Sqrt(2.0 / 81), Std("block1.0.attn.local_conv_4.weight"), 0.03);
        Assert.AreEqual(Math.Sqrt(2.0 / (9 * 64)), Std("patch_embed1.conv.0.weight"), 0.006);
        Assert.AreEqual(0.0, AbsMax("block1.0.attn.proj1.bias"));
        Assert.AreEqual(0.0, AbsMax("head.bias"));
        Assert.AreEqual(1e-4, AbsMax("block1.0.gamma_1"), 1e-10);
        Assert.AreEqual(1.0, AbsMax("block3.0.norm1.weight"));
        Assert.AreEqual(1.0, AbsMax("patch_embed1.conv.1.running_var"));
        Assert.IsFalse(sd.ContainsKey("patch_embed1.conv.0.bias"), "the stem conv has no bias");
        Assert.AreEqual("block1.0.gamma_1", m.StateDict()[m.StateDict().ToList().FindIndex(kv => kv.Key.StartsWith("block1.0."))].Key, "gammas come first in a block");
    }

    [TestMethod]
    public void InputSizesAndErrors()
    {
        using var scope = TensorScope.Begin();
        using var m = Custom();
        m.Eval();
        using var _ = Autograd.NoGrad();
        // any size of at least 3 pixels, odd and non-square included
        foreach (var (h, w) in new[] { (3, 3), (7, 5), (33, 17), (97, 64) })
        {
            using var x = SmtFixtures.FormulaInput(1, h, w);
            using var y = m.Call(x);
            CollectionAssert.AreEqual(new long[] { 1, 5 }, y.Shape);
        }
        using var small = SmtFixtures.FormulaInput(1, 2, 40);
        var e = Assert.ThrowsExactly<InputSizeException>(() => m.Call(small));
        StringAssert.Contains(e.Message, "custom");
        StringAssert.Contains(e.Message, "2x40");
        StringAssert.Contains(e.Message, "at least 3");
        using var gray = Tensor.Zeros(new long[] { 1, 1, 32, 32 });
        var e2 = Assert.ThrowsExactly<InputSizeException>(() => m.ForwardStages(gray));
        StringAssert.Contains(e2.Message, "3 input channels");
        using var flat = Tensor.Zeros(new long[] { 3, 32, 32 });
        Assert.ThrowsExactly<InputSizeException>(() => m.ForwardFeatures(flat));
        using var var7 = Backbones.CreateCustom("smt", Args(Tiny, o => o["head_conv"] = 7));
        Assert.AreEqual(3, ((SmtModel)var7).MinInputSize);
    }

    /// <summary>Each sample is computed independently in eval mode (dynamic batch: no batch size is baked in).</summary>
    [TestMethod]
    public void BatchRowsAreIndependentInEval()
    {
        using var scope = TensorScope.Begin();
        using var m = Custom();
        m.Eval();
        using var _ = Autograd.NoGrad();
        using var x3 = SmtFixtures.FormulaInput(3, 45, 31);
        using var y3 = m.Call(x3);
        for (int b = 0; b < 3; b++)
        {
            using var xb = x3.Narrow(0, b, 1);
            using var yb = m.Call(xb);
            using var row = y3.Narrow(0, b, 1);
            TensorAssert.Close(row, yb, 1e-5, 1e-5, $"row {b}");
        }
    }

    /// <summary>Drop-path and dropout act only in training; BatchNorm running statistics change only in training.</summary>
    [TestMethod]
    public void TrainAndEvalBehaviour()
    {
        using var scope = TensorScope.Begin();
        using var noisy = Custom(o => { o["drop_path_rate"] = 0.5; o["drop_rate"] = 0.3; o["attn_drop_rate"] = 0.3; });
        using var clean = Custom();
        clean.LoadStateDict(noisy.StateDict());
        using var x = SmtFixtures.FormulaInput(4, 32, 32);
        noisy.Eval();
        clean.Eval();
        var runningBefore = noisy.StateDict().Where(kv => kv.Key.EndsWith("running_mean")).Select(kv => kv.Value.Clone()).ToList();
        using (Autograd.NoGrad())
        {
            using var a = noisy.Call(x);
            using var b = clean.Call(x);
            TensorAssert.Close(b, a, 0, 0, "eval: drop-path and dropout are identities");
        }
        var runningAfterEval = noisy.StateDict().Where(kv => kv.Key.EndsWith("running_mean")).Select(kv => kv.Value).ToList();
        for (int i = 0; i < runningBefore.Count; i++) TensorAssert.Equal(runningBefore[i], runningAfterEval[i], "eval leaves running statistics");

        noisy.Train();
        clean.Train();
        using (Autograd.NoGrad())
        {
            using var t1 = noisy.Call(x);
            using var t2 = noisy.Call(x);
            using var diff = t1.Sub(t2).Abs().Max();
            Assert.IsGreaterThan(1e-4, (double)diff.ToArray<float>()[0], "training with drop-path/dropout is stochastic");
            using var c1 = clean.Call(x);
            using var c2 = clean.Call(x);
            TensorAssert.Close(c1, c2, 1e-6, 1e-6, "training without drop rates is deterministic (batch statistics)");
        }
        var runningAfterTrain = noisy.StateDict().Where(kv => kv.Key.EndsWith("running_mean")).Select(kv => kv.Value).ToList();
        using var changed = runningAfterTrain[0].Sub(runningBefore[0]).Abs().Max();
        Assert.IsGreaterThan(0.0, (double)changed.ToArray<float>()[0], "training updates running statistics");
        foreach (var t in runningBefore) t.Dispose();
    }

    [TestMethod]
    public void KwargsAreStrictAndValidated()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<BackboneConfigException>(() => Custom(o => o["window_size"] = 7));
        StringAssert.Contains(e.Message, "'window_size'");
        StringAssert.Contains(e.Message, "embed_dims");
        var e2 = Assert.ThrowsExactly<BackboneConfigException>(() => Custom(o => o["ca_num_heads"] = new JsonArray(3, 4, 4, -1)));
        StringAssert.Contains(e2.Message, "ca_num_heads");
        var e3 = Assert.ThrowsExactly<BackboneConfigException>(() => Custom(o => o["in_chans"] = 4));
        StringAssert.Contains(e3.Message, "in_chans");
        var e4 = Assert.ThrowsExactly<BackboneConfigException>(() => Custom(o => o["depths"] = new JsonArray(1, 1, 1)));
        StringAssert.Contains(e4.Message, "depths");
        var e5 = Assert.ThrowsExactly<BackboneConfigException>(() => Custom(o => o["sa_num_heads"] = new JsonArray(-1, -1, -1, 4)));
        StringAssert.Contains(e5.Message, "sa_num_heads");
        var e6 = Assert.ThrowsExactly<BackboneConfigException>(() => Custom(o => o["ca_attentions"] = new JsonArray(1, 1, 2, 0)));
        StringAssert.Contains(e6.Message, "ca_attentions");
        // keys that describe the default or have no effect are accepted
        using var ok = Custom(o => { o["img_size"] = 384; o["use_checkpoint"] = false; o["in_chans"] = 3; o["num_stages"] = 4; o["qk_scale"] = null; });
        Assert.AreEqual(5, ok.NumClasses);
        // ca_attentions 0 in stage 1 gives attention blocks there
        using var msa = Custom(o => { o["ca_attentions"] = new JsonArray(0, 1, 1, 0); o["sa_num_heads"] = new JsonArray(2, -1, 4, 4); });
        Assert.IsFalse(msa.AllBlocks().First().IsSam);
        // variant overrides merge over the official kwargs
        using var t = Backbones.Create("smt_t", numClasses: 0, overrides: new JsonObject { ["depths"] = new JsonArray(1, 1, 2, 1) });
        Assert.AreEqual(0, t.NumClasses);
        Assert.AreEqual(5, ((SmtModel)t).TotalBlocks);
    }

    [TestMethod]
    public void LoadPretrainedHandlesHeadsPrefixesAndMismatches()
    {
        using var scope = TensorScope.Begin();
        using var source = Custom(o => o["num_classes"] = 10);
        var official = source.StateDict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value)).ToList();

        // another class count: head re-initialised and reported, the rest loaded
        using var target = Custom();
        var r = target.LoadPretrained(official);
        CollectionAssert.AreEquivalent(new[] { "head.weight", "head.bias" }, r.SkippedHeadKeys.ToArray());
        var loaded = target.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        TensorAssert.Equal(source.StateDict().First(kv => kv.Key == "block3.1.attn.kv.weight").Value, loaded["block3.1.attn.kv.weight"]);

        // 22K-style head conversion through a class map (rows taken in order)
        using var mapped = Custom(o => o["num_classes"] = 3);
        string mapFile = Path.GetTempFileName();
        File.WriteAllLines(mapFile, new[] { "7", "2", "5" });
        try
        {
            mapped.HeadClassMap = SmtFamily.ReadClassMap(mapFile, sourceClasses: 10);
            var r2 = mapped.LoadPretrained(official);
            Assert.AreEqual(0, r2.SkippedHeadKeys.Count);
            using var idx = Tensor.From(new long[] { 7, 2, 5 }, 3);
            var src = source.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
            var dst = mapped.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
            using var rows = src["head.weight"].IndexSelect(0, idx);
            TensorAssert.Equal(rows, dst["head.weight"], "head rows selected by the class map");
            using var bias = src["head.bias"].IndexSelect(0, idx);
            TensorAssert.Equal(bias, dst["head.bias"]);
            File.WriteAllLines(mapFile, new[] { "7", "x" });
            var fe = Assert.ThrowsExactly<FormatException>(() => SmtFamily.ReadClassMap(mapFile));
            StringAssert.Contains(fe.Message, ":2:");
        }
        finally { File.Delete(mapFile); }

        // a missing key (other than the head) is an error naming it
        var broken = official.Where(kv => kv.Key != "model.block2.1.attn.bn.running_var").ToList();
        using var strict = Custom(o => o["num_classes"] = 10);
        var ex = Assert.ThrowsExactly<StateDictMismatchException>(() => strict.LoadPretrained(broken));
        StringAssert.Contains(ex.Message, "block2.1.attn.bn.running_var");
        // a downstream (mmdet) checkpoint that renamed local_conv to dw_conv is rejected with both names listed
        var renamed = official.Select(kv => new KeyValuePair<string, Tensor>(kv.Key.Replace("attn.local_conv.", "attn.dw_conv."), kv.Value)).ToList();
        var ex2 = Assert.ThrowsExactly<StateDictMismatchException>(() => strict.LoadPretrained(renamed));
        StringAssert.Contains(ex2.Message, "block3.1.attn.local_conv.weight");
        StringAssert.Contains(ex2.Message, "block3.1.attn.dw_conv.weight");
    }
}

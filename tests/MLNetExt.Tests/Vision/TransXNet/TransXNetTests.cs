using System.Text.Json.Nodes;
using MLNetExt.Export;
using MLNetExt.Export.Onnx;
using MLNetExt.OnnxRuntime;
using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.TransXNet;

namespace MLNetExt.Tests.Vision.TransXNet;

/// <summary>TransXNet against the official code (fixtures from tests/fixtures/transxnet/make_transxnet_fixtures.py).</summary>
[TestClass]
public sealed class TransXNetTests
{
    static StateDict? _fixture;
    static StateDict Fixture => _fixture ??= SafeTensors.Load(Fixtures.Path("transxnet/tiny.safetensors"));

    static JsonObject TinyKwargs => BackboneConfig.ParseObject(Fixture.Metadata["kwargs"], "fixture kwargs");

    /// <summary>The tiny configuration with the fixture's perturbed weights, in eval mode.</summary>
    static Backbone Tiny()
    {
        var model = Backbones.CreateCustom("transxnet", TinyKwargs);
        model.LoadStateDict(Fixture.Where(kv => kv.Key.StartsWith("weights.")).Select(kv => new KeyValuePair<string, Tensor>(kv.Key["weights.".Length..], kv.Value)));
        model.Eval();
        return model;
    }

    /// <summary>The generator's input: torch.manual_seed(seed); torch.randn(shape) — the same libtorch generator.</summary>
    static Tensor SeededInput(ulong seed, long[] shape, string headKey)
    {
        TorchRuntime.ManualSeed(seed);
        var x = Tensor.Randn(shape);
        using var head = x.Flatten().Narrow(0, 0, 16);
        TensorAssert.Equal(Fixture[headKey], head, $"regenerated input {headKey}");
        return x;
    }

    [TestMethod, TestCategory("Slow")]
    [DataRow("transxnet_t", 12_834_808L)]
    [DataRow("transxnet_s", 26_864_068L)]
    [DataRow("transxnet_b", 48_009_002L)]
    public void OfficialVariant_StateDictCountAndForward(string variant, long parameters)
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create(variant);
        BackboneAssert.StateDictMatches(model, $"transxnet/keys_{variant}.txt");
        Assert.AreEqual(parameters, model.ParameterCount());
        Assert.AreEqual(parameters, Backbones.Find(variant).ParameterCount);
        model.Eval();
        using (Autograd.InferenceMode())
        {
            var logits = model.Call(Tensor.Randn(new long[] { 1, 3, 224, 224 }));
            CollectionAssert.AreEqual(new long[] { 1, 1000 }, logits.Shape);
            Assert.IsTrue(logits.IsFinite().All().ToDouble() == 1, "finite logits");
        }
    }

    [TestMethod]
    public void ForkFeat_StateDictMatchesOfficial()
    {
        using var model = Backbones.Create("transxnet_t", overrides: new JsonObject { ["fork_feat"] = true });
        BackboneAssert.StateDictMatches(model, "transxnet/keys_transxnet_t_fork_feat.txt");
        Assert.AreEqual(0, model.NumClasses);
    }

    [TestMethod]
    [DataRow(11UL, 112, 112)]   // construction size: tables used as stored
    [DataRow(12UL, 224, 224)]   // tables resized bicubically
    [DataRow(13UL, 181, 131)]   // non-square, not multiples of 32, stage-4 map smaller than the kernel
    public void Tiny_EvalLogitsMatchOfficial(ulong seed, int h, int w)
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        var tag = $"{h}x{w}";
        var x = SeededInput(seed, new long[] { 2, 3, h, w }, $"input_head.{tag}");
        using (Autograd.NoGrad())
        {
            var logits = model.Call(x);
            var d = BackboneAssert.MaxAbsWithin(Fixture[$"logits.{tag}"], logits, Tolerances.BackboneParity, $"logits {tag}");
            Console.WriteLine($"transxnet tiny {tag}: max abs logits difference {d:E2}");
            if (tag == "181x131")
            {
                var stages = model.ForwardStages(x);
                for (int s = 0; s < 4; s++)
                    BackboneAssert.MaxAbsWithin(Fixture[$"stage{s}.{tag}"], stages[s], Tolerances.BackboneFeatureParity, $"stage {s} {tag}");
            }
        }
    }

    [TestMethod]
    public void Tiny_TrainStepMatchesOfficial_BatchNormStatisticsAndGradients()
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        model.Train();
        var x = SeededInput(14, new long[] { 2, 3, 112, 112 }, "train.input_head");
        var logits = model.Call(x);
        BackboneAssert.MaxAbsWithin(Fixture["train.logits"], logits, Tolerances.BackboneParity, "train-mode logits");
        logits.Square().Mean().Backward();
        var state = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        int stats = 0, grads = 0;
        foreach (var (key, expected) in Fixture)
        {
            if (key.StartsWith("train.after."))
            {
                // IDConv's BN runs twice per forward: num_batches_tracked 7 -> 9 and both updates in order.
                TensorAssert.Close(expected, state[key["train.after.".Length..]], Tolerances.GradAbs, Tolerances.GradRel, key);
                stats++;
            }
            else if (key.StartsWith("train.grad."))
            {
                var p = model.NamedParameters().First(np => np.Name == key["train.grad.".Length..]).Parameter;
                TensorAssert.Close(expected, p.Grad!, Tolerances.GradAbs, Tolerances.GradRel, key);
                grads++;
            }
        }
        Assert.AreEqual(model.NamedParameters().Count(), grads, "every parameter's gradient was checked");
        Assert.IsGreaterThan(100, stats);
    }

    /// <summary>IDConv's per-sample convolution exports as a Scan over the batch (one depthwise Conv per sample), so the
    /// graph has no batch size in a Conv's group count: the ONNX model gives the official logits at an odd size, at a
    /// batch size other than the traced ones.</summary>
    [TestMethod]
    public void Export_IDConvIsAScanOverTheBatch_GivesTheOfficialLogits()
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        var x = SeededInput(13, new long[] { 2, 3, 181, 131 }, "input_head.181x131");
        var path = Path.Combine(Directory.CreateTempSubdirectory("mlnetext-transxnet-").FullName, "tiny.onnx");
        try
        {
            OnnxExporter.Export(model, path, new OnnxExportOptions { Preprocess = OnnxPreprocess.None, ImageSize = (181, 131) });
            var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph;
            var scans = graph.Node.Where(n => n.OpType == "Scan").ToList();
            Assert.AreEqual(model.NamedModules().Count(m => m.Item2 is DynamicConv2d), scans.Count, "one Scan per IDConv");
            foreach (var body in scans.Select(n => n.Attribute.Single(a => a.Name == "body").G))
                Assert.AreEqual("Conv", body.Node.Single().OpType, "the body is one depthwise Conv");
            using var session = OnnxSession.FromFile(path);
            using var result = session.Run("input", OnnxTensor.FromArray(x.ToArray<float>(), 2, 3, 181, 131));
            var logits = Tensor.FromArray<float>(result["logits"].ToArray<float>(), new long[] { 2, model.NumClasses });
            BackboneAssert.MaxAbsWithin(Fixture["logits.181x131"], logits, Tolerances.BackboneParity, "exported logits");
        }
        finally { Directory.Delete(Path.GetDirectoryName(path)!, true); }
    }

    /// <summary>The images go in channels-last, so every convolution runs oneDNN's NHWC kernels (bench/README.md,
    /// "Channels-last"): the residual stream keeps that layout through every stage, in training and in eval.</summary>
    [TestMethod]
    public void Stages_RunChannelsLast()
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        var x = Tensor.Randn(new long[] { 2, 3, 64, 64 });
        foreach (bool training in new[] { true, false })
        {
            model.Train(training);
            using var grad = training ? Autograd.EnableGrad() : Autograd.NoGrad();
            var stages = model.ForwardStages(x);
            for (int s = 0; s < stages.Count; s++)
                Assert.IsTrue(stages[s].IsChannelsLast, $"stage {s} output, training {training}");
        }
    }

    [TestMethod]
    public void Batch_IsDynamic_SampleLogitsDoNotDependOnBatch()
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        var x = Tensor.Randn(new long[] { 3, 3, 96, 80 });
        using (Autograd.NoGrad())
        {
            var all = model.Call(x);
            for (int i = 0; i < 3; i++)
                BackboneAssert.MaxAbsWithin(all.Narrow(0, i, 1), model.Call(x.Narrow(0, i, 1)), Tolerances.BackboneParity, $"sample {i} alone vs in a batch of 3");
        }
    }

    [TestMethod]
    public void ResetClassifier_BuildsAWorkingHead_KeepsTheNorm()
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        var norm = Fixture["weights.classifier.0.weight"];
        model.ResetClassifier(5);
        Assert.AreEqual(5, model.NumClasses);
        var state = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        TensorAssert.Equal(norm, state["classifier.0.weight"], "trained norm kept");
        CollectionAssert.AreEqual(new long[] { 5, 64, 1, 1 }, state["classifier.2.weight"].Shape);
        var x = Tensor.Randn(new long[] { 2, 3, 64, 64 });
        using (Autograd.NoGrad()) CollectionAssert.AreEqual(new long[] { 2, 5 }, model.Call(x).Shape);

        model.ResetClassifier(0);
        Assert.IsFalse(model.StateDict().Any(kv => kv.Key.StartsWith("classifier")), "no classifier keys at 0 classes (as the official num_classes=0)");
        using (Autograd.NoGrad()) CollectionAssert.AreEqual(new long[] { 2, 64 }, model.Call(x).Shape, "pooled features");
        model.ResetClassifier(3);
        using (Autograd.NoGrad()) CollectionAssert.AreEqual(new long[] { 2, 3 }, model.Call(x).Shape);
        CollectionAssert.AreEqual(new[] { "classifier.2.weight", "classifier.2.bias" }, model.ClassifierKeys.ToArray());
    }

    [TestMethod]
    public void LoadPretrained_OtherClassCount_ReinitialisesAndReportsHead_OtherMismatchesListKeys()
    {
        using var scope = TensorScope.Begin();
        var weights = Fixture.Where(kv => kv.Key.StartsWith("weights.")).Select(kv => new KeyValuePair<string, Tensor>("module." + kv.Key["weights.".Length..], kv.Value)).ToList();
        using var model = Backbones.CreateCustom("transxnet", TinyKwargs, numClasses: 4);
        var result = model.LoadPretrained(weights);
        CollectionAssert.AreEquivalent(new[] { "classifier.2.weight", "classifier.2.bias" }, result.SkippedHeadKeys.ToArray());
        var state = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        TensorAssert.Equal(Fixture["weights.network.4.1.token_mixer.local_unit.weight"], state["network.4.1.token_mixer.local_unit.weight"], "body loaded");
        CollectionAssert.AreEqual(new long[] { 4, 64, 1, 1 }, state["classifier.2.weight"].Shape);

        var broken = weights.Where(kv => kv.Key != "module.network.0.0.norm1.bias").ToList();
        broken.Add(new("module.network.0.0.pos_embed.weight", Tensor.Zeros(new long[] { 3, 1, 7, 7 })));
        broken.RemoveAll(kv => kv.Key == "module.network.0.0.pos_embed.weight" && kv.Value.Size(0) != 3);
        var before = state["network.0.0.norm1.weight"].Clone();
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() => model.LoadPretrained(broken));
        StringAssert.Contains(e.Message, "network.0.0.norm1.bias");
        StringAssert.Contains(e.Message, "network.0.0.pos_embed.weight");
        TensorAssert.Equal(before, state["network.0.0.norm1.weight"], "nothing modified on failure");
    }

    [TestMethod]
    public void LoadPretrained_DenseTaskCheckpoint_LoadsTheBackboneIntoAClassifierAndBack()
    {
        using var scope = TensorScope.Begin();
        var dense = TinyKwargs;
        dense["fork_feat"] = true;
        using var detector = Backbones.CreateCustom("transxnet", dense);
        // an mmdet-style checkpoint: backbone.* (with norm0/2/4/6) beside a neck
        var checkpoint = detector.StateDict().Select(kv => new KeyValuePair<string, Tensor>("backbone." + kv.Key, kv.Value)).ToList();
        checkpoint.Add(new("neck.lateral_convs.0.conv.weight", Tensor.Zeros(new long[] { 8, 16, 1, 1 })));
        using var classifier = Backbones.CreateCustom("transxnet", TinyKwargs);
        var result = classifier.LoadPretrained(checkpoint);
        CollectionAssert.AreEquivalent(new[] { "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias" },
            result.SkippedHeadKeys.ToArray(), "headless checkpoint: fresh head kept");
        Assert.IsFalse(result.LoadedKeys.Any(k => k.StartsWith("norm") || k.StartsWith("neck")));
        TensorAssert.Equal(detector.StateDict().First(kv => kv.Key == "network.2.0.pos_embed.weight").Value,
                           classifier.StateDict().First(kv => kv.Key == "network.2.0.pos_embed.weight").Value, "body loaded");

        using var back = Backbones.CreateCustom("transxnet", dense);
        var toDense = back.LoadPretrained(classifier.StateDict());
        Assert.IsFalse(toDense.LoadedKeys.Any(k => k.StartsWith("classifier")), "classifier keys dropped for a dense model");
        Assert.HasCount(8, toDense.SkippedHeadKeys, "the new per-stage norms are reported");
    }

    [TestMethod]
    public void Load_InfersTheConstructionResolutionFromTheTables()
    {
        using var scope = TensorScope.Begin();
        var kwargs = TinyKwargs;
        kwargs["image_size"] = 160;
        var path = Path.Combine(Path.GetTempPath(), $"transxnet-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var at160 = Backbones.CreateCustom("transxnet", kwargs)) SafeTensors.Save(path, at160.StateDict());
            var (model, load) = Backbones.Load("transxnet", path, customKwargs: TinyKwargs); // kwargs say 112
            using (model)
            {
                Assert.AreEqual((160, 160), ((TransXNetModel)model).ConstructionSize);
                Assert.IsEmpty(load.SkippedHeadKeys);
            }
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void TrainMode_DropPathIsStochastic_EvalIsDeterministic_BatchOfOneRejectedInTraining()
    {
        using var scope = TensorScope.Begin();
        var kwargs = TinyKwargs;
        kwargs["drop_path_rate"] = 0.5;
        using var model = Backbones.CreateCustom("transxnet", kwargs);
        // the fixture's layer scales are O(1), so a dropped branch changes the output visibly
        model.LoadStateDict(Fixture.Where(kv => kv.Key.StartsWith("weights.")).Select(kv => new KeyValuePair<string, Tensor>(kv.Key["weights.".Length..], kv.Value)));
        Assert.AreEqual(0.5, model.DropPathRate);
        var x = Tensor.Randn(new long[] { 4, 3, 64, 64 });
        using (Autograd.NoGrad())
        {
            model.Train();
            TorchRuntime.ManualSeed(1);
            var a = model.Call(x);
            var b = model.Call(x);
            Assert.IsGreaterThan(1e-4, a.Sub(b).Abs().Max().ToDouble(), "drop-path draws a new mask per call");
            var e = Assert.ThrowsExactly<InputSizeException>(() => model.Call(x.Narrow(0, 0, 1)));
            StringAssert.Contains(e.Message, "at least 2 images");
            model.Eval();
            TensorAssert.Equal(model.Call(x), model.Call(x), "eval is deterministic");
        }
    }

    [TestMethod]
    public void DepthGroups_StemFirst_BlocksInOrder_HeadLast()
    {
        using var model = Backbones.Create("transxnet_t");
        var groups = model.ParameterDepths().ToDictionary(p => p.Name, p => p.Group);
        Assert.AreEqual(20, model.NumDepthGroups); // 18 blocks + stem + head
        Assert.AreEqual(0, groups["patch_embed.proj.conv.weight"]);
        Assert.AreEqual(1, groups["relative_pos_enc.0"]);
        Assert.AreEqual(1, groups["network.0.0.pos_embed.weight"]);
        Assert.AreEqual(3, groups["network.0.2.mlp.fc2.0.weight"]);
        Assert.AreEqual(4, groups["network.1.proj.conv.weight"]);
        Assert.AreEqual(4, groups["network.2.0.norm1.weight"]);
        Assert.AreEqual(18, groups["network.6.2.norm2.bias"]);
        Assert.AreEqual(19, groups["classifier.2.weight"]);
    }

    [TestMethod]
    public void BadInputs_NameTheProblem()
    {
        using var scope = TensorScope.Begin();
        using var model = Tiny();
        var rank = Assert.ThrowsExactly<InputSizeException>(() => model.Call(Tensor.Zeros(new long[] { 3, 64, 64 })));
        StringAssert.Contains(rank.Message, "[3, 64, 64]");
        var channels = Assert.ThrowsExactly<InputSizeException>(() => model.Call(Tensor.Zeros(new long[] { 1, 1, 64, 64 })));
        StringAssert.Contains(channels.Message, "expected 3 input channels, got 1");
    }

    [TestMethod]
    [DataRow("""{"arch": "t", "bogus": 1}""", "'bogus'")]
    [DataRow("""{"arch": "huge"}""", "\"huge\" is not a TransXNet architecture")]
    [DataRow("""{"arch": {"layers": [1, 1, 1, 1], "embed_dims": [16, 32, 48, 64]}}""", "needs 'kernel_size'")]
    [DataRow("""{"arch": {"layers": [1, 1, 1, 1], "embed_dims": [16, 16, 48, 64], "kernel_size": [7, 7, 7, 7], "num_groups": [2, 2, 2, 2], "sr_ratio": [8, 4, 2, 1], "num_heads": [1, 1, 1, 1]}}""", "consecutive 'embed_dims' must differ")]
    [DataRow("""{"arch": {"layers": [1, 1, 1], "embed_dims": [16, 32, 48, 64], "kernel_size": [7, 7, 7, 7], "num_groups": [2, 2, 2, 2], "sr_ratio": [8, 4, 2, 1], "num_heads": [1, 1, 1, 1]}}""", "'layers' must have 4 entries")]
    [DataRow("""{"arch": {"layers": [1, 1, 1, 1], "embed_dims": [16, 32, 48, 64], "kernel_size": [7, 7, 7, 7], "num_groups": [2, 2, 2, 2], "sr_ratio": [8, 4, 2, 1], "num_heads": [1, 3, 1, 1], "depth": 3}}""", "'depth'")]
    [DataRow("""{"arch": "t", "norm_cfg": {"type": "BN"}}""", "only the default")]
    [DataRow("""{"arch": "t", "drop_path_rate": "high"}""", "'drop_path_rate' must be a number")]
    public void CustomConfig_Errors_NameTheKey(string json, string expected)
    {
        var e = Assert.ThrowsExactly<BackboneConfigException>(() => Backbones.CreateCustom("transxnet", BackboneConfig.ParseObject(json, "test")));
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void CustomConfig_DefaultDescriptionsAndNoEffectKeysAreAccepted()
    {
        var kwargs = BackboneConfig.ParseObject("""
            {"arch": "tiny", "norm_cfg": {"type": "GN", "num_groups": 1}, "act_cfg": {"type": "GELU"},
             "grad_checkpoint": true, "checkpoint_stage": [1, 1, 0, 0], "image_size": [224, 224], "num_classes": 7}
            """, "test");
        using var model = Backbones.CreateCustom("transxnet", kwargs);
        Assert.AreEqual(7, model.NumClasses);
        Assert.AreEqual("transxnet (custom)", model.Variant);
    }

    [TestMethod]
    public void Initialisation_FollowsTheOfficialCode()
    {
        using var scope = TensorScope.Begin();
        TorchRuntime.ManualSeed(3);
        using var model = Backbones.Create("transxnet_t");
        var state = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        double Std(string k) => state[k].Std().ToDouble();
        Assert.AreEqual(0.02, Std("network.4.3.mlp.fc1.0.weight"), 0.002, "conv weights trunc-normal std 0.02");
        Assert.AreEqual(0.02, Std("network.4.3.token_mixer.local_unit.weight"), 0.002, "IDConv kernel bank trunc-normal std 0.02");
        Assert.AreEqual(0.02, Std("network.0.0.token_mixer.local_unit.proj.1.weight"), 0.004, "IDConv proj conv");
        Assert.AreEqual(0.0, state["network.0.0.token_mixer.global_unit.q.bias"].Abs().Max().ToDouble(), "conv biases zero");
        Assert.AreEqual(0.0, state["relative_pos_enc.2"].Abs().Max().ToDouble(), "position tables zero");
        Assert.AreEqual(1e-5, state["network.2.1.layer_scale_1.weight"].Mean().ToDouble(), 1e-10, "layer scale 1e-5 (float32)");
        Assert.AreEqual(0.0, state["network.2.1.layer_scale_2.bias"].Abs().Max().ToDouble(), "layer scale bias 0");
        Assert.AreEqual(1.0, state["network.2.1.norm1.weight"].Mean().ToDouble(), "GN weight 1");
        Assert.AreEqual(1.0, state["network.2.1.mlp.norm.running_var"].Mean().ToDouble(), "BN running var 1");
    }

    [TestMethod]
    public void PretrainedConfigs_FollowTheOfficialCfg()
    {
        var t = Backbones.Find("transxnet_t").Pretrained;
        var b = Backbones.Find("transxnet_b").Pretrained;
        Assert.AreEqual(0.9, t.CropPct);
        Assert.AreEqual(0.95, b.CropPct);
        Assert.AreEqual("bicubic", t.Interpolation);
        Assert.AreEqual((3, 224, 224), (t.InputChannels, t.Height, t.Width));
        CollectionAssert.AreEqual(new[] { 0.485, 0.456, 0.406 }, t.Mean);
        Assert.AreEqual("classifier.2", t.Classifier);
    }
}

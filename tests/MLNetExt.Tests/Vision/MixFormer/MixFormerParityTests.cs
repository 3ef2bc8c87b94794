using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.MixFormer;

namespace MLNetExt.Tests.Vision.MixFormer;

/// <summary>Logits and intermediate maps of the small perturbed configuration against the float64 reference, in
/// float32: at 224 (no window padding), 160×160 (every stage pads) and 158×222 (stem padding, H and W pad differently).</summary>
[TestClass]
public sealed class MixFormerParityTests
{
    static MixFormerModel? s_model;

    static MixFormerModel Model => s_model ??= MixFormerFixtures.Small();

    [ClassCleanup]
    public static void Cleanup() => s_model?.Dispose();

    [TestMethod]
    [DataRow("s224")]
    [DataRow("s160")]
    [DataRow("s158x222")]
    public void LogitsMatchTheReference(string size)
    {
        using var scope = TensorScope.Begin();
        var (_, h, w, seed) = MixFormerFixtures.Size(size);
        var x = MixFormerFixtures.Input(MixFormerFixtures.Batch, 3, h, w, seed);
        Model.Eval();
        using var noGrad = Autograd.NoGrad();
        var logits = Model.Call(x);
        double err = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected[$"{size}.logits"], logits);
        Console.WriteLine($"{size}: max |logit error| = {err:E3}");
        Assert.IsLessThanOrEqualTo(Tolerances.BackboneParity, err, $"{size}: logits differ by {err}");
    }

    [TestMethod]
    public void PreLogitsMatchTheReference()
    {
        using var scope = TensorScope.Begin();
        var (_, h, w, seed) = MixFormerFixtures.Size("s224");
        var x = MixFormerFixtures.Input(MixFormerFixtures.Batch, 3, h, w, seed);
        using var noGrad = Autograd.NoGrad();
        Model.Eval();
        var features = Model.ForwardFeatures(x);
        CollectionAssert.AreEqual(new long[] { MixFormerFixtures.Batch, 48, 7, 7 }, features.Shape);
        var pre = Model.ForwardHead(features, preLogits: true);
        double err = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected["s224.prelogits"], pre);
        Console.WriteLine($"s224 pre-logits: max error = {err:E3}");
        Assert.IsLessThanOrEqualTo(Tolerances.BackboneParity, err, $"pre-logits differ by {err}");
        var logits = Model.ForwardHead(features);
        double err2 = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected["s224.logits"], logits);
        Assert.IsLessThanOrEqualTo(Tolerances.BackboneParity, err2);
    }

    [TestMethod]
    public void StageMapsMatchTheReferenceAtANonSquarePaddedSize()
    {
        using var scope = TensorScope.Begin();
        var (_, h, w, seed) = MixFormerFixtures.Size("s158x222");
        var x = MixFormerFixtures.Input(MixFormerFixtures.Batch, 3, h, w, seed);
        using var noGrad = Autograd.NoGrad();
        Model.Eval();
        var stages = Model.ForwardStages(x);
        long[][] grids = { new long[] { 40, 56 }, new long[] { 20, 28 }, new long[] { 10, 14 }, new long[] { 5, 7 } };
        int[] channels = { 16, 24, 32, 48 };
        Assert.HasCount(4, stages);
        for (int i = 0; i < 4; i++)
        {
            CollectionAssert.AreEqual(new long[] { MixFormerFixtures.Batch, channels[i], grids[i][0], grids[i][1] }, stages[i].Shape, $"stage {i}");
            var mean = stages[i].Mean(new long[] { 2, 3 });
            double e1 = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected[$"s158x222.stage{i}.mean"], mean);
            var corner = stages[i].Slice(2, -3, null).Slice(3, -3, null);
            double e2 = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected[$"s158x222.stage{i}.corner"], corner);
            Console.WriteLine($"s158x222 stage {i}: mean error {e1:E3}, corner error {e2:E3}");
            Assert.IsLessThanOrEqualTo(Tolerances.BackboneFeatureParity, Math.Max(e1, e2), $"stage {i}: mean error {e1}, corner error {e2}");
        }
        // the last stage is what ForwardFeatures returns
        var features = Model.ForwardFeatures(x);
        Assert.AreEqual(0.0, MixFormerFixtures.MaxAbs(stages[3], features));
    }

    [TestMethod]
    public void TrainModeUsesBatchStatisticsAndUpdatesRunningStatistics()
    {
        using var scope = TensorScope.Begin();
        using var model = MixFormerFixtures.Small();
        model.Train();
        var x = MixFormerFixtures.Input(MixFormerFixtures.Batch, 3, 160, 160, 4);
        var logits = model.Call(x);
        double err = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected["train.logits"], logits);
        Console.WriteLine($"train mode: max |logit error| = {err:E3}");
        Assert.IsLessThanOrEqualTo(Tolerances.BackboneParity, err, $"train-mode logits differ by {err}");
        var sd = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var bn in new[] { "patch_embed.stem.1", "layers.0.blocks.0.attn.channel_interaction.1", "layers.2.downsample.norm", "layers.3.blocks.0.attn.conv_norm" })
        {
            foreach (var stat in new[] { "running_mean", "running_var" })
            {
                double e = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected[$"train.{bn}.{stat}"], sd[$"{bn}.{stat}"]);
                Assert.IsLessThanOrEqualTo(Tolerances.BackboneFeatureParity, e, $"{bn}.{stat} differs by {e}");
            }
            Assert.AreEqual(8L, sd[$"{bn}.num_batches_tracked"].ToInt64(), $"{bn}.num_batches_tracked (7 in the fixture, +1)");
        }
    }

    [TestMethod]
    public void EachImageOfABatchGivesTheLogitsItGivesAlone()
    {
        // The channel gate is per image and shared by its windows; nothing depends on the batch size.
        using var scope = TensorScope.Begin();
        using var noGrad = Autograd.NoGrad();
        Model.Eval();
        var x = MixFormerFixtures.Input(3, 3, 160, 160, 11);
        var all = Model.Call(x);
        for (int i = 0; i < 3; i++)
        {
            var one = Model.Call(x.Narrow(0, i, 1));
            double err = MixFormerFixtures.MaxAbs(all.Narrow(0, i, 1), one);
            Assert.IsLessThanOrEqualTo(Tolerances.BackboneParity, err, $"image {i}: {err}");
        }
    }

    [TestMethod]
    public void PaddleCheckpointLoadsThroughAdaptCheckpointWithTheSameWeightsAndLogits()
    {
        using var scope = TensorScope.Begin();
        var path = MixFormerFixtures.Path("small.weights.pdparams");
        var (model, load) = Backbones.Load("mixformer", path, MixFormerFixtures.SmallClasses, MixFormerFixtures.SmallKwargs());
        using (model)
        {
            Assert.IsEmpty(load.SkippedHeadKeys);
            // every tensor equals the PyTorch-layout weights: Linear weights transposed by name (proj_cnn and attn.proj are square)
            using var torchWeights = SafeTensors.Load(MixFormerFixtures.Path("small.weights.safetensors"));
            var own = model.StateDict();
            Assert.AreEqual(torchWeights.Count, own.Count);
            foreach (var (key, t) in own)
            {
                if (key.EndsWith("num_batches_tracked", StringComparison.Ordinal)) { Assert.AreEqual(0L, t.ToInt64(), key); continue; }
                Assert.AreEqual(0.0, MixFormerFixtures.MaxAbs(torchWeights[key], t), key);
            }
            model.Eval();
            using var noGrad = Autograd.NoGrad();
            foreach (var size in new[] { "s224", "s158x222" })
            {
                var (_, h, w, seed) = MixFormerFixtures.Size(size);
                var logits = model.Call(MixFormerFixtures.Input(MixFormerFixtures.Batch, 3, h, w, seed));
                double err = MixFormerFixtures.MaxAbs(MixFormerFixtures.Expected[$"{size}.logits"], logits);
                Console.WriteLine($"{size} from .pdparams: max |logit error| = {err:E3}");
                Assert.IsLessThanOrEqualTo(Tolerances.BackboneParity, err, $"{size} from .pdparams: {err}");
            }
        }
    }

    [TestMethod]
    public void PaddleCheckpointIntoAnotherClassCountReinitialisesTheHead()
    {
        using var scope = TensorScope.Begin();
        var path = MixFormerFixtures.Path("small.weights.pdparams");
        var (model, load) = Backbones.Load("mixformer", path, 7, MixFormerFixtures.SmallKwargs());
        using (model)
        {
            CollectionAssert.AreEquivalent(new[] { "head.weight", "head.bias" }, load.SkippedHeadKeys.ToArray());
            CollectionAssert.AreEqual(new long[] { 7, 1280 }, model.StateDict().First(kv => kv.Key == "head.weight").Value.Shape);
            Assert.AreEqual(7, model.NumClasses);
        }
    }

    [TestMethod]
    public void AStoredRelativePositionIndexMustEqualTheFormula()
    {
        using var scope = TensorScope.Begin();
        using var model = (MixFormerModel)Backbones.CreateCustom("mixformer", MixFormerFixtures.SmallKwargs(), MixFormerFixtures.SmallClasses);
        using var weights = SafeTensors.Load(MixFormerFixtures.Path("small.weights.safetensors"));
        var edited = weights.Select(kv => kv.Key == "layers.1.blocks.1.attn.relative_position_index"
            ? new KeyValuePair<string, Tensor>(kv.Key, kv.Value.Flip(0)) : kv).ToList();
        var e = Assert.ThrowsExactly<ArgumentException>(() => model.LoadPretrained(edited));
        StringAssert.Contains(e.Message, "layers.1.blocks.1.attn.relative_position_index");
    }

    [TestMethod]
    public void MixedPaddleAndPyTorchNamesAreRejected()
    {
        using var scope = TensorScope.Begin();
        using var model = (MixFormerModel)Backbones.CreateCustom("mixformer", MixFormerFixtures.SmallKwargs(), MixFormerFixtures.SmallClasses);
        using var weights = SafeTensors.Load(MixFormerFixtures.Path("small.weights.safetensors"));
        var edited = weights.Select(kv => kv.Key == "patch_embed.stem.1.running_mean"
            ? new KeyValuePair<string, Tensor>("patch_embed.stem.1._mean", kv.Value) : kv).ToList();
        var e = Assert.ThrowsExactly<ArgumentException>(() => model.LoadPretrained(edited));
        StringAssert.Contains(e.Message, "patch_embed.stem.1._mean");
        StringAssert.Contains(e.Message, "running_var");
    }

    [TestMethod]
    public void AHeadlessCheckpointKeepsTheFreshHeadAndReportsIt()
    {
        using var scope = TensorScope.Begin();
        using var model = (MixFormerModel)Backbones.CreateCustom("mixformer", MixFormerFixtures.SmallKwargs(), MixFormerFixtures.SmallClasses);
        using var weights = SafeTensors.Load(MixFormerFixtures.Path("small.weights.safetensors"));
        string[] head = { "norm.weight", "norm.bias", "last_proj.weight", "last_proj.bias", "head.weight", "head.bias" };
        var load = model.LoadPretrained(weights.Where(kv => !head.Contains(kv.Key)));
        CollectionAssert.AreEquivalent(head, load.SkippedHeadKeys.ToArray());
        var sd = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.AreEqual(0.0, MixFormerFixtures.MaxAbs(weights["layers.3.blocks.0.attn.proj.weight"], sd["layers.3.blocks.0.attn.proj.weight"]));
        Assert.AreEqual(1.0, sd["norm.weight"].Mean().ToDouble(), "fresh final norm");
    }

    [TestMethod]
    public void AMissingKeyIsAClearErrorListingIt()
    {
        using var scope = TensorScope.Begin();
        using var model = (MixFormerModel)Backbones.CreateCustom("mixformer", MixFormerFixtures.SmallKwargs(), MixFormerFixtures.SmallClasses);
        using var weights = SafeTensors.Load(MixFormerFixtures.Path("small.weights.safetensors"));
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() =>
            model.LoadPretrained(weights.Where(kv => kv.Key != "layers.2.blocks.0.attn.qkv.bias")));
        StringAssert.Contains(e.Message, "layers.2.blocks.0.attn.qkv.bias");
    }
}

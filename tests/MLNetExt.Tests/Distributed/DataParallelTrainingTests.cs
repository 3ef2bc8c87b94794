using System.Text.Json.Nodes;
using MLNetExt.Data;
using MLNetExt.Distributed;
using MLNetExt.Tests.Training;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Tests.Distributed;

/// <summary>The trainer with a process group: two ranks (threads, each with its own Gloo group on loopback) train as one
/// process with the whole global batch does.</summary>
[TestClass]
public sealed class DataParallelTrainingTests
{
    /// <summary>TransNeXt's test row (no BatchNorm, so per-process statistics play no part), SGD (linear in the
    /// gradients), no drop path: the only difference between the runs is where each sample's gradient is computed.</summary>
    static ImageClassificationOptions Options(int epochs, string? checkpoints = null) => new()
    {
        Model = "transnext",
        CustomKwargs = JsonNode.Parse("""{"img_size": 64, "window_size": [3, 3, 3, null], "patch_size": 4, "embed_dims": [16, 24, 32, 48], "num_heads": [2, 2, 4, 4], "mlp_ratios": [4, 4, 3, 2], "qkv_bias": true, "depths": [1, 1, 2, 1], "sr_ratios": [8, 4, 2, 1], "norm_layer": {"type": "LayerNorm", "eps": 1e-6}}""")!.AsObject(),
        ImageSize = 64,
        Epochs = epochs,
        BatchSize = 8,
        Optimizer = "sgd",
        LearningRate = 0.05,
        WarmupEpochs = 0,
        DropPathRate = 0,
        Workers = 1,
        Seed = 7,
        CheckpointDirectory = checkpoints,
    };

    static Dictionary<string, float[]> Weights(TrainingOutcome o)
    {
        using (o.Model)
            return o.Model.StateDict().Where(kv => kv.Value.DType == DType.Float32).ToDictionary(kv => kv.Key, kv => kv.Value.ToArray<float>());
    }

    static (Dictionary<string, float[]> Weights, TrainingHistory History)[] OnTwoRanks(ImageClassificationOptions options, ImageDataset data) =>
        DistributedTests.OnRanks(2, group =>
        {
            var outcome = Trainer.Run(options with { ProcessGroup = group }, data, null, default);
            return (Weights(outcome), outcome.History);
        }, timeoutSeconds: 60);

    static void AssertSame(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual, string what)
    {
        foreach (var (key, e) in expected)
        {
            var a = actual[key];
            for (int i = 0; i < e.Length; i++)
                Assert.AreEqual(e[i], a[i], 2e-5 + 2e-4 * Math.Abs(e[i]), $"{what}: {key}[{i}]");
        }
    }

    [TestMethod]
    public void TwoRanks_TrainAsOneProcessWithTheWholeBatch_AndOnlyRankZeroWrites()
    {
        var data = TrainerTests.ColorData(perClass: 5, seed: 3);   // 15 images: 12 train, 3 validation; steps of 8 and 4
        var outcome = Trainer.Run(Options(epochs: 1), data, null, default);
        var singleHistory = outcome.History;
        var single = Weights(outcome);
        var dir = Directory.CreateTempSubdirectory("mlnetext-ddp-");
        try
        {
            var ranks = OnTwoRanks(Options(epochs: 1, dir.FullName), data);
            for (int r = 0; r < 2; r++) AssertSame(single, ranks[r].Weights, $"rank {r} vs one process");
            Assert.AreEqual("2", ranks[0].History.Settings["world_size"]);
            Assert.AreEqual(ranks[0].History.Epochs[0].TrainLoss, ranks[1].History.Epochs[0].TrainLoss, "the epoch's loss is reduced over the ranks");
            Assert.AreEqual(singleHistory.Epochs[0].TrainLoss, ranks[0].History.Epochs[0].TrainLoss, 1e-4);
            // validation: each rank scored part of the 3 images, put together as one process scores them all
            for (int r = 0; r < 2; r++)
            {
                var (a, b) = (singleHistory.Final!, ranks[r].History.Final!);
                Assert.AreEqual((a.Count, a.Top1), (b.Count, b.Top1), $"rank {r}: validation");
                Assert.AreEqual(a.LogLoss, b.LogLoss, 1e-4, $"rank {r}: validation log-loss");
            }
            CollectionAssert.AreEquivalent(new[] { CheckpointStore.Last, CheckpointStore.Best }, dir.GetFiles().Select(f => f.Name).ToArray(), "rank 0's checkpoints, nothing else");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>MixFormer's tiny row has BatchNorm in every block: with per-process statistics two ranks normalise each
    /// shard on its own and drift from one process; with <see cref="ImageClassificationOptions.SyncBatchNorm"/> they
    /// normalise with the global batch's statistics, so weights and running statistics equal one process's (steps of 8
    /// and 4 images: equal shards).</summary>
    [TestMethod]
    public void TwoRanks_WithSyncBatchNorm_EqualOneProcess_ForABatchNormModel()
    {
        var data = TrainerTests.ColorData(perClass: 5, seed: 3);
        var options = Options(epochs: 1) with { Model = "mixformer", CustomKwargs = TrainerTests.TinyKwargs(), LearningRate = 0.02 };
        var single = Weights(Trainer.Run(options, data, null, default));
        Assert.IsTrue(single.Keys.Any(k => k.EndsWith("running_var")), "the model has BatchNorm");
        var synced = DistributedTests.OnRanks(2, group =>
        {
            var outcome = Trainer.Run(options with { ProcessGroup = group, SyncBatchNorm = true }, data, null, default);
            bool untied = outcome.Model.NamedModules().Select(m => m.Module).OfType<MLNetExt.Nn.BatchNorm2d>().All(bn => bn.Sync is null);
            return (Weights: Weights(outcome), Untied: untied);
        }, timeoutSeconds: 60);
        for (int r = 0; r < 2; r++)
        {
            AssertSame(single, synced[r].Weights, $"rank {r} with synchronised BatchNorm vs one process");
            Assert.IsTrue(synced[r].Untied, $"rank {r}: the trained model carries no tie to the group");
        }
        var perProcess = OnTwoRanks(options, data)[0].Weights;
        Assert.IsTrue(single.Any(kv => kv.Value.Zip(perProcess[kv.Key]).Any(t => Math.Abs(t.First - t.Second) > 1e-3 + 1e-2 * Math.Abs(t.First))),
            "per-process BatchNorm statistics differ from one process (what synchronising corrects)");
    }

    [TestMethod]
    public void TwoRanks_WithGradientAccumulation_EqualOneProcess()
    {
        var data = TrainerTests.ColorData(perClass: 7, seed: 5);   // 18 train (micro-batches 8, 8, 2: 4, 4, 1 per rank), 3 validation
        var options = Options(epochs: 1) with { AccumulationSteps = 2, ValidationFraction = 0.2 };
        var single = Weights(Trainer.Run(options, data, null, default));
        var ranks = OnTwoRanks(options, data);
        for (int r = 0; r < 2; r++) AssertSame(single, ranks[r].Weights, $"rank {r} vs one process, 2 micro-batches per step");
    }

    [TestMethod]
    public void TwoRanksInterrupted_ResumedByOneProcess_EqualOneProcessThroughout()
    {
        var data = TrainerTests.ColorData(perClass: 5, seed: 4);
        var single = Weights(Trainer.Run(Options(epochs: 2), data, null, default));
        var dir2 = Directory.CreateTempSubdirectory("mlnetext-ddp-resume-");
        try
        {
            // two ranks stopped (as Ctrl-C would) once epoch 1 ended: they save after the first step of epoch 2, a
            // checkpoint inside the epoch that one process then resumes
            var first = Options(epochs: 2, dir2.FullName);
            using var cancel = new CancellationTokenSource();
            var progress = first with
            {
                Progress = p => { if (p.Phase == TrainingPhase.EpochEnd && p.Epoch == 1) cancel.Cancel(); },
                Cancellation = cancel.Token,
            };
            var stopped = DistributedTests.OnRanks(2, group =>
                Assert.ThrowsExactly<TrainingInterruptedException>(() => Trainer.Run(progress with { ProcessGroup = group }, data, null, cancel.Token)).Message,
                timeoutSeconds: 60);
            StringAssert.Contains(stopped[0], "interrupted in epoch 2 at batch 1");
            var resumed = Weights(Trainer.Run(first with { ResumeFrom = Path.Combine(dir2.FullName, CheckpointStore.Last) }, data, null, default));
            AssertSame(single, resumed, "two ranks for epoch 1 and a step, one process for the rest, vs one process");
        }
        finally { dir2.Delete(true); }
    }
}

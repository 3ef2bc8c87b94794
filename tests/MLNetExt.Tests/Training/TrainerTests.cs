using System.Text.Json.Nodes;
using MLNetExt.Data;
using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Inference;
using MLNetExt.Imaging;
using MLNetExt.MLNet;

namespace MLNetExt.Tests.Training;

/// <summary>The trainer on a tiny MixFormer (four one-block stages, 16–48 channels) at 32×32 on in-memory images
/// whose class is their dominant colour: fast enough for CI, and every behaviour (resume, EMA, accumulation,
/// Mixup, probe cache, early stop, checkpoint failure, NaN) runs through the real loop.</summary>
[TestClass]
public sealed class TrainerTests
{
    internal static JsonObject TinyKwargs() => new()
    {
        ["embed_dim"] = new JsonArray(16, 24, 32, 48),
        ["depths"] = new JsonArray(1, 1, 1, 1),
        ["num_heads"] = new JsonArray(2, 3, 2, 3),
    };

    internal static readonly string[] Colors = ["red", "green", "blue"];

    /// <summary>40×40 noisy images whose class channel is brighter (class = argmax of the mean colour).</summary>
    internal static ImageDataset ColorData(int perClass, ulong seed, string source = "colours")
    {
        var items = new List<ImageItem>();
        for (int c = 0; c < Colors.Length; c++)
            for (int i = 0; i < perClass; i++)
            {
                var rng = Rng.For(seed, c, i);
                var img = new RgbImage(40, 40);
                for (int p = 0; p < 40 * 40; p++)
                    for (int ch = 0; ch < 3; ch++)
                        img.Pixels[p * 3 + ch] = (byte)Math.Clamp((ch == c ? 150 : 90) + (int)(rng.NextDouble() * 80) - 40, 0, 255);
                items.Add(new ImageItem($"{Colors[c]}_{i}", c, Image: img));
            }
        return ImageDataset.FromList(Colors, items, source);
    }

    internal static ImageClassificationOptions Tiny(string? checkpoints = null) => new()
    {
        Model = "mixformer",
        CustomKwargs = TinyKwargs(),
        ImageSize = 32,
        Epochs = 3,
        BatchSize = 8,
        LearningRate = 3e-3,
        WarmupEpochs = 0.5,
        Workers = 2,
        Seed = 7,
        CheckpointDirectory = checkpoints,
    };

    static DirectoryInfo TempDir() => Directory.CreateTempSubdirectory("mlnetext-train-");

    static float MaxAbsDiff(IReadOnlyList<KeyValuePair<string, Tensor>> a, IReadOnlyList<KeyValuePair<string, Tensor>> b)
    {
        Assert.HasCount(a.Count, b);
        float worst = 0;
        for (int i = 0; i < a.Count; i++)
        {
            Assert.AreEqual(a[i].Key, b[i].Key);
            using var scope = TensorScope.Begin();
            var x = a[i].Value.To(DType.Float64);
            var y = b[i].Value.To(DType.Float64);
            worst = Math.Max(worst, (float)x.Sub(y).Abs().Max().ToDouble());
        }
        return worst;
    }

    [TestMethod]
    public void Training_LossFalls_AndValidationBeatsChance()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(16, 1);
        var val = ColorData(6, 2, "val");
        using var model = new ImageClassificationEstimator(Tiny() with { Epochs = 4 }).Fit(data, val);
        var h = model.History!;
        Assert.HasCount(4, h.Epochs);
        Assert.IsLessThan(h.Epochs[0].TrainLoss, h.Epochs[^1].TrainLoss);
        Assert.IsGreaterThan(0.6, h.Final!.Top1, "3 classes: chance is 1/3");
        Assert.AreEqual(18, h.Final.Count);
        Assert.AreEqual(4 * 6, h.Steps.Count, "48 images / batch 8 = 6 steps per epoch");
        Assert.IsNotNull(h.BestEpoch);
    }

    /// <summary>A training set one image past a whole number of batches (9 images, batch 8): the last batch of one image
    /// is left out, as BatchNorm cannot train on one value per channel (MixFormer's channel interaction pools to 1×1 before
    /// its BatchNorm; PyTorch refuses such a batch, and the running variance became NaN, so validation failed).</summary>
    [TestMethod]
    public void Training_OneImagePastAWholeBatch_LeavesTheSingleImageOut_AndValidatesFinitely()
    {
        using var scope = TensorScope.Begin();
        var data = ImageDataset.FromList(Colors, ColorData(3, 1).Items.Take(9).ToList());
        using var model = new ImageClassificationEstimator(Tiny() with { Epochs = 2 }).Fit(data, ColorData(2, 2, "val"));
        var h = model.History!;
        Assert.AreEqual(2, h.Steps.Count, "one step of 8 images per epoch");
        Assert.IsTrue(double.IsFinite(h.Final!.LogLoss), $"validation log-loss {h.Final.LogLoss}");
    }

    /// <summary>Imbalanced classes (the largest 5x the smallest or more) unweighed in the loss get a note naming both and
    /// the two settings; balanced data, a weighed loss or a missing class get none. Through the trainer too.</summary>
    [TestMethod]
    public void ImbalanceNote_NamesTheClassesAndTheSettings_WhenTheLossDoesNotWeighThem()
    {
        string[] abc = ["a", "b", "c"];
        var note = TrainingPlan.ImbalanceNote([100, 20, 10], abc, ClassWeighting.None, "top1");
        StringAssert.Contains(note, "'a' has 100 training images, 'c' 10 (10x)");
        StringAssert.Contains(note, "ClassWeighting = Balanced (--class-weights balanced)");
        StringAssert.Contains(note, "--monitor macro_f1");
        Assert.DoesNotContain("--monitor", TrainingPlan.ImbalanceNote([100, 20, 10], abc, ClassWeighting.None, "macro_f1")!, "already monitored");
        Assert.IsNull(TrainingPlan.ImbalanceNote([100, 20, 10], abc, ClassWeighting.Balanced, "top1"), "already weighed");
        Assert.IsNull(TrainingPlan.ImbalanceNote([49, 20, 10], abc, ClassWeighting.None, "top1"), "under 5x");
        Assert.IsNull(TrainingPlan.ImbalanceNote([49, 0, 10], abc, ClassWeighting.None, "top1"), "an empty class is another error");

        var messages = new List<string>();
        var data = ColorData(10, 1);
        var skewed = ImageDataset.FromList(Colors, data.Items.Where(i => i.Label != 2 || i.Name.EndsWith("_0", StringComparison.Ordinal)).ToList());
        using var scope = TensorScope.Begin();
        using var model = new ImageClassificationEstimator(Tiny() with { Epochs = 1, Progress = p => { if (p.Message is { } m) messages.Add(m); } })
            .Fit(skewed, ColorData(2, 2, "val"));
        Assert.HasCount(1, messages.Where(m => m.Contains("the classes are imbalanced: 'red' has 10 training images, 'blue' 1 (10x)")).ToList(),
            string.Join(Environment.NewLine, messages));
    }

    /// <summary>A validation set under 50 images gets a note saying how far one image moves top-1; a larger one none.</summary>
    [TestMethod]
    public void SmallValidationNote_SaysHowFarOneImageMovesTopOne()
    {
        StringAssert.Contains(TrainingPlan.SmallValidationNote(8), "holds 8 images, so one image moves top-1 by 12.5 points");
        StringAssert.Contains(TrainingPlan.SmallValidationNote(49), "--val-fraction");
        Assert.IsNull(TrainingPlan.SmallValidationNote(50));
        Assert.IsNull(TrainingPlan.SmallValidationNote(0), "no validation set: nothing to say about its size");
        var messages = new List<string>();
        using var scope = TensorScope.Begin();
        using var model = new ImageClassificationEstimator(Tiny() with { Epochs = 1, Progress = p => { if (p.Message is { } m) messages.Add(m); } })
            .Fit(ColorData(4, 1), ColorData(2, 2, "val"));
        Assert.HasCount(1, messages.Where(m => m.Contains("the validation set holds 6 images, so one image moves top-1 by 16.7 points")).ToList(),
            string.Join(Environment.NewLine, messages));
    }

    /// <summary>Training on the CPU, the run says once at the start: that bfloat16 autocast asked for on a processor
    /// without bfloat16 instructions is emulated (with the measured cost and the way back to float32), or, on a
    /// processor with them, that autocast left unset would usually train faster. The run goes on as asked; nothing is
    /// said on CUDA, when the option matches the processor, or when --bf16 false was given.</summary>
    [TestMethod]
    public void Bfloat16Note_WarnsOfEmulation_HintsWhereNative_AndTheRunGoesOn()
    {
        StringAssert.Contains(TrainingPlan.Bfloat16Note(true, Device.Cpu, null), "without bfloat16 instructions");
        Assert.IsNull(TrainingPlan.Bfloat16Note(true, Device.Cpu, "avx512_bf16"), "autocast where it is native");
        Assert.IsNull(TrainingPlan.Bfloat16Note(false, Device.Cpu, null));
        Assert.IsNull(TrainingPlan.Bfloat16Note(true, Device.Cuda(0), null), "GPU training");
        StringAssert.Contains(TrainingPlan.Bfloat16Note(null, Device.Cpu, "avx512_bf16"), "natively (avx512_bf16): MixedPrecision = true (--bf16");
        Assert.IsNull(TrainingPlan.Bfloat16Note(null, Device.Cpu, null), "no bfloat16 instructions");
        Assert.IsNull(TrainingPlan.Bfloat16Note(false, Device.Cpu, "amx_bf16"), "--bf16 false given");
        Assert.IsNull(TrainingPlan.Bfloat16Note(null, Device.Cuda(0), "amx_bf16"), "GPU training");
        StringAssert.Contains(TrainingPlan.Bfloat16Note(null, Device.Parse(" CPU "), "amx_bf16"), "amx_bf16", "spelled as Device.Parse takes it");

        // through the trainer on this machine: autocast asked for, then left unset
        using var scope = TensorScope.Begin();
        foreach (var (mixed, said, expected) in new (bool?, string, bool)[]
                 {
                     (true, "without bfloat16 instructions", TorchRuntime.NativeBfloat16Flag is null),
                     (null, "computes bfloat16 natively", TorchRuntime.NativeBfloat16Flag is not null),
                 })
        {
            var messages = new List<string>();
            var options = Tiny() with { Epochs = 1, Device = "cpu", MixedPrecision = mixed, Progress = p => { if (p.Message is { } m) messages.Add(m); } };
            using var model = new ImageClassificationEstimator(options).Fit(ColorData(4, 1), ColorData(2, 2, "val"));
            Assert.HasCount(1, model.History!.Epochs);
            Assert.HasCount(expected ? 1 : 0, messages.Where(m => m.Contains(said)).ToList(), string.Join(Environment.NewLine, messages));
        }
    }

    /// <summary>Undecodable images in either set are left out of training and of the validation score, and the run says
    /// so once, naming one of each (a score over fewer images than the set holds is explained).</summary>
    [TestMethod]
    public void UndecodableImages_AreSkipped_AndReportedOncePerSet()
    {
        using var scope = TensorScope.Begin();
        static ImageDataset WithBroken(ImageDataset d, string name) =>
            ImageDataset.FromList(Colors, d.Items.Append(new ImageItem(name, 0, Bytes: [0xFF, 0xD8, 0xFF, 0xDB, 1, 2, 3])).ToList(), d.Source);
        var messages = new List<string>();
        var options = Tiny() with { Epochs = 2, Progress = p => { if (p.Message is { } m) messages.Add(m); } };
        using var model = new ImageClassificationEstimator(options).Fit(WithBroken(ColorData(4, 1), "broken-train"), WithBroken(ColorData(2, 2, "val"), "broken-val"));
        Assert.AreEqual(6, model.History!.Final!.Count, "the broken validation image is not scored");
        var train = messages.Where(m => m.Contains("training image(s) could not be decoded")).ToList();
        var val = messages.Where(m => m.Contains("validation image(s) could not be decoded")).ToList();
        Assert.HasCount(1, train, string.Join(Environment.NewLine, messages));
        Assert.HasCount(1, val, string.Join(Environment.NewLine, messages));
        StringAssert.StartsWith(train[0], "1 training image(s)");
        StringAssert.Contains(train[0], "broken-train");
        StringAssert.Contains(val[0], "broken-val");
    }

    /// <summary>The optimizer's state and the schedule's position carry across the interruption whatever they are:
    /// AdamW's two moments with the cosine schedule, SGD's momentum buffers with one-cycle.</summary>
    [TestMethod]
    [DataRow("adamw", "cosine")]
    [DataRow("sgd", "one-cycle")]
    public void Resume_AfterInterrupt_EqualsAnUninterruptedRun(string optimizer, string schedule)
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(12, 3);
        var val = ColorData(4, 4, "val");
        // EMA, gradient accumulation and Mixup/CutMix all carry state or randomness across the interruption.
        var options = Tiny() with
        {
            Ema = true, EmaDecay = 0.9, AccumulationSteps = 2, MixupAlpha = 0.4, CutmixAlpha = 1.0, DropPathRate = 0.1,
            Optimizer = optimizer, Schedule = schedule, LearningRate = optimizer == "sgd" ? 0.05 : 3e-3,
        };

        var dirA = TempDir();
        var dirB = TempDir();
        try
        {
            using var straight = new ImageClassificationEstimator(options with { CheckpointDirectory = dirA.FullName }).Fit(data, val);

            using var cts = new CancellationTokenSource();
            var interrupted = options with
            {
                CheckpointDirectory = dirB.FullName,
                Progress = p => { if (p.Phase == TrainingPhase.Training && p.GlobalStep == 4) cts.Cancel(); },
            };
            var stop = Assert.ThrowsExactly<TrainingInterruptedException>(() => new ImageClassificationEstimator(interrupted).Fit(data, val, cts.Token));
            Assert.AreEqual(Path.Combine(dirB.FullName, CheckpointStore.Last), stop.Checkpoint);
            StringAssert.Contains(stop.Message, "interrupted in epoch 2");

            using var resumed = new ImageClassificationEstimator(options with { CheckpointDirectory = dirB.FullName, ResumeFrom = stop.Checkpoint }).Fit(data, val);
            Assert.AreEqual(0f, MaxAbsDiff(straight.Backbone.StateDict(), resumed.Backbone.StateDict()), "resumed weights must equal the uninterrupted run's");
            CollectionAssert.AreEqual(straight.History!.Steps.Select(s => (s.Step, s.Loss, s.LearningRate)).ToList(),
                resumed.History!.Steps.Select(s => (s.Step, s.Loss, s.LearningRate)).ToList());
            Assert.AreEqual(optimizer, straight.History.Settings["optimizer"]);
            Assert.AreEqual(schedule, straight.History.Settings["schedule"]);
            Assert.AreEqual(straight.History.Final!.LogLoss, resumed.History.Final!.LogLoss);
            CollectionAssert.AreEqual(straight.History.Epochs.Select(e => (e.TrainLoss, e.ValLoss)).ToList(), resumed.History.Epochs.Select(e => (e.TrainLoss, e.ValLoss)).ToList(),
                "the interrupted epoch's mean loss covers the whole epoch");
            Assert.AreEqual(straight.History.BestEpoch, resumed.History.BestEpoch);
        }
        finally
        {
            dirA.Delete(true);
            dirB.Delete(true);
        }
    }

    /// <summary>Every stop point of an epoch end's two writes (checkpoint-last, then checkpoint-best), simulated on the
    /// files: checkpoint-best missing (stopped before its first rename) or stale (an older or foreign file left in
    /// place). The resumed run notices, takes the best weights from checkpoint-last (which ends that best epoch),
    /// rewrites checkpoint-best, and ends exactly as the uninterrupted run.</summary>
    [TestMethod, TestCategory("Slow")]
    public void Resume_AfterAStopBetweenTheLastAndBestWrites_KeepsTheRightBest()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(12, 3);
        var val = ColorData(4, 4, "val");
        var options = Tiny();
        var dirs = Enumerable.Range(0, 4).Select(_ => TempDir()).ToArray();
        try
        {
            // The uninterrupted run; at its first step of epoch 2 the files on disk are epoch 1's pair, which is
            // copied aside as the state a stop at that epoch end would leave.
            bool copied = false;
            using var straight = new ImageClassificationEstimator(options with
            {
                CheckpointDirectory = dirs[0].FullName,
                Progress = p =>
                {
                    if (copied || p.Phase != TrainingPhase.Training || p.Epoch != 2) return;
                    copied = true;
                    foreach (var d in dirs[1..3])
                        foreach (var f in dirs[0].GetFiles()) f.CopyTo(Path.Combine(d.FullName, f.Name));
                },
            }).Fit(data, val);
            Assert.IsTrue(copied);
            var foreign = Path.Combine(dirs[3].FullName, CheckpointStore.Best);
            new ImageClassificationEstimator(options with { Seed = 99, Epochs = 1, CheckpointDirectory = dirs[3].FullName }).Fit(data, val).Dispose();
            foreach (var (dir, damage) in new (DirectoryInfo, Action<string>)[]
            {
                (dirs[1], best => File.Delete(best)),                         // stopped before checkpoint-best's first rename
                (dirs[2], best => File.Copy(foreign, best, overwrite: true)), // a checkpoint-best of another run left in place
            })
            {
                var best = Path.Combine(dir.FullName, CheckpointStore.Best);
                damage(best);
                var messages = new List<string>();
                using var resumed = new ImageClassificationEstimator(options with
                {
                    CheckpointDirectory = dir.FullName,
                    ResumeFrom = Path.Combine(dir.FullName, CheckpointStore.Last),
                    Progress = p => { if (p.Message is { } m) messages.Add(m); },
                }).Fit(data, val);
                Assert.IsTrue(messages.Any(m => m.Contains("the best weights are taken from checkpoint-last", StringComparison.Ordinal)), string.Join("\n", messages));
                Assert.AreEqual(straight.History!.BestEpoch, resumed.History!.BestEpoch);
                Assert.AreEqual(0f, MaxAbsDiff(straight.Backbone.StateDict(), resumed.Backbone.StateDict()), "the kept model equals the uninterrupted run's");
                Assert.AreEqual(straight.History.Final!.LogLoss, resumed.History.Final!.LogLoss);
                var (_, state, tensors) = TrainingCheckpoint.Read(best);
                tensors.Dispose();
                Assert.AreEqual(resumed.History.BestEpoch, state.Epoch, "checkpoint-best holds the best epoch again");
            }
        }
        finally
        {
            foreach (var d in dirs) d.Delete(true);
        }
    }

    /// <summary>A step far beyond the machine's memory (the tiny model at 2048x2048, batch 32: about 77 GB measured
    /// here) is refused before the first step with the estimate and a batch size that fits, instead of the kernel's
    /// OOM killer ending the process without a word.</summary>
    [TestMethod]
    public void TooLargeAStep_IsRefusedBeforeTheFirstStep_WithAnEstimate()
    {
        if (StepMemory.Available() is not long available || available > 200e9) Assert.Inconclusive("needs a machine with less than 200 GB available");
        using var scope = TensorScope.Begin();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<TrainingException>(() =>
            new ImageClassificationEstimator(Tiny() with { ImageSize = 2048, BatchSize = 32, Epochs = 1 }).Fit(ColorData(2, 1), ColorData(1, 2, "val")));
        StringAssert.StartsWith(e.Message, "A training step at 2048x2048 with batch 32 needs about");
        StringAssert.Contains(e.Message, "are available. Use --batch-size");
        Assert.IsLessThan(60.0, sw.Elapsed.TotalSeconds, "refused before training");
    }

    [TestMethod]
    public void Resume_WithOtherSettings_IsRefusedWithTheDifferences()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(6, 5);
        var dir = TempDir();
        try
        {
            using (new ImageClassificationEstimator(Tiny(dir.FullName) with { Epochs = 1 }).Fit(data)) { }
            var ckpt = Path.Combine(dir.FullName, CheckpointStore.Last);
            var e = Assert.ThrowsExactly<TrainingException>(() =>
                new ImageClassificationEstimator(Tiny(dir.FullName) with { Epochs = 1, BatchSize = 4, ResumeFrom = ckpt }).Fit(data));
            StringAssert.Contains(e.Message, "batch_size: checkpoint 8, now 4");
            e = Assert.ThrowsExactly<TrainingException>(() =>
                new ImageClassificationEstimator(Tiny(dir.FullName) with { Epochs = 1, Schedule = "step", ResumeFrom = ckpt }).Fit(data));
            StringAssert.Contains(e.Message, "schedule: checkpoint \"cosine\", now \"step\"");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>A checkpoint written before a knob existed has no fingerprint entry for it: the run matches when the knob
    /// is at its default (which is what that checkpoint's run did), and not otherwise.</summary>
    [TestMethod]
    public void Fingerprint_AKnobTheCheckpointPredates_MatchesItsDefault()
    {
        var resolved = new ResolvedSettings(32, 1e-3, 0, "cpu", 10, 10);
        var now = TrainingKnobs.Fingerprint(Tiny(), resolved, 30, 6);
        var old = (System.Text.Json.Nodes.JsonObject)now.DeepClone();
        old.Remove("schedule");
        old.Remove("optimizer");
        Assert.IsEmpty(TrainingKnobs.Differences(old, now, resolved));
        var sgd = TrainingKnobs.Fingerprint(Tiny() with { Optimizer = "sgd" }, resolved, 30, 6);
        CollectionAssert.AreEqual(new[] { "optimizer: checkpoint \"adamw\", now \"sgd\"" }, TrainingKnobs.Differences(old, sgd, resolved));
    }

    [TestMethod]
    public void EarlyStopping_StopsWhenTheMonitoredMetricStalls()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(6, 6);
        var val = ColorData(3, 7, "val");
        // A linear probe with a learning rate this small leaves every probability equal to float precision: top-1
        // never improves after epoch 1.
        using var model = new ImageClassificationEstimator(Tiny() with
        {
            Mode = TrainingMode.LinearProbe, Epochs = 6, LearningRate = 1e-12, Monitor = "top1", EarlyStoppingPatience = 2,
        }).Fit(data, val);
        var h = model.History!;
        Assert.HasCount(3, h.Epochs, "best at epoch 1, two epochs without improvement, stop");
        Assert.AreEqual(1, h.BestEpoch);
        StringAssert.StartsWith(h.StopReason, "early stop after epoch 3");
    }

    [TestMethod]
    public void LinearProbe_CachedFeatures_EqualTheUncachedPath()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(8, 8);
        var val = ColorData(3, 9, "val");
        var options = Tiny() with { Mode = TrainingMode.LinearProbe, Epochs = 2, LearningRate = 0.05 };
        using var cached = new ImageClassificationEstimator(options).Fit(data, val);
        using var direct = new ImageClassificationEstimator(options with { CacheFeatures = false }).Fit(data, val);
        Assert.IsLessThanOrEqualTo(1e-5f, MaxAbsDiff(cached.Backbone.StateDict(), direct.Backbone.StateDict()));
        for (int i = 0; i < cached.History!.Steps.Count; i++)
            Assert.AreEqual(direct.History!.Steps[i].Loss, cached.History.Steps[i].Loss, 1e-5,
                $"step {i}: {string.Join(" ", direct.History.Steps.Select(s => s.Loss.ToString("F5")))} vs {string.Join(" ", cached.History.Steps.Select(s => s.Loss.ToString("F5")))}");
        // Only the classifier moved.
        using var fresh = Backbones.CreateCustom("mixformer", TinyKwargs(), 3);
        var trainedKeys = cached.Backbone.ClassifierKeys.ToHashSet();
        foreach (var ((k, a), (_, b)) in cached.Backbone.StateDict().Zip(NewInit(options, data).StateDict()))
            if (!trainedKeys.Contains(k)) Assert.AreEqual(0.0, a.Sub(b).Abs().Max().ToDouble(), k);
    }

    /// <summary>The model a run with <paramref name="options"/> starts from (same seed, same construction).</summary>
    static Backbone NewInit(ImageClassificationOptions options, ImageDataset data)
    {
        TorchRuntime.ManualSeed(options.Seed ?? 0);
        var kw = (JsonObject)options.CustomKwargs!.DeepClone();
        kw["drop_path_rate"] = 0.0;
        return Backbones.CreateCustom("mixformer", kw, data.Classes.Count);
    }

    [TestMethod]
    public void FreezeStages_KeepsTheStemAndFirstStagesAndTheirStatistics()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(6, 10);
        var options = Tiny() with { Mode = TrainingMode.FreezeStages, FrozenStages = 2, Epochs = 1, DropPathRate = 0 };
        using var model = new ImageClassificationEstimator(options).Fit(data);
        using var start = NewInit(options, data);
        var before = start.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        int frozen = 0, moved = 0;
        foreach (var (k, v) in model.Backbone.StateDict())
        {
            double diff = v.Sub(before[k]).Abs().Max().ToDouble();
            bool isParameter = model.Backbone.NamedParameters().Any(p => p.Name == k);
            int stage = isParameter ? model.Backbone.StageOf(k) : -1;
            if (isParameter && stage <= 2) { Assert.AreEqual(0.0, diff, k); frozen++; }
            if (isParameter && stage >= 3 && diff > 0) moved++;
            if (k.StartsWith("layers.0.blocks", StringComparison.Ordinal) && k.EndsWith("running_mean", StringComparison.Ordinal))
                Assert.AreEqual(0.0, diff, $"{k}: batch-norm statistics of a frozen stage must not change");
        }
        Assert.IsGreaterThan(10, frozen);
        Assert.IsGreaterThan(10, moved);
    }

    [TestMethod]
    public void CheckpointWriteFailure_LeavesThePreviousCheckpointValid()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(6, 11);
        var dir = TempDir();
        var messages = new List<string>();
        int writes = 0;
        try
        {
            // The second checkpoint write (end of epoch 2) fails after 1000 bytes, as on a full disk.
            SafeTensors.WriteInterceptor = s => ++writes >= 2 ? new FailingStream(s, 1000) : s;
            var options = Tiny(dir.FullName) with { Epochs = 2, ValidationFraction = 0, Progress = p => { if (p.Message is { } m) messages.Add(m); } };
            using var model = new ImageClassificationEstimator(options).Fit(data);
            Assert.HasCount(2, model.History!.Epochs, "a failed checkpoint does not stop training");
        }
        finally { SafeTensors.WriteInterceptor = null; }
        try
        {
            Assert.IsTrue(messages.Any(m => m.Contains("Could not write checkpoint") && m.Contains("No space left") && m.Contains("is intact")),
                string.Join("\n", messages));
            var (_, state, tensors) = TrainingCheckpoint.Read(Path.Combine(dir.FullName, CheckpointStore.Last));
            using (tensors) Assert.AreEqual(1, state.Epoch, "the checkpoint of epoch 1 survives");
            CollectionAssert.AreEquivalent(new[] { CheckpointStore.Last }, dir.GetFiles().Select(f => f.Name).ToArray(), "no temporary file is left");
        }
        finally { dir.Delete(true); }
    }

    sealed class FailingStream(Stream inner, long limit) : Stream
    {
        long _written;
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > limit) throw new IOException("No space left on device");
            _written += buffer.Length;
            inner.Write(buffer);
        }
        public override void Flush() => inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    [TestMethod]
    public void NonFiniteLoss_StopsAndNamesTheStepAndTheLastGoodCheckpoint()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(6, 12);
        var dir = TempDir();
        try
        {
            // 18 images in batches of 8: 3 steps per epoch; the loss of the second step of epoch 2 turns NaN.
            var options = Tiny(dir.FullName) with { Epochs = 2, ValidationFraction = 0 };
            Trainer.PoisonMicroStep = 4;
            TrainingException e;
            try { e = Assert.ThrowsExactly<TrainingException>(() => new ImageClassificationEstimator(options).Fit(data)); }
            finally { Trainer.PoisonMicroStep = null; }
            StringAssert.Contains(e.Message, "non-finite loss (NaN) at epoch 2, batch 2 (optimizer step 5)");
            Assert.AreEqual(Path.Combine(dir.FullName, CheckpointStore.Last), e.LastGoodCheckpoint);
            var (_, state, tensors) = TrainingCheckpoint.Read(e.LastGoodCheckpoint!);
            using (tensors)
            {
                Assert.AreEqual(1, state.Epoch);
                foreach (var (k, t) in tensors) if (t.DType.IsFloatingPoint()) Assert.IsTrue(t.IsFinite().All().ToBoolean(), k);
            }
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void BadInput_ImageSizeTheBackboneCannotTake_IsNamed()
    {
        var data = ColorData(3, 13);
        var e = Assert.ThrowsExactly<InputSizeException>(() => new ImageClassificationEstimator(Tiny() with { ImageSize = 50 }).Fit(data));
        StringAssert.Contains(e.Message, "50");
    }

    [TestMethod]
    public void BadInput_WeightsOfAnotherFamily_SayWhatTheyLookLike()
    {
        using var scope = TensorScope.Begin();
        var dir = TempDir();
        try
        {
            var weights = Path.Combine(dir.FullName, "b0.safetensors");
            using (var b0 = Backbones.Create("mixformer_b0")) SafeTensors.Save(weights, b0.StateDict());
            var e = Assert.ThrowsExactly<StateDictMismatchException>(() =>
                new ImageClassificationEstimator(new ImageClassificationOptions { Model = "smt_t", WeightsPath = weights, Epochs = 1 }).Fit(ColorData(3, 14)));
            StringAssert.Contains(e.Message, "look like mixformer weights, closest to mixformer_b0");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void Model_SaveLoad_PredictsTheSame_AndExportsToOnnxWithTheSameScores()
    {
        using var scope = TensorScope.Begin();
        var data = ColorData(6, 15);
        using var model = new ImageClassificationEstimator(Tiny() with { Epochs = 1, ValidationFraction = 0 }).Fit(data);
        var dir = TempDir();
        try
        {
            var path = Path.Combine(dir.FullName, "model.safetensors");
            model.Save(path);
            using var loaded = ImageClassificationModel.Load(path);
            CollectionAssert.AreEqual(model.Classes.ToList(), loaded.Classes.ToList());
            var image = data.Items[4].Image!;
            var a = model.Predict(image, topK: 3);
            var b = loaded.Predict(image, topK: 3);
            Assert.AreEqual(a.Label, b.Label);
            Assert.AreEqual(a.Score, b.Score);
            Assert.HasCount(3, a.Top);

            var metrics = loaded.Evaluate(data);
            Assert.AreEqual(data.Count, metrics.Count);

            var onnx = Path.Combine(dir.FullName, "model.onnx");
            loaded.ExportOnnx(onnx);
            using var scorer = new OnnxImageScorer(onnx);
            CollectionAssert.AreEqual(model.Classes.ToList(), scorer.Labels.ToList());
            var scores = scorer.Score([image])[0];
            Assert.AreEqual(a.Score, scores[a.Index], Tolerances.OnnxExportParity);
        }
        finally { dir.Delete(true); }
    }
}

/// <summary>What the optimizer is given: parameter groups (the family's no-decay rule, layer-wise decay) and class
/// weights, checked on the plan a run would use.</summary>
[TestClass]
public sealed class TrainerPlanTests
{
    [TestMethod]
    public void LayerDecay_ScalesEachDepthGroup_AndTheFamilyNoDecayRuleHolds()
    {
        using var scope = TensorScope.Begin();
        var data = TrainerTests.ColorData(2, 20);
        var options = TrainerTests.Tiny() with { LayerDecay = 0.5, LearningRate = 1e-3, WeightDecay = 0.05 };
        var (groups, weights) = Trainer.Plan(options, data);
        Assert.IsNull(weights);
        using var model = Backbones.CreateCustom("mixformer", TrainerTests.TinyKwargs(), 3);
        int last = model.NumDepthGroups - 1;
        var all = groups.SelectMany(g => g.Parameters).ToList();
        CollectionAssert.AreEquivalent(model.NamedParameters().Select(p => p.Name).ToList(), all, "every parameter in exactly one group");
        foreach (var g in groups)
            foreach (var name in g.Parameters)
            {
                int depth = model.DepthGroupOf(name);
                Assert.AreEqual(1e-3 * Math.Pow(0.5, last - depth), g.LearningRate, 1e-15, name);
                var p = model.NamedParameters().Single(x => x.Name == name).Parameter;
                // MixFormer's recipe: no decay for 1-D tensors, biases, norms and the position tables.
                bool exempt = p.Dim <= 1 || name.EndsWith(".bias") || name.Contains("norm") || name.Contains("relative_position_bias_table") || name.Contains("absolute_pos_embed");
                Assert.AreEqual(exempt ? 0.0 : 0.05, g.WeightDecay, name);
            }
        Assert.IsTrue(groups.Any(g => g.Parameters.Contains("head.weight") && g.LearningRate == 1e-3 && g.WeightDecay == 0.05));
        Assert.IsTrue(groups.Any(g => g.Parameters.Any(n => n.Contains("relative_position_bias_table")) && g.WeightDecay == 0));
    }

    [TestMethod]
    public void FrozenStages_AreLeftOutOfTheGroups_AndBalancedWeightsFollowTheCounts()
    {
        using var scope = TensorScope.Begin();
        // 2 red, 4 green, 6 blue images: balanced weights N / (C · n_c) = 12/6, 12/12, 12/18.
        var full = TrainerTests.ColorData(6, 21);
        var data = full.Subset(Enumerable.Range(0, full.Count).Where(i => full.Items[i].Label == 2 || i % 6 < (full.Items[i].Label + 1) * 2));
        CollectionAssert.AreEqual(new[] { 2, 4, 6 }, data.CountPerClass());
        var (groups, weights) = Trainer.Plan(TrainerTests.Tiny() with { Mode = TrainingMode.FreezeStages, FrozenStages = 3, ClassWeighting = ClassWeighting.Balanced }, data);
        CollectionAssert.AreEqual(new[] { 2f, 1f, 12f / 18 }, weights);
        using var model = Backbones.CreateCustom("mixformer", TrainerTests.TinyKwargs(), 3);
        var trained = groups.SelectMany(g => g.Parameters).ToHashSet();
        foreach (var (name, _) in model.NamedParameters())
            Assert.AreEqual(model.StageOf(name) > 3, trained.Contains(name), name);
    }
}

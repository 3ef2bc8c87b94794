using System.Reflection;
using MLNetExt.Cli;
using MLNetExt.Training;

namespace MLNetExt.Tests.Training;

/// <summary>The table of training knobs is the one declaration of each setting: every option property is in it (or
/// named here as not a training knob), and the CLI's train options, their defaults and their error names come from it.</summary>
[TestClass]
public sealed class TrainingKnobsTests
{
    /// <summary>Options that are not training knobs: where data and outputs are, callbacks, ML.NET column names, and
    /// the pretrained tag (resolved into WeightsPath before training).</summary>
    static readonly string[] NotKnobs =
    [
        "Pretrained", "CheckpointDirectory", "ResumeFrom", "Progress", "Cancellation", "Ema", "ProcessGroup",
        "LabelColumnName", "ImageColumnName", "ImageFolder", "ValidationSet", "ScoreColumnName", "PredictedLabelColumnName",
    ];

    [TestMethod]
    public void EveryOptionIsAKnob_OrNamedAsNotOne()
    {
        var properties = typeof(ImageClassificationOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.Name != "EqualityContract").Select(p => p.Name).ToList();
        var knobs = TrainingKnobs.All.Select(k => k.Property).ToList();
        CollectionAssert.AreEquivalent(properties.Except(NotKnobs).ToList(), knobs, "a new option needs a row in TrainingKnobs.All");
        Assert.AreEqual(knobs.Count, knobs.Distinct().Count(), "one row per property");
        var cli = TrainingKnobs.All.Where(k => k.CommandLineName is not null).Select(k => k.CommandLineName).ToList();
        Assert.AreEqual(cli.Count, cli.Distinct().Count(), "one CLI option per knob");
    }

    [TestMethod]
    public void TrainCommand_HasAnOptionPerKnob_WithTheOptionsDefaults()
    {
        var command = TrainCommand.Create();
        foreach (var k in TrainingKnobs.All.Where(k => k.CommandLineName is not null))
            Assert.IsTrue(command.Options.Any(o => o.Name == k.CommandLineName), $"train has no {k.CommandLineName}");
        var parsed = TrainCommand.OptionsOf("--data", "d", "--variant", "smt_t", "--output", "o");
        var defaults = new ImageClassificationOptions { Model = "smt_t", CheckpointDirectory = "o" };
        foreach (var k in TrainingKnobs.All)
            Assert.AreEqual(k.Fingerprint(defaults, Resolved)?.ToJsonString(), k.Fingerprint(parsed, Resolved)?.ToJsonString(), k.Property);
        Assert.AreEqual(defaults with { Progress = null }, parsed with { Progress = null });
    }

    static readonly ResolvedSettings Resolved = new(224, 1e-3, 0.1, "cpu", 1, 1);

    [TestMethod]
    public void TrainingOptionInfo_DescribesAndSetsEachOption_ForFrontEnds()
    {
        TrainingOptionInfo Info(string property) => TrainingOptionInfo.All.Single(k => k.Property == property);
        var batch = Info("BatchSize");
        Assert.AreEqual(("--batch-size", typeof(int), (object?)32), (batch.CommandLineName, batch.ValueType, batch.DefaultValue));
        Assert.AreEqual(64, batch.WithValue(new ImageClassificationOptions(), 64).BatchSize);
        var e = Assert.ThrowsExactly<ArgumentException>(() => batch.WithValue(new ImageClassificationOptions(), "64"));
        StringAssert.Contains(e.Message, "BatchSize takes a Int32 value; got String");
        // command-line representations: --grad-clip 0 is no clipping, --mode freeze:K sets two properties, --ema DECAY two
        Assert.IsNull(Info("GradClipNorm").WithValue(new ImageClassificationOptions(), 0.0).GradClipNorm);
        var frozen = Info("Mode").WithValue(new ImageClassificationOptions(), "freeze:3");
        Assert.AreEqual((TrainingMode.FreezeStages, 3), (frozen.Mode, frozen.FrozenStages));
        var ema = Info("EmaDecay").WithValue(new ImageClassificationOptions(), (double?)0.99);
        Assert.AreEqual((true, 0.99), (ema.Ema, ema.EmaDecay));
        Assert.IsFalse(Info("EmaDecay").WithValue(ema, null).Ema);
        CollectionAssert.AreEqual(new[] { "cosine", "step", "one-cycle", "constant" }, Info("Schedule").Choices!.ToArray());
        Assert.IsNull(Info("ImageSize").DefaultValue, "a rule (the variant's size), not a value");
        Assert.AreEqual("--lr", TrainingOptionInfo.CommandLineNameOf("LearningRate"));
    }

    [TestMethod]
    public void CliSpellings_BecomeTheOptionsRepresentation()
    {
        var o = TrainCommand.OptionsOf("--data", "d", "--variant", "smt_t", "--output", "o", "--ema", "0.9", "--grad-clip", "0", "--mode", "freeze:2",
            "--class-weights", "balanced", "--schedule", "one-cycle", "--optimizer", "sgd", "--cache-features", "false", "--seed", "5");
        Assert.IsTrue(o.Ema);
        Assert.AreEqual(0.9, o.EmaDecay);
        Assert.IsNull(o.GradClipNorm);
        Assert.AreEqual((TrainingMode.FreezeStages, 2), (o.Mode, o.FrozenStages));
        Assert.AreEqual(ClassWeighting.Balanced, o.ClassWeighting);
        Assert.AreEqual(("one-cycle", "sgd"), (o.Schedule, o.Optimizer));
        Assert.IsFalse(o.CacheFeatures);
        Assert.AreEqual(5UL, o.Seed);
        var settings = TrainingKnobs.Settings(o, Resolved);
        Assert.AreEqual("freeze:2", settings["mode"]);
        Assert.AreEqual("0.9", settings["ema"]);
        Assert.AreEqual("off", settings["grad_clip"]);
        Assert.AreEqual("balanced", settings["class_weighting"]);
    }

    [TestMethod]
    [DataRow("--schedule", "linear", "--schedule must be cosine, step, one-cycle or constant; got linear.")]
    [DataRow("--optimizer", "adam", "--optimizer must be adamw or sgd; got adam.")]
    [DataRow("--epochs", "0", "--epochs must be at least 1; got 0.")]
    [DataRow("--mode", "freeze:0", "--mode must be finetune, linear-probe or freeze:K with K >= 1 stages; got 'freeze:0'.")]
    [DataRow("--class-weights", "heavy", "--class-weights must be none or balanced, got 'heavy'.")]
    public void BadValues_AreNamedAsTyped(string option, string value, string message)
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => TrainingKnobOptions.AsCliError(() =>
        {
            TrainingKnobs.Validate(TrainCommand.OptionsOf("--data", "d", "--variant", "smt_t", "--output", "o", option, value));
            return 0;
        }));
        Assert.AreEqual(message, e.Message);
    }
}

using System.Globalization;
using System.Text.Json.Nodes;
using MLNetExt.Torch;
using MLNetExt.Export;

namespace MLNetExt.Training;

/// <summary>What a run settled from its options and its model, for the fingerprint and the settings record.</summary>
internal sealed record ResolvedSettings(int ImageSize, double LearningRate, double DropPath, string Device, long Parameters, long Trained);

/// <summary>
/// One training option of <see cref="ImageClassificationOptions"/>, described for front ends (the CLI's <c>train</c>
/// command, a settings form, a notebook): the property, its command-line spelling, help text, value type, default and
/// accepted values, and how to set it. Each is declared once in the library's table of training options, which also
/// drives validation, the resume fingerprint and the settings recorded in metrics.json, so a front end built on
/// <see cref="All"/> offers every option with the library's own defaults and names.
/// </summary>
public abstract class TrainingOptionInfo
{
    private protected TrainingOptionInfo(string property, string? cli, string help, string? fingerprintKey, string? settingsKey)
    {
        Property = property;
        CommandLineName = cli;
        Description = help;
        FingerprintKey = fingerprintKey;
        SettingsKey = settingsKey;
    }

    /// <summary>Every training option, in the order of the settings record.</summary>
    public static IReadOnlyList<TrainingOptionInfo> All => TrainingKnobs.All;

    /// <summary>The command-line spelling of an options property, as error messages should name it to a CLI user
    /// (<c>BatchSize</c> → <c>--batch-size</c>); the property itself when no option spells it.</summary>
    public static string CommandLineNameOf(string property) => TrainingKnobs.CliName(property);

    /// <summary>The <see cref="ImageClassificationOptions"/> property (the name library errors use).</summary>
    public string Property { get; }

    /// <summary>The command-line option (<c>--batch-size</c>), or null where a front end sets the property another way
    /// (the model choice and the weights).</summary>
    public string? CommandLineName { get; }

    /// <summary>One line of help: what the option does and its default when that is a rule rather than a value.</summary>
    public string Description { get; }

    /// <summary>The type of a value given to <see cref="WithValue"/> (e.g. <c>int</c>, <c>double?</c>, an enum).</summary>
    public abstract Type ValueType { get; }

    /// <summary>The default value, as given to <see cref="WithValue"/>; null where the default is a rule (the variant's
    /// image size, the learning rate from the batch size).</summary>
    public abstract object? DefaultValue { get; }

    /// <summary>The accepted spellings of a text option (<c>cosine</c>, <c>step</c>...), or null.</summary>
    public abstract IReadOnlyList<string>? Choices { get; }

    /// <summary>The options with this one set from a value of <see cref="ValueType"/> as a user gives it on a command
    /// line, where spellings differ from the property (<c>--grad-clip 0</c> is no clipping, <c>--mode freeze:2</c>
    /// freezes two stages). Values are checked when training starts, which names the option that is out of range.</summary>
    public abstract ImageClassificationOptions WithValue(ImageClassificationOptions options, object? value);

    internal string? FingerprintKey { get; }

    internal string? SettingsKey { get; }

    /// <summary>What is wrong with the value in <paramref name="o"/> ("must be at least 1; got 0"), or null.</summary>
    internal abstract string? Problem(ImageClassificationOptions o);

    internal abstract JsonNode? Fingerprint(ImageClassificationOptions o, ResolvedSettings r);

    /// <summary>The value in <paramref name="o"/> as JSON, as given (no rule applied).</summary>
    internal abstract JsonNode? ValueJson(ImageClassificationOptions o);

    /// <summary>The fingerprint value of a run that never had this option (older checkpoints): the default's.</summary>
    internal abstract JsonNode? DefaultFingerprint(ResolvedSettings r);

    internal abstract string Show(ImageClassificationOptions o, ResolvedSettings r);
}

/// <summary>A knob of value type <typeparamref name="T"/>; its default is the options' own default.</summary>
internal sealed class TrainingKnob<T>(
    string property, string? cli, string help,
    Func<ImageClassificationOptions, T> get, Func<ImageClassificationOptions, T, ImageClassificationOptions> set,
    Func<T, bool>? valid = null, string? expected = null,
    string? fingerprintKey = null, Func<ImageClassificationOptions, ResolvedSettings, JsonNode?>? fingerprint = null,
    string? settingsKey = null, Func<ImageClassificationOptions, ResolvedSettings, string>? show = null,
    Func<T, T>? fromCli = null, IReadOnlyList<string>? choices = null)
    : TrainingOptionInfo(property, cli, help, fingerprintKey, settingsKey)
{
    static readonly ImageClassificationOptions Defaults = new();

    public T Get(ImageClassificationOptions o) => get(o);

    public ImageClassificationOptions Set(ImageClassificationOptions o, T value) => set(o, value);

    /// <summary>The value on the command line becomes this (e.g. <c>--grad-clip 0</c>: no clipping).</summary>
    public T FromCli(T value) => fromCli is null ? value : fromCli(value);

    public T Default => get(Defaults);

    public override IReadOnlyList<string>? Choices { get; } = choices;

    public override Type ValueType => typeof(T);

    public override object? DefaultValue => Default;

    public override ImageClassificationOptions WithValue(ImageClassificationOptions o, object? value) =>
        value is T v ? set(o, FromCli(v)) :
        value is null && default(T) is null ? set(o, FromCli(default!)) :
        throw new ArgumentException($"{Property} takes a {typeof(T).Name} value; got {value?.GetType().Name ?? "null"}.", nameof(value));

    internal override string? Problem(ImageClassificationOptions o)
    {
        var v = get(o);
        bool ok = Choices is null ? valid?.Invoke(v) ?? true : v is string s && Choices.Contains(s);
        return ok ? null : $"must be {expected ?? string.Join(", ", Choices!.SkipLast(1)) + " or " + Choices![^1]}; got {TrainingKnobs.Text(v)}";
    }

    internal override JsonNode? Fingerprint(ImageClassificationOptions o, ResolvedSettings r) =>
        fingerprint is not null ? fingerprint(o, r) : TrainingKnobs.Json(get(o));

    internal override JsonNode? DefaultFingerprint(ResolvedSettings r) => Fingerprint(Defaults, r);

    internal override JsonNode? ValueJson(ImageClassificationOptions o) => TrainingKnobs.Json(get(o));

    internal override string Show(ImageClassificationOptions o, ResolvedSettings r) => show is not null ? show(o, r) : TrainingKnobs.Text(get(o));
}

/// <summary>The table of training knobs, in the order of the settings record.</summary>
internal static class TrainingKnobs
{
    static string Num(double v) => v.ToString(CultureInfo.InvariantCulture);

    internal static string Text<T>(T v) => v switch
    {
        null => "none",
        double d => Num(d),
        Enum e => e.ToString().ToLowerInvariant(),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "none",
    };

    internal static JsonNode? Json<T>(T v) => v switch
    {
        null => null,
        Enum e => JsonValue.Create(e.ToString()),
        JsonNode n => n.DeepClone(),
        _ => JsonValue.Create(v),
    };

    static TrainingKnob<T> K<T>(string property, string? cli, string help,
        Func<ImageClassificationOptions, T> get, Func<ImageClassificationOptions, T, ImageClassificationOptions> set,
        Func<T, bool>? valid = null, string? expected = null,
        string? fingerprintKey = null, Func<ImageClassificationOptions, ResolvedSettings, JsonNode?>? fingerprint = null,
        string? settingsKey = null, Func<ImageClassificationOptions, ResolvedSettings, string>? show = null,
        Func<T, T>? fromCli = null, IReadOnlyList<string>? choices = null) =>
        new(property, cli, help, get, set, valid, expected, fingerprintKey, fingerprint, settingsKey, show, fromCli, choices);

    /// <summary>The <c>--mode</c> spelling of a training mode.</summary>
    internal static string ModeText(ImageClassificationOptions o) => o.Mode switch
    {
        TrainingMode.FreezeStages => $"freeze:{o.FrozenStages}",
        TrainingMode.LinearProbe => "linear-probe",
        _ => "finetune",
    };

    internal static ImageClassificationOptions WithMode(ImageClassificationOptions o, string text)
    {
        if (text == "finetune") return o with { Mode = TrainingMode.FineTune };
        if (text == "linear-probe") return o with { Mode = TrainingMode.LinearProbe };
        if (text.StartsWith("freeze:", StringComparison.Ordinal) && int.TryParse(text.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out int k) && k >= 1)
            return o with { Mode = TrainingMode.FreezeStages, FrozenStages = k };
        throw new TrainingOptionException("Mode", $"must be finetune, linear-probe or freeze:K with K >= 1 stages; got '{text}'");
    }

    public static readonly IReadOnlyList<TrainingOptionInfo> All =
    [
        // ---- model (chosen on the CLI by --variant/--arch/--config and --weights/--pretrained) ----
        K("Model", null, "Variant, or family with CustomKwargs", o => o.Model, (o, v) => o with { Model = v }, fingerprintKey: "model"),
        K("CustomKwargs", null, "Official constructor keyword arguments of a custom size", o => o.CustomKwargs, (o, v) => o with { CustomKwargs = v },
            fingerprintKey: "custom_kwargs"),
        K("WeightsPath", null, "Weights to start from", o => o.WeightsPath, (o, v) => o with { WeightsPath = v },
            settingsKey: "weights", show: (o, _) => o.WeightsPath ?? "none (random initialisation)"),
        K("Mode", "--mode", "finetune | linear-probe | freeze:K (freeze the stem and first K stages)", ModeText, WithMode,
            fingerprintKey: "mode", fingerprint: (o, _) => o.Mode.ToString(), settingsKey: "mode", show: (o, _) => ModeText(o)),
        K("FrozenStages", null, "Stages kept frozen by --mode freeze:K", o => o.FrozenStages, (o, v) => o with { FrozenStages = v },
            valid: null, fingerprintKey: "frozen_stages", fingerprint: (o, _) => o.Mode == TrainingMode.FreezeStages ? o.FrozenStages : 0),
        K("ImageSize", "--image-size", "Square input size (default: the variant's, 224 mostly)", o => o.ImageSize, (o, v) => o with { ImageSize = v },
            v => v is null or >= 16, "at least 16 pixels", fingerprintKey: "image_size", fingerprint: (_, r) => r.ImageSize,
            settingsKey: "image_size", show: (_, r) => $"{r.ImageSize}"),

        // ---- optimisation ----
        K("Epochs", "--epochs", "Passes over the training set", o => o.Epochs, (o, v) => o with { Epochs = v }, v => v >= 1, "at least 1",
            fingerprintKey: "epochs", settingsKey: "epochs"),
        K("BatchSize", "--batch-size", "Images per step", o => o.BatchSize, (o, v) => o with { BatchSize = v }, v => v >= 1, "at least 1",
            fingerprintKey: "batch_size", settingsKey: "batch_size",
            show: (o, _) => o.AccumulationSteps > 1 ? $"{o.BatchSize} × {o.AccumulationSteps} accumulated" : $"{o.BatchSize}"),
        K("AccumulationSteps", "--accumulate", "Micro-batches per optimizer step", o => o.AccumulationSteps, (o, v) => o with { AccumulationSteps = v },
            v => v >= 1, "at least 1", fingerprintKey: "accumulation_steps"),
        K("Optimizer", "--optimizer", "adamw | sgd (momentum 0.9, Nesterov)", o => o.Optimizer, (o, v) => o with { Optimizer = v },
            choices: Optim.OptimizerChoice.Names, fingerprintKey: "optimizer", settingsKey: "optimizer"),
        K("LearningRate", "--lr", "Peak learning rate (default: 2e-4 with --weights, 1e-3 from scratch, 1e-2 linear probe, ×50 for sgd; × effective batch/32)",
            o => o.LearningRate, (o, v) => o with { LearningRate = v }, v => v is null or > 0, "positive",
            fingerprintKey: "lr", fingerprint: (_, r) => r.LearningRate, settingsKey: "lr", show: (_, r) => r.LearningRate.ToString("G4", CultureInfo.InvariantCulture)),
        K("WeightDecay", "--weight-decay", "Weight decay (norms, biases and family tables exempt)", o => o.WeightDecay, (o, v) => o with { WeightDecay = v },
            v => v >= 0, ">= 0", fingerprintKey: "weight_decay", settingsKey: "weight_decay"),
        K("Schedule", "--schedule", "Learning-rate schedule after the warm-up: cosine | step | one-cycle | constant", o => o.Schedule, (o, v) => o with { Schedule = v },
            choices: Optim.LrSchedule.Names, fingerprintKey: "schedule", settingsKey: "schedule"),
        K("WarmupEpochs", "--warmup-epochs", "Linear warm-up length in epochs", o => o.WarmupEpochs, (o, v) => o with { WarmupEpochs = v },
            v => v >= 0, ">= 0", fingerprintKey: "warmup_epochs", settingsKey: "warmup_epochs"),
        K("MinLearningRateFactor", "--min-lr-factor", "The cosine schedule ends at the peak rate × this", o => o.MinLearningRateFactor,
            (o, v) => o with { MinLearningRateFactor = v }, v => v is >= 0 and <= 1, "in [0, 1]", fingerprintKey: "min_lr_factor"),
        K("LayerDecay", "--layer-decay", "Layer-wise LR decay factor, e.g. 0.75 (default: off)", o => o.LayerDecay, (o, v) => o with { LayerDecay = v },
            v => v is null or (> 0 and <= 1), "in (0, 1]", fingerprintKey: "layer_decay", settingsKey: "layer_decay", show: (o, _) => o.LayerDecay is double d ? Num(d) : "off"),
        K("LabelSmoothing", "--label-smoothing", "Cross-entropy label smoothing", o => o.LabelSmoothing, (o, v) => o with { LabelSmoothing = v },
            v => v is >= 0 and < 1, "in [0, 1)", fingerprintKey: "label_smoothing", settingsKey: "label_smoothing"),
        K("DropPathRate", "--drop-path", "Stochastic depth rate (default: the variant's official rate, at most 0.1)", o => o.DropPathRate,
            (o, v) => o with { DropPathRate = v }, v => v is null or (>= 0 and < 1), "in [0, 1)", settingsKey: "drop_path", show: (_, r) => Num(r.DropPath)),

        // ---- data ----
        K("Augment", "--augment", "light | trivial | none", o => o.Augment, (o, v) => o with { Augment = v }, choices: ["trivial", "light", "none"],
            fingerprintKey: "augment", settingsKey: "augment", show: (o, _) => o.Mode == TrainingMode.LinearProbe ? "none (linear probe)" : o.Augment),
        K("CropScaleMin", "--crop-scale-min", "Smallest crop scale of the random resized crop", o => o.CropScaleMin, (o, v) => o with { CropScaleMin = v },
            v => v is > 0 and <= 1, "in (0, 1]", fingerprintKey: "crop_scale_min"),
        K("RandomErasing", "--random-erasing", "Random erasing probability", o => o.RandomErasing, (o, v) => o with { RandomErasing = v },
            v => v is >= 0 and <= 1, "in [0, 1]", fingerprintKey: "random_erasing"),
        K("MixupAlpha", "--mixup", "Mixup alpha (0: off)", o => o.MixupAlpha, (o, v) => o with { MixupAlpha = v }, v => v >= 0, ">= 0",
            fingerprintKey: "mixup", settingsKey: "mixup/cutmix", show: (o, _) => $"{Num(o.MixupAlpha)}/{Num(o.CutmixAlpha)}"),
        K("CutmixAlpha", "--cutmix", "CutMix alpha (0: off)", o => o.CutmixAlpha, (o, v) => o with { CutmixAlpha = v }, v => v >= 0, ">= 0",
            fingerprintKey: "cutmix"),
        K("EmaDecay", "--ema", "Keep an EMA of the weights with this decay (e.g. 0.999) and keep/export it", o => o.Ema ? o.EmaDecay : (double?)null,
            (o, v) => o with { Ema = v is not null, EmaDecay = v ?? new ImageClassificationOptions().EmaDecay }, v => v is null or (> 0 and < 1), "in (0, 1)",
            fingerprintKey: "ema", settingsKey: "ema", show: (o, _) => o.Ema ? Num(o.EmaDecay) : "off"),
        K("TeacherPath", "--teacher", "Knowledge distillation: a model.safetensors written by train with the same classes (e.g. a larger backbone) whose " +
            "scores the model also learns to match", o => o.TeacherPath, (o, v) => o with { TeacherPath = v },
            fingerprintKey: "teacher", fingerprint: (o, _) => o.TeacherPath is { } t ? DistillationTeacher.Fingerprint(t) : null,
            settingsKey: "teacher", show: (o, _) => o.TeacherPath is { } t
                ? $"{t} (weight {Num(o.DistillationWeight)}, temperature {Num(o.DistillationTemperature)})" : "none"),
        K("DistillationWeight", "--distill-weight", "With --teacher: weight of the teacher's term in the loss, in (0, 1] (1: labels unused)",
            o => o.DistillationWeight, (o, v) => o with { DistillationWeight = v }, v => v is > 0 and <= 1, "in (0, 1]",
            fingerprintKey: "distill_weight", fingerprint: (o, _) => o.TeacherPath is null ? null : o.DistillationWeight),
        K("DistillationTemperature", "--distill-temperature", "With --teacher: temperature of the teacher's and the model's scores in its term",
            o => o.DistillationTemperature, (o, v) => o with { DistillationTemperature = v }, v => v > 0 && double.IsFinite(v), "positive",
            fingerprintKey: "distill_temperature", fingerprint: (o, _) => o.TeacherPath is null ? null : o.DistillationTemperature),
        K("GradClipNorm", "--grad-clip", "Max global gradient norm (0: no clipping)", o => o.GradClipNorm, (o, v) => o with { GradClipNorm = v },
            v => v is null or > 0, "positive", fingerprintKey: "grad_clip", settingsKey: "grad_clip", show: (o, _) => o.GradClipNorm is double c ? Num(c) : "off",
            fromCli: v => v is > 0 ? v : null),
        K("ClassWeighting", "--class-weights", "none | balanced", o => o.ClassWeighting, (o, v) => o with { ClassWeighting = v },
            fingerprintKey: "class_weighting", settingsKey: "class_weighting"),
        K("EarlyStoppingPatience", "--patience", "Early stopping: epochs without improvement of --monitor", o => o.EarlyStoppingPatience,
            (o, v) => o with { EarlyStoppingPatience = v }, v => v is null or >= 1, "at least 1"),
        K("Monitor", "--monitor", "top1 | top5 | macro_f1 | log_loss", o => o.Monitor, (o, v) => o with { Monitor = v }, choices: ClassificationMetrics.MetricNames),
        K("ValidationFraction", "--val-fraction", "Held-out fraction when no validation set is given (0: none)", o => o.ValidationFraction,
            (o, v) => o with { ValidationFraction = v }, v => v is >= 0 and < 1, "in [0, 1)"),
        K("CacheFeatures", "--cache-features", "Linear probe: compute the frozen features once (false: on every batch, the same result)",
            o => o.CacheFeatures, (o, v) => o with { CacheFeatures = v }),
        K("Workers", "--workers", "Decode/augment threads (default: processor count)", o => o.Workers, (o, v) => o with { Workers = v },
            v => v is not int w || TorchRuntime.ThreadCountProblem(w, "Workers") is null, $"1 to {TorchRuntime.MaxThreads} (8 per processor)"),

        // ---- run ----
        K("Device", "--device", "cpu | cuda | cuda:N (default: cuda when available)", o => o.Device, (o, v) => o with { Device = v },
            settingsKey: "device", show: (_, r) => r.Device),
        K("SyncBatchNorm", "--sync-bn", "Data-parallel runs: BatchNorm statistics over the whole global batch, all processes (default: each process's shard)",
            o => o.SyncBatchNorm, (o, v) => o with { SyncBatchNorm = v }),
        K("MixedPrecision", "--bf16", "bfloat16 autocast (default: on for CUDA, off for CPU; on a CPU it pays only with AVX512-BF16 or AMX, and is many times slower without)", o => o.MixedPrecision, (o, v) => o with { MixedPrecision = v }),
        K("Seed", "--seed", "Seed of every random choice (default 0)", o => o.Seed, (o, v) => o with { Seed = v },
            fingerprintKey: "seed", fingerprint: (o, _) => o.Seed ?? 0, settingsKey: "seed", show: (o, _) => $"{o.Seed ?? 0}"),

        // ---- serving (what the trained model is exported as; training itself does not depend on it) ----
        K("ScoringPrecision", "--precision", "Arithmetic of the exported model.onnx and model.zip (the ML.NET scoring chain): fp32 | int8 (static, " +
            $"calibrated on up to {ImageClassificationOptions.MaxCalibrationImages} training images; CPU serving) | fp16 (GPU serving)",
            o => Export.OnnxExporter.PrecisionName(o.ScoringPrecision), WithPrecision, choices: ["fp32", "int8", "fp16"], settingsKey: "precision"),
        K("CalibrateScores", "--calibrate-scores", "After training, fit a temperature on the validation set so the probabilities (Score) are as sure as " +
            "the model is right (temperature scaling; the predicted classes do not change)", o => o.CalibrateScores, (o, v) => o with { CalibrateScores = v },
            settingsKey: "calibrate_scores", show: (o, _) => o.CalibrateScores ? "temperature fitted on the validation set" : "off"),
        K("TestTimeAugmentation", "--tta", "Views the trained model averages when it predicts: none | flip (the image and its mirror; " +
            "twice the compute; the run reports what it brings on the validation set)", o => o.TestTimeAugmentation,
            (o, v) => o with { TestTimeAugmentation = v }, settingsKey: "test_time_augmentation"),
    ];

    static ImageClassificationOptions WithPrecision(ImageClassificationOptions o, string text) =>
        o with
        {
            ScoringPrecision = Export.OnnxExporter.PrecisionFromName(text)
                ?? throw new TrainingOptionException("ScoringPrecision", $"must be fp32, int8 or fp16; got '{text}'"),
        };

    /// <summary>The CLI spelling of an options property (the property itself when no knob has a CLI option).</summary>
    public static string CliName(string property) => property switch
    {
        "FrozenStages" => "--mode freeze:K",
        _ => All.FirstOrDefault(k => k.Property == property)?.CommandLineName ?? property,
    };

    /// <summary>Throws <see cref="TrainingOptionException"/> naming the first knob whose value is out of range.</summary>
    public static void Validate(ImageClassificationOptions o)
    {
        foreach (var k in All)
            if (k.Problem(o) is { } problem) throw new TrainingOptionException(k.Property, problem);
        if (o.Mode == TrainingMode.FreezeStages && o.FrozenStages < 1)
            throw new TrainingOptionException("FrozenStages", $"must be at least 1; got {o.FrozenStages}");
    }

    /// <summary>The settings that must match for a resume to continue the same run (plus the data's size).</summary>
    public static JsonObject Fingerprint(ImageClassificationOptions o, ResolvedSettings r, int trainCount, int valCount)
    {
        var f = new JsonObject();
        foreach (var k in All)
            if (k.FingerprintKey is { } key) f[key] = k.Fingerprint(o, r);
        f["train_count"] = trainCount;
        f["val_count"] = valCount;
        return f;
    }

    /// <summary>The options that decide what a run trains, as given (before the model settles the defaults): what
    /// cross-validation compares to reuse a fold trained earlier. Left out: how the run reports or serves
    /// (<c>Workers</c>, <c>Monitor</c>, <c>ValidationFraction</c>, the scoring precision and score calibration).</summary>
    public static JsonObject OptionsFingerprint(ImageClassificationOptions o)
    {
        string[] unused = ["Workers", "Monitor", "ValidationFraction", "EarlyStoppingPatience", "ScoringPrecision", "CalibrateScores"];
        var f = new JsonObject();
        foreach (var k in All)
            if (!unused.Contains(k.Property)) f[k.Property] = k.ValueJson(o);
        return f;
    }

    /// <summary>Where a checkpoint's fingerprint and this run's differ ("lr: checkpoint 0.001, now 0.002"); a key the
    /// checkpoint lacks (a knob added since) matches its default.</summary>
    public static List<string> Differences(JsonObject saved, JsonObject now, ResolvedSettings r)
    {
        var diffs = new List<string>();
        foreach (var (key, v) in now)
        {
            var s = saved.ContainsKey(key) ? saved[key] : All.FirstOrDefault(k => k.FingerprintKey == key)?.DefaultFingerprint(r);
            if (!JsonNode.DeepEquals(s, v)) diffs.Add($"{key}: checkpoint {s?.ToJsonString() ?? "null"}, now {v?.ToJsonString() ?? "null"}");
        }
        return diffs;
    }

    /// <summary>The run's settings as name → printable value, for metrics.json and the report.</summary>
    public static Dictionary<string, string> Settings(ImageClassificationOptions o, ResolvedSettings r)
    {
        var settings = All.Where(k => k.SettingsKey is not null).ToDictionary(k => k.SettingsKey!, k => k.Show(o, r));
        settings["parameters"] = $"{r.Parameters:N0} ({r.Trained:N0} trained)";
        return settings;
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Imaging;
using MLNetExt.Export;

namespace MLNetExt.Training;

/// <summary>What a saved classifier is: the backbone (variant, or family + custom kwargs), its classes, the
/// evaluation geometry, the temperature its probabilities are computed at (<c>softmax(logits / T)</c>: 1 unless
/// training calibrated the scores) and the views it averages when it predicts. Stored as JSON in the safetensors metadata
/// of model files and training checkpoints.</summary>
public sealed record ModelDescriptor(string Model, JsonObject? CustomKwargs, IReadOnlyList<string> Classes, int ImageSize,
    IReadOnlyList<double> Mean, IReadOnlyList<double> Std, double CropPct, string Interpolation, double ScoreTemperature = 1,
    TestTimeAugmentation TestTimeAugmentation = TestTimeAugmentation.None)
{
    /// <summary>The safetensors metadata key holding the descriptor.</summary>
    public const string MetadataKey = "mlnetext.model";

    /// <summary>Builds the (untrained) backbone this descriptor names, with a head of <see cref="Classes"/>.Count, for
    /// inputs of <see cref="ImageSize"/> (as the trainer built it).</summary>
    public Backbone CreateBackbone()
    {
        var sized = Backbones.InputSizeKwargs(Model, CustomKwargs, ImageSize, ImageSize);
        return CustomKwargs is null
            ? Backbones.Create(Model, Classes.Count, sized)
            : Backbones.CreateCustom(Model, CustomKwargs, Classes.Count, sized);
    }

    /// <summary>The descriptor as the JSON stored under <see cref="MetadataKey"/>.</summary>
    public string ToJson() => new JsonObject
    {
        ["format"] = 1,
        ["model"] = Model,
        ["custom_kwargs"] = CustomKwargs?.DeepClone(),
        ["classes"] = new JsonArray(Classes.Select(c => (JsonNode?)JsonValue.Create(c)).ToArray()),
        ["image_size"] = ImageSize,
        ["mean"] = new JsonArray(Mean.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
        ["std"] = new JsonArray(Std.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray()),
        ["crop_pct"] = CropPct,
        ["interpolation"] = Interpolation,
        ["score_temperature"] = ScoreTemperature,
        ["test_time_augmentation"] = TestTimeViews.Name(TestTimeAugmentation),
        ["library_version"] = LibraryInfo.Version,
    }.ToJsonString();

    /// <summary>The descriptor of a model file or training checkpoint; null when <paramref name="path"/> is not a
    /// safetensors file or holds weights only (reads the header, not the tensors).</summary>
    public static ModelDescriptor? TryRead(string path) =>
        SafeTensors.IsSafeTensorsFile(path) && SafeTensors.ReadMetadata(path).TryGetValue(MetadataKey, out var json) ? Parse(json, path) : null;

    /// <summary>"mixformer_b0, 2 classes (ants, bees), 64 px": what the user trained, for messages.</summary>
    public string Describe() =>
        $"{Model}{(CustomKwargs is null ? "" : " (custom)")}, {Classes.Count} classes ({string.Join(", ", Classes.Take(5))}{(Classes.Count > 5 ? ", ..." : "")}), {ImageSize} px" +
        (TestTimeAugmentation == TestTimeAugmentation.Flip ? ", scored with its mirror image" : "");

    /// <summary>Parses a descriptor; <paramref name="source"/> names the file in errors.</summary>
    public static ModelDescriptor Parse(string json, string source)
    {
        try
        {
            var o = JsonNode.Parse(json)!.AsObject();
            double temperature = o["score_temperature"]?.GetValue<double>() ?? 1;   // absent before scores were calibrated
            if (!(temperature > 0) || double.IsInfinity(temperature)) throw new FormatException($"score_temperature must be a positive number; found {temperature}.");
            var ttaText = o["test_time_augmentation"]?.GetValue<string>() ?? "none";   // absent before models averaged views
            var tta = TestTimeViews.FromName(ttaText) ?? throw new FormatException($"test_time_augmentation must be none or flip; found '{ttaText}'.");
            return new ModelDescriptor(
                o["model"]!.GetValue<string>(),
                o["custom_kwargs"] as JsonObject,
                o["classes"]!.AsArray().Select(c => c!.GetValue<string>()).ToList(),
                o["image_size"]!.GetValue<int>(),
                o["mean"]!.AsArray().Select(v => v!.GetValue<double>()).ToList(),
                o["std"]!.AsArray().Select(v => v!.GetValue<double>()).ToList(),
                o["crop_pct"]!.GetValue<double>(),
                o["interpolation"]!.GetValue<string>(),
                temperature, tta);
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{source}': the model description in its metadata ('{MetadataKey}') is invalid: {e.Message}", e);
        }
    }
}

/// <summary>The files a training run writes as models: model.safetensors (the backbone's state_dict with the descriptor)
/// and training checkpoints (the same tensors under <c>model.</c>, beside the EMA and optimizer state).</summary>
internal static class TrainedModelFile
{
    /// <summary>The backbone tensors of a model file or checkpoint, under their state_dict names.</summary>
    public static IEnumerable<KeyValuePair<string, Tensor>> Weights(StateDict file) =>
        file.Metadata.ContainsKey(TrainingCheckpoint.StateKey)
            ? file.Where(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal)).Select(kv => new KeyValuePair<string, Tensor>(kv.Key[6..], kv.Value))
            : file;

    /// <summary>The backbone a model file or checkpoint describes, with its weights, and the description.</summary>
    public static (Backbone Backbone, ModelDescriptor Descriptor) Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        if (!SafeTensors.IsSafeTensorsFile(path))
            throw new InvalidDataException($"'{path}' is not an MLNetExt model (expected a .safetensors file written by Save or `mlnetext train`; ONNX models are run with OnnxImageScorer).");
        using var sd = SafeTensors.Load(path);
        if (!sd.Metadata.TryGetValue(ModelDescriptor.MetadataKey, out var json))
            throw new InvalidDataException($"'{path}' has no '{ModelDescriptor.MetadataKey}' metadata: it holds weights only. Load raw weights with Backbones.Load and a variant name.");
        var descriptor = ModelDescriptor.Parse(json, path);
        var backbone = descriptor.CreateBackbone();
        try
        {
            backbone.LoadStateDict(Weights(sd).ToList());
        }
        catch
        {
            backbone.Dispose();
            throw;
        }
        return (backbone, descriptor);
    }
}

/// <summary>The resumable state of a run besides tensors: where it stands, the early-stopping bookkeeping and the
/// history. Randomness needs no saved generator: every draw is a function of (seed, epoch, index) or (seed, step).</summary>
internal sealed class TrainingState
{
    /// <summary>Epoch in progress (0-based) and the next batch in it.</summary>
    public int Epoch { get; set; }
    public int NextBatch { get; set; }
    public long GlobalStep { get; set; }
    public long MicroStep { get; set; }
    public double? BestValue { get; set; }
    public int? BestEpoch { get; set; }
    public int EpochsWithoutImprovement { get; set; }
    /// <summary>The epoch in progress so far (summed loss × images, images, seconds), for its summary after a resume.</summary>
    public double EpochLossSum { get; set; }
    public long EpochImages { get; set; }
    public double EpochSeconds { get; set; }
    public long EmaUpdates { get; set; }
    /// <summary>The settings that must match for a resume to continue the same run.</summary>
    public required JsonObject Fingerprint { get; init; }
    public Dictionary<string, long> OptimizerSteps { get; init; } = new();
    public required TrainingHistory History { get; init; }
}

/// <summary>Training checkpoints: one safetensors file holding the model (<c>model.*</c>), the EMA (<c>ema.*</c>),
/// AdamW's moments (<c>optim.NAME.exp_avg</c>/<c>exp_avg_sq</c>) and, in its metadata, the model descriptor and the
/// run state as JSON. Written under a temporary name and renamed, so a failed write (full disk, Ctrl-C, crash)
/// leaves the previous checkpoint whole.</summary>
internal static class TrainingCheckpoint
{
    public const string StateKey = "mlnetext.training";

    public static void Write(string path, ModelDescriptor descriptor, TrainingState state,
        IEnumerable<KeyValuePair<string, Tensor>> model, IEnumerable<KeyValuePair<string, Tensor>>? ema,
        IEnumerable<KeyValuePair<string, Tensor>> optimizer)
    {
        var tensors = model.Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value))
            .Concat((ema ?? []).Select(kv => new KeyValuePair<string, Tensor>("ema." + kv.Key, kv.Value)))
            .Concat(optimizer.Select(kv => new KeyValuePair<string, Tensor>("optim." + kv.Key, kv.Value)));
        var metadata = new Dictionary<string, string>
        {
            [ModelDescriptor.MetadataKey] = descriptor.ToJson(),
            [StateKey] = StateToJson(state),
        };
        SafeTensors.Save(path, tensors, metadata);
    }

    public static (ModelDescriptor Descriptor, TrainingState State, StateDict Tensors) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        if (!SafeTensors.IsSafeTensorsFile(path))
            throw new InvalidDataException($"'{path}' is not an MLNetExt training checkpoint (expected a safetensors file written by `mlnetext train`).");
        var sd = SafeTensors.Load(path);
        try
        {
            if (!sd.Metadata.TryGetValue(ModelDescriptor.MetadataKey, out var d) || !sd.Metadata.TryGetValue(StateKey, out var s))
                throw new InvalidDataException($"'{path}' has no training state in its metadata: it is a model file or another safetensors file, not a training checkpoint.");
            var descriptor = ModelDescriptor.Parse(d, path);
            return (descriptor, StateFromJson(s, descriptor.Classes, path), sd);
        }
        catch
        {
            sd.Dispose();
            throw;
        }
    }

    // ---- JSON of the run state (the history is stored compactly: enough to rebuild every record) ----

    static JsonNode? Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    static double Dbl(JsonNode? n) => n is null ? double.NaN : n.GetValue<double>();

    /// <summary>The record of a run as the training state stores it (epochs with their validation scores, steps,
    /// settings); <see cref="HistoryFromJson"/> reads it back.</summary>
    internal static JsonObject HistoryToJson(TrainingHistory h) => new()
    {
        ["model"] = h.Model,
        ["settings"] = new JsonObject(h.Settings.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        ["train_count"] = h.TrainCount,
        ["val_count"] = h.ValCount,
        ["monitor"] = h.Monitor,
        ["duration_seconds"] = h.Duration.TotalSeconds,
        ["steps"] = new JsonArray(h.Steps.Select(r => (JsonNode?)new JsonArray(r.Step, r.Epoch, Num(r.Loss), Num(r.LearningRate))).ToArray()),
        ["epochs"] = new JsonArray(h.Epochs.Select(e => (JsonNode?)new JsonObject
        {
            ["epoch"] = e.Epoch,
            ["train_loss"] = Num(e.TrainLoss),
            ["lr"] = Num(e.LearningRate),
            ["images_per_second"] = Num(e.ImagesPerSecond),
            ["seconds"] = Num(e.Seconds),
            ["val_loss"] = e.ValLoss is double v ? Num(v) : null,
            ["val"] = e.Validation is { } m ? new JsonObject
            {
                ["top_k_accuracy"] = Num(m.Top5),
                ["top_k"] = m.TopK,
                ["log_loss"] = Num(m.LogLoss),
                ["calibration"] = m.Calibration is null ? null : new JsonArray(m.Calibration.Select(b =>
                    (JsonNode?)new JsonArray(b.Count, Num(b.MeanConfidence), (int)Math.Round(b.Accuracy * b.Count))).ToArray()),
                ["confusion"] = new JsonArray(m.Confusion.Select(r => (JsonNode?)new JsonArray(r.Select(c => (JsonNode?)c).ToArray())).ToArray()),
            } : null,
        }).ToArray()),
    };

    internal static string StateToJson(TrainingState s)
    {
        var o = new JsonObject
        {
            ["epoch"] = s.Epoch,
            ["next_batch"] = s.NextBatch,
            ["global_step"] = s.GlobalStep,
            ["micro_step"] = s.MicroStep,
            ["best_value"] = s.BestValue is double b ? Num(b) : null,
            ["best_epoch"] = s.BestEpoch,
            ["epochs_without_improvement"] = s.EpochsWithoutImprovement,
            ["epoch_loss_sum"] = s.EpochLossSum,
            ["epoch_images"] = s.EpochImages,
            ["epoch_seconds"] = s.EpochSeconds,
            ["ema_updates"] = s.EmaUpdates,
            ["fingerprint"] = s.Fingerprint.DeepClone(),
            ["optimizer_steps"] = new JsonObject(s.OptimizerSteps.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["history"] = HistoryToJson(s.History),
        };
        return o.ToJsonString();
    }

    /// <summary>Reads <see cref="HistoryToJson"/>'s form; malformed JSON throws what <see cref="StateFromJson"/> turns into
    /// an <see cref="InvalidDataException"/>.</summary>
    internal static TrainingHistory HistoryFromJson(JsonObject h, IReadOnlyList<string> classes)
    {
        var history = new TrainingHistory
        {
            Model = h["model"]!.GetValue<string>(),
            Classes = classes,
            Settings = h["settings"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>()),
            TrainCount = h["train_count"]!.GetValue<int>(),
            ValCount = h["val_count"]!.GetValue<int>(),
            Monitor = h["monitor"]!.GetValue<string>(),
            Duration = TimeSpan.FromSeconds(h["duration_seconds"]!.GetValue<double>()),
        };
        foreach (var r in h["steps"]!.AsArray())
        {
            var a = r!.AsArray();
            history.StepList.Add(new StepRecord(a[0]!.GetValue<long>(), a[1]!.GetValue<int>(), Dbl(a[2]), Dbl(a[3])));
        }
        foreach (var n in h["epochs"]!.AsArray())
        {
            var e = n!.AsObject();
            ClassificationMetrics? m = null;
            if (e["val"] is JsonObject v)
            {
                var confusion = v["confusion"]!.AsArray().Select(r => r!.AsArray().Select(c => c!.GetValue<int>()).ToArray()).ToArray();
                // "calibration" is absent from checkpoints written before it was recorded
                var calibration = (v["calibration"] as JsonArray)?.Select(b => b!.AsArray())
                    .Select(b => (b[0]!.GetValue<int>(), Dbl(b[1]), b[2]!.GetValue<int>())).ToList();
                m = ClassificationMetrics.FromConfusion(classes, confusion, Dbl(v["top_k_accuracy"]), v["top_k"]!.GetValue<int>(), Dbl(v["log_loss"]), calibration);
            }
            history.EpochList.Add(new EpochSummary(e["epoch"]!.GetValue<int>(), Dbl(e["train_loss"]), Dbl(e["lr"]), Dbl(e["images_per_second"]),
                Dbl(e["seconds"]), e["val_loss"] is null ? null : Dbl(e["val_loss"]), m));
        }
        return history;
    }

    internal static TrainingState StateFromJson(string json, IReadOnlyList<string> classes, string source)
    {
        try
        {
            var o = JsonNode.Parse(json)!.AsObject();
            var history = HistoryFromJson(o["history"]!.AsObject(), classes);
            var state = new TrainingState
            {
                Epoch = o["epoch"]!.GetValue<int>(),
                NextBatch = o["next_batch"]!.GetValue<int>(),
                GlobalStep = o["global_step"]!.GetValue<long>(),
                MicroStep = o["micro_step"]!.GetValue<long>(),
                BestValue = o["best_value"] is null ? null : Dbl(o["best_value"]),
                BestEpoch = o["best_epoch"]?.GetValue<int>(),
                EpochsWithoutImprovement = o["epochs_without_improvement"]!.GetValue<int>(),
                EpochLossSum = o["epoch_loss_sum"]!.GetValue<double>(),
                EpochImages = o["epoch_images"]!.GetValue<long>(),
                EpochSeconds = o["epoch_seconds"]!.GetValue<double>(),
                EmaUpdates = o["ema_updates"]!.GetValue<long>(),
                Fingerprint = o["fingerprint"]!.AsObject(),
                OptimizerSteps = o["optimizer_steps"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<long>()),
                History = history,
            };
            history.BestEpoch = state.BestEpoch;
            return state;
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"'{source}': the training state in its metadata ('{StateKey}') is invalid: {e.Message}", e);
        }
    }
}

using System.Text.Json.Nodes;
using MLNetExt.Data;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Imaging;

namespace MLNetExt.Training;

/// <summary>
/// What a run's options settle before any training, as pure functions of the options and the model: the device,
/// the learning rate, stochastic depth, input size, the image pipelines, the optimizer's parameter groups, the
/// schedule, the resume fingerprint and the settings record.
/// </summary>
internal sealed class TrainingPlan
{
    public ImageClassificationOptions Options { get; }
    public Device Device { get; }
    public bool Autocast { get; }
    public int ImageSize { get; }
    public double LearningRate { get; }
    public PretrainedConfig Config { get; }

    public TrainingPlan(ImageClassificationOptions o, Backbone model)
    {
        Options = o;
        Device = ResolveDevice(o.Device);
        Autocast = o.MixedPrecision ?? Device.Type == DeviceType.Cuda;
        Config = model.PretrainedConfig;
        ImageSize = o.ImageSize ?? Config.Height;
        model.CheckInputSize(ImageSize, ImageSize);
        LearningRate = o.LearningRate ?? DefaultLearningRate(o);
    }

    public bool LinearProbe => Options.Mode == TrainingMode.LinearProbe;

    /// <summary>A note when the training classes are imbalanced (the largest at least <see cref="ImbalanceRatio"/> times
    /// the smallest) and the loss does not weigh them: which classes, how far apart, and the two settings that keep the
    /// rare ones from being ignored. Null when balanced or already weighed.</summary>
    public static string? ImbalanceNote(IReadOnlyList<int> counts, IReadOnlyList<string> classes, ClassWeighting weighting, string monitor)
    {
        if (weighting != ClassWeighting.None || counts.Count < 2) return null;
        int largest = 0, smallest = 0;
        for (int c = 1; c < counts.Count; c++)
        {
            if (counts[c] > counts[largest]) largest = c;
            if (counts[c] < counts[smallest]) smallest = c;
        }
        if (counts[smallest] == 0 || counts[largest] < ImbalanceRatio * counts[smallest]) return null;
        return $"the classes are imbalanced: '{classes[largest]}' has {counts[largest]} training images, '{classes[smallest]}' {counts[smallest]} " +
               $"({(double)counts[largest] / counts[smallest]:0.#}x); ClassWeighting = Balanced (--class-weights balanced) weighs every class " +
               "alike in the loss" + (monitor == "macro_f1" ? "" : ", and Monitor = macro_f1 (--monitor macro_f1) keeps the epoch that does best on every class, not on the largest");
    }

    /// <summary>How many times the smallest class the largest must hold for <see cref="ImbalanceNote"/> to speak.</summary>
    public const int ImbalanceRatio = 5;

    /// <summary>A note when the validation set is too small for its scores to mean much (under
    /// <see cref="SmallValidation"/> images): how far one image moves top-1, and how to get a larger one.</summary>
    public static string? SmallValidationNote(int validationImages) =>
        validationImages is > 0 and < SmallValidation
            ? $"the validation set holds {validationImages} images, so one image moves top-1 by {100.0 / validationImages:0.#} points: the kept epoch, " +
              "early stopping, the reported scores and a score calibration follow chance at that size; a few hundred validation images " +
              "(a val/ folder, or a larger ValidationFraction, --val-fraction) make them trustworthy; with no more images, cross-validation " +
              "(CrossValidate, `mlnetext cross-validate`) scores every image with a model that never trained on it"
            : null;

    /// <summary>The validation size below which <see cref="SmallValidationNote"/> speaks.</summary>
    public const int SmallValidation = 50;

    /// <summary>What to say about bfloat16 autocast when training on the CPU, or null. On a processor without bfloat16
    /// instructions (<paramref name="nativeFlag"/> null) libtorch emulates bfloat16, so asking for autocast is warned
    /// about; on one with them (the flag that says so), leaving <paramref name="mixedPrecision"/> unset gets a hint, as
    /// autocast then trains 1.3-1.65x faster (bench/README.md) while float32 stays the CPU default. The run goes on as
    /// asked either way.</summary>
    public static string? Bfloat16Note(bool? mixedPrecision, Device device, string? nativeFlag)
    {
        if (device.Type != DeviceType.Cpu) return null;
        if (mixedPrecision == true && nativeFlag is null)
            return "bfloat16 autocast (MixedPrecision, --bf16) on a processor without bfloat16 instructions (no avx512_bf16 or " +
                   "amx_bf16): libtorch emulates bfloat16 here, and training ran 13-32x slower than in float32 on such a processor; " +
                   "MixedPrecision = false (--bf16 false) trains in float32";
        if (mixedPrecision is null && nativeFlag is not null)
            return $"this processor computes bfloat16 natively ({nativeFlag}): MixedPrecision = true (--bf16, bfloat16 autocast) " +
                   "usually trains 1.3-1.6x faster on such processors (--bf16 false keeps float32 without this note)";
        return null;
    }

    static Device ResolveDevice(string? name)
    {
        if (name is null) return TorchRuntime.CudaIsAvailable ? Device.Cuda(0) : Device.Cpu;
        var d = Device.Parse(name);
        if (d.Type == DeviceType.Cuda && !TorchRuntime.CudaIsAvailable)
            throw new ArgumentException($"Device '{name}' was asked for, but this libtorch has no usable CUDA device ({TorchRuntime.CudaDeviceCount} found); use cpu.");
        return d;
    }

    /// <summary>2e-4 fine-tuning pretrained weights, 1e-3 from scratch, 1e-2 for a linear probe (×50 with SGD), scaled by
    /// effective batch / 32.</summary>
    static double DefaultLearningRate(ImageClassificationOptions o)
    {
        double baseLr = o.Mode == TrainingMode.LinearProbe ? 1e-2 : o.WeightsPath is null ? 1e-3 : 2e-4;
        return baseLr * OptimizerChoice.LearningRateScale(o.Optimizer) * o.BatchSize * o.AccumulationSteps / 32.0;
    }

    /// <summary>Stochastic depth: the option, else 0 for a probe, else the variant's official rate capped at 0.1 (small
    /// datasets).</summary>
    public static double DropPath(ImageClassificationOptions o)
    {
        if (o.DropPathRate is double d) return d;
        if (o.Mode == TrainingMode.LinearProbe) return 0;
        JsonNode? official = o.CustomKwargs?["drop_path_rate"];
        if (o.CustomKwargs is null && Backbones.Variants.Any(v => string.Equals(v.Name, o.Model, StringComparison.OrdinalIgnoreCase)))
            official = Backbones.Find(o.Model).KwargsObject()["drop_path_rate"];
        return Math.Min(official?.GetValue<double>() ?? 0, 0.1);
    }

    /// <summary>Training images: the evaluation geometry for a probe or <c>Augment = none</c>; else random resized crop,
    /// flip and the chosen augmentation.</summary>
    public ImagePipeline TrainPipeline()
    {
        if (LinearProbe || Options.Augment == "none") return EvalPipeline();
        return ImagePipeline.Train(ImageSize, ImageSize, Config.Mean, Config.Std, Resampler.Parse(Config.Interpolation), scaleMin: Options.CropScaleMin,
            hflip: 0.5, colorJitter: Options.Augment == "light" ? 0.3 : 0, trivialAugment: Options.Augment == "trivial", randomErasing: Options.RandomErasing);
    }

    public ImagePipeline EvalPipeline() =>
        ImagePipeline.Eval(ImageSize, ImageSize, Config.Mean, Config.Std, Config.CropPct, Resampler.Parse(Config.Interpolation));

    /// <summary>Parameter groups by (depth group, decay): the head at the full rate, each earlier depth group at
    /// <see cref="ImageClassificationOptions.LayerDecay"/> times the next one's when layer decay is on; no weight decay
    /// where <paramref name="decays"/> says so.</summary>
    public List<ParamGroup> ParameterGroups(Backbone model, IEnumerable<(string Name, Parameter Parameter)> trained, Func<string, Parameter, bool> decays)
    {
        var o = Options;
        var groups = new SortedDictionary<(int Depth, bool Decay), List<Parameter>>();
        int last = model.NumDepthGroups - 1;
        foreach (var (name, p) in trained)
        {
            int depth = o.LayerDecay is null ? last : model.DepthGroupOf(name);
            bool decay = o.WeightDecay > 0 && decays(name, p);
            (groups.TryGetValue((depth, decay), out var list) ? list : groups[(depth, decay)] = new()).Add(p);
        }
        if (groups.Count == 0) throw new ArgumentException($"Nothing to train: every parameter of {model.Variant} is frozen in mode {o.Mode}.");
        return groups.Select(g => new ParamGroup(g.Value, LearningRate * Math.Pow(o.LayerDecay ?? 1, last - g.Key.Depth), g.Key.Decay ? o.WeightDecay : 0,
            $"{(g.Key.Decay ? "decay" : "no_decay")}_depth{g.Key.Depth}")).ToList();
    }

    /// <summary>The schedule over <paramref name="stepsPerEpoch"/> × epochs optimizer steps, warm-up included.</summary>
    public LrSchedule Schedule(int stepsPerEpoch)
    {
        long total = (long)stepsPerEpoch * Options.Epochs;
        return LrSchedule.Create(Options.Schedule, (long)Math.Round(Options.WarmupEpochs * stepsPerEpoch), total, Options.MinLearningRateFactor);
    }

    /// <summary>Class weights N / (classes · count_c) for <see cref="ClassWeighting.Balanced"/>, else null.</summary>
    public float[]? ClassWeights(ImageDataset train)
    {
        if (Options.ClassWeighting != ClassWeighting.Balanced) return null;
        var counts = train.CountPerClass();
        return counts.Select(c => (float)(train.Count / ((double)counts.Length * Math.Max(1, c)))).ToArray();
    }

    public ResolvedSettings Resolved(Backbone model, long trained) =>
        new(ImageSize, LearningRate, model.DropPathRate, Device + (Autocast ? " (bf16 autocast)" : ""), model.ParameterCount(), trained);

    public JsonObject Fingerprint(Backbone model, ImageDataset train, ImageDataset? val) =>
        TrainingKnobs.Fingerprint(Options, Resolved(model, 0), train.Count, val?.Count ?? 0);
}

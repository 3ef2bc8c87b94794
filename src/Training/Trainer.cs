using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using MLNetExt.Data;
using MLNetExt.Estimators;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Vision;

namespace MLNetExt.Training;

/// <summary>The result of a run: the kept model (best validation epoch, or the last; EMA weights when enabled), what
/// it is, and the record of the run.</summary>
internal sealed record TrainingOutcome(Backbone Model, ModelDescriptor Descriptor, TrainingHistory History);

/// <summary>The backbone-agnostic training loop behind <see cref="ImageClassificationEstimator"/>: AdamW with
/// parameter groups (no decay where the family's recipe says so; optional layer-wise LR decay), warm-up + cosine
/// schedule stepped per optimizer step, label smoothing, class weights, Mixup/CutMix, gradient clipping and
/// accumulation, EMA, early stopping, frozen stages or a cached linear probe, checkpoints with exact resume.
/// Reproducible: initialisation, split, order, augmentation and dropout all derive from the seed.</summary>
internal sealed class Trainer : IDisposable
{
    public const string LastCheckpoint = "checkpoint-last.safetensors", BestCheckpoint = "checkpoint-best.safetensors";
    const int MaxHardest = 32;

    readonly ImageClassificationOptions _o;
    readonly ImageDataset _train;
    readonly ImageDataset? _val;
    readonly Backbone _model;
    readonly ModelDescriptor _descriptor;
    readonly Device _device;
    readonly bool _autocast;
    readonly int _size;
    readonly double _lr;
    readonly JsonObject _fingerprint;
    readonly List<Module> _frozenModules = new();
    readonly List<(string Name, Parameter Parameter)> _trainable = new();
    readonly AdamW _optimizer;
    readonly WarmupCosineSchedule _schedule;
    readonly WeightEma? _ema;
    readonly Tensor? _classWeights;
    readonly DataLoader _trainLoader;
    readonly DataLoader? _valLoader;
    readonly DecodedImageCache _cache;
    readonly TrainingState _state;
    readonly int _batchesPerEpoch, _stepsPerEpoch;
    readonly Stopwatch _clock = new();
    TimeSpan _durationBefore;
    List<KeyValuePair<string, Tensor>>? _bestWeights;
    string? _lastGoodCheckpoint;

    // Linear probe: the classifier trained on cached pre-logit features.
    readonly bool _cached;
    Linear? _probe;
    Tensor? _trainFeatures, _valFeatures;

    bool Probe => _o.Mode == TrainingMode.LinearProbe;

    Trainer(ImageClassificationOptions o, ImageDataset train, ImageDataset? val)
    {
        _o = o;
        _train = train;
        _val = val;
        _device = ResolveDevice(o.Device);
        _autocast = o.MixedPrecision ?? _device.Type == DeviceType.Cuda;
        _cached = Probe && o.CacheFeatures;

        TrainingState? resumed = null;
        Serialization.StateDict? resumeTensors = null;
        try
        {
            if (o.ResumeFrom is not null)
            {
                var (d, s, t) = TrainingCheckpoint.Read(o.ResumeFrom);
                (resumed, resumeTensors) = (s, t);
                if (!d.Classes.SequenceEqual(train.Classes))
                    throw new TrainingException($"Cannot resume from '{o.ResumeFrom}': it was trained on classes [{string.Join(", ", d.Classes)}], " +
                                                $"the data has [{string.Join(", ", train.Classes)}].");
            }

            TorchRuntime.ManualSeed(o.Seed ?? 0);
            _model = BuildModel(train.Classes.Count, resumeTensors is not null);
            var cfg = _model.PretrainedConfig;
            _size = o.ImageSize ?? cfg.Height;
            if (_size < 16) throw new ArgumentOutOfRangeException(nameof(o), _size, $"Image size must be at least 16 pixels, got {_size}.");
            _model.CheckInputSize(_size, _size);
            _descriptor = new ModelDescriptor(o.CustomKwargs is null ? _model.Variant : o.Model, o.CustomKwargs, train.Classes, _size,
                cfg.Mean, cfg.Std, cfg.CropPct, cfg.Interpolation);
            _lr = o.LearningRate ?? DefaultLearningRate(o);
            _fingerprint = Fingerprint(o, _size, _lr, train, val);
            if (resumed is not null) CheckFingerprint(resumed.Fingerprint, o.ResumeFrom!);

            _model.To(_device);
            SelectTrainable();

            _trainLoader = new DataLoader(train, TrainPipeline(cfg), new LoaderOptions
            {
                BatchSize = o.BatchSize, Shuffle = true, Seed = o.Seed ?? 0, Workers = o.Workers ?? Math.Max(1, Environment.ProcessorCount),
                Mixup = Probe || (o.MixupAlpha <= 0 && o.CutmixAlpha <= 0) ? null
                    : new MixupCutmix(o.MixupAlpha, o.CutmixAlpha, labelSmoothing: o.LabelSmoothing),
                Cache = _cache = new DecodedImageCache(2 * _size, maxBytes: 1L << 30),
            });
            if (val is not null)
                _valLoader = new DataLoader(val, EvalPipeline(cfg), new LoaderOptions
                {
                    BatchSize = o.BatchSize, Shuffle = false, Seed = o.Seed ?? 0, Workers = _trainLoader.Options.Workers, Cache = _cache,
                });
            _batchesPerEpoch = _trainLoader.BatchesPerEpoch;
            _stepsPerEpoch = (_batchesPerEpoch + o.AccumulationSteps - 1) / o.AccumulationSteps;
            long total = (long)_stepsPerEpoch * o.Epochs;
            long warmup = Math.Min((long)Math.Round(o.WarmupEpochs * _stepsPerEpoch), total - 1);
            _schedule = new WarmupCosineSchedule(Math.Max(0, warmup), total, warmupStartFactor: 0, minFactor: o.MinLearningRateFactor);

            if (_cached)
            {
                var (w, b) = ClassifierTensors();
                _probe = new Linear(w.Shape[1] * (w.NumEl / (w.Shape[0] * w.Shape[1])), w.Shape[0]);
                _probe.To(_device);
                CopyClassifierToProbe();
            }
            _optimizer = new AdamW(ParameterGroups());
            if (o.Ema) _ema = new WeightEma(TrainedUnit, o.EmaDecay);
            if (o.ClassWeighting == ClassWeighting.Balanced)
            {
                var counts = train.CountPerClass();
                var w = counts.Select(c => (float)(train.Count / ((double)counts.Length * Math.Max(1, c)))).ToArray();
                _classWeights = Tensor.FromArray(w, [w.Length]).To(_device).DetachFromScope();
            }

            _state = resumed ?? new TrainingState
            {
                Fingerprint = _fingerprint,
                History = new TrainingHistory
                {
                    Model = _descriptor.Model,
                    Classes = train.Classes,
                    Settings = Settings(),
                    TrainCount = train.Count,
                    ValCount = val?.Count ?? 0,
                    Monitor = o.Monitor,
                },
            };
            if (resumeTensors is not null) Restore(resumeTensors);
        }
        catch
        {
            resumeTensors?.Dispose();
            Dispose();
            throw;
        }
        resumeTensors?.Dispose();
    }

    /// <summary>Trains on <paramref name="train"/> (and validates on <paramref name="val"/>, or on a stratified split
    /// of the training set when it is null and <see cref="ImageClassificationOptions.ValidationFraction"/> &gt; 0).</summary>
    public static TrainingOutcome Run(ImageClassificationOptions options, ImageDataset train, ImageDataset? val, CancellationToken cancel)
    {
        Validate(options);
        if (val is null && options.ValidationFraction > 0) (train, val) = train.Split(options.ValidationFraction, options.Seed ?? 0);
        if (val is not null && !val.Classes.SequenceEqual(train.Classes))
            throw new DatasetException($"The validation set's classes [{string.Join(", ", val.Classes)}] differ from the training set's [{string.Join(", ", train.Classes)}].");
        using var trainer = new Trainer(options, train, val);
        trainer.CheckStepMemory();
        return trainer.Loop(cancel);
    }

    /// <summary>
    /// Refuses a CPU run whose training step cannot fit in the memory available, before the first step (which would
    /// end in the kernel's OOM killer with no message). Only for large steps (more than 64 images of 224x224 in
    /// pixels): a forward and backward of 2 images at two small sizes measures the memory a step takes as
    /// fixed + per-pixel cost, scaled to the run's size and batch with a 20 % margin, plus gradients and AdamW's two
    /// moments (checked against smt_t at 384, batch 8: 0.35 GB per image measured, 0.26 GB estimated). A probe
    /// that fails or cannot be measured skips the check. The probe changes nothing: BatchNorm statistics are restored
    /// and gradients cleared.
    /// </summary>
    void CheckStepMemory()
    {
        long pixels = (long)_size * _size;
        if (_device.Type != DeviceType.Cpu || _cached || (long)_o.BatchSize * pixels <= 64L * 224 * 224) return;
        if (StepMemory.Available() is not long available) return;
        var sizes = new List<int>();
        foreach (var s in new[] { 64, 128, 96, 160 })
        {
            if (s >= _size || sizes.Count == 2) continue;
            try { _model.CheckInputSize(s, s); sizes.Add(s); }
            catch (ArgumentException) { }
        }
        if (sizes.Count < 2) return;
        sizes.Sort();
        const int probeBatch = 2; // some layers need two images in training mode
        var buffers = _model.NamedBuffers().Select(b => b.Buffer.Clone().DetachFromScope()).ToList();
        bool wasTraining = _model.Training;
        var measured = new List<(double Pixels, double Bytes)>();
        try
        {
            _model.Train();
            void Step(int s)
            {
                using var scope = TensorScope.Begin();
                var x = Tensor.Randn([probeBatch, 3, s, s]).To(_device);
                _model.Call(x).Sum().Backward();
            }
            Step(sizes[0]); // first use allocates once (kernel caches, thread pools): not part of a step's cost
            _model.ZeroGrad();
            foreach (var s in sizes)
            {
                var grown = StepMemory.PeakGrowth(() => Step(s));
                _model.ZeroGrad();
                if (grown is not long g) return;
                measured.Add(((double)s * s * probeBatch, g));
            }
        }
        catch (Exception e) when (e is TorchException or ArgumentException or InvalidOperationException) { return; }
        finally
        {
            _model.ZeroGrad();
            using (Autograd.NoGrad())
                foreach (var ((_, b), saved) in _model.NamedBuffers().Zip(buffers))
                {
                    b.Copy_(saved);
                    saved.Dispose();
                }
            _model.Train(wasTraining);
        }
        var ((p0, d0), (p1, d1)) = (measured[0], measured[1]);
        double perPixel = Math.Max(0, (d1 - d0) / (p1 - p0)), fixedCost = Math.Max(0, d0 - perPixel * p0);
        if (perPixel == 0) return; // nothing measurable: no basis for refusing
        double state = 3.0 * TrainedParameters.Sum(p => p.Parameter.NumEl) * 4; // gradients and two AdamW moments, float32
        double need = 1.2 * (fixedCost + _o.BatchSize * perPixel * pixels) + state; // 20 % margin: measured a little low
        double budget = 0.9 * available;
        if (need <= budget) return;
        int batch = (int)Math.Floor(((budget - state) / 1.2 - fixedCost) / (perPixel * pixels));
        string fix = batch >= 1
            ? $"--batch-size {batch} (with --accumulate {(int)Math.Ceiling((double)_o.BatchSize / batch)} to keep the effective batch)"
            : $"a smaller --image-size (about {Math.Max(32, (int)Math.Sqrt(Math.Max(0, (budget - state) / 1.2 - fixedCost) / perPixel) / 32 * 32)} fits at batch 1)";
        throw new TrainingException($"A training step at {_size}x{_size} with batch {_o.BatchSize} needs about {StepMemory.Format(need)} of memory " +
            $"(measured at {string.Join(" and ", sizes.Select(s => $"{s}x{s}"))} and scaled), but {StepMemory.Format(available)} are available. " +
            $"Use {fix}, or a machine with more memory or a GPU.");
    }

    /// <summary>One optimizer parameter group as a run would build it.</summary>
    internal sealed record GroupPlan(string Name, double LearningRate, double WeightDecay, IReadOnlyList<string> Parameters);

    /// <summary>The parameter groups and class weights a run with these settings would use, without training (for
    /// inspection and tests).</summary>
    internal static (IReadOnlyList<GroupPlan> Groups, float[]? ClassWeights) Plan(ImageClassificationOptions options, ImageDataset train)
    {
        Validate(options);
        using var trainer = new Trainer(options with { ResumeFrom = null, CheckpointDirectory = null }, train, null);
        var names = new Dictionary<Parameter, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, p) in trainer.TrainedParameters) names[p] = name;
        var groups = trainer._optimizer.Groups.Select(g => new GroupPlan(g.Name, g.InitialLearningRate, g.WeightDecay,
            g.Parameters.Select(p => names[p]).ToList())).ToList();
        return (groups, trainer._classWeights?.To(Device.Cpu).ToArray<float>());
    }

    // ---------------------------------------------------------------- setup

    static void Validate(ImageClassificationOptions o)
    {
        static void Require(bool ok, string name, object? value, string expected)
        {
            if (!ok) throw new TrainingOptionException(name, $"must be {expected}; got {value?.ToString() ?? "none"}");
        }
        Require(o.Epochs >= 1, nameof(o.Epochs), o.Epochs, "at least 1");
        Require(o.BatchSize >= 1, nameof(o.BatchSize), o.BatchSize, "at least 1");
        Require(o.AccumulationSteps >= 1, nameof(o.AccumulationSteps), o.AccumulationSteps, "at least 1");
        Require(o.LearningRate is null or > 0, nameof(o.LearningRate), o.LearningRate, "positive");
        Require(o.WeightDecay >= 0, nameof(o.WeightDecay), o.WeightDecay, ">= 0");
        Require(o.WarmupEpochs >= 0, nameof(o.WarmupEpochs), o.WarmupEpochs, ">= 0");
        Require(o.MinLearningRateFactor is >= 0 and <= 1, nameof(o.MinLearningRateFactor), o.MinLearningRateFactor, "in [0, 1]");
        Require(o.LayerDecay is null or (> 0 and <= 1), nameof(o.LayerDecay), o.LayerDecay, "in (0, 1]");
        Require(o.GradClipNorm is null or > 0, nameof(o.GradClipNorm), o.GradClipNorm, "positive");
        Require(o.LabelSmoothing is >= 0 and < 1, nameof(o.LabelSmoothing), o.LabelSmoothing, "in [0, 1)");
        Require(o.EarlyStoppingPatience is null or >= 1, nameof(o.EarlyStoppingPatience), o.EarlyStoppingPatience, "at least 1");
        Require(ClassificationMetrics.MetricNames.Contains(o.Monitor), nameof(o.Monitor), o.Monitor, $"one of {string.Join(", ", ClassificationMetrics.MetricNames)}");
        Require(o.ValidationFraction is >= 0 and < 1, nameof(o.ValidationFraction), o.ValidationFraction, "in [0, 1)");
        Require(o.Augment is "trivial" or "light" or "none", nameof(o.Augment), o.Augment, "trivial, light or none");
        Require(o.CropScaleMin is > 0 and <= 1, nameof(o.CropScaleMin), o.CropScaleMin, "in (0, 1]");
        Require(o.RandomErasing is >= 0 and <= 1, nameof(o.RandomErasing), o.RandomErasing, "in [0, 1]");
        Require(o.MixupAlpha >= 0 && o.CutmixAlpha >= 0, "MixupAlpha/CutmixAlpha", $"{o.MixupAlpha}/{o.CutmixAlpha}", ">= 0");
        Require(o.Workers is not int workers || TorchRuntime.ThreadCountProblem(workers, nameof(o.Workers)) is null, nameof(o.Workers), o.Workers, $"1 to {TorchRuntime.MaxThreads} (8 per processor)");
        if (o.Mode == TrainingMode.FreezeStages) Require(o.FrozenStages >= 1, nameof(o.FrozenStages), o.FrozenStages, "at least 1");
    }

    static Device ResolveDevice(string? name)
    {
        if (name is null) return TorchRuntime.CudaIsAvailable ? Device.Cuda(0) : Device.Cpu;
        var d = Device.Parse(name);
        if (d.Type == DeviceType.Cuda && !TorchRuntime.CudaIsAvailable)
            throw new ArgumentException($"Device '{name}' was asked for, but this libtorch has no usable CUDA device ({TorchRuntime.CudaDeviceCount} found); use cpu.");
        return d;
    }

    static double DefaultLearningRate(ImageClassificationOptions o)
    {
        double baseLr = o.Mode == TrainingMode.LinearProbe ? 1e-2 : o.WeightsPath is null ? 1e-3 : 2e-4;
        return baseLr * o.BatchSize * o.AccumulationSteps / 32.0;
    }

    double DropPath()
    {
        if (_o.DropPathRate is double d) return d;
        if (Probe) return 0;
        JsonNode? official = _o.CustomKwargs?["drop_path_rate"];
        if (_o.CustomKwargs is null && Backbones.Variants.Any(v => string.Equals(v.Name, _o.Model, StringComparison.OrdinalIgnoreCase)))
            official = Backbones.Find(_o.Model).KwargsObject()["drop_path_rate"];
        return Math.Min(official?.GetValue<double>() ?? 0, 0.1);
    }

    Backbone BuildModel(int classes, bool resuming)
    {
        var overrides = new JsonObject { ["drop_path_rate"] = DropPath() };
        if (_o.WeightsPath is not null && !resuming)
        {
            var (model, load) = Backbones.Load(_o.Model, _o.WeightsPath, classes, _o.CustomKwargs?.DeepClone().AsObject(), overrides);
            if (load.SkippedHeadKeys.Count > 0)
                Info($"Loaded {load.LoadedKeys.Count} tensors from {_o.WeightsPath}; the classifier ({string.Join(", ", load.SkippedHeadKeys)}) starts fresh for {classes} classes.");
            else Info($"Loaded {load.LoadedKeys.Count} tensors from {_o.WeightsPath}.");
            return model;
        }
        if (_o.CustomKwargs is null) return Backbones.Create(_o.Model, classes, overrides);
        var kwargs = _o.CustomKwargs.DeepClone().AsObject();
        kwargs["drop_path_rate"] = overrides["drop_path_rate"]!.DeepClone();
        return Backbones.CreateCustom(_o.Model, kwargs, classes);
    }

    ImagePipeline TrainPipeline(PretrainedConfig cfg)
    {
        if (Probe) return EvalPipeline(cfg); // features are computed once (or per batch, identically): no augmentation
        var interpolation = Resampler.Parse(cfg.Interpolation);
        if (_o.Augment == "none") return EvalPipeline(cfg);
        return ImagePipeline.Train(_size, _size, cfg.Mean, cfg.Std, interpolation, scaleMin: _o.CropScaleMin, hflip: 0.5,
            colorJitter: _o.Augment == "light" ? 0.3 : 0, trivialAugment: _o.Augment == "trivial", randomErasing: _o.RandomErasing);
    }

    ImagePipeline EvalPipeline(PretrainedConfig cfg) =>
        ImagePipeline.Eval(_size, _size, cfg.Mean, cfg.Std, cfg.CropPct, Resampler.Parse(cfg.Interpolation));

    /// <summary>Marks what is trained and collects the modules that are entirely frozen (kept in eval mode so their
    /// batch-norm statistics and dropout stay fixed).</summary>
    void SelectTrainable()
    {
        var classifier = _model.ClassifierKeys.ToHashSet();
        int stages = _model.StageDepths.Count;
        if (_o.Mode == TrainingMode.FreezeStages && _o.FrozenStages > stages)
            throw new ArgumentException($"FrozenStages {_o.FrozenStages}: {_model.Variant} has {stages} stages.");
        foreach (var (name, p) in _model.NamedParameters())
        {
            bool train = _o.Mode switch
            {
                TrainingMode.LinearProbe => classifier.Contains(name),
                TrainingMode.FreezeStages => _model.StageOf(name) > _o.FrozenStages,
                _ => true,
            };
            p.RequiresGrad = train;
            if (train && !_cached) _trainable.Add((name, p));
        }
        if (Probe && classifier.Count == 0) throw new ArgumentException($"{_model.Variant} has no classifier to probe.");
        var frozen = new HashSet<string>(_model.NamedParameters().Where(p => !p.Parameter.RequiresGrad).Select(p => p.Name));
        var frozenPrefixes = new List<string>();
        foreach (var (prefix, m) in _model.NamedModules())
        {
            if (prefix.Length == 0 || frozenPrefixes.Any(f => prefix.StartsWith(f + ".", StringComparison.Ordinal))) continue;
            var own = m.NamedParameters().Select(p => prefix + "." + p.Name).ToList();
            if (own.Count > 0 && own.All(frozen.Contains))
            {
                _frozenModules.Add(m);
                frozenPrefixes.Add(prefix);
            }
        }
    }

    /// <summary>The module whose parameters the optimizer updates: the probe's linear layer, or the backbone.</summary>
    Module TrainedUnit => _cached ? _probe! : _model;

    IEnumerable<(string Name, Parameter Parameter)> TrainedParameters =>
        _cached ? new[] { (_model.ClassifierKeys[0], _probe!.Weight), (_model.ClassifierKeys[1], _probe.Bias!) } : _trainable;

    List<ParamGroup> ParameterGroups()
    {
        var groups = new SortedDictionary<(int Depth, bool Decay), List<Parameter>>();
        int last = _model.NumDepthGroups - 1;
        foreach (var (name, p) in TrainedParameters)
        {
            int depth = _o.LayerDecay is null ? last : _model.DepthGroupOf(name);
            bool decay = !_model.ExemptFromWeightDecay(name, p) && _o.WeightDecay > 0;
            if (_cached) decay = p.Dim > 1 && _o.WeightDecay > 0;
            (groups.TryGetValue((depth, decay), out var list) ? list : groups[(depth, decay)] = new()).Add(p);
        }
        if (groups.Count == 0) throw new ArgumentException($"Nothing to train: every parameter of {_model.Variant} is frozen in mode {_o.Mode}.");
        return groups.Select(g => new ParamGroup(g.Value, _lr * Math.Pow(_o.LayerDecay ?? 1, last - g.Key.Depth), g.Key.Decay ? _o.WeightDecay : 0,
            $"{(g.Key.Decay ? "decay" : "no_decay")}_depth{g.Key.Depth}")).ToList();
    }

    (Tensor Weight, Tensor Bias) ClassifierTensors()
    {
        var sd = _model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var keys = _model.ClassifierKeys;
        if (keys.Count != 2 || !keys[0].EndsWith("weight", StringComparison.Ordinal) || !keys[1].EndsWith("bias", StringComparison.Ordinal))
            throw new InvalidOperationException($"{_model.Variant}: a linear probe needs a classifier of one weight and one bias, found [{string.Join(", ", keys)}].");
        return (sd[keys[0]], sd[keys[1]]);
    }

    void CopyClassifierToProbe()
    {
        var (w, b) = ClassifierTensors();
        using var _ = Autograd.NoGrad();
        using var flat = w.Reshape(_probe!.Weight.Shape);
        _probe.Weight.Copy_(flat);
        _probe.Bias!.Copy_(b);
    }

    void CopyProbeToClassifier()
    {
        if (!_cached) return;
        var (w, b) = ClassifierTensors();
        using var _ = Autograd.NoGrad();
        using var shaped = _probe!.Weight.Reshape(w.Shape);
        w.Copy_(shaped);
        b.Copy_(_probe.Bias!);
    }

    static JsonObject Fingerprint(ImageClassificationOptions o, int size, double lr, ImageDataset train, ImageDataset? val) => new()
    {
        ["model"] = o.Model,
        ["custom_kwargs"] = o.CustomKwargs?.DeepClone(),
        ["image_size"] = size,
        ["mode"] = o.Mode.ToString(),
        ["frozen_stages"] = o.Mode == TrainingMode.FreezeStages ? o.FrozenStages : 0,
        ["epochs"] = o.Epochs,
        ["batch_size"] = o.BatchSize,
        ["accumulation_steps"] = o.AccumulationSteps,
        ["lr"] = lr,
        ["weight_decay"] = o.WeightDecay,
        ["warmup_epochs"] = o.WarmupEpochs,
        ["min_lr_factor"] = o.MinLearningRateFactor,
        ["layer_decay"] = o.LayerDecay,
        ["grad_clip"] = o.GradClipNorm,
        ["label_smoothing"] = o.LabelSmoothing,
        ["class_weighting"] = o.ClassWeighting.ToString(),
        ["ema"] = o.Ema ? o.EmaDecay : null,
        ["augment"] = o.Augment,
        ["crop_scale_min"] = o.CropScaleMin,
        ["random_erasing"] = o.RandomErasing,
        ["mixup"] = o.MixupAlpha,
        ["cutmix"] = o.CutmixAlpha,
        ["seed"] = o.Seed ?? 0,
        ["train_count"] = train.Count,
        ["val_count"] = val?.Count ?? 0,
    };

    void CheckFingerprint(JsonObject saved, string path)
    {
        var diffs = new List<string>();
        foreach (var (k, v) in _fingerprint)
        {
            var s = saved[k];
            if (!JsonNode.DeepEquals(s, v)) diffs.Add($"{k}: checkpoint {s?.ToJsonString() ?? "null"}, now {v?.ToJsonString() ?? "null"}");
        }
        if (diffs.Count > 0)
            throw new TrainingException($"Cannot resume from '{path}': the run's settings differ, so it would not continue the same run ({string.Join("; ", diffs)}).");
    }

    IReadOnlyDictionary<string, string> Settings()
    {
        var s = new Dictionary<string, string>
        {
            ["mode"] = _o.Mode == TrainingMode.FreezeStages ? $"freeze:{_o.FrozenStages}" : _o.Mode == TrainingMode.LinearProbe ? "linear-probe" : "finetune",
            ["weights"] = _o.WeightsPath ?? "none (random initialisation)",
            ["image_size"] = $"{_size}",
            ["epochs"] = $"{_o.Epochs}",
            ["batch_size"] = _o.AccumulationSteps > 1 ? $"{_o.BatchSize} × {_o.AccumulationSteps} accumulated" : $"{_o.BatchSize}",
            ["lr"] = _lr.ToString("G4", CultureInfo.InvariantCulture),
            ["weight_decay"] = _o.WeightDecay.ToString(CultureInfo.InvariantCulture),
            ["warmup_epochs"] = _o.WarmupEpochs.ToString(CultureInfo.InvariantCulture),
            ["layer_decay"] = _o.LayerDecay?.ToString(CultureInfo.InvariantCulture) ?? "off",
            ["label_smoothing"] = _o.LabelSmoothing.ToString(CultureInfo.InvariantCulture),
            ["drop_path"] = _model.DropPathRate.ToString(CultureInfo.InvariantCulture),
            ["augment"] = Probe ? "none (linear probe)" : _o.Augment,
            ["mixup/cutmix"] = $"{_o.MixupAlpha.ToString(CultureInfo.InvariantCulture)}/{_o.CutmixAlpha.ToString(CultureInfo.InvariantCulture)}",
            ["ema"] = _o.Ema ? _o.EmaDecay.ToString(CultureInfo.InvariantCulture) : "off",
            ["grad_clip"] = _o.GradClipNorm?.ToString(CultureInfo.InvariantCulture) ?? "off",
            ["class_weighting"] = _o.ClassWeighting.ToString().ToLowerInvariant(),
            ["device"] = _device.ToString() + (_autocast ? " (bf16 autocast)" : ""),
            ["seed"] = $"{_o.Seed ?? 0}",
            ["parameters"] = $"{_model.ParameterCount():N0} ({TrainedParameters.Sum(p => p.Parameter.NumEl):N0} trained)",
        };
        return s;
    }

    void Restore(Serialization.StateDict t)
    {
        var model = t.Where(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal))
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key[6..], kv.Value)).ToList();
        _model.LoadStateDict(model);
        if (_cached) CopyClassifierToProbe();
        var byName = t.ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (name, p) in TrainedParameters)
        {
            if (!_state.OptimizerSteps.TryGetValue(name, out long steps)) continue;
            var st = _optimizer.StateOf(p);
            st.Step = steps;
            st.Set("exp_avg", byName[$"optim.{name}.exp_avg"].To(_device, copy: true));
            st.Set("exp_avg_sq", byName[$"optim.{name}.exp_avg_sq"].To(_device, copy: true));
        }
        if (_ema is not null)
        {
            _ema.Load(t.Where(kv => kv.Key.StartsWith("ema.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[4..], kv => kv.Value));
            _ema.Updates = _state.EmaUpdates;
        }
        _durationBefore = _state.History.Duration;
        if (_state.BestEpoch is int bestEpoch && _o.CheckpointDirectory is not null) RestoreBestWeights(bestEpoch, t);
        _lastGoodCheckpoint = _o.ResumeFrom;
        Info($"Resumed from {_o.ResumeFrom} at epoch {_state.Epoch + 1}, batch {_state.NextBatch} (step {_state.GlobalStep}).");
    }

    /// <summary>
    /// The best epoch's weights on resume. Each epoch end writes checkpoint-last, then (when the epoch improved)
    /// checkpoint-best, each atomically; a stop between the two leaves checkpoint-best older than the epoch
    /// checkpoint-last names as best. So checkpoint-best is used only when its own epoch and settings are the ones
    /// checkpoint-last names; otherwise, if checkpoint-last ends the best epoch itself (the only case the write order
    /// allows), the best weights are checkpoint-last's and checkpoint-best is rewritten; failing both, the best is
    /// forgotten (said in the log) rather than kept wrong.
    /// </summary>
    void RestoreBestWeights(int bestEpoch, Serialization.StateDict resumed)
    {
        var best = Path.Combine(_o.CheckpointDirectory!, BestCheckpoint);
        string prefix = _ema is not null ? "ema." : "model.";
        List<KeyValuePair<string, Tensor>> Extract(Serialization.StateDict t)
        {
            var w = t.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
                .Select(kv => new KeyValuePair<string, Tensor>(kv.Key[prefix.Length..], kv.Value.Clone().DetachFromScope())).ToList();
            return _cached ? ProbeToBackboneState(w, t, prefix) : w;
        }
        string found;
        if (!File.Exists(best)) found = "is missing";
        else
        {
            try
            {
                var (_, bs, bt) = TrainingCheckpoint.Read(best);
                using (bt)
                {
                    if (bs.Epoch == bestEpoch && bs.NextBatch == 0 && JsonNode.DeepEquals(bs.Fingerprint, _state.Fingerprint))
                    {
                        _bestWeights = Extract(bt);
                        return;
                    }
                    found = JsonNode.DeepEquals(bs.Fingerprint, _state.Fingerprint) ? $"holds epoch {bs.Epoch}" : "belongs to a run with other settings";
                }
            }
            catch (IOException e) // CheckpointException and InvalidDataException included
            {
                found = $"cannot be read ({e.Message})";
            }
        }
        if (_state.Epoch == bestEpoch && _state.NextBatch == 0)
        {
            _bestWeights = Extract(resumed);
            Info($"{BestCheckpoint} {found}, not the best epoch {bestEpoch} that {Path.GetFileName(_o.ResumeFrom)} names (a stop between the two writes): " +
                 $"the best weights are taken from {Path.GetFileName(_o.ResumeFrom)}, which ends that epoch, and {BestCheckpoint} is written again.");
            SaveCheckpoint(BestCheckpoint);
            return;
        }
        Info($"{BestCheckpoint} {found}, not the best epoch {bestEpoch} that {Path.GetFileName(_o.ResumeFrom)} names, and those weights are nowhere else: " +
             "the best epoch is forgotten, and the model kept will be the best of the epochs still to run.");
        _state.BestEpoch = _state.History.BestEpoch = null;
        _state.BestValue = null;
    }

    /// <summary>For a cached probe the EMA covers the probe only: rebuild a full backbone state from the checkpoint's
    /// model tensors with the averaged classifier.</summary>
    List<KeyValuePair<string, Tensor>> ProbeToBackboneState(List<KeyValuePair<string, Tensor>> weights, Serialization.StateDict checkpoint, string prefix)
    {
        if (prefix == "model.") return weights;
        var ema = weights.ToDictionary(kv => kv.Key, kv => kv.Value);
        var result = new List<KeyValuePair<string, Tensor>>();
        foreach (var (k, v) in checkpoint.Where(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal)))
        {
            string key = k[6..];
            if (key == _model.ClassifierKeys[0]) result.Add(new(key, ema["weight"].Reshape(v.Shape).Clone().DetachFromScope()));
            else if (key == _model.ClassifierKeys[1]) result.Add(new(key, ema["bias"].Clone().DetachFromScope()));
            else result.Add(new(key, v.Clone().DetachFromScope()));
        }
        foreach (var (_, t) in weights) t.Dispose();
        return result;
    }

    // ---------------------------------------------------------------- the loop

    TrainingOutcome Loop(CancellationToken cancel)
    {
        var h = _state.History;
        _clock.Start();
        if (_cached) CacheFeatures();
        bool stopped = false;
        EvalResult? epochEval = null, bestEval = null; // the best epoch's validation, when it ran in this session
        while (!stopped && _state.Epoch < _o.Epochs)
        {
            int epoch = _state.Epoch;
            var (trainLoss, seconds, imagesPerSecond) = TrainEpoch(epoch, cancel);
            CopyProbeToClassifier();
            double? valLoss = null;
            ClassificationMetrics? metrics = null;
            if (_val is not null)
            {
                var r = epochEval = WithEvaluationWeights(() => Evaluate(epoch));
                if (r.Probabilities.Any(float.IsNaN) || !double.IsFinite(r.Loss))
                    throw NonFinite(epoch, _batchesPerEpoch - 1, r.Loss, "validation output");
                (valLoss, metrics) = (r.Loss, ClassificationMetrics.Compute(r.Probabilities, r.Labels, _train.Classes));
            }
            var summary = new EpochSummary(epoch + 1, trainLoss, _optimizer.Groups[^1].LearningRate, imagesPerSecond, seconds, valLoss, metrics);
            h.Epochs.Add(summary);
            _state.Epoch = epoch + 1;
            _state.NextBatch = 0;

            bool improved = false;
            if (metrics is not null)
            {
                double v = metrics.Get(_o.Monitor);
                bool higher = ClassificationMetrics.HigherIsBetter(_o.Monitor);
                improved = _state.BestValue is not double best || (higher ? v > best : v < best);
                if (improved)
                {
                    _state.BestValue = v;
                    _state.BestEpoch = h.BestEpoch = epoch + 1;
                    _state.EpochsWithoutImprovement = 0;
                    KeepBestWeights();
                    bestEval = epochEval;
                }
                else _state.EpochsWithoutImprovement++;
            }
            if (_o.EarlyStoppingPatience is int patience && _state.EpochsWithoutImprovement >= patience && _state.Epoch < _o.Epochs)
            {
                h.StopReason = $"early stop after epoch {epoch + 1}: {_o.Monitor} has not improved for {patience} epoch(s) (best {_state.BestValue:G4} at epoch {_state.BestEpoch})";
                stopped = true;
            }
            h.Duration = _durationBefore + _clock.Elapsed;
            Report(new TrainingProgress(TrainingPhase.EpochEnd, epoch + 1, _o.Epochs, _stepsPerEpoch, _stepsPerEpoch, _state.GlobalStep,
                (long)_stepsPerEpoch * _o.Epochs, trainLoss, summary.LearningRate, imagesPerSecond, _clock.Elapsed, Eta(), summary));
            SaveCheckpoint(LastCheckpoint);
            if (improved) SaveCheckpoint(BestCheckpoint);
            if (stopped) Info(h.StopReason);
            if (epoch == 0 && _trainLoader.Skipped.Count > 0)
                Info($"{_trainLoader.Skipped.Count} training image(s) could not be decoded and are skipped, e.g. {_trainLoader.Skipped[0]}.");
        }

        // The kept model: the best epoch's weights, else the EMA, else the last.
        if (_bestWeights is not null) _model.LoadStateDict(_bestWeights);
        else if (_ema is not null) LoadEmaIntoModel();
        _model.Eval();
        if (_val is not null)
        {
            // The kept weights were validated already when their epoch ran in this session; after a resume they are
            // scored again (identically: same weights, same data, eval mode).
            var r = _bestWeights is not null && bestEval is not null ? bestEval : Evaluate(_o.Epochs);
            h.Final = ClassificationMetrics.Compute(r.Probabilities, r.Labels, _train.Classes);
            h.Hardest.Clear();
            h.Hardest.AddRange(Misclassified.Rank(r.Probabilities, r.Labels, r.Sources).Take(MaxHardest));
        }
        h.Duration = _durationBefore + _clock.Elapsed;
        var model = _model;
        _modelTaken = true;
        return new TrainingOutcome(model, _descriptor, h);
    }

    bool _modelTaken;

    (double Loss, double Seconds, double ImagesPerSecond) TrainEpoch(int epoch, CancellationToken cancel)
    {
        // Ctrl-C during the previous epoch's last step: that epoch was validated and saved; stop before this one.
        if (_interruptAfterEpoch) Interrupt(epoch, _state.NextBatch);
        var clock = Stopwatch.StartNew();
        if (Probe) _model.Eval();
        else
        {
            _model.Train();
            foreach (var m in _frozenModules) m.Eval();
        }
        int startBatch = _state.NextBatch, batchIndex = startBatch;
        // A resumed epoch continues its own mean loss and duration (kept in the checkpoint).
        double lossSum = startBatch > 0 ? _state.EpochLossSum : 0, secondsBefore = startBatch > 0 ? _state.EpochSeconds : 0;
        long images = startBatch > 0 ? _state.EpochImages : 0, imagesBefore = images;
        int accumulated = 0, A = _o.AccumulationSteps;
        int stepInEpoch = startBatch / A;
        var recent = new Queue<(double Seconds, long Images)>();
        IEnumerable<(Tensor X, Tensor Y, Tensor? Targets, int Count, IDisposable Owner)> batches = _cached ? CachedBatches(epoch, startBatch) : LoaderBatches(epoch, startBatch);
        foreach (var (x, y, targets, count, owner) in batches)
        {
            using var _owner = owner;
            if (accumulated == 0) _schedule.Apply(_optimizer, _state.GlobalStep);
            TorchRuntime.ManualSeed(Mix(_o.Seed ?? 0, _state.MicroStep));
            double value;
            using (var scope = TensorScope.Begin())
            {
                var loss = Loss(x, y, targets);
                if (PoisonMicroStep == _state.MicroStep) loss = loss.Mul(double.NaN);
                value = loss.ToDouble();
                if (!double.IsFinite(value)) throw NonFinite(epoch, batchIndex, value, "loss");
                (A == 1 ? loss : loss.Div(A)).Backward();
            }
            _state.MicroStep++;
            accumulated++;
            batchIndex++;
            lossSum += value * count;
            images += count;
            bool lastOfEpoch = batchIndex == _batchesPerEpoch;
            if (accumulated < A && !lastOfEpoch) continue;

            if (_o.GradClipNorm is double clip)
            {
                double norm = GradClip.ClipGradNorm(TrainedParameters.Select(p => p.Parameter), clip);
                if (!double.IsFinite(norm)) throw NonFinite(epoch, batchIndex - 1, norm, "gradient norm");
            }
            _optimizer.Step();
            _optimizer.ZeroGrad();
            _ema?.Update(TrainedUnit);
            _state.GlobalStep++;
            stepInEpoch++;
            accumulated = 0;
            _state.NextBatch = batchIndex;
            (_state.EpochLossSum, _state.EpochImages, _state.EpochSeconds) = (lossSum, images, secondsBefore + clock.Elapsed.TotalSeconds);
            double lr = _optimizer.Groups[^1].LearningRate;
            _state.History.Steps.Add(new StepRecord(_state.GlobalStep, epoch + 1, value, lr));
            // Throughput over the last 20 steps: the first step of an epoch (loader start-up) would skew a running mean.
            recent.Enqueue((clock.Elapsed.TotalSeconds, images));
            if (recent.Count > 21) recent.Dequeue();
            var (t0, n0) = recent.Count > 1 ? recent.Peek() : (0.0, imagesBefore);
            double ips = (images - n0) / Math.Max(1e-9, clock.Elapsed.TotalSeconds - t0);
            Report(new TrainingProgress(TrainingPhase.Training, epoch + 1, _o.Epochs, stepInEpoch, _stepsPerEpoch, _state.GlobalStep,
                (long)_stepsPerEpoch * _o.Epochs, lossSum / images, lr, ips, _clock.Elapsed, Eta()));
            if (cancel.IsCancellationRequested && !lastOfEpoch) Interrupt(epoch, batchIndex);
        }
        if (cancel.IsCancellationRequested && _state.Epoch + 1 < _o.Epochs)
        {
            // Let the epoch's validation and checkpoint happen first: interrupt at the start of the next epoch.
            _interruptAfterEpoch = true;
        }
        (_state.EpochLossSum, _state.EpochImages, _state.EpochSeconds) = (0, 0, 0);
        return (images == 0 ? double.NaN : lossSum / images, secondsBefore + clock.Elapsed.TotalSeconds,
            (images - imagesBefore) / Math.Max(1e-9, clock.Elapsed.TotalSeconds));
    }

    bool _interruptAfterEpoch;

    /// <summary>Test seam: the loss of this micro-step (0-based, counted over the run) becomes NaN, as a diverging
    /// run's would.</summary>
    [ThreadStatic] internal static long? PoisonMicroStep;

    IEnumerable<(Tensor, Tensor, Tensor?, int, IDisposable)> LoaderBatches(int epoch, int startBatch)
    {
        foreach (var b in _trainLoader.GetEpoch(epoch, startBatch))
        {
            var x = b.Images.To(_device);
            var y = b.Labels.To(_device);
            var t = b.Targets?.To(_device);
            yield return (x, y, t, b.Count, new Owned(b, x, y, t));
        }
    }

    IEnumerable<(Tensor, Tensor, Tensor?, int, IDisposable)> CachedBatches(int epoch, int startBatch)
    {
        var order = _trainLoader.Order(epoch);
        int bs = _o.BatchSize;
        for (int b = startBatch; b < _batchesPerEpoch; b++)
        {
            var idx = order.Skip(b * bs).Take(bs).Where(i => _trainRows[i] >= 0).ToArray();
            if (idx.Length == 0) continue;
            var rows = Tensor.FromArray(idx.Select(i => (long)_trainRows[i]).ToArray(), [idx.Length]).To(_device);
            var x = _trainFeatures!.IndexSelect(0, rows);
            var y = Tensor.FromArray(idx.Select(i => (long)_train.Items[i].Label).ToArray(), [idx.Length]).To(_device);
            rows.Dispose();
            yield return (x, y, null, idx.Length, new Owned(null, x, y, null));
        }
    }

    sealed class Owned(IDisposable? batch, params Tensor?[] tensors) : IDisposable
    {
        public void Dispose()
        {
            foreach (var t in tensors) t?.Dispose();
            batch?.Dispose();
        }
    }

    Tensor Loss(Tensor x, Tensor y, Tensor? targets)
    {
        using var cast = _autocast ? Autocast.Enable(_device.Type) : null;
        var logits = _cached ? _probe!.Call(x) : _model.Call(x);
        var logits32 = logits.DType == DType.Float32 ? logits : logits.To(DType.Float32);
        if (targets is null) return F.CrossEntropy(logits32, y, _classWeights, labelSmoothing: _o.LabelSmoothing);
        // Soft targets (Mixup/CutMix, smoothing already inside): −Σ w_c t_c log p_c / Σ w_c t_c over the batch, which
        // is torch's weighted cross-entropy for one-hot targets.
        var logp = logits32.LogSoftmax(1);
        var weighted = _classWeights is null ? targets : targets.Mul(_classWeights);
        return weighted.Mul(logp).Sum().Neg().Div(_classWeights is null ? (double)targets.Shape[0] : weighted.Sum().ToDouble());
    }

    static ulong Mix(ulong seed, long step)
    {
        ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(step + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    TimeSpan? Eta()
    {
        long total = (long)_stepsPerEpoch * _o.Epochs, done = _state.GlobalStep;
        long doneHere = done - (_stepsAtStart ??= done);
        if (doneHere <= 0) return null;
        return TimeSpan.FromSeconds(_clock.Elapsed.TotalSeconds / doneHere * (total - done));
    }

    long? _stepsAtStart;

    TrainingException NonFinite(int epoch, int batch, double value, string what)
    {
        var h = _state.History;
        h.StopReason = $"non-finite {what} ({value}) at epoch {epoch + 1}, batch {batch + 1} (optimizer step {_state.GlobalStep + 1})";
        h.Duration = _durationBefore + _clock.Elapsed;
        string keep = _lastGoodCheckpoint is null ? "No checkpoint was written before it." : $"The last good checkpoint is '{_lastGoodCheckpoint}'.";
        return new TrainingException($"Training stopped: {h.StopReason}. The weights were not updated with it. {keep} " +
                                     "Try a lower learning rate or gradient clipping.") { LastGoodCheckpoint = _lastGoodCheckpoint, History = h };
    }

    void Interrupt(int epoch, int nextBatch)
    {
        var h = _state.History;
        h.StopReason = $"interrupted in epoch {epoch + 1} at batch {nextBatch} of {_batchesPerEpoch}";
        h.Duration = _durationBefore + _clock.Elapsed;
        _state.Epoch = epoch;
        _state.NextBatch = nextBatch;
        CopyProbeToClassifier();
        string? written = _o.CheckpointDirectory is null ? null : SaveCheckpoint(LastCheckpoint) ? Path.Combine(_o.CheckpointDirectory, LastCheckpoint) : null;
        string where = written is not null ? $"Saved '{written}'; continue with the same settings and ResumeFrom (CLI: --resume)."
            : _o.CheckpointDirectory is null ? "No checkpoint folder was set, so nothing was saved."
            : $"The checkpoint could not be written; the last good one is '{_lastGoodCheckpoint ?? "none"}'.";
        throw new TrainingInterruptedException($"Training {h.StopReason}. {where}", written ?? _lastGoodCheckpoint, h);
    }

    // ---------------------------------------------------------------- evaluation

    sealed record EvalResult(float[] Probabilities, int[] Labels, string[] Sources, double Loss);

    EvalResult Evaluate(int epoch)
    {
        var probs = new List<float>();
        var labels = new List<int>();
        var sources = new List<string>();
        double lossSum = 0;
        bool wasTraining = _model.Training;
        _model.Eval();
        int batches = _cached ? (_val!.Count + _o.BatchSize - 1) / _o.BatchSize : _valLoader!.BatchesPerEpoch, done = 0;
        using (Autograd.NoGrad())
        {
            foreach (var (x, y, idx) in ValBatches())
            {
                using var scope = TensorScope.Begin();
                Tensor logits;
                using (_autocast ? Autocast.Enable(_device.Type) : null)
                    logits = _cached ? _probe!.Call(x) : _model.Call(x);
                logits = logits.To(DType.Float32);
                lossSum += F.CrossEntropy(logits, y, reduction: Reduction.Sum).ToDouble();
                using var cpu = logits.Softmax(1).To(Device.Cpu);
                probs.AddRange(cpu.ToArray<float>());
                labels.AddRange(idx.Select(i => _val!.Items[i].Label));
                sources.AddRange(idx.Select(i => _val!.Items[i].Path ?? _val.Items[i].Name));
                x.Dispose();
                y.Dispose();
                Report(new TrainingProgress(TrainingPhase.Validating, Math.Min(epoch + 1, _o.Epochs), _o.Epochs, ++done, batches, _state.GlobalStep,
                    (long)_stepsPerEpoch * _o.Epochs, double.NaN, _optimizer.Groups[^1].LearningRate, 0, _clock.Elapsed, Eta()));
            }
        }
        if (wasTraining) _model.Train();
        if (labels.Count == 0) throw new DatasetException($"No validation image of '{_val!.Source}' could be decoded.");
        return new EvalResult(probs.ToArray(), labels.ToArray(), sources.ToArray(), lossSum / labels.Count);
    }

    IEnumerable<(Tensor X, Tensor Y, int[] Indices)> ValBatches()
    {
        if (_cached)
        {
            var valid = Enumerable.Range(0, _val!.Count).Where(i => _valRows[i] >= 0).ToArray();
            for (int s = 0; s < valid.Length; s += _o.BatchSize)
            {
                var idx = valid.Skip(s).Take(_o.BatchSize).ToArray();
                using var rows = Tensor.FromArray(idx.Select(i => (long)_valRows[i]).ToArray(), [idx.Length]).To(_device);
                yield return (_valFeatures!.IndexSelect(0, rows), Tensor.FromArray(idx.Select(i => (long)_val.Items[i].Label).ToArray(), [idx.Length]).To(_device), idx);
            }
            yield break;
        }
        foreach (var b in _valLoader!.GetEpoch(0))
        {
            using (b) yield return (b.Images.To(_device), b.Labels.To(_device), b.Indices);
        }
    }

    /// <summary>Runs <paramref name="evaluate"/> with the EMA weights in place when EMA is on.</summary>
    T WithEvaluationWeights<T>(Func<T> evaluate)
    {
        if (_ema is null) return evaluate();
        var unit = TrainedUnit;
        var backup = unit.CloneStateDict();
        try
        {
            unit.LoadStateDict(_ema.State);
            return evaluate();
        }
        finally
        {
            unit.LoadStateDict(backup);
            foreach (var (_, t) in backup) t.Dispose();
        }
    }

    void LoadEmaIntoModel()
    {
        TrainedUnit.LoadStateDict(_ema!.State);
        CopyProbeToClassifier();
    }

    void KeepBestWeights()
    {
        if (_bestWeights is not null) foreach (var (_, t) in _bestWeights) t.Dispose();
        if (_ema is not null)
        {
            WithEvaluationWeights(() => { CopyProbeToClassifier(); _bestWeights = _model.CloneStateDict(); return 0; });
            CopyProbeToClassifier();
        }
        else _bestWeights = _model.CloneStateDict();
    }

    // ---------------------------------------------------------------- linear-probe cache

    int[] _trainRows = [], _valRows = [];

    /// <summary>Pre-logit features of every training and validation image, computed once with the frozen backbone
    /// in eval mode (undecodable images get row −1 and are left out, as the loader would).</summary>
    void CacheFeatures()
    {
        _model.Eval();
        (_trainFeatures, _trainRows) = Features(_trainLoader, "training");
        if (_valLoader is not null) (_valFeatures, _valRows) = Features(_valLoader, "validation");
    }

    (Tensor, int[]) Features(DataLoader loader, string what)
    {
        var rows = Enumerable.Repeat(-1, loader.Dataset.Count).ToArray();
        var parts = new List<Tensor>();
        int next = 0, done = 0;
        var clock = Stopwatch.StartNew();
        var eval = new DataLoader(loader.Dataset, loader.Pipeline, loader.Options with { Shuffle = false, Mixup = null });
        using (Autograd.NoGrad())
        {
            foreach (var b in eval.GetEpoch(0))
            {
                using (b)
                using (var scope = TensorScope.Begin())
                {
                    var x = b.Images.To(_device);
                    Tensor f;
                    using (_autocast ? Autocast.Enable(_device.Type) : null)
                        f = _model.ForwardHead(_model.ForwardFeatures(x), preLogits: true);
                    parts.Add(f.To(DType.Float32).Reshape(b.Count, -1).MoveToOuterScope().DetachFromScope());
                    foreach (var i in b.Indices) rows[i] = next++;
                }
                Report(new TrainingProgress(TrainingPhase.Caching, 0, _o.Epochs, ++done, eval.BatchesPerEpoch, 0, (long)_stepsPerEpoch * _o.Epochs,
                    double.NaN, 0, next / Math.Max(1e-9, clock.Elapsed.TotalSeconds), _clock.Elapsed, null, Message: $"caching {what} features"));
            }
        }
        if (parts.Count == 0) throw new DatasetException($"No {what} image of '{loader.Dataset.Source}' could be decoded.");
        var all = Tensor.Cat(parts.ToArray(), 0).DetachFromScope();
        foreach (var p in parts) p.Dispose();
        Info($"Cached {what} features: {all.Shape[0]} images × {all.Shape[1]} in {clock.Elapsed.TotalSeconds:F1} s.");
        return (all, rows);
    }

    // ---------------------------------------------------------------- checkpoints and reporting

    /// <summary>Writes a checkpoint; a failure (full disk...) is reported and training goes on with the previous
    /// checkpoint intact. Returns whether it was written.</summary>
    bool SaveCheckpoint(string name)
    {
        if (_o.CheckpointDirectory is null) return false;
        var path = Path.Combine(_o.CheckpointDirectory, name);
        try
        {
            Directory.CreateDirectory(_o.CheckpointDirectory);
            _state.EmaUpdates = _ema?.Updates ?? 0;
            _state.History.Duration = _durationBefore + _clock.Elapsed;
            var optim = new List<KeyValuePair<string, Tensor>>();
            _state.OptimizerSteps.Clear();
            foreach (var (pname, p) in TrainedParameters)
            {
                var st = _optimizer.State(p);
                if (st is null || !st.Tensors.ContainsKey("exp_avg")) continue;
                _state.OptimizerSteps[pname] = st.Step;
                optim.Add(new($"{pname}.exp_avg", st.Tensors["exp_avg"]));
                optim.Add(new($"{pname}.exp_avg_sq", st.Tensors["exp_avg_sq"]));
            }
            TrainingCheckpoint.Write(path, _descriptor, _state, _model.StateDict(), _ema?.State, optim);
            if (name == LastCheckpoint) _lastGoodCheckpoint = path;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string previous = File.Exists(path) ? $"the previous '{path}' is intact" : "no earlier checkpoint of this name exists";
            Info($"Could not write checkpoint '{path}': {e.Message}. Training goes on; {previous}.");
            return false;
        }
    }

    void Report(TrainingProgress p) => _o.Progress?.Invoke(p);

    void Info(string message) => Report(new TrainingProgress(TrainingPhase.Info, _state?.Epoch + 1 ?? 0, _o.Epochs, 0, _stepsPerEpoch,
        _state?.GlobalStep ?? 0, (long)_stepsPerEpoch * _o.Epochs, double.NaN, 0, 0, _clock.Elapsed, null, Message: message));

    public void Dispose()
    {
        if (!_modelTaken) _model?.Dispose();
        _optimizer?.Dispose();
        _ema?.Dispose();
        _probe?.Dispose();
        _trainFeatures?.Dispose();
        _valFeatures?.Dispose();
        _classWeights?.Dispose();
        if (_bestWeights is not null) foreach (var (_, t) in _bestWeights) t.Dispose();
    }
}

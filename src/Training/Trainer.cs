using System.Diagnostics;
using MLNetExt.Data;
using MLNetExt.Distributed;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Export;

namespace MLNetExt.Training;

/// <summary>The result of a run: the kept model (best validation epoch, or the last; EMA weights when enabled), what
/// it is, the record of the run, and the kept model's validation scores (null without validation).</summary>
internal sealed record TrainingOutcome(Backbone Model, ModelDescriptor Descriptor, TrainingHistory History, EvalResult? Validation);

/// <summary>
/// The training loop behind <see cref="MLNet.ImageClassificationEstimator"/>. The recipe: for each epoch, for each
/// micro-batch, set the scheduled rate, compute the loss (label smoothing, class weights, Mixup/CutMix targets) and
/// backpropagate; every <c>AccumulationSteps</c> micro-batches clip, step, update the EMA; at the epoch's end
/// validate, keep the best weights, save checkpoints, stop early when the monitor stalls. What it trains and how
/// batches reach it is a <see cref="TrainUnit"/>; settings come from a <see cref="TrainingPlan"/>; files from a
/// <see cref="CheckpointStore"/>; scores from the <see cref="Evaluator"/>. Reproducible: initialisation, split,
/// order, augmentation and dropout all derive from the seed.
/// </summary>
internal sealed class Trainer : IDisposable
{
    readonly ImageClassificationOptions _o;
    readonly ImageDataset _train;
    readonly ImageDataset? _val;
    /// <summary>Data-parallel runs: the part of the validation set this rank scores (every world-size-th image), or null
    /// when each rank scores it all (one process, fewer images than ranks, or images without distinct names).</summary>
    readonly ImageDataset? _valShard;
    readonly TrainingPlan _plan;
    readonly Backbone _model;
    readonly TrainUnit _unit;
    readonly ModelDescriptor _descriptor;
    readonly Optimizer _optimizer;
    readonly LrSchedule _schedule;
    readonly WeightEma? _ema;
    readonly GradientReducer? _reducer;   // data-parallel: gradients averaged over the ranks during the backward
    readonly Tensor? _classWeights;
    readonly DistillationTeacher? _teacher;
    readonly DataLoader _trainLoader;
    readonly DataLoader? _valLoader;
    bool _skipsReported;
    readonly CheckpointStore _store;
    readonly TrainingState _state;
    readonly int _batchesPerEpoch, _stepsPerEpoch;
    readonly Stopwatch _clock = new();
    TimeSpan _durationBefore;
    List<KeyValuePair<string, Tensor>>? _bestWeights;
    bool _modelTaken, _interruptAfterEpoch;
    long? _stepsAtStart;

    /// <summary>Held while a trainer seeds libtorch's generator (one per process) and draws its initial weights.</summary>
    static readonly object SeededInit = new();

    /// <summary>Test seam: the loss of this micro-step (0-based, counted over the run) becomes NaN, as a diverging
    /// run's would.</summary>
    [ThreadStatic] internal static long? PoisonMicroStep;

    Trainer(ImageClassificationOptions o, ImageDataset train, ImageDataset? val)
    {
        // training on from a model training wrote: at its input size unless another is asked for
        var continued = ContinuedTraining.Read(o.WeightsPath);
        bool sizeFromModel = continued is not null && o.ImageSize is null;
        if (sizeFromModel) o = o with { ImageSize = continued!.ImageSize };
        (_o, _train, _val) = (o, train, val);
        _store = new CheckpointStore(o.CheckpointDirectory, Info);
        TrainingState? resumed = null;
        StateDict? resumeTensors = null;
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

            // libtorch's generator is one per process: seed and draw the initial weights without another trainer of this
            // process (a rank on another thread, a parallel fit) drawing in between
            lock (SeededInit)
            {
                TorchRuntime.ManualSeed(o.Seed ?? 0);
                _model = BuildModel(train.Classes.Count, resumeTensors is not null, continued, sizeFromModel);
            }
            _plan = new TrainingPlan(o, _model);
            var cfg = _plan.Config;
            _descriptor = new ModelDescriptor(o.CustomKwargs is null ? _model.Variant : o.Model, o.CustomKwargs, train.Classes, _plan.ImageSize,
                cfg.Mean, cfg.Std, cfg.CropPct, cfg.Interpolation);
            if (o.TeacherPath is { } teacherPath)
            {
                _teacher = DistillationTeacher.Load(teacherPath, train.Classes, _plan.ImageSize, cfg.Mean, cfg.Std, _plan.Device, _plan.Autocast);
                Info($"distilling from {_teacher.Describe(teacherPath)}: loss = {1 - o.DistillationWeight:0.###} x cross-entropy + " +
                     $"{o.DistillationWeight:0.###} x T² KL(teacher || model) at T = {o.DistillationTemperature:0.###}");
            }
            var fingerprint = _plan.Fingerprint(_model, train, val);
            if (resumed is not null)
            {
                var diffs = TrainingKnobs.Differences(resumed.Fingerprint, fingerprint, _plan.Resolved(_model, 0));
                if (diffs.Count > 0)
                    throw new TrainingException($"Cannot resume from '{o.ResumeFrom}': the run's settings differ, so it would not continue the same run ({string.Join("; ", diffs)}).");
            }
            _model.To(_plan.Device);
            // Training images all have one size, so cuDNN's autotuner pays for its first-step search at once.
            if (_plan.Device.Type == DeviceType.Cuda) TorchRuntime.CudnnBenchmark = true;
            if (TrainingPlan.Bfloat16Note(o.MixedPrecision, _plan.Device, TorchRuntime.NativeBfloat16Flag) is { } bf16) Info(bf16);
            if (TrainingPlan.ImbalanceNote(train.CountPerClass(), train.Classes, o.ClassWeighting, o.Monitor) is { } imbalance) Info(imbalance);
            // a cross-validation fold chooses nothing on its held-out images; the pooled scores are the estimate
            if (!o.CrossValidationFold && TrainingPlan.SmallValidationNote(val?.Count ?? 0) is { } smallValidation) Info(smallValidation);
            if (o.ProcessGroup is { } group)
            {
                if (o.BatchSize % group.WorldSize != 0)
                    throw new TrainingOptionException("BatchSize", $"must be a multiple of the world size {group.WorldSize} (it is the global batch, split evenly over the ranks); got {o.BatchSize}");
                DataParallel.BroadcastState(_model, group);   // every rank starts from rank 0's weights
                if (o.SyncBatchNorm) DataParallel.SynchronizeBatchNorm(_model, group);
            }

            var cache = new DecodedImageCache(2 * _plan.ImageSize, maxBytes: 1L << 30);
            int workers = o.Workers ?? Math.Max(1, Environment.ProcessorCount);
            _trainLoader = new DataLoader(train, _plan.TrainPipeline(), new LoaderOptions
            {
                BatchSize = o.BatchSize / (o.ProcessGroup?.WorldSize ?? 1), Shuffle = true, Seed = o.Seed ?? 0, Workers = workers, Cache = cache,
                // BatchNorm cannot train on one value per channel: a last batch of one image (on a rank whose statistics
                // are its own) is left out; synchronised statistics span the ranks, so there one image per rank is enough
                MinLastBatch = _model.NamedModules().Any(m => m.Module is Nn.BatchNorm2d) && !(o.ProcessGroup is { WorldSize: > 1 } && o.SyncBatchNorm) ? 2 : 1,
                Shard = o.ProcessGroup is { } g ? (g.Rank, g.WorldSize) : null,
                Mixup = _plan.LinearProbe || (o.MixupAlpha <= 0 && o.CutmixAlpha <= 0) ? null
                    : new MixupCutmix(o.MixupAlpha, o.CutmixAlpha, labelSmoothing: o.LabelSmoothing),
            });
            if (o.ProcessGroup is { WorldSize: > 1 } vg && val is not null && val.Count >= vg.WorldSize
                && val.Items.Select(i => i.Source).Distinct().Count() == val.Count)
                _valShard = val.Subset(Enumerable.Range(0, val.Count).Where(i => i % vg.WorldSize == vg.Rank), $"{val.Source} [rank {vg.Rank}]");
            var valLoader = _valLoader = val is null ? null : new DataLoader(_valShard ?? val, _plan.EvalPipeline(), new LoaderOptions
            {
                BatchSize = o.BatchSize, Shuffle = false, Seed = o.Seed ?? 0, Workers = workers, Cache = cache,
            });
            // the cached probe computes features of the whole set once; data-parallel runs compute them per batch
            _unit = _plan.LinearProbe && o.CacheFeatures && o.ProcessGroup is null
                ? new CachedProbeUnit(_model, o, _plan.Device, _plan.Autocast, _trainLoader, valLoader)
                : new BackboneUnit(_model, o, _plan.Device, _plan.Autocast, _trainLoader, valLoader);
            if (_teacher is not null && _unit is CachedProbeUnit)
                throw new TrainingOptionException("TeacherPath", "needs the training images, which a linear probe on cached features never looks at again; " +
                                                                 "set CacheFeatures = false (--cache-features false) to distil into a probe");
            _batchesPerEpoch = _trainLoader.BatchesPerEpoch;
            _stepsPerEpoch = (_batchesPerEpoch + o.AccumulationSteps - 1) / o.AccumulationSteps;
            _schedule = _plan.Schedule(_stepsPerEpoch);
            _optimizer = OptimizerChoice.Create(o.Optimizer, _plan.ParameterGroups(_model, _unit.Parameters, _unit.Decays));
            if (o.Ema) _ema = new WeightEma(_unit.Trained, o.EmaDecay);
            if (o.ProcessGroup is { } rg) _reducer = new GradientReducer(_unit.Parameters.Select(p => p.Parameter), rg);
            if (_plan.ClassWeights(train) is { } w) _classWeights = Tensor.FromArray(w, [w.Length]).To(_plan.Device).DetachFromScope();

            _state = resumed ?? new TrainingState
            {
                Fingerprint = fingerprint,
                History = new TrainingHistory
                {
                    Model = _descriptor.Model,
                    Classes = train.Classes,
                    Settings = WithWorldSize(TrainingKnobs.Settings(o, _plan.Resolved(_model, _unit.TrainedParameterCount)), o.ProcessGroup),
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
        TrainingKnobs.Validate(options);
        if (val is null && options.ValidationFraction > 0) (train, val) = train.Split(options.ValidationFraction, options.Seed ?? 0);
        if (val is not null && !val.Classes.SequenceEqual(train.Classes))
            throw new DatasetException($"The validation set's classes [{string.Join(", ", val.Classes)}] differ from the training set's [{string.Join(", ", train.Classes)}].");
        using var trainer = new Trainer(options, train, val);
        if (trainer._unit is BackboneUnit)
            StepMemory.Check(trainer._model, trainer._plan.Device, trainer._plan.ImageSize, options.BatchSize, trainer._unit.TrainedParameterCount);
        return trainer.Loop(cancel);
    }

    /// <summary>One optimizer parameter group as a run would build it.</summary>
    internal sealed record GroupPlan(string Name, double LearningRate, double WeightDecay, IReadOnlyList<string> Parameters);

    /// <summary>The parameter groups and class weights a run with these settings would use, without training (for
    /// inspection and tests).</summary>
    internal static (IReadOnlyList<GroupPlan> Groups, float[]? ClassWeights) Plan(ImageClassificationOptions options, ImageDataset train)
    {
        TrainingKnobs.Validate(options);
        using var trainer = new Trainer(options with { ResumeFrom = null, CheckpointDirectory = null }, train, null);
        var names = trainer._unit.Parameters.ToDictionary(p => (object)p.Parameter, p => p.Name, ReferenceEqualityComparer.Instance);
        var groups = trainer._optimizer.Groups.Select(g => new GroupPlan(g.Name, g.InitialLearningRate, g.WeightDecay,
            g.Parameters.Select(p => names[p]).ToList())).ToList();
        return (groups, trainer._classWeights?.To(Device.Cpu).ToArray<float>());
    }

    Backbone BuildModel(int classes, bool resuming, ModelDescriptor? continued, bool sizeFromModel)
    {
        var overrides = new System.Text.Json.Nodes.JsonObject { ["drop_path_rate"] = TrainingPlan.DropPath(_o) };
        // a model built for one resolution (TransNeXt) is built for the training size, its weights unchanged
        if (_o.ImageSize is int size && Backbones.InputSizeKwargs(_o.Model, _o.CustomKwargs, size, size) is { } sized)
            foreach (var (key, value) in sized) overrides[key] = value?.DeepClone();
        if (_o.WeightsPath is not null && !resuming)
        {
            if (continued is not null)
            {
                var (fromModel, note) = ContinuedTraining.Build(continued, _o, _train.Classes, overrides, sizeFromModel);
                Info(note);
                return fromModel;
            }
            var (model, load) = Backbones.Load(_o.Model, _o.WeightsPath, classes, _o.CustomKwargs?.DeepClone().AsObject(), overrides);
            if (load.SkippedHeadKeys.Count > 0)
                Info($"Loaded {load.LoadedKeys.Count} tensors from {_o.WeightsPath}; the classifier ({string.Join(", ", load.SkippedHeadKeys)}) starts fresh for {classes} classes.");
            else Info($"Loaded {load.LoadedKeys.Count} tensors from {_o.WeightsPath}.");
            return model;
        }
        return _o.CustomKwargs is null
            ? Backbones.Create(_o.Model, classes, overrides)
            : Backbones.CreateCustom(_o.Model, _o.CustomKwargs, classes, overrides);
    }

    // ---------------------------------------------------------------- the loop

    TrainingOutcome Loop(CancellationToken cancel)
    {
        var h = _state.History;
        _clock.Start();
        _unit.Prepare(Info, (done, total, ips, message) => Report(new TrainingProgress(TrainingPhase.Caching, 0, _o.Epochs, done, total, 0,
            TotalSteps, double.NaN, 0, ips, _clock.Elapsed, null, Message: message)));
        bool stopped = false;
        EvalResult? bestEval = null, lastEval = null; // the best and the last epoch's validation, when they ran in this session
        while (!stopped && _state.Epoch < _o.Epochs)
        {
            int epoch = _state.Epoch;
            var (trainLoss, seconds, imagesPerSecond) = TrainEpoch(epoch, cancel);
            _unit.WriteBack();
            EvalResult? eval = null;
            ClassificationMetrics? metrics = null;
            if (_val is not null)
            {
                eval = WithEvaluationWeights(() => Validate(epoch));
                if (eval.Probabilities.Any(float.IsNaN) || !double.IsFinite(eval.Loss))
                    throw NonFinite(epoch, _batchesPerEpoch - 1, eval.Loss, "validation output");
                metrics = eval.Metrics(_train.Classes);
                lastEval = eval;
            }
            var summary = new EpochSummary(epoch + 1, trainLoss, _optimizer.Groups[^1].LearningRate, imagesPerSecond, seconds, eval?.Loss, metrics);
            h.EpochList.Add(summary);
            (_state.Epoch, _state.NextBatch) = (epoch + 1, 0);

            // a cross-validation fold keeps its last epoch: choosing one on the held-out images would flatter their scores
            bool improved = metrics is not null && !_o.CrossValidationFold && Improved(metrics.Get(_o.Monitor));
            if (improved)
            {
                _state.BestEpoch = h.BestEpoch = epoch + 1;
                KeepBestWeights();
                bestEval = eval;
            }
            if (_o.EarlyStoppingPatience is int patience && _state.EpochsWithoutImprovement >= patience && _state.Epoch < _o.Epochs)
            {
                h.StopReason = $"early stop after epoch {epoch + 1}: {_o.Monitor} has not improved for {patience} epoch(s) (best {_state.BestValue:G4} at epoch {_state.BestEpoch})";
                stopped = true;
            }
            h.Duration = _durationBefore + _clock.Elapsed;
            Report(new TrainingProgress(TrainingPhase.EpochEnd, epoch + 1, _o.Epochs, _stepsPerEpoch, _stepsPerEpoch, _state.GlobalStep,
                TotalSteps, trainLoss, summary.LearningRate, imagesPerSecond, _clock.Elapsed, Eta(), summary));
            Save(CheckpointStore.Last);
            if (improved) Save(CheckpointStore.Best);
            if (stopped) Info(h.StopReason);
            if (!_skipsReported) ReportSkippedImages();
        }

        // The kept model: the best epoch's weights, else the EMA, else the last.
        if (_bestWeights is not null) _model.LoadStateDict(_bestWeights);
        else if (_ema is not null)
        {
            _unit.Trained.LoadStateDict(_ema.State);
            _unit.WriteBack();
        }
        // the model leaves the trainer without ties to the group
        DataParallel.SynchronizeBatchNorm(_model, null);
        _reducer?.Dispose();
        _model.Eval();
        var descriptor = _descriptor;
        EvalResult? final = null;
        if (_val is not null)
        {
            // The kept weights were validated already when their epoch ran in this session (the best epoch's, or without
            // one the last epoch's, EMA included, as validation uses the weights kept); after a resume they are scored
            // again (identically: same weights, same data, eval mode).
            var r = (_bestWeights is not null ? bestEval : lastEval) ?? Validate(_o.Epochs);
            // the served scores: the views averaged first, then a temperature fitted on what is served
            if (_o.TestTimeAugmentation != TestTimeAugmentation.None) (r, descriptor) = AverageViews(r, descriptor);
            if (_o.CalibrateScores) (r, descriptor) = CalibrateScores(r, descriptor);
            final = r;
            h.Final = r.Metrics(_train.Classes);
            h.HardestList.Clear();
            h.HardestList.AddRange(r.Misclassified().Take(TrainingHistory.MaxHardest));
        }
        h.Duration = _durationBefore + _clock.Elapsed;
        _modelTaken = true;
        return new TrainingOutcome(_model, descriptor, h, final);
    }

    /// <summary>Temperature scaling on the kept model's validation scores: the descriptor carries the fitted temperature
    /// (every scorer and export then divides the logits by it) and the validation result is rescored with it.</summary>
    (EvalResult, ModelDescriptor) CalibrateScores(EvalResult r, ModelDescriptor descriptor)
    {
        int classes = _train.Classes.Count;
        double t = ScoreCalibration.FitTemperature(r.Probabilities, r.Labels, classes);
        var calibrated = r.Rescored(ScoreCalibration.Apply(r.Probabilities, classes, t));
        var (before, after) = (r.Metrics(_train.Classes), calibrated.Metrics(_train.Classes));
        Info($"scores calibrated on the {r.Labels.Length} validation images: temperature {t:F3} (Score = softmax(logits / {t:F3})); " +
             $"expected calibration error {before.ExpectedCalibrationError:P2} -> {after.ExpectedCalibrationError:P2}, log-loss {before.LogLoss:F4} -> {after.LogLoss:F4}");
        return (calibrated, descriptor with { ScoreTemperature = t });
    }

    /// <summary>Test-time augmentation: the kept model scores the validation images with the views of
    /// <see cref="ImageClassificationOptions.TestTimeAugmentation"/> (from the images, also when a probe trained on cached
    /// features); the run says what the views change against <paramref name="single"/>, the descriptor carries them and
    /// the validation result becomes theirs.</summary>
    (EvalResult, ModelDescriptor) AverageViews(EvalResult single, ModelDescriptor descriptor)
    {
        var tta = _o.TestTimeAugmentation;
        var r = Validate(_o.Epochs, TrainUnit.ImageBatches(_valLoader!, _plan.Device), _valLoader!.BatchesPerEpoch,
            x => TestTimeViews.Logits(_unit.ForwardImages, x, tta));
        var (before, after) = (single.Metrics(_train.Classes), r.Metrics(_train.Classes));
        bool worse = after.Top1 <= before.Top1 && after.LogLoss >= before.LogLoss;
        Info($"the kept model scores each image with its mirror image (TestTimeAugmentation {TestTimeViews.Name(tta)}, --tta): on the " +
             $"{r.Labels.Length} validation images top-1 {before.Top1:P2} -> {after.Top1:P2}, log-loss {before.LogLoss:F4} -> {after.LogLoss:F4}" +
             (worse ? "; the mirror image does not help on these images, and scoring without it (--tta none) is twice as fast" : ""));
        return (r, descriptor with { TestTimeAugmentation = tta });
    }

    /// <summary>After the first epoch this session runs (every image has been read once by then): the images that could not
    /// be decoded, so that a validation score over fewer images than the set holds does not go unexplained, and those
    /// stored rotated, which plain ML.NET serving reads differently.</summary>
    void ReportSkippedImages()
    {
        _skipsReported = true;
        if (_trainLoader.Skipped is { Count: > 0 } train)
            Info($"{train.Count} training image(s) could not be decoded and are skipped, e.g. {train[0]}.");
        if (_valLoader?.Skipped is { Count: > 0 } val)
            Info($"{val.Count} validation image(s) could not be decoded and are not scored, e.g. {val[0]}.");
        var rotated = _trainLoader.Rotated.Concat(_valLoader?.Rotated ?? []).Distinct(StringComparer.Ordinal).ToList();
        if (rotated.Count > 0)
            Info($"{rotated.Count} image(s) are stored rotated (an EXIF orientation), e.g. {rotated[0]}: trained and scored upright here, " +
                 "but ML.NET's LoadImages (the model.zip's ImagePath input) reads such files as stored, sideways or mirrored; " +
                 "serve them through MLNetExt (predict, OnnxImageScorer) or save them upright (`mlnetext dataset` lists them).");
    }

    /// <summary>Early-stopping bookkeeping: whether <paramref name="value"/> of the monitored metric is a new best.</summary>
    bool Improved(double value)
    {
        bool higher = ClassificationMetrics.HigherIsBetter(_o.Monitor);
        if (_state.BestValue is double best && (higher ? value <= best : value >= best))
        {
            _state.EpochsWithoutImprovement++;
            return false;
        }
        _state.BestValue = value;
        _state.EpochsWithoutImprovement = 0;
        return true;
    }

    (double Loss, double Seconds, double ImagesPerSecond) TrainEpoch(int epoch, CancellationToken cancel)
    {
        // Ctrl-C during the previous epoch's last step: that epoch was validated and saved; stop before this one.
        if (_interruptAfterEpoch) Interrupt(epoch, _state.NextBatch);
        var clock = Stopwatch.StartNew();
        _unit.BeginEpoch();
        int startBatch = _state.NextBatch, batchIndex = startBatch;
        // A resumed epoch continues its own mean loss and duration (kept in the checkpoint).
        double lossSum = startBatch > 0 ? _state.EpochLossSum : 0, secondsBefore = startBatch > 0 ? _state.EpochSeconds : 0;
        long images = startBatch > 0 ? _state.EpochImages : 0, imagesBefore = images;
        int accumulated = 0, A = _o.AccumulationSteps, windowImages = 0;
        int stepInEpoch = startBatch / A;
        var recent = new Queue<(double Seconds, long Images)>();
        foreach (var batch in _unit.Batches(epoch, startBatch))
        {
            using var owner = batch.Owner;
            if (accumulated == 0) _schedule.Apply(_optimizer, _state.GlobalStep);
            TorchRuntime.ManualSeed(Mix(_o.Seed ?? 0, _state.MicroStep));
            double value;
            bool lastOfEpoch = batchIndex + 1 == _batchesPerEpoch, closesStep = accumulated + 1 == A || lastOfEpoch;
            using (var scope = TensorScope.Begin())
            {
                var loss = Loss(batch);
                if (PoisonMicroStep == _state.MicroStep) loss = loss.Mul(double.NaN);
                value = loss.ToDouble();
                if (!double.IsFinite(value)) throw NonFinite(epoch, batchIndex, value, "loss");
                if (closesStep) _reducer?.Prepare(windowImages + batch.Count);
                (A == 1 ? loss : loss.Div(A)).Backward();
            }
            _state.MicroStep++;
            accumulated++;
            batchIndex++;
            lossSum += value * batch.Count;
            images += batch.Count;
            windowImages += batch.Count;
            if (!closesStep) continue;

            _reducer?.Finish();
            windowImages = 0;
            if (_o.GradClipNorm is double clip)
            {
                double norm = GradClip.ClipGradNorm(_unit.Parameters.Select(p => p.Parameter), clip);
                if (!double.IsFinite(norm)) throw NonFinite(epoch, batchIndex - 1, norm, "gradient norm");
            }
            _optimizer.Step();
            _optimizer.ZeroGrad();
            _ema?.Update(_unit.Trained);
            _state.GlobalStep++;
            stepInEpoch++;
            accumulated = 0;
            _state.NextBatch = batchIndex;
            (_state.EpochLossSum, _state.EpochImages, _state.EpochSeconds) = (lossSum, images, secondsBefore + clock.Elapsed.TotalSeconds);
            double lr = _optimizer.Groups[^1].LearningRate;
            _state.History.StepList.Add(new StepRecord(_state.GlobalStep, epoch + 1, value, lr));
            // Throughput over the last 20 steps: the first step of an epoch (loader start-up) would skew a running mean.
            recent.Enqueue((clock.Elapsed.TotalSeconds, images));
            if (recent.Count > 21) recent.Dequeue();
            var (t0, n0) = recent.Count > 1 ? recent.Peek() : (0.0, imagesBefore);
            double ips = (images - n0) / Math.Max(1e-9, clock.Elapsed.TotalSeconds - t0);
            Report(new TrainingProgress(TrainingPhase.Training, epoch + 1, _o.Epochs, stepInEpoch, _stepsPerEpoch, _state.GlobalStep,
                TotalSteps, lossSum / images, lr, ips, _clock.Elapsed, Eta()));
            if (cancel.IsCancellationRequested && !lastOfEpoch) Interrupt(epoch, batchIndex);
        }
        // Ctrl-C in the epoch's last step: let its validation and checkpoint happen first, stop before the next one.
        if (cancel.IsCancellationRequested && _state.Epoch + 1 < _o.Epochs) _interruptAfterEpoch = true;
        (_state.EpochLossSum, _state.EpochImages, _state.EpochSeconds) = (0, 0, 0);
        long localImages = images - imagesBefore;
        if (_o.ProcessGroup is { } g)
        {
            // the epoch's mean loss and throughput over all ranks
            using var scope = TensorScope.Begin();
            var sums = Tensor.FromArray<double>([lossSum, images, localImages], [3]);
            g.AllReduceSum(sums);
            var all = sums.ToArray<double>();
            (lossSum, images, localImages) = (all[0], (long)all[1], (long)all[2]);
        }
        return (images == 0 ? double.NaN : lossSum / images, secondsBefore + clock.Elapsed.TotalSeconds,
            localImages / Math.Max(1e-9, clock.Elapsed.TotalSeconds));
    }

    /// <summary>The loss of a micro-batch (<see cref="TrainingLoss.Compute"/>): cross-entropy with the run's smoothing,
    /// class weights and Mixup/CutMix targets, and the teacher's term when distilling.</summary>
    Tensor Loss(TrainBatch b) =>
        TrainingLoss.Compute(_unit.Forward(b.Inputs), b.Labels, b.Targets, _classWeights, _o.LabelSmoothing,
            _teacher?.Logits(b.Inputs), _o.DistillationWeight, _o.DistillationTemperature);

    /// <summary>The per-micro-step seed (dropout, drop path): SplitMix64 of (seed, step).</summary>
    static ulong Mix(ulong seed, long step)
    {
        ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(step + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    // ---------------------------------------------------------------- validation and the kept weights

    EvalResult Validate(int epoch) => Validate(epoch, _unit.ValidationBatches(), _unit.ValidationBatchCount, _unit.Forward);

    /// <summary>This rank's share of the validation set scored by <paramref name="logits"/> in eval mode, put together
    /// over the ranks.</summary>
    EvalResult Validate(int epoch, IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> batches, int batchCount, Func<Tensor, Tensor> logits)
    {
        bool wasTraining = _model.Training;
        _model.Eval();
        // data-parallel: every rank validates rank 0's model (BatchNorm statistics are per process while training)
        if (_o.ProcessGroup is { } group) DataParallel.BroadcastState(_model, group, buffersOnly: true);
        var r = Evaluator.Run(batches, logits, _valShard ?? _val!, done =>
            Report(new TrainingProgress(TrainingPhase.Validating, Math.Min(epoch + 1, _o.Epochs), _o.Epochs, done, batchCount,
                _state.GlobalStep, TotalSteps, double.NaN, _optimizer.Groups[^1].LearningRate, 0, _clock.Elapsed, Eta())));
        if (_valShard is not null) r = Gathered(r, _o.ProcessGroup!);
        if (wasTraining) _model.Train();
        return r;
    }

    /// <summary>Every rank's share of the validation put together (the same result on every rank, in the validation
    /// set's order, as one process scoring it all would give): one all-reduce of the rows each rank scored.</summary>
    EvalResult Gathered(EvalResult mine, ProcessGroup group)
    {
        var val = _val!;
        int n = val.Count, c = _train.Classes.Count;
        var index = val.Items.Select((item, i) => (item.Source, i)).ToDictionary(t => t.Source, t => t.i);
        // probabilities of the rows this rank scored (the others' stay 0: the sum is each row's one value), then whether
        // each image was scored; the loss sum apart, in float64
        var rows = new float[n * c + n];
        for (int j = 0; j < mine.Labels.Length; j++)
        {
            int g = index[mine.Sources[j]];
            mine.Probabilities.AsSpan(j * c, c).CopyTo(rows.AsSpan(g * c, c));
            rows[n * c + g] = 1;
        }
        using var scope = TensorScope.Begin();
        var all = Tensor.FromArray(rows, [rows.Length]);
        var loss = Tensor.FromArray<double>([mine.Loss * mine.Labels.Length], [1]);
        group.AllReduceSum(all);
        group.AllReduceSum(loss);
        var sums = all.ToArray<float>();
        var scored = Enumerable.Range(0, n).Where(g => sums[n * c + g] > 0.5f).ToArray();
        if (scored.Length == 0) throw new DatasetException($"No image of '{val.Source}' could be decoded.");
        var probabilities = new float[scored.Length * c];
        for (int j = 0; j < scored.Length; j++) sums.AsSpan(scored[j] * c, c).CopyTo(probabilities.AsSpan(j * c, c));
        return new EvalResult(probabilities, scored.Select(g => val.Items[g].Label).ToArray(), scored.Select(g => val.Items[g].Source).ToArray(),
            loss.ToArray<double>()[0] / scored.Length);
    }

    /// <summary>Runs <paramref name="evaluate"/> with the EMA weights in place when EMA is on.</summary>
    T WithEvaluationWeights<T>(Func<T> evaluate)
    {
        if (_ema is null) return evaluate();
        var unit = _unit.Trained;
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

    void KeepBestWeights()
    {
        if (_bestWeights is not null) foreach (var (_, t) in _bestWeights) t.Dispose();
        _bestWeights = WithEvaluationWeights(() =>
        {
            _unit.WriteBack();
            return _model.CloneStateDict();
        });
        _unit.WriteBack();
    }

    // ---------------------------------------------------------------- resume

    void Restore(StateDict t)
    {
        _model.LoadStateDict(CheckpointStore.Section(t, "model.").ToList());
        _unit.ReadBack();
        CheckpointStore.RestoreOptimizer(_optimizer, _unit.Parameters, _state, t, _plan.Device);
        if (_ema is not null)
        {
            _ema.Load(CheckpointStore.Section(t, "ema."));
            _ema.Updates = _state.EmaUpdates;
        }
        _durationBefore = _state.History.Duration;
        if (_state.BestEpoch is int bestEpoch && _store.Directory is not null) RestoreBestWeights(bestEpoch, t);
        _store.LastGood = _o.ResumeFrom;
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
    void RestoreBestWeights(int bestEpoch, StateDict resumed)
    {
        // the kept weights are the EMA's when it is on (for a cached probe the EMA covers the probe only)
        List<KeyValuePair<string, Tensor>> Extract(StateDict t) => _ema is null
            ? CheckpointStore.Section(t, "model.").Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.Clone().DetachFromScope())).ToList()
            : _unit.BackboneState(CheckpointStore.Section(t, "ema."), CheckpointStore.Section(t, "model."));
        var (best, found) = _store.OpenBest(bestEpoch, _state.Fingerprint);
        if (best is not null)
        {
            using (best) _bestWeights = Extract(best);
            return;
        }
        string resumedName = Path.GetFileName(_o.ResumeFrom!);
        if (_state.Epoch == bestEpoch && _state.NextBatch == 0)
        {
            _bestWeights = Extract(resumed);
            Info($"{CheckpointStore.Best} {found}, not the best epoch {bestEpoch} that {resumedName} names (a stop between the two writes): " +
                 $"the best weights are taken from {resumedName}, which ends that epoch, and {CheckpointStore.Best} is written again.");
            Save(CheckpointStore.Best);
            return;
        }
        Info($"{CheckpointStore.Best} {found}, not the best epoch {bestEpoch} that {resumedName} names, and those weights are nowhere else: " +
             "the best epoch is forgotten, and the model kept will be the best of the epochs still to run.");
        _state.BestEpoch = _state.History.BestEpoch = null;
        _state.BestValue = null;
    }

    // ---------------------------------------------------------------- stops, checkpoints and reporting

    TrainingException NonFinite(int epoch, int batch, double value, string what)
    {
        var h = _state.History;
        h.StopReason = $"non-finite {what} ({value}) at epoch {epoch + 1}, batch {batch + 1} (optimizer step {_state.GlobalStep + 1})";
        h.Duration = _durationBefore + _clock.Elapsed;
        string keep = _store.LastGood is null ? "No checkpoint was written before it." : $"The last good checkpoint is '{_store.LastGood}'.";
        return new TrainingException($"Training stopped: {h.StopReason}. The weights were not updated with it. {keep} " +
                                     "Try a lower learning rate or gradient clipping.") { LastGoodCheckpoint = _store.LastGood, History = h };
    }

    void Interrupt(int epoch, int nextBatch)
    {
        var h = _state.History;
        h.StopReason = $"interrupted in epoch {epoch + 1} at batch {nextBatch} of {_batchesPerEpoch}";
        h.Duration = _durationBefore + _clock.Elapsed;
        (_state.Epoch, _state.NextBatch) = (epoch, nextBatch);
        _unit.WriteBack();
        string? written = Save(CheckpointStore.Last) ? Path.Combine(_store.Directory!, CheckpointStore.Last) : null;
        string where = written is not null ? $"Saved '{written}'; continue with the same settings and ResumeFrom (CLI: --resume)."
            : _store.Directory is null ? "No checkpoint folder was set, so nothing was saved."
            : $"The checkpoint could not be written; the last good one is '{_store.LastGood ?? "none"}'.";
        throw new TrainingInterruptedException($"Training {h.StopReason}. {where}", written ?? _store.LastGood, h);
    }

    /// <summary>The settings record with the world size of a data-parallel run.</summary>
    static Dictionary<string, string> WithWorldSize(Dictionary<string, string> settings, ProcessGroup? group)
    {
        if (group is not null) settings["world_size"] = group.WorldSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }

    bool Save(string name)
    {
        if (_o.ProcessGroup is { IsMain: false }) return _store.Directory is not null;   // only rank 0 writes
        _state.History.Duration = _durationBefore + _clock.Elapsed;
        return _store.Save(name, _descriptor, _state, _model, _ema, _optimizer, _unit.Parameters);
    }

    long TotalSteps => (long)_stepsPerEpoch * _o.Epochs;

    TimeSpan? Eta()
    {
        long done = _state.GlobalStep, doneHere = done - (_stepsAtStart ??= done);
        if (doneHere <= 0) return null;
        return TimeSpan.FromSeconds(_clock.Elapsed.TotalSeconds / doneHere * (TotalSteps - done));
    }

    void Report(TrainingProgress p) => _o.Progress?.Invoke(p);

    void Info(string message) => Report(new TrainingProgress(TrainingPhase.Info, _state?.Epoch + 1 ?? 0, _o.Epochs, 0, _stepsPerEpoch,
        _state?.GlobalStep ?? 0, TotalSteps, double.NaN, 0, 0, _clock.Elapsed, null, Message: message));

    public void Dispose()
    {
        if (!_modelTaken) _model?.Dispose();
        _optimizer?.Dispose();
        _ema?.Dispose();
        _reducer?.Dispose();
        _unit?.Dispose();
        _classWeights?.Dispose();
        _teacher?.Dispose();
        if (_bestWeights is not null) foreach (var (_, t) in _bestWeights) t.Dispose();
    }
}

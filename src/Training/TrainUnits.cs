using System.Diagnostics;
using MLNetExt.Data;
using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Training;

/// <summary>One micro-batch on the training device: inputs, hard labels, soft targets (Mixup/CutMix) or null, its
/// image count, and what frees it.</summary>
internal sealed record TrainBatch(Tensor Inputs, Tensor Labels, Tensor? Targets, int Count, IDisposable Owner);

/// <summary>
/// What the optimizer trains and how batches reach it. <see cref="BackboneUnit"/> runs the backbone on every batch
/// (fine-tune, frozen stages, or a probe without a cache); <see cref="CachedProbeUnit"/> trains a linear layer on
/// pre-logit features computed once. The loop sees only this contract, so it has no probe branches.
/// </summary>
internal abstract class TrainUnit(Backbone model, Device device, bool autocast) : IDisposable
{
    public Backbone Model { get; } = model;
    protected Device Device { get; } = device;
    protected bool Autocast { get; } = autocast;

    /// <summary>The module the optimizer updates and the EMA averages.</summary>
    public abstract Module Trained { get; }

    /// <summary>The trained parameters under their backbone names (checkpoints store optimizer state under these).</summary>
    public abstract IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }

    /// <summary>Elements of the trained parameters.</summary>
    public long TrainedParameterCount => Parameters.Sum(p => p.Parameter.NumEl);

    /// <summary>Whether weight decay applies to a trained parameter.</summary>
    public abstract bool Decays(string name, Parameter parameter);

    /// <summary>Work before the first epoch (the probe's feature cache).</summary>
    public virtual void Prepare(Action<string> info, Action<int, int, double, string> progress) { }

    /// <summary>Sets train/eval modes for an epoch of training.</summary>
    public abstract void BeginEpoch();

    /// <summary>The epoch's micro-batches from batch <paramref name="startBatch"/> on.</summary>
    public abstract IEnumerable<TrainBatch> Batches(int epoch, int startBatch);

    /// <summary>The validation batches (images, labels, dataset indices), freed after each is consumed.</summary>
    public abstract IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> ValidationBatches();

    public abstract int ValidationBatchCount { get; }

    /// <summary>Logits of a batch (autocast as the run says).</summary>
    public Tensor Forward(Tensor x)
    {
        using var cast = Autocast ? Torch.Autocast.Enable(Device.Type) : null;
        return ForwardCore(x);
    }

    /// <summary>Logits of the whole model on images (autocast as the run says), whatever the unit trains on: what the
    /// trained model serves.</summary>
    public Tensor ForwardImages(Tensor images)
    {
        using var cast = Autocast ? Torch.Autocast.Enable(Device.Type) : null;
        return Model.Call(images);
    }

    /// <summary>The images of <paramref name="loader"/>'s one evaluation pass on <paramref name="device"/> (images,
    /// labels, dataset indices), freed after each is consumed.</summary>
    public static IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> ImageBatches(DataLoader loader, Device device)
    {
        foreach (var b in loader.GetEpoch(0))
        {
            using (b)
            {
                var x = b.Images.To(device);
                var y = b.Labels.To(device);
                try { yield return (x, y, b.Indices); }
                finally
                {
                    x.Dispose();
                    y.Dispose();
                }
            }
        }
    }

    protected abstract Tensor ForwardCore(Tensor x);

    /// <summary>Copies the trained state into the backbone (the probe's layer into the classifier); nothing when they
    /// are the same module.</summary>
    public virtual void WriteBack() { }

    /// <summary>Copies the backbone's state into the trained module (after the backbone was restored).</summary>
    public virtual void ReadBack() { }

    /// <summary>A full backbone state from a saved state of <see cref="Trained"/> (<paramref name="trained"/>) and of
    /// the backbone (<paramref name="backbone"/>); the tensors are new and owned by the caller.</summary>
    public abstract List<KeyValuePair<string, Tensor>> BackboneState(IReadOnlyDictionary<string, Tensor> trained, IEnumerable<KeyValuePair<string, Tensor>> backbone);

    public virtual void Dispose() { }

    /// <summary>Frees a batch's device tensors and the loader's batch.</summary>
    protected sealed class Owned(IDisposable? batch, params Tensor?[] tensors) : IDisposable
    {
        public void Dispose()
        {
            foreach (var t in tensors) t?.Dispose();
            batch?.Dispose();
        }
    }

    /// <summary>Marks what is trained: the classifier only (probe), the stages after the frozen ones, or everything.</summary>
    protected static List<(string Name, Parameter Parameter)> SelectTrainable(Backbone model, ImageClassificationOptions o)
    {
        var classifier = model.ClassifierKeys.ToHashSet();
        int stages = model.StageDepths.Count;
        if (o.Mode == TrainingMode.FreezeStages && o.FrozenStages > stages)
            throw new ArgumentException($"FrozenStages {o.FrozenStages}: {model.Variant} has {stages} stages.");
        if (o.Mode == TrainingMode.LinearProbe && classifier.Count == 0) throw new ArgumentException($"{model.Variant} has no classifier to probe.");
        var trainable = new List<(string, Parameter)>();
        foreach (var (name, p) in model.NamedParameters())
        {
            p.RequiresGrad = o.Mode switch
            {
                TrainingMode.LinearProbe => classifier.Contains(name),
                TrainingMode.FreezeStages => model.StageOf(name) > o.FrozenStages,
                _ => true,
            };
            if (p.RequiresGrad) trainable.Add((name, p));
        }
        return trainable;
    }
}

/// <summary>Trains the backbone on loader batches: every parameter, the stages after the frozen ones (frozen modules
/// stay in eval mode, so their batch-norm statistics and dropout stay fixed), or only the classifier of a backbone
/// kept in eval mode (a linear probe without the cache, for checking).</summary>
internal sealed class BackboneUnit : TrainUnit
{
    readonly DataLoader _train;
    readonly DataLoader? _val;
    readonly bool _probe;
    readonly List<(string, Parameter)> _parameters;
    readonly List<Module> _frozenModules = new();

    public BackboneUnit(Backbone model, ImageClassificationOptions o, Device device, bool autocast, DataLoader train, DataLoader? val)
        : base(model, device, autocast)
    {
        (_train, _val, _probe) = (train, val, o.Mode == TrainingMode.LinearProbe);
        _parameters = SelectTrainable(model, o);
        var frozen = new HashSet<string>(model.NamedParameters().Where(p => !p.Parameter.RequiresGrad).Select(p => p.Name));
        var frozenPrefixes = new List<string>();
        foreach (var (prefix, m) in model.NamedModules())
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

    public override Module Trained => Model;
    public override IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _parameters;
    public override bool Decays(string name, Parameter parameter) => !Model.ExemptFromWeightDecay(name, parameter);

    public override void BeginEpoch()
    {
        if (_probe)
        {
            Model.Eval();
            return;
        }
        Model.Train();
        foreach (var m in _frozenModules) m.Eval();
    }

    public override IEnumerable<TrainBatch> Batches(int epoch, int startBatch)
    {
        foreach (var b in _train.GetEpoch(epoch, startBatch))
        {
            var x = b.Images.To(Device);
            var y = b.Labels.To(Device);
            var t = b.Targets?.To(Device);
            yield return new TrainBatch(x, y, t, b.Count, new Owned(b, x, y, t));
        }
    }

    public override IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> ValidationBatches() => ImageBatches(_val!, Device);

    public override int ValidationBatchCount => _val?.BatchesPerEpoch ?? 0;

    protected override Tensor ForwardCore(Tensor x) => Model.Call(x);

    public override List<KeyValuePair<string, Tensor>> BackboneState(IReadOnlyDictionary<string, Tensor> trained, IEnumerable<KeyValuePair<string, Tensor>> backbone) =>
        trained.Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.Clone().DetachFromScope())).ToList();
}

/// <summary>
/// A linear probe on cached features: the frozen backbone (eval mode) computes every training and validation image's
/// pre-logit features once; each epoch then trains a linear layer (initialised from the classifier) on them, so an
/// epoch costs a matrix product. The layer is copied back into the classifier after each epoch and on every save.
/// </summary>
internal sealed class CachedProbeUnit : TrainUnit
{
    readonly DataLoader _train;
    readonly DataLoader? _val;
    readonly int _batchSize, _batchesPerEpoch;
    readonly Linear _probe;
    readonly (string Name, Parameter Parameter)[] _parameters;
    Tensor? _trainFeatures, _valFeatures;
    int[] _trainRows = [], _valRows = [];

    public CachedProbeUnit(Backbone model, ImageClassificationOptions o, Device device, bool autocast, DataLoader train, DataLoader? val)
        : base(model, device, autocast)
    {
        SelectTrainable(model, o);
        (_train, _val, _batchSize, _batchesPerEpoch) = (train, val, o.BatchSize, train.BatchesPerEpoch);
        var (w, _) = Classifier();
        _probe = new Linear(w.Shape[1] * (w.NumEl / (w.Shape[0] * w.Shape[1])), w.Shape[0]);
        _probe.To(device);
        ReadBack();
        _parameters = [(model.ClassifierKeys[0], _probe.Weight), (model.ClassifierKeys[1], _probe.Bias!)];
    }

    public override Module Trained => _probe;
    public override IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _parameters;
    public override bool Decays(string name, Parameter parameter) => parameter.Dim > 1;

    (Tensor Weight, Tensor Bias) Classifier()
    {
        var sd = Model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        var keys = Model.ClassifierKeys;
        if (keys.Count != 2 || !keys[0].EndsWith("weight", StringComparison.Ordinal) || !keys[1].EndsWith("bias", StringComparison.Ordinal))
            throw new InvalidOperationException($"{Model.Variant}: a linear probe needs a classifier of one weight and one bias, found [{string.Join(", ", keys)}].");
        return (sd[keys[0]], sd[keys[1]]);
    }

    public override void ReadBack()
    {
        var (w, b) = Classifier();
        using var _ = Autograd.NoGrad();
        using var flat = w.Reshape(_probe.Weight.Shape);
        _probe.Weight.Copy_(flat);
        _probe.Bias!.Copy_(b);
    }

    public override void WriteBack()
    {
        var (w, b) = Classifier();
        using var _ = Autograd.NoGrad();
        using var shaped = _probe.Weight.Reshape(w.Shape);
        w.Copy_(shaped);
        b.Copy_(_probe.Bias!);
    }

    /// <summary>Pre-logit features of every training and validation image, computed once with the frozen backbone
    /// in eval mode (undecodable images get row −1 and are left out, as the loader would).</summary>
    public override void Prepare(Action<string> info, Action<int, int, double, string> progress)
    {
        Model.Eval();
        (_trainFeatures, _trainRows) = Features(_train, "training", info, progress);
        if (_val is not null) (_valFeatures, _valRows) = Features(_val, "validation", info, progress);
    }

    (Tensor, int[]) Features(DataLoader loader, string what, Action<string> info, Action<int, int, double, string> progress)
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
                    var x = b.Images.To(Device);
                    Tensor f;
                    using (Autocast ? Torch.Autocast.Enable(Device.Type) : null)
                        f = Model.ForwardHead(Model.ForwardFeatures(x), preLogits: true);
                    parts.Add(f.To(DType.Float32).Reshape(b.Count, -1).MoveToOuterScope().DetachFromScope());
                    foreach (var i in b.Indices) rows[i] = next++;
                }
                progress(++done, eval.BatchesPerEpoch, next / Math.Max(1e-9, clock.Elapsed.TotalSeconds), $"caching {what} features");
            }
        }
        if (parts.Count == 0) throw new DatasetException($"No {what} image of '{loader.Dataset.Source}' could be decoded.");
        var all = Tensor.Cat(parts.ToArray(), 0).DetachFromScope();
        foreach (var p in parts) p.Dispose();
        info($"Cached {what} features: {all.Shape[0]} images × {all.Shape[1]} in {clock.Elapsed.TotalSeconds:F1} s.");
        return (all, rows);
    }

    public override void BeginEpoch() => Model.Eval();

    public override IEnumerable<TrainBatch> Batches(int epoch, int startBatch)
    {
        var order = _train.Order(epoch);
        for (int b = startBatch; b < _batchesPerEpoch; b++)
        {
            var idx = order.Skip(b * _batchSize).Take(_batchSize).Where(i => _trainRows[i] >= 0).ToArray();
            if (idx.Length == 0) continue;
            var rows = Tensor.FromArray(idx.Select(i => (long)_trainRows[i]).ToArray(), [idx.Length]).To(Device);
            var x = _trainFeatures!.IndexSelect(0, rows);
            var y = Tensor.FromArray(idx.Select(i => (long)_train.Dataset.Items[i].Label).ToArray(), [idx.Length]).To(Device);
            rows.Dispose();
            yield return new TrainBatch(x, y, null, idx.Length, new Owned(null, x, y));
        }
    }

    public override IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> ValidationBatches()
    {
        var val = _val!.Dataset;
        var valid = Enumerable.Range(0, val.Count).Where(i => _valRows[i] >= 0).ToArray();
        for (int s = 0; s < valid.Length; s += _batchSize)
        {
            var idx = valid.Skip(s).Take(_batchSize).ToArray();
            using var rows = Tensor.FromArray(idx.Select(i => (long)_valRows[i]).ToArray(), [idx.Length]).To(Device);
            var x = _valFeatures!.IndexSelect(0, rows);
            var y = Tensor.FromArray(idx.Select(i => (long)val.Items[i].Label).ToArray(), [idx.Length]).To(Device);
            try { yield return (x, y, idx); }
            finally
            {
                x.Dispose();
                y.Dispose();
            }
        }
    }

    public override int ValidationBatchCount => _val is null ? 0 : (_val.Dataset.Count + _batchSize - 1) / _batchSize;

    protected override Tensor ForwardCore(Tensor x) => _probe.Call(x);

    /// <summary>The backbone's tensors with the classifier taken from the probe's saved weight and bias.</summary>
    public override List<KeyValuePair<string, Tensor>> BackboneState(IReadOnlyDictionary<string, Tensor> trained, IEnumerable<KeyValuePair<string, Tensor>> backbone)
    {
        var result = new List<KeyValuePair<string, Tensor>>();
        foreach (var (key, v) in backbone)
        {
            Tensor t;
            if (key == Model.ClassifierKeys[0])
                using (var shaped = trained["weight"].Reshape(v.Shape)) t = shaped.Clone();
            else t = (key == Model.ClassifierKeys[1] ? trained["bias"] : v).Clone();
            result.Add(new(key, t.DetachFromScope()));
        }
        return result;
    }

    public override void Dispose()
    {
        _probe.Dispose();
        _trainFeatures?.Dispose();
        _valFeatures?.Dispose();
    }
}

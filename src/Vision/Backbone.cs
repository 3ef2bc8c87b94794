using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Imaging;

namespace MLNetExt.Vision;

/// <summary>Channels and stride (reduction from the input) of one stage output, and the module that makes it.</summary>
public sealed record FeatureInfo(int Channels, int Reduction, string Module);

/// <summary>
/// How a backbone's published weights expect images (timm's <c>default_cfg</c>): input size, per-channel mean and
/// standard deviation of 0-1 RGB values, the crop fraction used at evaluation (resize the shorter side to
/// size/crop, then centre-crop) and the resize interpolation, plus the names of the first conv and the classifier.
/// </summary>
public sealed record PretrainedConfig(
    int InputChannels, int Height, int Width,
    double[] Mean, double[] Std,
    double CropPct, string Interpolation,
    int NumClasses, string FirstConv, string Classifier)
{
    /// <summary>ImageNet mean of 0-1 RGB values.</summary>
    public static readonly double[] ImageNetMean = { 0.485, 0.456, 0.406 };
    /// <summary>ImageNet standard deviation of 0-1 RGB values.</summary>
    public static readonly double[] ImageNetStd = { 0.229, 0.224, 0.225 };
}

/// <summary>An input the model cannot take; the message names the variant, the size given and the sizes allowed.</summary>
public sealed class InputSizeException : ArgumentException
{
    /// <summary>Builds the message from the variant, the offending size and a description of what is allowed.</summary>
    public InputSizeException(string variant, long height, long width, string allowed)
        : base($"{variant}: cannot take an input of {height}x{width} (height x width); {allowed}.") { }

    /// <summary>A free-form message (rank or channel errors).</summary>
    public InputSizeException(string message) : base(message) { }
}

/// <summary>What <see cref="Backbone.LoadPretrained"/> loaded and what it left at its initial values.</summary>
/// <param name="LoadedKeys">Entries copied from the weights.</param>
/// <param name="SkippedHeadKeys">Classifier entries whose shape differs (another class count): re-initialised.</param>
public sealed record LoadPretrainedResult(IReadOnlyList<string> LoadedKeys, IReadOnlyList<string> SkippedHeadKeys);

/// <summary>
/// The contract every image backbone offers to the trainer, the exporter and the CLI (timm's model interface):
/// unpooled features, a head that can return pre-logits, per-stage maps for dense tasks, a resettable classifier,
/// parameter depth groups for layer-wise learning-rate decay, feature info and the pretrained configuration.
/// Inputs are normalised float NCHW images.
/// </summary>
public abstract class Backbone : Module<Tensor, Tensor>
{
    readonly string[] _classifierKeys;

    /// <summary>Sets the identity of the model.</summary>
    protected Backbone(string family, string variant, PretrainedConfig pretrainedConfig)
    {
        ArgumentNullException.ThrowIfNull(pretrainedConfig);
        Family = family;
        Variant = variant;
        PretrainedConfig = pretrainedConfig;
        _classifierKeys = new[] { pretrainedConfig.Classifier + ".weight", pretrainedConfig.Classifier + ".bias" };
    }

    /// <summary>Family name as the CLI spells it (<c>transxnet</c>, <c>transnext</c>, <c>smt</c>, <c>mixformer</c>).</summary>
    public string Family { get; }

    /// <summary>Official variant name, or <c>custom</c> for a model built from user keyword arguments.</summary>
    public string Variant { get; }

    /// <summary>Input size, normalisation and evaluation crop the weights expect.</summary>
    public PretrainedConfig PretrainedConfig { get; }

    /// <summary>Classes of the head (0 when the head is an identity and <see cref="Module{TIn,TOut}.Forward"/> returns pooled features).</summary>
    public abstract int NumClasses { get; }

    /// <summary>Width of the pooled features fed to the classifier.</summary>
    public abstract int NumFeatures { get; }

    /// <summary>Stochastic-depth rate of the deepest block.</summary>
    public abstract double DropPathRate { get; }

    /// <summary>Channels and stride of each stage output, in order (strides 4, 8, 16, 32).</summary>
    public abstract IReadOnlyList<FeatureInfo> FeatureInfo { get; }

    /// <summary>Features before global pooling (NCHW for these families).</summary>
    public abstract Tensor ForwardFeatures(Tensor images);

    /// <summary>Pooling (and final norm where the family has one) then the classifier; with <paramref name="preLogits"/>
    /// the pooled features the classifier would see.</summary>
    public abstract Tensor ForwardHead(Tensor features, bool preLogits = false);

    /// <summary>The output of every stage as NCHW maps (strides 4, 8, 16, 32), for detection and segmentation heads.</summary>
    public abstract IReadOnlyList<Tensor> ForwardStages(Tensor images);

    /// <summary>Logits: <c>ForwardHead(ForwardFeatures(images))</c>.</summary>
    public override Tensor Forward(Tensor images)
    {
        using var features = ForwardFeatures(images);
        return ForwardHead(features);
    }

    /// <summary>Replaces the classifier with a freshly initialised one of <paramref name="numClasses"/> outputs
    /// (0: identity, the model then returns pooled features). The rest of the network is untouched.</summary>
    public abstract void ResetClassifier(int numClasses);

    /// <summary>The common part of <see cref="ResetClassifier"/>: puts <paramref name="head"/> in place of the child
    /// <paramref name="name"/> (disposing the old one) on the model's device and in the model's mode.</summary>
    protected T ReplaceHead<T>(string name, T head) where T : Module
    {
        var device = Parameters().FirstOrDefault()?.Device;
        if (device is { } d && d != Device.Cpu) head.To(d);
        head.Train(Training);
        return ReplaceModule(name, head);
    }

    /// <summary>state_dict keys of the classifier (the entries that change with the class count): the weight and bias of
    /// the module <see cref="PretrainedConfig.Classifier"/> names. A family whose classifier can be absent as a whole
    /// (TransXNet with <c>fork_feat</c> or 0 classes) returns none then.</summary>
    public virtual IReadOnlyList<string> ClassifierKeys => _classifierKeys;

    /// <summary>state_dict key of the stem's first convolution weight (the module <see cref="PretrainedConfig.FirstConv"/>
    /// names); its second axis is the input channels.</summary>
    public string FirstConvWeightKey => PretrainedConfig.FirstConv + ".weight";

    /// <summary>Keys of the whole head, which a headless checkpoint (a detection backbone, a feature extractor) may
    /// lack; kept at their initial values and reported when absent. Default: <see cref="ClassifierKeys"/>.</summary>
    public virtual IReadOnlyList<string> HeadKeys => ClassifierKeys;

    /// <summary>The family's parameter → depth-group rules (data; see <see cref="DepthGroupTable"/>).</summary>
    internal abstract DepthGroupTable DepthGroups { get; }

    /// <summary>Number of depth groups: 0 = stem and embeddings, then the blocks in order, last = final norm and head.</summary>
    public int NumDepthGroups => DepthGroupTable.NumGroups(StageDepths);

    /// <summary>Depth group of a parameter (by state_dict name), in [0, <see cref="NumDepthGroups"/>), from the family's
    /// depth-group table; a name no rule matches is not a parameter of this model (<see cref="ArgumentException"/>).</summary>
    public int DepthGroupOf(string parameterName)
    {
        ArgumentNullException.ThrowIfNull(parameterName);
        return DepthGroups.GroupOf(parameterName, StageDepths)
            ?? throw new ArgumentException($"{Variant}: '{parameterName}' is not a parameter of this model.", nameof(parameterName));
    }

    /// <summary>Every parameter with its depth group, in state_dict order; the trainer scales learning rates by
    /// <c>decay^(NumDepthGroups - 1 - group)</c> for layer-wise decay.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter, int Group)> ParameterDepths()
    {
        var result = new List<(string, Parameter, int)>();
        foreach (var (name, p) in NamedParameters())
        {
            int g = DepthGroupOf(name);
            if (g < 0 || g >= NumDepthGroups)
                throw new InvalidOperationException($"{Variant}: depth group {g} of '{name}' is outside [0, {NumDepthGroups}).");
            result.Add((name, p, g));
        }
        return result;
    }

    /// <summary>Blocks per stage, in order (the official <c>depths</c>/<c>layers</c> argument). With the depth groups
    /// (stem, blocks in order, head) this says which stage a parameter belongs to, for freezing the first k stages.</summary>
    public abstract IReadOnlyList<int> StageDepths { get; }

    /// <summary>The stage of a parameter: 0 = stem and embeddings before the first block, 1..n = stages,
    /// n + 1 = final norm and head. Derived from <see cref="DepthGroupOf"/> and <see cref="StageDepths"/>.</summary>
    public int StageOf(string parameterName)
    {
        int g = DepthGroupOf(parameterName);
        if (g == 0) return 0;
        if (g == NumDepthGroups - 1) return StageDepths.Count + 1;
        int end = 0;
        for (int s = 0; s < StageDepths.Count; s++)
        {
            end += StageDepths[s];
            if (g <= end) return s + 1;
        }
        return StageDepths.Count + 1;
    }

    /// <summary>Whether the official training recipe exempts a parameter from weight decay. Default (timm's rule, used
    /// by TransXNet and SMT): 1-D parameters and names ending in <c>.bias</c>; families add the tokens and tables
    /// their training code names.</summary>
    public virtual bool ExemptFromWeightDecay(string parameterName, Parameter parameter) =>
        parameter.Dim <= 1 || parameterName.EndsWith(".bias", StringComparison.Ordinal);

    /// <summary>Checks a batch of images: rank 4, the configured channel count, and a size the model accepts
    /// (<see cref="CheckInputSize"/>). Families call it at the start of every forward entry point.</summary>
    protected void CheckInput(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var shape = images.Shape;
        if (shape.Length != 4)
            throw new InputSizeException($"{Variant}: expected a batch of images shaped [N, {PretrainedConfig.InputChannels}, H, W], got a tensor of shape [{string.Join(", ", shape)}].");
        if (shape[1] != InputChannels)
            throw new InputSizeException($"{Variant}: expected {InputChannels} input channels, got {shape[1]} (input shape [{string.Join(", ", shape)}]).");
        CheckInputSize(shape[2], shape[3]);
    }

    /// <summary>Channels the stem takes (the <c>in_chans</c> argument).</summary>
    public virtual int InputChannels => PretrainedConfig.InputChannels;

    /// <summary>Throws <see cref="InputSizeException"/> for a height/width the model cannot take. Default: any size ≥ 1.</summary>
    public virtual void CheckInputSize(long height, long width)
    {
        if (height < 1 || width < 1) throw new InputSizeException(Variant, height, width, "both sides must be at least 1");
    }

    /// <summary>Family hook applied to checkpoint entries before matching: renames, format conversion, dropping
    /// entries that belong to other tasks. The default strips a leading <c>module.</c> (DataParallel).</summary>
    protected virtual IEnumerable<KeyValuePair<string, Tensor>> AdaptCheckpoint(IEnumerable<KeyValuePair<string, Tensor>> weights)
        => weights.Select(kv => kv.Key.StartsWith("module.", StringComparison.Ordinal) ? new KeyValuePair<string, Tensor>(kv.Key["module.".Length..], kv.Value) : kv);

    /// <summary>
    /// Loads published or fine-tuned weights. Every entry must match by name and shape, except the classifier: when
    /// its shape differs (another class count) or it is absent (a headless checkpoint), the freshly initialised
    /// head is kept and its keys are reported. Anything else that does not match throws
    /// <see cref="StateDictMismatchException"/> listing every key, and nothing is modified.
    /// </summary>
    public LoadPretrainedResult LoadPretrained(IEnumerable<KeyValuePair<string, Tensor>> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var adapted = AdaptCheckpoint(weights).ToList();
        var own = StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Shape);
        var head = new HashSet<string>(ClassifierKeys);
        var skipped = new List<string>();
        var kept = new List<KeyValuePair<string, Tensor>>();
        var present = new HashSet<string>();
        foreach (var kv in adapted)
        {
            present.Add(kv.Key);
            if (head.Contains(kv.Key) && own.TryGetValue(kv.Key, out var shape) && !shape.SequenceEqual(kv.Value.Shape))
                skipped.Add(kv.Key);
            else if (head.Contains(kv.Key) && !own.ContainsKey(kv.Key))
                skipped.Add(kv.Key); // checkpoint has a head, this model has none (num_classes 0)
            else
                kept.Add(kv);
        }
        // A headless checkpoint: the head keys are absent; keep the fresh head.
        foreach (var key in head.Concat(HeadKeys))
            if (!present.Contains(key) && own.ContainsKey(key) && !skipped.Contains(key)) skipped.Add(key);
        // If some but not all head keys mismatch, the head would be half-loaded: skip it whole.
        if (skipped.Count > 0)
        {
            kept.RemoveAll(kv => head.Contains(kv.Key));
            foreach (var key in head) if (!skipped.Contains(key) && (own.ContainsKey(key) || present.Contains(key))) skipped.Add(key);
        }
        var keptKeys = new HashSet<string>(kept.Select(kv => kv.Key));
        var missing = own.Keys.Where(k => !keptKeys.Contains(k) && !skipped.Contains(k)).ToList();
        var unexpected = kept.Where(kv => !own.ContainsKey(kv.Key)).Select(kv => kv.Key).ToList();
        var mismatched = kept.Where(kv => own.TryGetValue(kv.Key, out var s) && !s.SequenceEqual(kv.Value.Shape))
            .Select(kv => (kv.Key, own[kv.Key], kv.Value.Shape)).ToList();
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
            throw new StateDictMismatchException(Variant, new LoadStateDictResult(missing, unexpected, mismatched));
        LoadStateDict(kept, strict: false);
        return new LoadPretrainedResult(kept.Select(kv => kv.Key).ToList(), skipped.Distinct().ToList());
    }
}

using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.TransXNet;

/// <summary>Architecture of one TransXNet (the official <c>arch</c> dict), per stage.</summary>
internal sealed record TransXNetArch(
    int[] Layers, int[] EmbedDims, int[] KernelSize, int[] NumGroups, int[] SrRatio, int[] NumHeads,
    double[] MlpRatios, double? LayerScaleInitValue);

/// <summary>The family's config record: everything the official constructor takes that shapes the model.</summary>
internal sealed record TransXNetConfig(
    TransXNetArch Arch, int ImageHeight, int ImageWidth, int InChans, int InPatchSize, int InStride, int InPad,
    int DownPatchSize, int DownStride, int DownPad, double DropRate, double DropPathRate, int NumClasses,
    bool ForkFeat, int StartLevel);

/// <summary>
/// TransXNet: a hybrid CNN-transformer whose blocks mix tokens with a Dual Dynamic Token Mixer (input-dependent
/// depthwise convolution on half the channels, overlapping spatial-reduction attention on the other half).
/// Module tree and state_dict: <c>patch_embed</c>, <c>relative_pos_enc.0-3</c> (one dense position bias per stage,
/// shared by its blocks, sized for the construction resolution and resized bicubically for others), <c>network</c>
/// (stage 1, down 1, stage 2, down 2, stage 3, down 3, stage 4), then <c>classifier</c> (GN1 → pool → 1×1 conv), or
/// with <c>fork_feat</c> the per-stage norms <c>norm0/2/4/6</c> for dense tasks.
/// </summary>
internal sealed class TransXNetModel : Backbone
{
    static readonly int[] StagePositions = { 0, 2, 4, 6 };

    readonly TransXNetConfig _o;
    readonly ConvBnPatchEmbed _patchEmbed;
    readonly ParameterList _positionBias;
    readonly ModuleList<Module> _network;
    Module<Tensor, Tensor>? _classifier;
    readonly Module<Tensor, Tensor>?[] _stageNorms = new Module<Tensor, Tensor>?[4];
    readonly List<FeatureInfo> _featureInfo = new();
    int _numClasses;

    internal TransXNetModel(string variant, PretrainedConfig pretrained, TransXNetConfig o) : base("transxnet", variant, pretrained)
    {
        _o = o;
        var a = o.Arch;
        var dpr = DropPathSchedule.Linear(o.DropPathRate, a.Layers.Sum());
        _patchEmbed = RegisterModule("patch_embed", new ConvBnPatchEmbed(o.InChans, a.EmbedDims[0], o.InPatchSize, o.InStride, o.InPad));

        // Position tables are sized from the construction resolution: ceil(size/in_stride), then ceil(/2) per stage.
        _positionBias = RegisterModule("relative_pos_enc", new ParameterList());
        long h = CeilDiv(o.ImageHeight, o.InStride), w = CeilDiv(o.ImageWidth, o.InStride);
        int reduction = o.InStride;
        for (int s = 0; s < 4; s++)
        {
            long n = h * w, m = CeilDiv(h, a.SrRatio[s]) * CeilDiv(w, a.SrRatio[s]);
            _positionBias.Add(new Parameter(Tensor.Zeros(new[] { 1L, a.NumHeads[s], n, m })));
            _featureInfo.Add(new FeatureInfo(a.EmbedDims[s], reduction, $"network.{StagePositions[s]}"));
            (h, w, reduction) = (CeilDiv(h, 2), CeilDiv(w, 2), reduction * o.DownStride);
        }

        _network = RegisterModule("network", new ModuleList<Module>());
        int index = 0;
        for (int s = 0; s < 4; s++)
        {
            var stage = new ModuleList<Block>();
            for (int b = 0; b < a.Layers[s]; b++, index++)
                stage.Add(new Block(a.EmbedDims[s], a.KernelSize[s], a.SrRatio[s], a.NumGroups[s], a.NumHeads[s], a.MlpRatios[s],
                                    o.DropRate, dpr[index], a.LayerScaleInitValue));
            _network.Add(stage);
            if (s < 3)
                _network.Add(new ConvBnPatchEmbed(a.EmbedDims[s], a.EmbedDims[s + 1], o.DownPatchSize, o.DownStride, o.DownPad));
        }

        if (o.ForkFeat)
        {
            for (int s = 0; s < 4; s++)
                if (s >= o.StartLevel)
                    _stageNorms[s] = RegisterModule($"norm{StagePositions[s]}", new GroupNorm(1, a.EmbedDims[s]));
        }
        else
        {
            _numClasses = o.NumClasses;
            _classifier = RegisterModule<Module<Tensor, Tensor>>("classifier", o.NumClasses > 0 ? MakeClassifier(o.NumClasses) : new Identity());
        }
        // the official initialisation: every Conv2d trunc-normal(0.02) weights and zero bias; norms weight 1, bias 0
        // (their defaults); IDConv banks trunc-normal (set by the layer); layer scales and tables as built
        WeightInit.TruncNormalConvs.Apply(this);
    }

    internal static long CeilDiv(long a, long b) => (a + b - 1) / b;

    Sequential MakeClassifier(int numClasses) => new(
        new GroupNorm(1, _o.Arch.EmbedDims[^1]), new AdaptiveAvgPool2d(1), new Conv2d(_o.Arch.EmbedDims[^1], numClasses, 1));

    /// <inheritdoc/>
    public override int NumClasses => _numClasses;

    /// <inheritdoc/>
    public override int NumFeatures => _o.Arch.EmbedDims[^1];

    /// <inheritdoc/>
    public override double DropPathRate => _o.DropPathRate;

    /// <inheritdoc/>
    public override IReadOnlyList<FeatureInfo> FeatureInfo => _featureInfo;

    /// <inheritdoc/>
    public override int InputChannels => _o.InChans;

    /// <summary>The resolution the position tables were built for (height, width).</summary>
    public (int Height, int Width) ConstructionSize => (_o.ImageHeight, _o.ImageWidth);

    /// <summary>Whether the model was built for dense prediction (<c>fork_feat</c>: per-stage norms, no classifier).</summary>
    public bool ForkFeat => _o.ForkFeat;

    /// <inheritdoc/>
    public override Tensor ForwardFeatures(Tensor images) => RunStages(images, collect: false)[^1];

    /// <inheritdoc/>
    public override IReadOnlyList<Tensor> ForwardStages(Tensor images) => RunStages(images, collect: true);

    List<Tensor> RunStages(Tensor images, bool collect)
    {
        CheckInput(images);
        if (Training && images.Size(0) < 2)
            throw new InputSizeException($"{Variant}: training needs at least 2 images per batch (IDConv's BatchNorm normalises one value per channel per image on the pooled mean), got {images.Size(0)}.");
        var outputs = new List<Tensor>();
        using var scope = TensorScope.Begin();
        // Channels-last from the stem on: TransXNet is convolutions end to end, and oneDNN runs them (forward and
        // backward) on NHWC without reordering to its blocked layout — a training step ~25-40 % faster on CPU
        // (bench/README.md, "Channels-last"); values agree within float rounding. Parameters stay contiguous.
        var x = _patchEmbed.Call(images.ChannelsLast());
        for (int s = 0; s < 4; s++)
        {
            if (s > 0) x = ((ConvBnPatchEmbed)_network[StagePositions[s] - 1]).Call(x);
            var bias = StagePositionBias(s, x.Size(2), x.Size(3));
            foreach (var block in (ModuleList<Block>)_network[StagePositions[s]])
                x = block.Forward(x, bias);
            if (collect || s == 3)
                outputs.Add((collect && _stageNorms[s] is { } norm ? norm.Call(x) : x.Alias()).MoveToOuterScope());
        }
        return outputs;
    }

    /// <summary>The stage's position table for an h×w token grid: as stored at the construction size, otherwise
    /// resized bicubically (align_corners false) to (h·w) × (keys). The official code resizes inside every block;
    /// resizing once per stage gives the same values and gradients.</summary>
    Tensor StagePositionBias(int stage, long h, long w)
    {
        var table = _positionBias[stage];
        int sr = _o.Arch.SrRatio[stage];
        // keys: the spatial-reduction conv's output (kernel sr+3, stride sr, padding (sr+3)/2); equals ceil(L/sr) for
        // the official ratios 2, 4, 8 (the tables are sized with ceil at construction, as the official code does)
        static long Keys(long length, int sr) => sr == 1 ? length : (length + 2 * ((sr + 3) / 2) - (sr + 3)) / sr + 1;
        long n = h * w, m = Keys(h, sr) * Keys(w, sr);
        return table.Size(2) == n && table.Size(3) == m ? table : F.Interpolate(table, n, m, InterpolationMode.Bicubic, alignCorners: false);
    }

    /// <inheritdoc/>
    public override Tensor ForwardHead(Tensor features, bool preLogits = false)
    {
        if (_classifier is Sequential head)
        {
            using var scope = TensorScope.Begin();
            var pooled = head[1].Call(head[0].Call(features));
            return (preLogits ? pooled.Flatten(1) : head[2].Call(pooled).Flatten(1)).MoveToOuterScope();
        }
        // No classifier (num_classes 0 or fork_feat): pooled features. The official model returns the flattened
        // unpooled map here; pooled features are what a caller of a headless backbone needs.
        return features.Mean(new long[] { -2, -1 });
    }

    /// <inheritdoc/>
    /// <remarks>Unlike the official <c>reset_classifier</c>, which only rewrites an attribute and keeps 1000 outputs,
    /// this builds a new 1×1 conv (trunc-normal 0.02, zero bias) and keeps the trained norm. With 0 the whole
    /// classifier becomes an identity, as the official constructor does for <c>num_classes=0</c>.</remarks>
    public override void ResetClassifier(int numClasses)
    {
        if (numClasses < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The class count must be 0 (no head) or more.");
        if (_o.ForkFeat) throw new InvalidOperationException($"{Variant} was built with fork_feat (dense prediction) and has no classifier.");
        Module<Tensor, Tensor> replacement;
        if (numClasses == 0) replacement = new Identity();
        else if (_classifier is Sequential old)
        {
            var norm = (GroupNorm)old[0];
            replacement = new Sequential(DetachNorm(norm), new AdaptiveAvgPool2d(1), new Conv2d(NumFeatures, numClasses, 1));
        }
        else replacement = MakeClassifier(numClasses);
        WeightInit.TruncNormalConvs.Apply(replacement);
        _classifier = ReplaceHead("classifier", replacement); // disposes the old head (the norm was copied)
        _numClasses = numClasses;
    }

    /// <summary>A new GroupNorm holding copies of a trained one's affine parameters.</summary>
    static GroupNorm DetachNorm(GroupNorm norm)
    {
        var copy = new GroupNorm(1, norm.Weight!.Size(0));
        using (Autograd.NoGrad())
        {
            copy.Weight!.Copy_(norm.Weight);
            copy.Bias!.Copy_(norm.Bias!);
        }
        return copy;
    }

    /// <inheritdoc/>
    /// <remarks>Besides a DataParallel <c>module.</c> prefix: detection/segmentation checkpoints (mmdet/mmseg) keep
    /// the backbone under <c>backbone.</c> beside necks and heads, which are dropped; the dense-task norms
    /// <c>norm0/2/4/6</c> are dropped for a classifier and the classifier is dropped for a dense (fork_feat) model.</remarks>
    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptCheckpoint(IEnumerable<KeyValuePair<string, Tensor>> weights)
    {
        var entries = base.AdaptCheckpoint(weights).ToList();
        if (entries.Any(kv => kv.Key.StartsWith("backbone.", StringComparison.Ordinal)))
            entries = entries.Where(kv => kv.Key.StartsWith("backbone.", StringComparison.Ordinal))
                             .Select(kv => new KeyValuePair<string, Tensor>(kv.Key["backbone.".Length..], kv.Value)).ToList();
        bool IsDenseNorm(string key) => key.Length > 5 && key.StartsWith("norm", StringComparison.Ordinal) && key[4] is '0' or '2' or '4' or '6' && key[5] == '.';
        return _o.ForkFeat
            ? entries.Where(kv => !kv.Key.StartsWith("classifier.", StringComparison.Ordinal))
            : entries.Where(kv => !IsDenseNorm(kv.Key));
    }

    /// <inheritdoc/>
    /// <remarks>None when the model has no classifier (0 classes, or <c>fork_feat</c>).</remarks>
    public override IReadOnlyList<string> ClassifierKeys => _classifier is Sequential ? base.ClassifierKeys : Array.Empty<string>();

    /// <inheritdoc/>
    /// <remarks>The classifier's norm and conv; for a dense (fork_feat) model the per-stage norms, which ImageNet
    /// checkpoints do not have (the official code loads them non-strictly).</remarks>
    public override IReadOnlyList<string> HeadKeys =>
        _classifier is Sequential ? new[] { "classifier.0.weight", "classifier.0.bias", "classifier.2.weight", "classifier.2.bias" }
        : _o.ForkFeat ? StateDict().Select(kv => kv.Key).Where(k => k.StartsWith("norm", StringComparison.Ordinal)).ToArray()
        : Array.Empty<string>();

    /// <inheritdoc/>
    public override IReadOnlyList<int> StageDepths => _o.Arch.Layers;

    /// <inheritdoc/>
    internal override DepthGroupTable DepthGroups => TransXNetFamily.DepthGroups;
}

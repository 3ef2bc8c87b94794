using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.Smt;

/// <summary>The family's config record: validated construction arguments of an SMT model (the official <c>SMT</c>
/// constructor's keyword arguments after defaults; see <see cref="SmtFamily"/> for the JSON names).</summary>
internal sealed record SmtConfig(
    int[] EmbedDims, int[] CaNumHeads, int[] SaNumHeads, double[] MlpRatios, bool QkvBias, double? QkScale,
    bool UseLayerScale, double LayerScaleValue, double DropRate, double AttnDropRate, double DropPathRate,
    int[] Depths, int[] CaAttentions, int HeadConv, int ExpandRatio, int NumClasses)
{
    /// <summary>Number of stages (the official code supports exactly 4).</summary>
    public const int Stages = 4;

    /// <summary>Whether block <paramref name="j"/> of stage <paramref name="stage"/> (0-based) is a SAM block: the
    /// official code forces MSA on odd blocks of the third stage and otherwise follows <c>ca_attentions</c>.</summary>
    public bool IsSam(int stage, int j) => !(stage == 2 && j % 2 != 0) && CaAttentions[stage] == 1;

    /// <summary>FFN hidden width of a stage: Python's <c>int(dim * mlp_ratio)</c>.</summary>
    public int Hidden(int stage) => (int)(EmbedDims[stage] * MlpRatios[stage]);
}

/// <summary>
/// SMT, the Scale-Aware Modulation Transformer (Lin et al., ICCV 2023), computed exactly as the official
/// classification code (AFeng-x/SMT <c>models/smt.py</c>): a conv stem and three strided-conv downsamplings, SAM
/// blocks (multi-head mixed convolution + scale-aware aggregation modulating a value projection) in stages 1–2,
/// alternating SAM/MSA blocks in stage 3 and MSA blocks in stage 4, a LayerNorm closing every stage, token-mean
/// pooling and a linear head. No position tables: every input of at least 3×3 pixels works.
/// state_dict keys, shapes and order are the official ones, so released checkpoints load strictly.
/// </summary>
internal sealed class SmtModel : Backbone
{
    readonly Module[] _patchEmbeds = new Module[SmtConfig.Stages];
    readonly ModuleList<SmtBlock>[] _blocks = new ModuleList<SmtBlock>[SmtConfig.Stages];
    readonly LayerNorm[] _norms = new LayerNorm[SmtConfig.Stages];
    readonly FeatureInfo[] _featureInfo;
    int _numClasses;

    /// <summary>The construction arguments.</summary>
    internal SmtConfig Config { get; }

    /// <summary>
    /// Row indices for converting an ImageNet-22K classifier (21,841 classes) to a smaller head while loading: when
    /// set, and a checkpoint's <c>head.weight</c>/<c>head.bias</c> has another row count than this model has classes, the
    /// rows listed here are taken in order (the official <c>data/map22kto1k.txt</c>; read it with
    /// <see cref="SmtFamily.ReadClassMap"/>). Its length must equal <see cref="NumClasses"/>.
    /// </summary>
    public int[]? HeadClassMap { get; set; }

    internal SmtModel(string variant, PretrainedConfig pretrained, SmtConfig s) : base("smt", variant, pretrained)
    {
        Config = s;
        _numClasses = s.NumClasses;
        int total = s.Depths.Sum();
        // stochastic depth decay rule: torch.linspace(0, rate, total) in float32, as the official code
        double[] dpr = DropPathSchedule.TorchLinspace(s.DropPathRate, total);
        int cur = 0;
        _featureInfo = new FeatureInfo[SmtConfig.Stages];
        for (int i = 0; i < SmtConfig.Stages; i++)
        {
            int dim = s.EmbedDims[i];
            _patchEmbeds[i] = i == 0
                ? RegisterModule("patch_embed1", new SmtStem(s.HeadConv, dim))
                : RegisterModule($"patch_embed{i + 1}", new OverlapPatchEmbed(s.EmbedDims[i - 1], dim, 3, 2, WeightInit.Deferred));
            var blocks = new ModuleList<SmtBlock>();
            for (int j = 0; j < s.Depths[i]; j++)
                blocks.Add(new SmtBlock(dim, s.IsSam(i, j), s.CaNumHeads[i], s.SaNumHeads[i], s.MlpRatios[i], s.QkvBias, s.QkScale,
                                        s.UseLayerScale, s.LayerScaleValue, s.DropRate, s.AttnDropRate, dpr[cur + j], s.ExpandRatio));
            _blocks[i] = RegisterModule($"block{i + 1}", blocks);
            _norms[i] = RegisterModule($"norm{i + 1}", new LayerNorm(dim, 1e-6));
            cur += s.Depths[i];
            _featureInfo[i] = new FeatureInfo(dim, 4 << i, $"norm{i + 1}");
        }
        RegisterModule("head", MakeHead(s.NumClasses));
        // the official _init_weights, applied to the whole model: Linear trunc-normal(0.02) with zero bias, Conv2d
        // normal(0, sqrt(2 / fan_out)) with fan_out = kh·kw·out/groups and zero bias; norms keep 1/0
        WeightInit.Timm.Apply(this);
    }

    Module<Tensor, Tensor> MakeHead(int numClasses) => ClassifierHead.Linear(Config.EmbedDims[3], numClasses, WeightInit.Timm);

    /// <inheritdoc/>
    public override int NumClasses => _numClasses;

    /// <inheritdoc/>
    public override int NumFeatures => Config.EmbedDims[3];

    /// <inheritdoc/>
    public override double DropPathRate => Config.DropPathRate;

    /// <inheritdoc/>
    public override IReadOnlyList<FeatureInfo> FeatureInfo => _featureInfo;

    /// <summary>Total number of blocks over the four stages.</summary>
    public int TotalBlocks => Config.Depths.Sum();

    /// <summary>Smallest side the stem accepts: its k×k stride-2 conv must leave at least 2 pixels for the 2×2
    /// stride-2 conv (3 for the official 3×3 and 7×7 stems).</summary>
    public int MinInputSize
    {
        get
        {
            int k = Config.HeadConv, pad = k == 7 ? 3 : 1;
            return Math.Max(1, k - 2 * pad + 2);
        }
    }

    /// <inheritdoc/>
    public override void CheckInputSize(long height, long width)
    {
        int min = MinInputSize;
        if (height < min || width < min)
            throw new InputSizeException(Variant, height, width,
                $"SMT takes any height and width of at least {min} pixels (odd and non-square sizes included; no multiple is required), " +
                $"the stem's {Config.HeadConv}x{Config.HeadConv} and 2x2 stride-2 convolutions need that much");
    }

    /// <summary>Runs the four stages; returns the final (B, N, C) tokens after <c>norm4</c> and the last grid size.
    /// With <paramref name="stages"/> each stage output is also added as an NCHW map.</summary>
    (Tensor Tokens, long H, long W) RunStages(Tensor images, List<Tensor>? stages)
    {
        CheckInput(images);
        Tensor x = images.Alias();
        Tensor? tokens = null;
        long h = 0, w = 0;
        for (int i = 0; i < SmtConfig.Stages; i++)
        {
            using (x)
            {
                (tokens, h, w) = i == 0 ? ((SmtStem)_patchEmbeds[0]).Forward(x) : ((OverlapPatchEmbed)_patchEmbeds[i]).Forward(x);
            }
            foreach (var blk in _blocks[i])
            {
                var next = blk.Forward(tokens, h, w);
                tokens.Dispose();
                tokens = next;
            }
            // The norm runs on the (B, H, W, C) view of the tokens: the same values, but exported, the Reshape between
            // the last block's residual Add and the norm keeps ONNX Runtime from fusing the two into its
            // SkipLayerNormalization, which took 3-4x their time apart on the narrow early stages (64, 128 channels).
            Tensor normed;
            long c = Config.EmbedDims[i];
            using (var grid = tokens.Reshape(-1, h, w, c))
            using (var n = _norms[i].Call(grid))
                normed = n.Reshape(-1, h * w, c);
            tokens.Dispose();
            tokens = normed;
            bool lastStage = i == SmtConfig.Stages - 1;
            if (!lastStage || stages is not null)
            {
                // the official code folds tokens back with reshape + permute + contiguous before the next conv
                using var view = TokenLayout.ToImage(tokens, Config.EmbedDims[i], h, w);
                var map = view.Contiguous();
                stages?.Add(map);
                if (!lastStage)
                {
                    x = stages is null ? map : map.Alias();
                    tokens.Dispose();
                }
            }
        }
        return (tokens!, h, w);
    }

    /// <summary>The <c>norm4</c> output as an NCHW map (B, C4, H/32, W/32), before token pooling.</summary>
    public override Tensor ForwardFeatures(Tensor images)
    {
        var (tokens, h, w) = RunStages(images, null);
        using (tokens) return TokenLayout.ToImage(tokens, Config.EmbedDims[3], h, w);
    }

    /// <summary>Mean over all positions (the official token mean) then the head; with <paramref name="preLogits"/>
    /// the pooled (B, C4) features. Accepts the NCHW map of <see cref="ForwardFeatures"/> or (B, N, C4) tokens.</summary>
    public override Tensor ForwardHead(Tensor features, bool preLogits = false)
    {
        ArgumentNullException.ThrowIfNull(features);
        Tensor pooled;
        if (features.Dim == 4 && features.Size(1) == NumFeatures) pooled = features.Mean(new long[] { 2, 3 });
        else if (features.Dim == 3 && features.Size(2) == NumFeatures) pooled = features.Mean(1);
        else throw new ArgumentException($"{Variant}: ForwardHead expects (B, {NumFeatures}, H, W) features or (B, N, {NumFeatures}) tokens, got [{string.Join(", ", features.Shape)}].", nameof(features));
        if (preLogits) return pooled;
        using (pooled) return Head.Call(pooled);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Tensor> ForwardStages(Tensor images)
    {
        var stages = new List<Tensor>(SmtConfig.Stages);
        var (tokens, _, _) = RunStages(images, stages);
        tokens.Dispose();
        return stages;
    }

    Module<Tensor, Tensor> Head => (Module<Tensor, Tensor>)NamedChildren().Last(c => c.Name == "head").Module;

    /// <summary>A fresh head Linear(C4, n) initialised as the official constructor does (trunc-normal 0.02, zero
    /// bias); 0 gives an identity head (the official <c>reset_classifier</c> is broken, it reads a missing attribute).</summary>
    public override void ResetClassifier(int numClasses)
    {
        if (numClasses < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The class count must be 0 (no head) or more.");
        ReplaceHead("head", MakeHead(numClasses));
        _numClasses = numClasses;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<int> StageDepths => Config.Depths;

    /// <inheritdoc/>
    internal override DepthGroupTable DepthGroups => SmtFamily.DepthGroups;

    /// <summary>Strips the DataParallel <c>module.</c> prefix and, when every key has it, the <c>model.</c> prefix of
    /// a flattened official checkpoint (which keeps the weights under 'model'); converts a larger classifier
    /// (ImageNet-22K) by the rows of <see cref="HeadClassMap"/> when one is set.</summary>
    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptCheckpoint(IEnumerable<KeyValuePair<string, Tensor>> weights)
    {
        var list = base.AdaptCheckpoint(weights).ToList();
        if (list.Count > 0 && list.All(kv => kv.Key.StartsWith("model.", StringComparison.Ordinal)))
            list = list.Select(kv => new KeyValuePair<string, Tensor>(kv.Key["model.".Length..], kv.Value)).ToList();
        if (HeadClassMap is int[] map)
        {
            if (map.Length != NumClasses)
                throw new InvalidOperationException($"{Variant}: HeadClassMap lists {map.Length} classes but the model has {NumClasses}.");
            for (int k = 0; k < list.Count; k++)
            {
                var (key, t) = list[k];
                if ((key == "head.weight" || key == "head.bias") && t.Dim >= 1 && t.Size(0) != NumClasses)
                {
                    if (map.Any(r => r < 0 || r >= t.Size(0)))
                        throw new InvalidOperationException($"{Variant}: HeadClassMap has rows outside [0, {t.Size(0)}) of the checkpoint's {key}.");
                    using var idx = Tensor.From(map.Select(r => (long)r).ToArray(), map.Length);
                    list[k] = new(key, t.IndexSelect(0, idx));
                }
            }
        }
        return list;
    }

    internal IEnumerable<SmtBlock> AllBlocks() => _blocks.SelectMany(b => b);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{Variant}: embed_dims=[{string.Join(", ", Config.EmbedDims)}], depths=[{string.Join(", ", Config.Depths)}], num_classes={NumClasses}";
}

using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Smt;

/// <summary>Validated construction arguments of an SMT model (the official <c>SMT</c> constructor's keyword
/// arguments after defaults; see <see cref="SmtFamily"/> for the JSON names).</summary>
public sealed record SmtSettings(
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
public sealed class SmtModel : Backbone
{
    readonly Module[] _patchEmbeds = new Module[SmtSettings.Stages];
    readonly ModuleList<SmtBlock>[] _blocks = new ModuleList<SmtBlock>[SmtSettings.Stages];
    readonly LayerNorm[] _norms = new LayerNorm[SmtSettings.Stages];
    readonly int[] _firstBlock = new int[SmtSettings.Stages];
    readonly FeatureInfo[] _featureInfo;
    int _numClasses;

    /// <summary>The construction arguments.</summary>
    public SmtSettings Settings { get; }

    /// <summary>
    /// Row indices for converting an ImageNet-22K classifier (21,841 classes) to a smaller head while loading: when
    /// set, and a checkpoint's <c>head.weight</c>/<c>head.bias</c> has another row count than this model has classes, the
    /// rows listed here are taken in order (the official <c>data/map22kto1k.txt</c>; read it with
    /// <see cref="SmtFamily.ReadClassMap"/>). Its length must equal <see cref="NumClasses"/>.
    /// </summary>
    public int[]? HeadClassMap { get; set; }

    internal SmtModel(SmtSettings s, string variant, PretrainedConfig pretrained) : base("smt", variant, pretrained)
    {
        Settings = s;
        _numClasses = s.NumClasses;
        int total = s.Depths.Sum();
        // stochastic depth decay rule: torch.linspace(0, rate, total) in float32, as the official code
        double[] dpr = DropPathSchedule(s.DropPathRate, total);
        int cur = 0;
        _featureInfo = new FeatureInfo[SmtSettings.Stages];
        for (int i = 0; i < SmtSettings.Stages; i++)
        {
            int dim = s.EmbedDims[i];
            _patchEmbeds[i] = i == 0
                ? RegisterModule("patch_embed1", new SmtStem(s.HeadConv, dim))
                : RegisterModule($"patch_embed{i + 1}", new SmtPatchEmbed(s.EmbedDims[i - 1], dim));
            var blocks = new ModuleList<SmtBlock>();
            for (int j = 0; j < s.Depths[i]; j++)
                blocks.Add(new SmtBlock(dim, s.IsSam(i, j), s.CaNumHeads[i], s.SaNumHeads[i], s.MlpRatios[i], s.QkvBias, s.QkScale,
                                        s.UseLayerScale, s.LayerScaleValue, s.DropRate, s.AttnDropRate, dpr[cur + j], s.ExpandRatio));
            _blocks[i] = RegisterModule($"block{i + 1}", blocks);
            _norms[i] = RegisterModule($"norm{i + 1}", new LayerNorm(dim, 1e-6));
            _firstBlock[i] = cur;
            cur += s.Depths[i];
            _featureInfo[i] = new FeatureInfo(dim, 4 << i, $"norm{i + 1}");
        }
        RegisterModule("head", MakeHead(s.NumClasses));
        InitWeights();
    }

    static double[] DropPathSchedule(double rate, int total)
    {
        if (total == 0) return Array.Empty<double>();
        using var lin = Tensor.Linspace(0, rate, total);
        return lin.ToArray<float>().Select(v => (double)v).ToArray();
    }

    Module<Tensor, Tensor> MakeHead(int numClasses)
    {
        if (numClasses == 0) return new Identity();
        var head = new Linear(Settings.EmbedDims[3], numClasses);
        Init.TruncNormal_(head.Weight, std: 0.02);
        Init.Zeros_(head.Bias!);
        return head;
    }

    /// <summary>The official <c>_init_weights</c>: Linear trunc-normal(0.02) with zero bias, LayerNorm 1/0, Conv2d
    /// normal(0, sqrt(2 / fan_out)) with fan_out = kh·kw·out/groups and zero bias; BatchNorm keeps PyTorch's defaults.</summary>
    void InitWeights()
    {
        foreach (var (_, m) in NamedModules())
        {
            switch (m)
            {
                case Linear l:
                    Init.TruncNormal_(l.Weight, std: 0.02);
                    if (l.Bias is not null) Init.Zeros_(l.Bias);
                    break;
                case LayerNorm n:
                    if (n.Weight is not null) Init.Ones_(n.Weight);
                    if (n.Bias is not null) Init.Zeros_(n.Bias);
                    break;
                case Conv2d c:
                    long fanOut = c.Weight.Size(2) * c.Weight.Size(3) * c.Weight.Size(0) / c.Groups;
                    Init.Normal_(c.Weight, 0, Math.Sqrt(2.0 / fanOut));
                    if (c.Bias is not null) Init.Zeros_(c.Bias);
                    break;
            }
        }
    }

    /// <inheritdoc/>
    public override int NumClasses => _numClasses;

    /// <inheritdoc/>
    public override int NumFeatures => Settings.EmbedDims[3];

    /// <inheritdoc/>
    public override double DropPathRate => Settings.DropPathRate;

    /// <inheritdoc/>
    public override IReadOnlyList<FeatureInfo> FeatureInfo => _featureInfo;

    /// <summary>Total number of blocks over the four stages.</summary>
    public int TotalBlocks => Settings.Depths.Sum();

    /// <summary>Smallest side the stem accepts: its k×k stride-2 conv must leave at least 2 pixels for the 2×2
    /// stride-2 conv (3 for the official 3×3 and 7×7 stems).</summary>
    public int MinInputSize
    {
        get
        {
            int k = Settings.HeadConv, pad = k == 7 ? 3 : 1;
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
                $"the stem's {Settings.HeadConv}x{Settings.HeadConv} and 2x2 stride-2 convolutions need that much");
    }

    /// <summary>Runs the four stages; returns the final (B, N, C) tokens after <c>norm4</c> and the last grid size.
    /// With <paramref name="stages"/> each stage output is also added as an NCHW map.</summary>
    (Tensor Tokens, long H, long W) RunStages(Tensor images, List<Tensor>? stages)
    {
        CheckInput(images);
        Tensor x = images.Alias();
        Tensor? tokens = null;
        long h = 0, w = 0;
        for (int i = 0; i < SmtSettings.Stages; i++)
        {
            using (x)
            {
                (tokens, h, w) = i == 0 ? ((SmtStem)_patchEmbeds[0]).Forward(x) : ((SmtPatchEmbed)_patchEmbeds[i]).Forward(x);
            }
            foreach (var blk in _blocks[i])
            {
                var next = blk.Forward(tokens, h, w);
                tokens.Dispose();
                tokens = next;
            }
            var normed = _norms[i].Call(tokens);
            tokens.Dispose();
            tokens = normed;
            bool lastStage = i == SmtSettings.Stages - 1;
            if (!lastStage || stages is not null)
            {
                // the official code folds tokens back with reshape + permute + contiguous before the next conv
                using var view = SmtLayout.ToImage(tokens, Settings.EmbedDims[i], h, w);
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
        using (tokens) return SmtLayout.ToImage(tokens, Settings.EmbedDims[3], h, w);
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
        var stages = new List<Tensor>(SmtSettings.Stages);
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
        ReplaceModule("head", MakeHead(numClasses));
        _numClasses = numClasses;
        Train(Training);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<string> ClassifierKeys { get; } = new[] { "head.weight", "head.bias" };

    /// <summary>0 = stem (<c>patch_embed1</c>), 1..D = the blocks in order, D+1 = <c>norm4</c> and the head.</summary>
    public override int NumDepthGroups => TotalBlocks + 2;

    /// <inheritdoc/>
    public override IReadOnlyList<int> StageDepths => Settings.Depths;

    /// <summary>Stem → 0; <c>block{i}.{j}</c> → its global block index + 1; <c>patch_embed{i}</c> (i ≥ 2) → the
    /// group of the first block of its stage; <c>norm{i}</c> (i ≤ 3) → the group of the stage's last block;
    /// <c>norm4</c> and <c>head</c> → the last group.</summary>
    public override int DepthGroupOf(string parameterName)
    {
        ArgumentNullException.ThrowIfNull(parameterName);
        int last = NumDepthGroups - 1;
        var parts = parameterName.Split('.');
        string top = parts[0];
        if (top == "head") return last;
        for (int i = 0; i < SmtSettings.Stages; i++)
        {
            int first = _firstBlock[i];
            if (top == $"patch_embed{i + 1}") return i == 0 ? 0 : Math.Min(first + 1, Math.Max(1, TotalBlocks));
            if (top == $"norm{i + 1}") return i == SmtSettings.Stages - 1 ? last : first + Settings.Depths[i];
            if (top == $"block{i + 1}" && parts.Length > 1 && int.TryParse(parts[1], out int j) && j >= 0 && j < Settings.Depths[i])
                return first + j + 1;
        }
        throw new ArgumentException($"{Variant}: '{parameterName}' is not a parameter of this SMT model.", nameof(parameterName));
    }

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
        $"{Variant}: embed_dims=[{string.Join(", ", Settings.EmbedDims)}], depths=[{string.Join(", ", Settings.Depths)}], num_classes={NumClasses}";
}

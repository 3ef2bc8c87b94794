using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.TransNeXt;

/// <summary>The official constructor arguments of <c>TransNeXt</c>, validated (see <see cref="TransNeXtFamily"/>).</summary>
public sealed record TransNeXtOptions
{
    /// <summary>Build resolution (square, a multiple of 32): every resolution-dependent table is made for it.</summary>
    public int ImgSize { get; init; } = 224;
    /// <summary>Pre-training resolution: sets the position-bias coordinate normaliser (defaults to <see cref="ImgSize"/>).</summary>
    public int? PretrainSize { get; init; }
    /// <summary>Sliding-window size per stage (odd; ignored for MHSA stages, where it may be null).</summary>
    public int?[] WindowSize { get; init; } = { 3, 3, 3, null };
    /// <summary>Stem stride (only 4 works with the official resolution tables).</summary>
    public int PatchSize { get; init; } = 4;
    /// <summary>Input channels.</summary>
    public int InChans { get; init; } = 3;
    /// <summary>Classes of the head (0: identity head).</summary>
    public int NumClasses { get; init; } = 1000;
    /// <summary>Channels per stage.</summary>
    public int[] EmbedDims { get; init; } = { 64, 128, 256, 512 };
    /// <summary>Heads per stage.</summary>
    public int[] NumHeads { get; init; } = { 1, 2, 4, 8 };
    /// <summary>ConvGLU expansion per stage.</summary>
    public double[] MlpRatios { get; init; } = { 4, 4, 4, 4 };
    /// <summary>Bias in q, kv and qkv.</summary>
    public bool QkvBias { get; init; }
    /// <summary>Dropout after projections.</summary>
    public double DropRate { get; init; }
    /// <summary>Dropout on attention weights.</summary>
    public double AttnDropRate { get; init; }
    /// <summary>Stochastic depth of the last block (linear from 0).</summary>
    public double DropPathRate { get; init; }
    /// <summary>eps of the block and stage LayerNorms (<c>norm_layer</c>); patch-embedding and pooled-path norms keep 1e-5.</summary>
    public double NormEps { get; init; } = 1e-5;
    /// <summary>Blocks per stage.</summary>
    public int[] Depths { get; init; } = { 3, 4, 6, 3 };
    /// <summary>Pooling ratio per stage (1 = MHSA stage).</summary>
    public int[] SrRatios { get; init; } = { 8, 4, 2, 1 };
    /// <summary>Linear mode: a fixed pool grid in every aggregated-attention stage.</summary>
    public int? FixedPoolSize { get; init; }

    /// <summary>The pretraining size actually used.</summary>
    public int EffectivePretrainSize => PretrainSize ?? ImgSize;
}

/// <summary>
/// TransNeXt (Dai Shi, CVPR 2024) as the official native classification code computes it: four stages of
/// overlapping patch embedding, blocks with aggregated attention (or length-scaled MHSA where sr_ratio = 1) and
/// Convolutional GLU, a LayerNorm per stage, token mean and a linear head. The model is built for one square
/// resolution (<see cref="TransNeXtOptions.ImgSize"/>) and only takes inputs of that size.
/// </summary>
public sealed class TransNeXtModel : Backbone
{
    readonly TransNeXtOptions _options;
    readonly OverlapPatchEmbed[] _patchEmbeds = new OverlapPatchEmbed[4];
    readonly ModuleList<TransNeXtBlock>[] _blocks = new ModuleList<TransNeXtBlock>[4];
    readonly LayerNorm[] _norms = new LayerNorm[4];
    readonly Tensor[] _relativePosIndex = new Tensor[4];
    readonly Tensor[] _relativeCoordsTable = new Tensor[4];
    Module<Tensor, Tensor> _head;
    int _numClasses;

    /// <summary>Builds the model; <paramref name="variant"/> names it in messages ("custom" for user sizes).</summary>
    public TransNeXtModel(TransNeXtOptions options, string variant, PretrainedConfig pretrained) : base("transnext", variant, pretrained)
    {
        _options = options;
        int img = options.ImgSize, pre = options.EffectivePretrainSize;
        int total = options.Depths.Sum();
        var dpr = new double[total];
        if (total > 0)
        {
            using var lin = Tensor.Linspace(0, options.DropPathRate, total);
            var values = lin.ToArray<float>();
            for (int i = 0; i < total; i++) dpr[i] = values[i];
        }
        int cur = 0;
        for (int i = 0; i < 4; i++)
        {
            int grid = img >> (i + 2), preGrid = pre >> (i + 2);
            int keys = options.SrRatios[i] == 1 ? grid : options.FixedPoolSize ?? img / ((1 << (i + 2)) * options.SrRatios[i]);
            var (index, coords) = TransNeXtTables.RelativePositionCpb(grid, grid, keys, keys, preGrid, preGrid);
            _relativePosIndex[i] = RegisterBuffer($"relative_pos_index{i + 1}", index, persistent: false);
            _relativeCoordsTable[i] = RegisterBuffer($"relative_coords_table{i + 1}", coords, persistent: false);

            _patchEmbeds[i] = RegisterModule($"patch_embed{i + 1}", i == 0
                ? new OverlapPatchEmbed(options.PatchSize * 2 - 1, options.PatchSize, options.InChans, options.EmbedDims[0])
                : new OverlapPatchEmbed(3, 2, options.EmbedDims[i - 1], options.EmbedDims[i]));
            var list = new ModuleList<TransNeXtBlock>();
            for (int j = 0; j < options.Depths[i]; j++)
                list.Add(new TransNeXtBlock(options.EmbedDims[i], options.NumHeads[i], grid, grid, options.WindowSize[i] ?? 3,
                    options.MlpRatios[i], options.QkvBias, options.DropRate, options.AttnDropRate, dpr[cur + j], options.NormEps,
                    options.SrRatios[i], options.FixedPoolSize));
            _blocks[i] = RegisterModule($"block{i + 1}", list);
            _norms[i] = RegisterModule($"norm{i + 1}", new LayerNorm(options.EmbedDims[i], options.NormEps));
            cur += options.Depths[i];
        }
        _numClasses = options.NumClasses;
        _head = RegisterModule("head", MakeHead(options.NumClasses));
    }

    /// <summary>The validated constructor arguments.</summary>
    public TransNeXtOptions Options => _options;

    Module<Tensor, Tensor> MakeHead(int numClasses) =>
        numClasses > 0 ? TransNeXtInit.Linear(_options.EmbedDims[3], numClasses) : new Identity();

    /// <inheritdoc/>
    public override int NumClasses => _numClasses;

    /// <inheritdoc/>
    public override int NumFeatures => _options.EmbedDims[3];

    /// <inheritdoc/>
    public override double DropPathRate => _options.DropPathRate;

    /// <inheritdoc/>
    public override int InputChannels => _options.InChans;

    /// <inheritdoc/>
    public override IReadOnlyList<FeatureInfo> FeatureInfo =>
        Enumerable.Range(0, 4).Select(i => new FeatureInfo(_options.EmbedDims[i], 4 << i, $"norm{i + 1}")).ToList();

    /// <inheritdoc/>
    public override IReadOnlyList<string> ClassifierKeys { get; } = new[] { "head.weight", "head.bias" };

    /// <inheritdoc/>
    public override int NumDepthGroups => _options.Depths.Sum() + 2;

    /// <inheritdoc/>
    public override IReadOnlyList<int> StageDepths => _options.Depths;

    /// <inheritdoc/>
    /// <remarks>The official recipe also exempts names containing <c>query_embedding</c>, <c>relative_pos_bias_local</c>,
    /// <c>cpb</c> or <c>temperature</c> (the 3-D <c>learnable_tokens</c>/<c>learnable_bias</c> are decayed).</remarks>
    public override bool ExemptFromWeightDecay(string parameterName, Parameter parameter) =>
        base.ExemptFromWeightDecay(parameterName, parameter) || parameterName.Contains("query_embedding", StringComparison.Ordinal)
        || parameterName.Contains("relative_pos_bias_local", StringComparison.Ordinal) || parameterName.Contains("cpb", StringComparison.Ordinal)
        || parameterName.Contains("temperature", StringComparison.Ordinal);

    /// <inheritdoc/>
    /// <remarks>0: patch_embed1; block k (over the whole network, in order): k + 1; patch_embed{s} of a later stage
    /// goes with the first block of its stage and norm{s} of stages 1–3 with the last block of its stage;
    /// norm4 and the head: the last group.</remarks>
    public override int DepthGroupOf(string parameterName)
    {
        ArgumentNullException.ThrowIfNull(parameterName);
        int last = NumDepthGroups - 1;
        if (parameterName.StartsWith("head.", StringComparison.Ordinal) || parameterName.StartsWith("norm4.", StringComparison.Ordinal)) return last;
        int before = 0;
        for (int s = 1; s <= 4; s++)
        {
            int depth = _options.Depths[s - 1];
            if (parameterName.StartsWith($"patch_embed{s}.", StringComparison.Ordinal)) return s == 1 ? 0 : Math.Min(before + 1, last - 1);
            if (parameterName.StartsWith($"norm{s}.", StringComparison.Ordinal)) return Math.Max(before + depth, s == 1 ? 0 : 1);
            string prefix = $"block{s}.";
            if (parameterName.StartsWith(prefix, StringComparison.Ordinal))
            {
                var rest = parameterName[prefix.Length..];
                int dot = rest.IndexOf('.');
                if (dot > 0 && int.TryParse(rest[..dot], out int j) && j >= 0 && j < depth) return before + j + 1;
            }
            before += depth;
        }
        throw new ArgumentException($"{Variant}: '{parameterName}' is not a parameter of this model.", nameof(parameterName));
    }

    /// <inheritdoc/>
    public override void CheckInputSize(long height, long width)
    {
        int img = _options.ImgSize;
        if (height != img || width != img)
            throw new InputSizeException(Variant, height, width,
                $"this model was built for {img}x{img} (img_size {img}) and takes only that size, because its position-bias, " +
                $"padding-mask and length-scale tables are made for one resolution; build it with img_size set to the input size " +
                $"(a multiple of 32, keeping pretrain_size {_options.EffectivePretrainSize}) to run at another resolution");
    }

    /// <summary>Runs the four stages; returns the normalised token maps of each stage (NCHW).</summary>
    List<Tensor> RunStages(Tensor images, int upTo)
    {
        CheckInput(images);
        var maps = new List<Tensor>();
        using var scope = TensorScope.Begin();
        var x = images;
        for (int i = 0; i < upTo; i++)
        {
            var (tokens, h, w) = _patchEmbeds[i].Forward(x);
            foreach (var blk in _blocks[i])
                tokens = blk.Forward(tokens, h, w, _relativePosIndex[i], _relativeCoordsTable[i]);
            tokens = _norms[i].Call(tokens);
            x = tokens.Reshape(-1, h, w, tokens.Size(2)).Permute(0, 3, 1, 2).Contiguous();
            maps.Add(x);
        }
        foreach (var m in maps) m.MoveToOuterScope();
        return maps;
    }

    /// <inheritdoc/>
    /// <remarks>The stage-4 tokens after <c>norm4</c>, as an NCHW map (B, C4, img/32, img/32).</remarks>
    public override Tensor ForwardFeatures(Tensor images)
    {
        var maps = RunStages(images, 4);
        for (int i = 0; i < 3; i++) maps[i].Dispose();
        return maps[3];
    }

    /// <inheritdoc/>
    /// <remarks>Mean over the tokens (the official <c>x.mean(dim=1)</c>), then the head.</remarks>
    public override Tensor ForwardHead(Tensor features, bool preLogits = false)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Dim != 4 || features.Size(1) != NumFeatures)
            throw new ArgumentException($"{Variant}: ForwardHead expects features shaped [N, {NumFeatures}, H, W], got [{string.Join(", ", features.Shape)}].", nameof(features));
        using var scope = TensorScope.Begin();
        var pooled = features.Flatten(2).Transpose(1, 2).Mean(1);
        return (preLogits ? pooled : _head.Call(pooled)).MoveToOuterScope();
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Tensor> ForwardStages(Tensor images) => RunStages(images, 4);

    /// <inheritdoc/>
    public override void ResetClassifier(int numClasses)
    {
        if (numClasses < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The class count must be 0 (no head) or more.");
        var head = MakeHead(numClasses);
        var device = _norms[3].Weight!.Device;
        if (head is Linear l && !device.Equals(l.Weight.Device)) head.To(device);
        _head = ReplaceModule("head", head);
        _head.Train(Training);
        _numClasses = numClasses;
    }

    /// <inheritdoc/>
    /// <remarks>Strips <c>module.</c> and <c>_orig_mod.</c> prefixes (DataParallel, torch.compile re-saves).</remarks>
    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptCheckpoint(IEnumerable<KeyValuePair<string, Tensor>> weights) =>
        weights.Select(kv =>
        {
            var k = kv.Key;
            foreach (var prefix in new[] { "module.", "_orig_mod." })
                if (k.StartsWith(prefix, StringComparison.Ordinal)) k = k[prefix.Length..];
            return new KeyValuePair<string, Tensor>(k, kv.Value);
        });
}

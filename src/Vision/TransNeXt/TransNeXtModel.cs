using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.TransNeXt;

/// <summary>The family's config record: the official constructor arguments of <c>TransNeXt</c>, validated (see
/// <see cref="TransNeXtFamily"/>).</summary>
internal sealed record TransNeXtConfig
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
/// resolution (<see cref="TransNeXtConfig.ImgSize"/>) and only takes inputs of that size.
/// </summary>
internal sealed class TransNeXtModel : Backbone
{
    readonly TransNeXtConfig _config;
    readonly OverlapPatchEmbed[] _patchEmbeds = new OverlapPatchEmbed[4];
    readonly ModuleList<TransNeXtBlock>[] _blocks = new ModuleList<TransNeXtBlock>[4];
    readonly LayerNorm[] _norms = new LayerNorm[4];
    readonly Tensor[] _relativePosIndex = new Tensor[4];
    readonly Tensor[] _relativeCoordsTable = new Tensor[4];
    Module<Tensor, Tensor> _head;
    int _numClasses;

    /// <summary>Builds the model; <paramref name="variant"/> names it in messages ("custom" for user sizes).</summary>
    internal TransNeXtModel(string variant, PretrainedConfig pretrained, TransNeXtConfig config) : base("transnext", variant, pretrained)
    {
        _config = config;
        int img = config.ImgSize, pre = config.EffectivePretrainSize;
        var dpr = DropPathSchedule.TorchLinspace(config.DropPathRate, config.Depths.Sum());
        int cur = 0;
        for (int i = 0; i < 4; i++)
        {
            int grid = img >> (i + 2), preGrid = pre >> (i + 2);
            int keys = config.SrRatios[i] == 1 ? grid : config.FixedPoolSize ?? img / ((1 << (i + 2)) * config.SrRatios[i]);
            var (index, coords) = TransNeXtTables.RelativePositionCpb(grid, grid, keys, keys, preGrid, preGrid);
            _relativePosIndex[i] = RegisterBuffer($"relative_pos_index{i + 1}", index, persistent: false);
            _relativeCoordsTable[i] = RegisterBuffer($"relative_coords_table{i + 1}", coords, persistent: false);

            _patchEmbeds[i] = RegisterModule($"patch_embed{i + 1}", i == 0
                ? new OverlapPatchEmbed(config.InChans, config.EmbedDims[0], config.PatchSize * 2 - 1, config.PatchSize, WeightInit.Timm)
                : new OverlapPatchEmbed(config.EmbedDims[i - 1], config.EmbedDims[i], 3, 2, WeightInit.Timm));
            var list = new ModuleList<TransNeXtBlock>();
            for (int j = 0; j < config.Depths[i]; j++)
                list.Add(new TransNeXtBlock(config.EmbedDims[i], config.NumHeads[i], grid, grid, config.WindowSize[i] ?? 3,
                    config.MlpRatios[i], config.QkvBias, config.DropRate, config.AttnDropRate, dpr[cur + j], config.NormEps,
                    config.SrRatios[i], config.FixedPoolSize));
            _blocks[i] = RegisterModule($"block{i + 1}", list);
            _norms[i] = RegisterModule($"norm{i + 1}", new LayerNorm(config.EmbedDims[i], config.NormEps));
            cur += config.Depths[i];
        }
        _numClasses = config.NumClasses;
        _head = RegisterModule("head", MakeHead(config.NumClasses));
    }

    /// <summary>The validated constructor arguments.</summary>
    internal TransNeXtConfig Config => _config;

    Module<Tensor, Tensor> MakeHead(int numClasses) => ClassifierHead.Linear(_config.EmbedDims[3], numClasses, WeightInit.Timm);

    /// <inheritdoc/>
    public override int NumClasses => _numClasses;

    /// <inheritdoc/>
    public override int NumFeatures => _config.EmbedDims[3];

    /// <inheritdoc/>
    public override double DropPathRate => _config.DropPathRate;

    /// <inheritdoc/>
    public override int InputChannels => _config.InChans;

    /// <inheritdoc/>
    public override IReadOnlyList<FeatureInfo> FeatureInfo =>
        Enumerable.Range(0, 4).Select(i => new FeatureInfo(_config.EmbedDims[i], 4 << i, $"norm{i + 1}")).ToList();

    /// <inheritdoc/>
    public override IReadOnlyList<int> StageDepths => _config.Depths;

    /// <inheritdoc/>
    /// <remarks>The official recipe also exempts names containing <c>query_embedding</c>, <c>relative_pos_bias_local</c>,
    /// <c>cpb</c> or <c>temperature</c> (the 3-D <c>learnable_tokens</c>/<c>learnable_bias</c> are decayed).</remarks>
    public override bool ExemptFromWeightDecay(string parameterName, Parameter parameter) =>
        base.ExemptFromWeightDecay(parameterName, parameter) || parameterName.Contains("query_embedding", StringComparison.Ordinal)
        || parameterName.Contains("relative_pos_bias_local", StringComparison.Ordinal) || parameterName.Contains("cpb", StringComparison.Ordinal)
        || parameterName.Contains("temperature", StringComparison.Ordinal);

    /// <inheritdoc/>
    internal override DepthGroupTable DepthGroups => TransNeXtFamily.DepthGroups;

    /// <inheritdoc/>
    public override void CheckInputSize(long height, long width)
    {
        int img = _config.ImgSize;
        if (height != img || width != img)
            throw new InputSizeException(Variant, height, width,
                $"this model was built for {img}x{img} (img_size {img}) and takes only that size, because its position-bias, " +
                $"padding-mask and length-scale tables are made for one resolution; it can be built for another square size that is " +
                $"a multiple of 32 (--image-size, ImageClassificationOptions.ImageSize, or img_size with pretrain_size {_config.EffectivePretrainSize})");
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
        _head = ReplaceHead("head", MakeHead(numClasses));
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

using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision.Layers;

namespace MLNetExt.Vision.MixFormer;

/// <summary>The family's config record: the official constructor arguments of MixFormer, validated (see
/// <see cref="MixFormerFamily"/>).</summary>
internal sealed record MixFormerConfig(
    int PatchSize, int InChans, int NumClasses, int[] EmbedDims, int[] Depths, int[] NumHeads, int WindowSize,
    int DwconvKernelSize, double MlpRatio, bool QkvBias, double? QkScale, double DropRate, double AttnDropRate,
    double DropPathRate);

/// <summary>
/// MixFormer (Chen et al., CVPR 2022), exactly as the official PaddlePaddle code computes it: a conv stem, four stages
/// of Mixing Blocks (7×7 window attention on half the channels in parallel with a 3×3 depth-wise conv branch, joined by
/// a channel gate on V and a spatial gate on the conv branch) with BatchNorm + 2×2-conv down-samplers, then LayerNorm,
/// a per-token 1280-wide projection with GELU, average pooling and the classifier. State_dict names follow the Paddle
/// module tree with PyTorch conventions; PaddlePaddle <c>.pdparams</c> weights load through <see cref="AdaptCheckpoint"/>.
/// </summary>
internal sealed class MixFormerModel : Backbone
{
    /// <summary>Width of the per-token projection before pooling (fixed in the official code).</summary>
    public const int LastProjWidth = 1280;

    readonly MixFormerConfig _o;
    readonly ConvEmbed _patchEmbed;
    readonly ModuleList<MixFormerStage> _layers;
    readonly LayerNorm _norm;
    readonly Linear _lastProj;
    Module<Tensor, Tensor> _head;
    int _numClasses;

    internal MixFormerModel(string variant, PretrainedConfig pretrained, MixFormerConfig o)
        : base("mixformer", variant, pretrained)
    {
        _o = o;
        int n = o.Depths.Length, total = o.Depths.Sum();
        // np.linspace(0, drop_path_rate, sum(depths))
        var dpr = DropPathSchedule.Linear(o.DropPathRate, total);
        _patchEmbed = RegisterModule("patch_embed", new ConvEmbed(o.PatchSize, o.InChans, o.EmbedDims[0]));
        _layers = RegisterModule("layers", new ModuleList<MixFormerStage>());
        var blockStart = new int[n + 1];
        for (int i = 0; i < n; i++)
        {
            blockStart[i + 1] = blockStart[i] + o.Depths[i];
            _layers.Add(new MixFormerStage(o.EmbedDims[i], o.Depths[i], o.NumHeads[i], o.WindowSize, o.DwconvKernelSize,
                o.MlpRatio, o.QkvBias, o.QkScale, o.DropRate, o.AttnDropRate, dpr[blockStart[i]..blockStart[i + 1]],
                i < n - 1 ? o.EmbedDims[i + 1] : 0));
        }
        _norm = RegisterModule("norm", new LayerNorm(o.EmbedDims[^1]));
        _lastProj = RegisterModule("last_proj", WeightInit.Paddle.NewLinear(o.EmbedDims[^1], LastProjWidth));
        _numClasses = o.NumClasses;
        _head = RegisterModule("head", NewHead(o.NumClasses));
    }

    static Module<Tensor, Tensor> NewHead(int numClasses) => ClassifierHead.Linear(LastProjWidth, numClasses, WeightInit.Paddle);

    /// <summary>The constructor arguments this model was built from.</summary>
    internal MixFormerConfig Config => _o;

    /// <inheritdoc/>
    public override int NumClasses => _numClasses;

    /// <inheritdoc/>
    public override int NumFeatures => LastProjWidth;

    /// <inheritdoc/>
    public override double DropPathRate => _o.DropPathRate;

    /// <inheritdoc/>
    public override int InputChannels => _o.InChans;

    /// <summary>Reduction of the stem: (patch_size / 2)², 4 for every official variant.</summary>
    int StemReduction => (_o.PatchSize / 2) * (_o.PatchSize / 2);

    /// <inheritdoc/>
    public override IReadOnlyList<FeatureInfo> FeatureInfo =>
        Enumerable.Range(0, _o.Depths.Length).Select(i => new FeatureInfo(_o.EmbedDims[i], StemReduction << i, $"layers.{i}")).ToList();

    /// <inheritdoc/>
    /// <remarks>The final LayerNorm and the 1280-wide projection are part of the classification head: a backbone-only
    /// checkpoint (detection, segmentation) lacks them.</remarks>
    public override IReadOnlyList<string> HeadKeys { get; } = new[] { "norm.weight", "norm.bias", "last_proj.weight", "last_proj.bias", "head.weight", "head.bias" };

    /// <inheritdoc/>
    public override IReadOnlyList<int> StageDepths => _o.Depths;

    /// <inheritdoc/>
    /// <remarks>The official recipe also exempts names containing <c>absolute_pos_embed</c>,
    /// <c>relative_position_bias_table</c> or <c>norm</c>.</remarks>
    public override bool ExemptFromWeightDecay(string parameterName, Parameter parameter) =>
        base.ExemptFromWeightDecay(parameterName, parameter) || parameterName.Contains("absolute_pos_embed", StringComparison.Ordinal)
        || parameterName.Contains("relative_position_bias_table", StringComparison.Ordinal) || parameterName.Contains("norm", StringComparison.Ordinal);

    /// <inheritdoc/>
    internal override DepthGroupTable DepthGroups => MixFormerFamily.DepthGroups;

    /// <summary>Grid after the stem for an input of <paramref name="height"/>×<paramref name="width"/>.</summary>
    (long H, long W) StemGrid(long height, long width) =>
        (ConvEmbed.OutputSide(height, _o.PatchSize), ConvEmbed.OutputSide(width, _o.PatchSize));

    /// <inheritdoc/>
    /// <remarks>Each down-sampler needs an even grid, so the stem grid (ceil(H/4) × ceil(W/4) for patch size 4) must
    /// be a positive multiple of 2^(stages−1): H and W in (32k−4, 32k] for the official four stages.</remarks>
    public override void CheckInputSize(long height, long width)
    {
        int merges = _o.Depths.Length - 1;
        long multiple = 1L << merges;
        var (gh, gw) = height >= 1 && width >= 1 ? StemGrid(height, width) : (0, 0);
        if (gh < 1 || gw < 1 || gh % multiple != 0 || gw % multiple != 0)
        {
            string allowed = _o.PatchSize == 4
                ? $"ceil(H/4) and ceil(W/4) must be positive multiples of {multiple}, i.e. each side in ({4 * multiple}k-4, {4 * multiple}k] for k >= 1 " +
                  $"(e.g. 224, 256, 384); the input gives a {gh}x{gw} stem grid"
                : $"the stem grid (patch size {_o.PatchSize}) must be a positive multiple of {multiple} on both sides; the input gives {gh}x{gw}";
            throw new InputSizeException(Variant, height, width, allowed);
        }
    }

    /// <summary>Tokens after the stem, with the grid size.</summary>
    Tensor Embed(Tensor images, out long h, out long w)
    {
        CheckInput(images);
        using var e = _patchEmbed.Forward(images);
        h = e.Size(2);
        w = e.Size(3);
        using var t = TokenLayout.ToTokens(e);
        return F.Dropout(t, _o.DropRate, Training);   // pos_drop
    }

    /// <summary>Runs every stage; <paramref name="keepStages"/> collects each stage output (before its down-sampler) as NCHW.</summary>
    Tensor RunStages(Tensor images, List<Tensor>? keepStages, out long h, out long w)
    {
        var x = Embed(images, out h, out w);
        try
        {
            foreach (var stage in _layers)
            {
                var y = stage.ForwardBlocks(x, h, w);
                x.Dispose();
                x = y;
                keepStages?.Add(TokenLayout.ToImage(x, h, w));
                if (stage.Downsample is { } ds)
                {
                    var down = ds.Forward(x, h, w);
                    x.Dispose();
                    x = down;
                    h = (h + 1) / 2;
                    w = (w + 1) / 2;
                }
            }
            return x;
        }
        catch
        {
            x.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    /// <remarks>The last stage's tokens as an NCHW map (B, 8C, H/32, W/32), before the final LayerNorm.</remarks>
    public override Tensor ForwardFeatures(Tensor images)
    {
        using var x = RunStages(images, null, out long h, out long w);
        return TokenLayout.ToImage(x, h, w);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Tensor> ForwardStages(Tensor images)
    {
        var stages = new List<Tensor>();
        try
        {
            using var last = RunStages(images, stages, out _, out _);
            return stages;
        }
        catch
        {
            foreach (var s in stages) s.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    /// <remarks>LayerNorm per token → last_proj (8C → 1280) → GELU → mean over tokens (pre-logits) → head.</remarks>
    public override Tensor ForwardHead(Tensor features, bool preLogits = false)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Dim != 4 || features.Size(1) != _o.EmbedDims[^1])
            throw new ArgumentException($"{Variant}: ForwardHead expects the NCHW map of ForwardFeatures with {_o.EmbedDims[^1]} channels, " +
                $"got shape [{string.Join(", ", features.Shape)}].", nameof(features));
        using var t = TokenLayout.ToTokens(features);    // (B, L, 8C)
        using var n = _norm.Call(t);
        using var p = _lastProj.Call(n);
        using var a = F.Gelu(p);
        var pooled = a.Mean(1);                            // AdaptiveAvgPool1D(1) over tokens, flattened
        if (preLogits) return pooled;
        using (pooled) return _head.Call(pooled);
    }

    /// <inheritdoc/>
    public override void ResetClassifier(int numClasses)
    {
        if (numClasses < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "The class count must be 0 (no head) or more.");
        var head = NewHead(numClasses);
        _head = ReplaceHead("head", head);
        _numClasses = numClasses;
    }

    // ---- checkpoints ----

    /// <summary>Linear layers of this model by module path (weights stored [in, out] by Paddle).</summary>
    HashSet<string> LinearModules()
    {
        var set = NamedModules().Where(m => m.Module is Linear).Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        set.Add("head");   // also when this model's head is an identity (class count 0)
        return set;
    }

    /// <inheritdoc/>
    /// <remarks>
    /// PyTorch-layout weights (names of this model) pass unchanged. PaddlePaddle weights (.pdparams, recognised by their
    /// BatchNorm statistics <c>_mean</c>/<c>_variance</c>) are converted by name: <c>X._mean</c> → <c>X.running_mean</c>,
    /// <c>X._variance</c> → <c>X.running_var</c>, the weight of every module that is a Linear in this model transposed
    /// [in, out] → [out, in] (decided by module name, never by shape: square weights would otherwise load
    /// untransposed), <c>num_batches_tracked</c> (absent in Paddle) created as 0, and <c>relative_position_index</c>
    /// recomputed when absent. A stored <c>relative_position_index</c> must equal the formula.
    /// </remarks>
    protected override IEnumerable<KeyValuePair<string, Tensor>> AdaptCheckpoint(IEnumerable<KeyValuePair<string, Tensor>> weights)
    {
        var entries = base.AdaptCheckpoint(weights).ToList();
        var paddleKeys = entries.Where(kv => kv.Key.EndsWith("._mean", StringComparison.Ordinal) || kv.Key.EndsWith("._variance", StringComparison.Ordinal)).Select(kv => kv.Key).ToList();
        var torchKeys = entries.Where(kv => kv.Key.EndsWith(".running_mean", StringComparison.Ordinal) || kv.Key.EndsWith(".running_var", StringComparison.Ordinal)
                                            || kv.Key.EndsWith(".num_batches_tracked", StringComparison.Ordinal)).Select(kv => kv.Key).ToList();
        if (paddleKeys.Count > 0 && torchKeys.Count > 0)
            throw new ArgumentException($"{Variant}: the weights mix PaddlePaddle BatchNorm names ({string.Join(", ", paddleKeys.Take(3))}) " +
                $"with PyTorch ones ({string.Join(", ", torchKeys.Take(3))}); the layout of the Linear weights cannot be decided.");
        bool paddle = paddleKeys.Count > 0;

        var result = new List<KeyValuePair<string, Tensor>>(entries.Count);
        if (!paddle)
        {
            foreach (var kv in entries)
            {
                if (kv.Key.EndsWith(".relative_position_index", StringComparison.Ordinal)) CheckIndex(kv.Key, kv.Value);
                result.Add(kv);
            }
            return result;
        }

        var linear = LinearModules();
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            int dot = key.LastIndexOf('.');
            string module = dot < 0 ? "" : key[..dot], leaf = key[(dot + 1)..];
            string name = key;
            var tensor = value;
            if (leaf == "_mean") name = module + ".running_mean";
            else if (leaf == "_variance") name = module + ".running_var";
            else if (leaf == "weight" && linear.Contains(module))
            {
                if (value.Dim != 2)
                    throw new ArgumentException($"{Variant}: '{key}' is the weight of a Linear layer and should be 2-D [in, out] in a Paddle checkpoint, " +
                        $"found shape [{string.Join(", ", value.Shape)}].");
                using var tr = value.Transpose(0, 1);
                tensor = tr.Contiguous();
            }
            else if (leaf == "relative_position_index") CheckIndex(key, value);
            present.Add(name);
            result.Add(new(name, tensor));
        }
        // What Paddle does not store: the BatchNorm batch counters and (optionally) the index buffers.
        foreach (var (name, t) in StateDict())
        {
            if (present.Contains(name)) continue;
            if (name.EndsWith(".num_batches_tracked", StringComparison.Ordinal))
                result.Add(new(name, Tensor.Zeros(Array.Empty<long>(), DType.Int64)));
            else if (name.EndsWith(".relative_position_index", StringComparison.Ordinal))
                result.Add(new(name, MixFormerWindows.RelativePositionIndex(_o.WindowSize)));
        }
        return result;
    }

    void CheckIndex(string key, Tensor stored)
    {
        using var expected = MixFormerWindows.RelativePositionIndex(_o.WindowSize);
        if (!stored.Shape.SequenceEqual(expected.Shape)) return;   // the shape mismatch is reported by the loader
        using var s64 = stored.To(DType.Int64);
        using var eq = s64.Eq(expected);
        using var all = eq.All();
        if (!all.ToBoolean())
            throw new ArgumentException($"{Variant}: '{key}' differs from the relative position index of a {_o.WindowSize}x{_o.WindowSize} window " +
                "((ri-rj+M-1)*(2M-1) + (ci-cj+M-1)); the checkpoint was not made by this model.");
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"variant={Variant}, embed_dim=[{string.Join(", ", _o.EmbedDims)}], depths=[{string.Join(", ", _o.Depths)}], num_heads=[{string.Join(", ", _o.NumHeads)}], num_classes={_numClasses}";
}

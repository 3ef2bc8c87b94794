using System.Text.Json.Nodes;

namespace MLNetExt.Vision.TransNeXt;

/// <summary>
/// TransNeXt variants (official factories of DaiShiResearch/TransNeXt, classification/transnext.py) and the builder
/// from the official <c>TransNeXt(...)</c> keyword arguments. <c>norm_layer</c> is written as
/// <c>{"type": "LayerNorm", "eps": 1e-6}</c> (the factories' <c>partial(nn.LayerNorm, eps=1e-6)</c>) or
/// <c>"LayerNorm"</c> (the class default, eps 1e-5).
/// </summary>
internal sealed class TransNeXtFamily : BackboneFamily
{
    const string Common = "\"patch_size\": 4, \"mlp_ratios\": [8, 8, 4, 4], \"qkv_bias\": true, \"norm_layer\": {\"type\": \"LayerNorm\", \"eps\": 1e-6}";

    static BackboneVariant Row(string name, string kwargs, int img, long count, double top1, double gmacs) =>
        new(name, "transnext", kwargs, Pretrained(img, 1000), count, top1, gmacs);

    // Paper numbers: Table 1 of the TransNeXt paper (ImageNet-1K at 224, "FLOPs" column); micro_AAAA from Table 9
    // (appendix D.6, trained and evaluated at 256: 3.3 G, 82.6 %).

    static readonly BackboneVariant[] s_variants =
    {
        Row("transnext_micro", "{\"window_size\": [3, 3, 3, null], " + Common + ", \"embed_dims\": [48, 96, 192, 384], \"num_heads\": [2, 4, 8, 16], \"depths\": [2, 2, 15, 2], \"sr_ratios\": [8, 4, 2, 1]}", 224, 12_809_304, 82.5, 2.7),
        Row("transnext_tiny", "{\"window_size\": [3, 3, 3, null], " + Common + ", \"embed_dims\": [72, 144, 288, 576], \"num_heads\": [3, 6, 12, 24], \"depths\": [2, 2, 15, 2], \"sr_ratios\": [8, 4, 2, 1]}", 224, 28_258_960, 84.0, 5.7),
        Row("transnext_small", "{\"window_size\": [3, 3, 3, null], " + Common + ", \"embed_dims\": [72, 144, 288, 576], \"num_heads\": [3, 6, 12, 24], \"depths\": [5, 5, 22, 5], \"sr_ratios\": [8, 4, 2, 1]}", 224, 49_741_564, 84.7, 10.3),
        Row("transnext_base", "{\"window_size\": [3, 3, 3, null], " + Common + ", \"embed_dims\": [96, 192, 384, 768], \"num_heads\": [4, 8, 16, 32], \"depths\": [5, 5, 23, 5], \"sr_ratios\": [8, 4, 2, 1]}", 224, 89_721_496, 84.8, 18.4),
        // transnext_micro_AAAA: trained and evaluated at 256 (configs/transnext_micro_AAAA_256.py)
        Row("transnext_micro_aaaa", "{\"img_size\": 256, \"window_size\": [3, 3, 3, 3], " + Common + ", \"embed_dims\": [48, 96, 192, 384], \"num_heads\": [2, 4, 8, 16], \"depths\": [2, 2, 15, 2], \"sr_ratios\": [16, 8, 4, 2]}", 256, 13_114_008, 82.6, 3.3),
    };

    // Test row (not official): aggregated attention in stages 1-3 and MHSA in stage 4 at the widths of the parity
    // fixture (tests/fixtures/transnext/parity_a.json), built for 64x64 inputs.
    static readonly BackboneVariant s_test = new("transnext_test", "transnext",
        """{"img_size": 64, "window_size": [3, 3, 3, null], "patch_size": 4, "embed_dims": [16, 24, 32, 48], "num_heads": [2, 2, 4, 4], "mlp_ratios": [4, 4, 3, 2], "qkv_bias": true, "depths": [1, 1, 2, 1], "sr_ratios": [8, 4, 2, 1], "norm_layer": {"type": "LayerNorm", "eps": 1e-6}, "num_classes": 10}""",
        Pretrained(64, 10), 101_842);

    /// <summary>Depth groups: <c>patch_embed1</c> → 0; block k over the whole network (in order) → k + 1;
    /// <c>patch_embed{s}</c> of a later stage with the first block of its stage; <c>norm{s}</c> of stages 1–3 with the
    /// last block of its stage (stages 2–3: at least group 1); <c>norm4</c> and the head → the last group.</summary>
    internal static readonly DepthGroupTable DepthGroups = new(
        new(@"(head|norm4)\.", DepthGroupKind.Head),
        new(@"patch_embed1\.", DepthGroupKind.Stem),
        new(@"patch_embed(?<stage>[234])\.", DepthGroupKind.StageStart, StageOffset: -1),
        new(@"norm(?<stage>1)\.", DepthGroupKind.StageEnd, StageOffset: -1),
        new(@"norm(?<stage>[23])\.", DepthGroupKind.StageEnd, StageOffset: -1, AtLeast: 1),
        new(@"block(?<stage>[1234])\.(?<block>\d+)\.", DepthGroupKind.Block, StageOffset: -1));

    /// <inheritdoc/>
    public override string Name => "transnext";

    /// <inheritdoc/>
    public override IReadOnlyList<BackboneVariant> Variants => s_variants;

    /// <inheritdoc/>
    internal override BackboneVariant TestVariant => s_test;

    /// <summary>timm's <c>_cfg()</c> as the factories set it (bicubic, crop 0.875, ImageNet mean/std) at the build size;
    /// from 384 up the official evaluation resizes directly (crop 1.0).</summary>
    static PretrainedConfig Pretrained(int img, int classes, int channels = 3) =>
        new(channels, img, img, PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd, img >= 384 ? 1.0 : 0.875, "bicubic",
            classes, "patch_embed1.proj", "head");

    /// <summary>Reads the config record from the official keyword arguments, validated.</summary>
    internal static TransNeXtConfig ReadConfig(BackboneConfig kw)
    {
        ArgumentNullException.ThrowIfNull(kw);
        string ctx = kw.Context;
        kw.DefaultOnly("pretrained", n => n is JsonValue v && v.TryGetValue(out bool b) && !b,
            "false; load published weights with Backbones.Load");
        var o = new TransNeXtConfig
        {
            ImgSize = kw.Int("img_size", 224),
            PretrainSize = kw.Raw("pretrain_size") is null ? null : kw.Int("pretrain_size", 224),
            WindowSize = ReadWindowSizes(kw),
            PatchSize = kw.Int("patch_size", 16),
            InChans = kw.Int("in_chans", 3),
            NumClasses = kw.Int("num_classes", 1000),
            EmbedDims = kw.Ints("embed_dims", new[] { 64, 128, 256, 512 }, 4),
            NumHeads = kw.Ints("num_heads", new[] { 1, 2, 4, 8 }, 4),
            MlpRatios = kw.Doubles("mlp_ratios", new double[] { 4, 4, 4, 4 }, 4),
            QkvBias = kw.Bool("qkv_bias", false),
            DropRate = kw.Double("drop_rate", 0),
            AttnDropRate = kw.Double("attn_drop_rate", 0),
            DropPathRate = kw.Double("drop_path_rate", 0),
            NormEps = ReadNormEps(kw),
            Depths = kw.Ints("depths", new[] { 3, 4, 6, 3 }, 4),
            SrRatios = kw.Ints("sr_ratios", new[] { 8, 4, 2, 1 }, 4),
            FixedPoolSize = kw.Raw("fixed_pool_size") is null ? null : kw.Int("fixed_pool_size", 0),
        };
        int stages = kw.Int("num_stages", 4);
        kw.Finish();

        Exception Bad(string key, string expected, string found) => new BackboneConfigException($"{ctx}: '{key}' must be {expected}, found {found}.");
        if (stages != 4) throw Bad("num_stages", "4 (the classification model always has four stages)", stages.ToString());
        if (o.PatchSize != 4)
            throw Bad("patch_size", "4 (the official resolution tables assume a stride-4 stem; the class default 16 does not run)", o.PatchSize.ToString());
        if (o.ImgSize < 32 || o.ImgSize % 32 != 0)
            throw Bad("img_size", "a positive multiple of 32 (the stage grids are img_size/4, /8, /16, /32)", o.ImgSize.ToString());
        int pre = o.EffectivePretrainSize;
        if (pre < 64 || pre % 32 != 0)
            throw Bad("pretrain_size", "a multiple of 32 of at least 64 (it normalises position offsets by pretrain_size/2^(s+1) - 1)", pre.ToString());
        if (o.InChans < 1) throw Bad("in_chans", "at least 1", o.InChans.ToString());
        if (o.NumClasses < 0) throw Bad("num_classes", "0 (no head) or more", o.NumClasses.ToString());
        foreach (var (key, p) in new[] { ("drop_rate", o.DropRate), ("attn_drop_rate", o.AttnDropRate), ("drop_path_rate", o.DropPathRate) })
            if (p < 0 || p >= 1) throw Bad(key, "in [0, 1)", p.ToString(System.Globalization.CultureInfo.InvariantCulture));
        for (int i = 0; i < 4; i++)
        {
            int dim = o.EmbedDims[i], heads = o.NumHeads[i], grid = o.ImgSize >> (i + 2);
            if (dim < 1 || heads < 1 || dim % heads != 0)
                throw Bad("embed_dims/num_heads", $"positive with embed_dims[{i}] divisible by num_heads[{i}]", $"{dim} and {heads}");
            if (o.Depths[i] < 0) throw Bad("depths", "non-negative", $"[{string.Join(", ", o.Depths)}]");
            if (o.MlpRatios[i] <= 0 || (int)(2.0 * (int)(dim * o.MlpRatios[i]) / 3.0) < 1)
                throw Bad("mlp_ratios", $"large enough for a hidden width of at least 1 at stage {i + 1}", o.MlpRatios[i].ToString(System.Globalization.CultureInfo.InvariantCulture));
            int sr = o.SrRatios[i];
            if (sr < 1) throw Bad("sr_ratios", "positive (1 = MHSA stage)", $"[{string.Join(", ", o.SrRatios)}]");
            if (sr == 1) continue;
            if (o.WindowSize[i] is not int k || k < 1 || k % 2 == 0)
                throw Bad("window_size", $"an odd positive size at stage {i + 1} (aggregated attention, sr_ratio {sr})", o.WindowSize[i]?.ToString() ?? "null");
            if (o.FixedPoolSize is int fp)
            {
                if (fp < 1 || fp >= grid)
                    throw Bad("fixed_pool_size", $"at least 1 and smaller than the stage-{i + 1} grid {grid} at img_size {o.ImgSize}", fp.ToString());
            }
            else if (grid / sr < 1)
                throw Bad("sr_ratios", $"at most the stage-{i + 1} grid {grid} at img_size {o.ImgSize} (pool grid = grid // sr_ratio)", $"[{string.Join(", ", o.SrRatios)}]");
        }
        return o;
    }

    static int?[] ReadWindowSizes(BackboneConfig kw)
    {
        var raw = kw.Raw("window_size");
        if (raw is null) return new int?[] { 3, 3, 3, null };
        if (raw is not JsonArray a || a.Count != 4)
            throw new BackboneConfigException($"{kw.Context}: 'window_size' must be a list of 4 entries (odd integers, or null for MHSA stages), found {raw.ToJsonString()}.");
        var result = new int?[4];
        for (int i = 0; i < 4; i++)
        {
            if (a[i] is null) continue;
            if (a[i] is JsonValue v && v.TryGetValue(out int k)) result[i] = k;
            else throw new BackboneConfigException($"{kw.Context}: 'window_size' entry {i} must be an integer or null, found {a[i]!.ToJsonString()}.");
        }
        return result;
    }

    static double ReadNormEps(BackboneConfig kw)
    {
        var raw = kw.Raw("norm_layer");
        const string expected = "\"LayerNorm\" (eps 1e-5) or {\"type\": \"LayerNorm\", \"eps\": <number>}";
        switch (raw)
        {
            case null: return 1e-5;
            case JsonValue v when v.TryGetValue(out string? s):
                if (s is "LayerNorm" or "nn.LayerNorm") return 1e-5;
                break;
            case JsonObject o:
                {
                    var type = o["type"] is JsonValue t && t.TryGetValue(out string? ts) ? ts : null;
                    var unknown = o.Select(kv => kv.Key).Where(k => k is not ("type" or "eps")).ToList();
                    if (type is "LayerNorm" or "nn.LayerNorm" && unknown.Count == 0)
                    {
                        if (o["eps"] is null) return 1e-5;
                        if (o["eps"] is JsonValue e && e.TryGetValue(out double eps) && eps > 0) return eps;
                    }
                    break;
                }
        }
        throw new BackboneConfigException($"{kw.Context}: 'norm_layer' must be {expected}, found {raw.ToJsonString()}.");
    }

    /// <summary>Another square size, a multiple of 32: <c>img_size</c> set to it and <c>pretrain_size</c> kept at the
    /// resolution the weights were trained at (the official code's way to fine-tune and evaluate at 384, and what its
    /// published 384 checkpoints are built with).</summary>
    protected internal override JsonObject? InputSizeKwargs(JsonObject kwargs, int height, int width)
    {
        static int? Int(JsonNode? n) => n is JsonValue v && v.TryGetValue(out int i) ? i : null;
        int img = Int(kwargs["img_size"]) ?? 224;
        if (height != width || height == img || height < 32 || height % 32 != 0) return null;
        return new JsonObject { ["img_size"] = height, ["pretrain_size"] = Int(kwargs["pretrain_size"]) ?? img };
    }

    /// <inheritdoc/>
    protected internal override Backbone Build(BackboneConfig kwargs, BackboneVariant? variant)
    {
        var o = ReadConfig(kwargs);
        var pretrained = Pretrained(o.ImgSize, variant?.Pretrained.NumClasses ?? o.NumClasses, o.InChans);
        return new TransNeXtModel(variant?.Name ?? CustomName, pretrained, o);
    }
}

using System.Text.Json.Nodes;
using MLNetExt.Torch;

namespace MLNetExt.Vision.TransXNet;

/// <summary>
/// The TransXNet variants (official factories <c>transxnet_t/s/b</c> of LMMMEng/TransXNet) and the official
/// constructor's keyword arguments: <c>image_size</c> (int or [h, w]; sizes only the position tables), <c>arch</c>
/// ('t'|'tiny'|'T', 's'|'small'|'S', 'b'|'base'|'B' or a dict with <c>layers</c>, <c>embed_dims</c>,
/// <c>kernel_size</c>, <c>num_groups</c>, <c>sr_ratio</c>, <c>num_heads</c>, optional <c>mlp_ratios</c> and
/// <c>layer_scale_init_value</c>), <c>in_chans</c>, <c>in_patch_size</c>, <c>in_stride</c>, <c>in_pad</c>,
/// <c>down_patch_size</c>, <c>down_stride</c>, <c>down_pad</c>, <c>drop_rate</c>, <c>drop_path_rate</c>,
/// <c>num_classes</c>, <c>fork_feat</c>, <c>start_level</c>; <c>norm_cfg</c>/<c>act_cfg</c> only at their defaults
/// (GroupNorm with one group, GELU); <c>grad_checkpoint</c>/<c>checkpoint_stage</c> accepted (no effect on results).
/// </summary>
internal sealed class TransXNetFamily : BackboneFamily
{
    static readonly Dictionary<string, TransXNetArch> Archs = new()
    {
        ["t"] = new(new[] { 3, 3, 9, 3 }, new[] { 48, 96, 224, 448 }, new[] { 7, 7, 7, 7 }, new[] { 2, 2, 2, 2 },
                    new[] { 8, 4, 2, 1 }, new[] { 1, 2, 4, 8 }, new double[] { 4, 4, 4, 4 }, 1e-5),
        ["s"] = new(new[] { 4, 4, 12, 4 }, new[] { 64, 128, 320, 512 }, new[] { 7, 7, 7, 7 }, new[] { 2, 2, 3, 4 },
                    new[] { 8, 4, 2, 1 }, new[] { 1, 2, 5, 8 }, new double[] { 6, 6, 4, 4 }, 1e-5),
        ["b"] = new(new[] { 4, 4, 21, 4 }, new[] { 76, 152, 336, 672 }, new[] { 7, 7, 7, 7 }, new[] { 2, 2, 4, 4 },
                    new[] { 8, 4, 2, 1 }, new[] { 2, 4, 8, 16 }, new double[] { 8, 8, 4, 4 }, 1e-5),
    };

    static readonly Dictionary<string, string> ArchAliases = new()
    {
        ["t"] = "t", ["tiny"] = "t", ["T"] = "t", ["s"] = "s", ["small"] = "s", ["S"] = "s", ["b"] = "b", ["base"] = "b", ["B"] = "b",
    };

    static PretrainedConfig Pretrained(double cropPct) => new(3, 224, 224, PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd,
        cropPct, "bicubic", 1000, "patch_embed.proj.conv", "classifier.2");

    // Paper numbers: Table II of the TransXNet paper (ImageNet-1K at 224, "#F (G)"; the same FLOPs are in Table I).
    static readonly BackboneVariant[] Table =
    {
        new("transxnet_t", "transxnet", """{"arch": "t"}""", Pretrained(0.9), 12_834_808, PaperTop1: 81.6, PaperGMacs: 1.8),
        new("transxnet_s", "transxnet", """{"arch": "s"}""", Pretrained(0.9), 26_864_068, PaperTop1: 83.8, PaperGMacs: 4.5),
        new("transxnet_b", "transxnet", """{"arch": "b"}""", Pretrained(0.95), 48_009_002, PaperTop1: 84.6, PaperGMacs: 8.3),
    };

    // Test row (not official): the configuration of the parity fixture (tests/fixtures/transxnet/tiny.safetensors),
    // whose tables are built for 112x112, run at its construction size.
    static readonly BackboneVariant s_test = new("transxnet_test", "transxnet",
        """{"image_size": 112, "arch": {"layers": [1, 1, 2, 1], "embed_dims": [16, 36, 48, 64], "kernel_size": [7, 7, 5, 3], "num_groups": [2, 2, 3, 2], "sr_ratio": [8, 4, 2, 1], "num_heads": [1, 2, 3, 4], "mlp_ratios": [4, 3, 2, 2], "layer_scale_init_value": 1e-05}, "num_classes": 10}""",
        Pretrained(0.9) with { Height = 112, Width = 112, NumClasses = 10 }, 176_360);

    /// <summary>Depth groups: the stem → 0; the blocks in order (<c>network.{0,2,4,6}.{j}</c>) → 1..n; each stage's
    /// position table (<c>relative_pos_enc.{s}</c>) and the downsampling before it (<c>network.{1,3,5}</c>) with the
    /// stage's first block; everything else (classifier, the dense-task norms) → n + 1.</summary>
    internal static readonly DepthGroupTable DepthGroups = new(
        new(@"patch_embed(\.|$)", DepthGroupKind.Stem),
        new(@"relative_pos_enc\.(?<stage>\d+)$", DepthGroupKind.StageStart),
        new(@"network\.(?<stage>[0246])\.(?<block>\d+)(\.|$)", DepthGroupKind.Block, StageDivisor: 2),
        new(@"network\.(?<stage>[135])(\.|$)", DepthGroupKind.StageStart, StageOffset: 1, StageDivisor: 2),
        new(@"", DepthGroupKind.Head));

    /// <inheritdoc/>
    public override string Name => "transxnet";

    /// <inheritdoc/>
    public override IReadOnlyList<BackboneVariant> Variants => Table;

    /// <inheritdoc/>
    internal override BackboneVariant TestVariant => s_test;

    /// <inheritdoc/>
    protected override string CustomName => "transxnet (custom)";

    /// <inheritdoc/>
    protected internal override Backbone Build(BackboneConfig kwargs, BackboneVariant? variant)
    {
        var o = ReadConfig(kwargs);
        var pretrained = variant?.Pretrained ?? Pretrained(0.9);
        pretrained = pretrained with { InputChannels = o.InChans, NumClasses = o.ForkFeat ? 0 : o.NumClasses };
        return new TransXNetModel(variant?.Name ?? CustomName, pretrained, o);
    }

    /// <summary>Reads the config record from the official keyword arguments, validated.</summary>
    internal static TransXNetConfig ReadConfig(BackboneConfig kwargs)
    {
        var (imageH, imageW) = ImageSize(kwargs);
        var arch = ReadArch(kwargs);
        kwargs.DefaultOnly("norm_cfg", n => n is JsonObject o && Str(o, "type") == "GN" && Num(o, "num_groups") == 1 && o.Count == 2,
            """{"type": "GN", "num_groups": 1}""");
        kwargs.DefaultOnly("act_cfg", n => n is JsonObject o && Str(o, "type") == "GELU" && o.Count == 1, """{"type": "GELU"}""");
        kwargs.DefaultOnly("init_cfg", n => n is null, "null; load weights with Backbones.Load");
        kwargs.DefaultOnly("pretrained", n => n is null || (n is JsonValue v && v.TryGetValue(out bool b) && !b), "null; load weights with Backbones.Load");
        kwargs.Ignore("grad_checkpoint", "activation checkpointing changes memory use only");
        kwargs.Ignore("checkpoint_stage", "activation checkpointing changes memory use only");
        var o = new TransXNetConfig(arch, imageH, imageW,
            InChans: Positive(kwargs, "in_chans", 3), InPatchSize: Positive(kwargs, "in_patch_size", 7),
            InStride: Positive(kwargs, "in_stride", 4), InPad: NonNegative(kwargs, "in_pad", 3),
            DownPatchSize: Positive(kwargs, "down_patch_size", 3), DownStride: Positive(kwargs, "down_stride", 2),
            DownPad: NonNegative(kwargs, "down_pad", 1),
            DropRate: Rate(kwargs, "drop_rate"), DropPathRate: Rate(kwargs, "drop_path_rate"),
            NumClasses: NonNegative(kwargs, "num_classes", 1000), ForkFeat: kwargs.Bool("fork_feat", false),
            StartLevel: NonNegative(kwargs, "start_level", 0));
        kwargs.Finish();
        return o;
    }

    /// <summary>The official 384 fine-tune may carry tables of another size than 224's: the construction resolution
    /// is read from the shape of <c>relative_pos_enc.0</c> (1, heads, N, M) when it differs from what the arguments give.</summary>
    protected internal override void InferKwargsFromCheckpoint(JsonObject kwargs, IReadOnlyList<KeyValuePair<string, Tensor>> weights)
    {
        var table = weights.FirstOrDefault(kv => kv.Key is "relative_pos_enc.0" or "module.relative_pos_enc.0").Value;
        if (table is null || table.Dim != 4) return;
        long n = table.Size(2), m = table.Size(3);
        var probe = new BackboneConfig("transxnet", (JsonObject)kwargs.DeepClone());
        var (imageH, imageW) = ImageSize(probe);
        int stride = probe.Int("in_stride", 4);
        int sr = ReadArch(probe).SrRatio[0];
        long h0 = TransXNetModel.CeilDiv(imageH, stride), w0 = TransXNetModel.CeilDiv(imageW, stride);
        if (h0 * w0 == n && TransXNetModel.CeilDiv(h0, sr) * TransXNetModel.CeilDiv(w0, sr) == m) return;
        // Prefer the most square grid (h ≥ w) consistent with both N and M.
        for (long w = (long)Math.Sqrt(n); w >= 1; w--)
        {
            if (n % w != 0) continue;
            long h = n / w;
            if (TransXNetModel.CeilDiv(h, sr) * TransXNetModel.CeilDiv(w, sr) != m) continue;
            kwargs["image_size"] = h == w ? JsonValue.Create(h * stride) : new JsonArray(h * stride, w * stride);
            return;
        }
    }

    static (int H, int W) ImageSize(BackboneConfig kwargs)
    {
        var node = kwargs.Raw("image_size");
        if (node is null) return (224, 224);
        if (node is JsonArray) { var hw = kwargs.Ints("image_size", new[] { 224, 224 }, length: 2); return Check(hw[0], hw[1]); }
        int side = kwargs.Int("image_size", 224);
        return Check(side, side);

        (int, int) Check(int h, int w) => h >= 1 && w >= 1 ? (h, w)
            : throw new BackboneConfigException($"{kwargs.Context}: 'image_size' must be positive, found {h}x{w}.");
    }

    static TransXNetArch ReadArch(BackboneConfig kwargs)
    {
        var node = kwargs.Raw("arch") ?? JsonValue.Create("tiny");
        if (node is JsonValue v && v.TryGetValue(out string? name))
            return ArchAliases.TryGetValue(name, out var key) ? Archs[key]
                : throw new BackboneConfigException($"{kwargs.Context}: 'arch' = \"{name}\" is not a TransXNet architecture; use one of {string.Join(", ", ArchAliases.Keys.Select(k => $"\"{k}\""))} or a dict.");
        if (node is not JsonObject dict)
            throw new BackboneConfigException($"{kwargs.Context}: 'arch' must be an architecture name or a dict, found {node.ToJsonString()}.");
        var a = new BackboneConfig($"{kwargs.Context} arch", dict);
        foreach (var required in new[] { "layers", "embed_dims", "kernel_size", "num_groups", "sr_ratio", "num_heads" })
            if (!a.Has(required))
                throw new BackboneConfigException($"{kwargs.Context}: the arch dict needs '{required}' (one value per stage); it has {string.Join(", ", dict.Select(kv => $"'{kv.Key}'"))}.");
        var arch = new TransXNetArch(
            a.Ints("layers", null!, 4), a.Ints("embed_dims", null!, 4), a.Ints("kernel_size", null!, 4), a.Ints("num_groups", null!, 4),
            a.Ints("sr_ratio", null!, 4), a.Ints("num_heads", null!, 4), a.Doubles("mlp_ratios", new double[] { 4, 4, 4, 4 }, 4),
            a.NullableDouble("layer_scale_init_value", 1e-5));
        a.Finish();
        for (int s = 0; s < 4; s++)
        {
            string at = $"{kwargs.Context}: stage {s + 1}";
            if (arch.Layers[s] < 1) throw new BackboneConfigException($"{at} needs at least one block ('layers'), found {arch.Layers[s]}.");
            int dim = arch.EmbedDims[s];
            if (dim < 2 || dim % 2 != 0) throw new BackboneConfigException($"{at}: 'embed_dims' must be even (the D-Mixer splits channels in half), found {dim}.");
            if (arch.NumHeads[s] < 1 || dim / 2 % arch.NumHeads[s] != 0)
                throw new BackboneConfigException($"{at}: half the width ({dim / 2}) must be divisible by 'num_heads', found {arch.NumHeads[s]}.");
            if (arch.NumGroups[s] < 2) throw new BackboneConfigException($"{at}: 'num_groups' must be greater than 1 (IDConv), found {arch.NumGroups[s]}.");
            if (arch.KernelSize[s] < 1 || arch.KernelSize[s] % 2 == 0) throw new BackboneConfigException($"{at}: 'kernel_size' must be odd and positive, found {arch.KernelSize[s]}.");
            if (arch.SrRatio[s] < 1) throw new BackboneConfigException($"{at}: 'sr_ratio' must be at least 1, found {arch.SrRatio[s]}.");
            if (dim / 2 / 4 < 1) throw new BackboneConfigException($"{at}: 'embed_dims' {dim} is too narrow (IDConv reduces {dim / 2} channels by 4).");
            if (arch.MlpRatios[s] <= 0 || (int)(dim * arch.MlpRatios[s]) < 4) throw new BackboneConfigException($"{at}: 'mlp_ratios' {arch.MlpRatios[s]} gives fewer than 4 hidden channels.");
            if (s < 3 && arch.EmbedDims[s] == arch.EmbedDims[s + 1])
                throw new BackboneConfigException($"{at}: consecutive 'embed_dims' must differ (the official network only downsamples between different widths and its forward then breaks), found {dim} twice.");
        }
        return arch;
    }

    static string? Str(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
    static double? Num(JsonObject o, string key) => o[key] is JsonValue v && v.TryGetValue(out double d) ? d : null;

    static int Positive(BackboneConfig k, string key, int def)
    {
        int v = k.Int(key, def);
        return v >= 1 ? v : throw new BackboneConfigException($"{k.Context}: '{key}' must be at least 1, found {v}.");
    }

    static int NonNegative(BackboneConfig k, string key, int def)
    {
        int v = k.Int(key, def);
        return v >= 0 ? v : throw new BackboneConfigException($"{k.Context}: '{key}' must be 0 or more, found {v}.");
    }

    static double Rate(BackboneConfig k, string key)
    {
        double v = k.Double(key, 0);
        return v is >= 0 and < 1 ? v : throw new BackboneConfigException($"{k.Context}: '{key}' must be in [0, 1), found {v}.");
    }
}

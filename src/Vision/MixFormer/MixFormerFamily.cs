using System.Text.Json.Nodes;

namespace MLNetExt.Vision.MixFormer;

/// <summary>
/// MixFormer variants (factories MixFormer_B0..B6 of PaddleClas pull request #1820) and custom sizes from the official
/// constructor keyword arguments: <c>img_size</c>, <c>patch_size</c>, <c>in_chans</c>, <c>class_num</c> (the registry's
/// <c>num_classes</c> overrides it), <c>embed_dim</c> (an int C for widths C, 2C, 4C, 8C, or one width per stage),
/// <c>depths</c>, <c>num_heads</c>, <c>window_size</c>, <c>dwconv_kernel_size</c>, <c>mlp_ratio</c>, <c>qkv_bias</c>,
/// <c>qk_scale</c>, <c>drop_rate</c>, <c>attn_drop_rate</c>, <c>drop_path_rate</c>, <c>norm_layer</c> (LayerNorm only),
/// <c>ape</c> (false only), <c>patch_norm</c> (true only; the official code crashes without it) and
/// <c>use_checkpoint</c> (no effect). The official B0 and B5 factories crash on a missing URL entry; these rows build.
/// </summary>
internal sealed class MixFormerFamily : BackboneFamily
{
    static readonly PretrainedConfig s_pretrained = new(3, 224, 224, PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd,
        0.875, "bicubic", 1000, "patch_embed.stem.0", "head");

    static BackboneVariant Row(string name, string kwargs, long parameters, double? top1 = null, double? gmacs = null) =>
        new(name, "mixformer", kwargs, s_pretrained, parameters, top1, gmacs);

    // Test row (not official): the four stages of the parity fixture's small configuration
    // (tests/fixtures/mixformer/small.json), 64x64 input (stem grid 16x16, a multiple of 8).
    static readonly BackboneVariant s_test = Row("mixformer_test",
        """{"embed_dim": [16, 24, 32, 48], "depths": [1, 2, 1, 1], "num_heads": [2, 3, 2, 3], "drop_path_rate": 0.0, "num_classes": 10}""", 152_050)
        with { Pretrained = s_pretrained with { Height = 64, Width = 64, NumClasses = 10 } };

    /// <summary>Depth groups: <c>patch_embed</c> (and <c>absolute_pos_embed</c>) → 0; the blocks in order → 1..N; each
    /// down-sampler with the block it feeds (the first block of the next stage); <c>norm</c>, <c>last_proj</c> and
    /// <c>head</c> → N + 1.</summary>
    internal static readonly DepthGroupTable DepthGroups = new(
        new(@"(patch_embed|absolute_pos_embed)(\.|$)", DepthGroupKind.Stem),
        new(@"(norm|last_proj|head)(\.|$)", DepthGroupKind.Head),
        new(@"layers\.(?<stage>\d+)\.blocks\.(?<block>\d+)(\.|$)", DepthGroupKind.Block),
        new(@"layers\.(?<stage>\d+)\.downsample(\.|$)", DepthGroupKind.StageStart, StageOffset: 1));

    /// <inheritdoc/>
    public override string Name => "mixformer";

    /// <inheritdoc/>
    internal override BackboneVariant TestVariant => s_test;

    /// <inheritdoc/>
    /// <remarks>Parameter counts: trainable parameters at 1000 classes, as the official module tree defines them
    /// (BatchNorm statistics and the index buffers excluded), measured on the community PyTorch port of the official
    /// code and on our reference (tests/fixtures/mixformer). Paper numbers: Table 3 of the MixFormer paper (ImageNet-1K,
    /// single 224x224 crop, "FLOPs" at 224x224), which lists B1-B4 only; B0, B5 and B6 appear only in the PaddleClas
    /// docs of the pull request (0.4/6.8/12.7 G, 76.5/83.5/83.8 %), not in the paper, so they stay null here.</remarks>
    public override IReadOnlyList<BackboneVariant> Variants { get; } = new[]
    {
        Row("mixformer_b0", """{"embed_dim": 24, "depths": [1, 2, 6, 6], "num_heads": [3, 6, 12, 24], "drop_path_rate": 0.0}""", 5_098_767),
        Row("mixformer_b1", """{"embed_dim": 32, "depths": [1, 2, 6, 6], "num_heads": [2, 4, 8, 16], "drop_path_rate": 0.0}""", 7_887_877, 78.9, 0.7),
        Row("mixformer_b2", """{"embed_dim": 32, "depths": [2, 2, 8, 8], "num_heads": [2, 4, 8, 16], "drop_path_rate": 0.05}""", 9_894_848, 80.0, 0.9),
        Row("mixformer_b3", """{"embed_dim": 48, "depths": [2, 2, 8, 6], "num_heads": [3, 6, 12, 24], "drop_path_rate": 0.1}""", 16_747_808, 81.7, 1.9),
        Row("mixformer_b4", """{"embed_dim": 64, "depths": [2, 2, 8, 8], "num_heads": [4, 8, 16, 32], "drop_path_rate": 0.2}""", 34_797_572, 83.0, 3.6),
        Row("mixformer_b5", """{"embed_dim": 96, "depths": [1, 2, 8, 6], "num_heads": [6, 12, 24, 48], "drop_path_rate": 0.3}""", 61_692_403),
        Row("mixformer_b6", """{"embed_dim": 96, "depths": [2, 4, 16, 12], "num_heads": [6, 12, 24, 48], "drop_path_rate": 0.5}""", 119_505_054),
    };

    /// <inheritdoc/>
    protected internal override Backbone Build(BackboneConfig kw, BackboneVariant? variant)
    {
        var o = ReadConfig(kw);
        return new MixFormerModel(variant?.Name ?? CustomName, variant?.Pretrained ?? s_pretrained with { NumClasses = o.NumClasses, InputChannels = o.InChans }, o);
    }

    /// <summary>Reads the config record from the official keyword arguments (defaults as the official constructor's), validated.</summary>
    internal static MixFormerConfig ReadConfig(BackboneConfig kw)
    {
        string ctx = kw.Context;
        kw.Ignore("img_size", "only sizes the absolute position embedding, which ape=false (the only supported value) leaves out");
        kw.Ignore("use_checkpoint", "activation checkpointing does not change the computation");
        kw.DefaultOnly("norm_layer", n => n is null || (n is JsonValue v && v.TryGetValue(out string? s) && s is "LayerNorm" or "nn.LayerNorm"), "\"LayerNorm\"");
        kw.DefaultOnly("ape", n => n is JsonValue v && v.TryGetValue(out bool b) && !b, "false");
        kw.DefaultOnly("patch_norm", n => n is JsonValue v && v.TryGetValue(out bool b) && b, "true; the official code crashes with false");
        int patch = kw.Int("patch_size", 4);
        int inChans = kw.Int("in_chans", 3);
        int classes = kw.Int("class_num", 1000);
        classes = kw.Int("num_classes", classes);
        int[] depths = kw.Ints("depths", new[] { 2, 2, 6, 2 });
        int stages = depths.Length;
        int[] heads = kw.Ints("num_heads", new[] { 3, 6, 12, 24 }, stages);
        int[] dims;
        var e = kw.Raw("embed_dim");
        if (e is null) dims = Enumerable.Range(0, stages).Select(i => 96 << i).ToArray();
        else if (e is JsonArray) dims = kw.Ints("embed_dim", Array.Empty<int>(), stages);
        else
        {
            int c = kw.Int("embed_dim", 96);
            dims = Enumerable.Range(0, stages).Select(i => checked(c << i)).ToArray();
        }
        int window = kw.Int("window_size", 7);
        int dwk = kw.Int("dwconv_kernel_size", 3);
        double mlp = kw.Double("mlp_ratio", 4.0);
        bool qkvBias = kw.Bool("qkv_bias", true);
        double? qkScale = kw.NullableDouble("qk_scale", null);
        double drop = kw.Double("drop_rate", 0), attnDrop = kw.Double("attn_drop_rate", 0), dropPath = kw.Double("drop_path_rate", 0.1);
        kw.Finish();

        void Fail(string what) => throw new BackboneConfigException($"{ctx}: {what}.");
        if (stages < 1) Fail("'depths' must list at least one stage");
        if (depths.Any(d => d < 0)) Fail($"'depths' must be non-negative, found [{string.Join(", ", depths)}]");
        if (patch < 2) Fail($"'patch_size' must be at least 2 (the stem strides by patch_size // 2), found {patch}");
        if (inChans < 1) Fail($"'in_chans' must be at least 1, found {inChans}");
        if (classes < 0) Fail($"the class count must be 0 (no head) or more, found {classes}");
        if (window < 1) Fail($"'window_size' must be at least 1, found {window}");
        if (dwk < 1 || dwk % 2 == 0) Fail($"'dwconv_kernel_size' must be odd and positive (padding k // 2 keeps the size), found {dwk}");
        if (!(mlp > 0) || (int)(dims.Min() * mlp) < 1) Fail($"'mlp_ratio' must give a hidden width of at least 1, found {mlp}");
        foreach (var (p, name) in new[] { (drop, "drop_rate"), (attnDrop, "attn_drop_rate"), (dropPath, "drop_path_rate") })
            if (!(p >= 0 && p < 1)) Fail($"'{name}' must lie in [0, 1), found {p}");
        for (int i = 0; i < stages; i++)
        {
            int c = dims[i];
            if (c < 16 || c % 2 != 0)
                Fail($"stage {i + 1} width {c} is not supported: widths must be even and at least 16 (the spatial interaction has C // 16 channels); embed_dim = [{string.Join(", ", dims)}]");
            if (heads[i] < 1 || (c / 2) % heads[i] != 0)
                Fail($"stage {i + 1}: num_heads {heads[i]} must divide the attention width {c / 2} (half of {c})");
        }
        return new MixFormerConfig(patch, inChans, classes, dims, depths, heads, window, dwk, mlp, qkvBias, qkScale, drop, attnDrop, dropPath);
    }
}

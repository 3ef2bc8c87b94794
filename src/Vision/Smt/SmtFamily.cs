using System.Globalization;
using System.Text.Json.Nodes;

namespace MLNetExt.Vision.Smt;

/// <summary>
/// The SMT family: the four official variants under their official factory names (<c>smt_t</c>, <c>smt_s</c>,
/// <c>smt_b</c>, <c>smt_l</c>) and custom sizes from the official <c>SMT</c> constructor's keyword arguments:
/// <c>embed_dims, ca_num_heads, sa_num_heads, mlp_ratios, qkv_bias, qk_scale, use_layerscale, layerscale_value,
/// drop_rate, attn_drop_rate, drop_path_rate, depths, ca_attentions, head_conv, expand_ratio, num_classes</c>
/// (missing keys take the constructor's defaults); <c>img_size</c> and <c>use_checkpoint</c> are accepted and have
/// no effect (as in the official code); <c>in_chans</c> (3), <c>num_stages</c> (4) and <c>norm_layer</c>
/// (LayerNorm eps 1e-6) are accepted only with their default values.
/// </summary>
internal sealed class SmtFamily : BackboneFamily
{
    /// <summary>The ImageNet-1K evaluation setting of the official code: 224², resize 256 + centre crop 224
    /// (crop 0.875), bicubic, ImageNet mean/std. (timm's generic <c>_cfg</c> the factories attach is not what the
    /// official training/evaluation pipeline uses.)</summary>
    public static PretrainedConfig ImageNetConfig(int numClasses = 1000) => new(
        3, 224, 224, PretrainedConfig.ImageNetMean, PretrainedConfig.ImageNetStd, 0.875, "bicubic", numClasses,
        "patch_embed1.conv.0", "head");

    // Official factory keyword arguments (models/smt.py) plus the drop_path_rate of the official config that
    // produced each released checkpoint (configs/smt/*.yaml). smt_l: use_layerscale true, as every SMT-L config
    // sets and the released SMT-L checkpoints require (the factory function itself forgets it).
    // Paper numbers: Table 1 of the SMT paper (ImageNet-1K from scratch at 224: T 82.2 % / 2.4 G, S 83.7 % / 4.7 G,
    // B 84.3 % / 7.7 G) and Table 2 for SMT-L, which exists only ImageNet-22K pre-trained (fine-tuned on 1K at 224:
    // 87.1 % / 17.7 G).
    static readonly BackboneVariant[] s_variants =
    {
        new("smt_t", "smt",
            """{"embed_dims": [64, 128, 256, 512], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 8, 16], "mlp_ratios": [4, 4, 4, 2], "qkv_bias": true, "depths": [2, 2, 8, 1], "ca_attentions": [1, 1, 1, 0], "head_conv": 3, "expand_ratio": 2, "drop_path_rate": 0.1}""",
            ImageNetConfig(), 11_506_536, PaperTop1: 82.2, PaperGMacs: 2.4),
        new("smt_s", "smt",
            """{"embed_dims": [64, 128, 256, 512], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 8, 16], "mlp_ratios": [4, 4, 4, 2], "qkv_bias": true, "depths": [3, 4, 18, 2], "ca_attentions": [1, 1, 1, 0], "head_conv": 3, "expand_ratio": 2, "drop_path_rate": 0.2}""",
            ImageNetConfig(), 22_550_952, PaperTop1: 83.7, PaperGMacs: 4.7),
        new("smt_b", "smt",
            """{"embed_dims": [64, 128, 256, 512], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 8, 16], "mlp_ratios": [8, 6, 4, 2], "qkv_bias": true, "depths": [4, 6, 28, 2], "ca_attentions": [1, 1, 1, 0], "head_conv": 7, "expand_ratio": 2, "drop_path_rate": 0.3}""",
            ImageNetConfig(), 32_037_352, PaperTop1: 84.3, PaperGMacs: 7.7),
        new("smt_l", "smt",
            """{"embed_dims": [96, 192, 384, 768], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 8, 16], "mlp_ratios": [8, 6, 4, 2], "qkv_bias": true, "depths": [4, 6, 28, 4], "ca_attentions": [1, 1, 1, 0], "head_conv": 7, "expand_ratio": 2, "use_layerscale": true, "drop_path_rate": 0.1}""",
            ImageNetConfig(), 80_620_264, PaperTop1: 87.1, PaperGMacs: 17.7, PaperNote: "ImageNet-22K pre-trained"),
    };

    // Test row (not official): every block kind (SAM stages 1-2, stage 3 alternating SAM/MSA, MSA stage 4) at tiny
    // widths, 64x64 input; the settings of the SMT behaviour tests.
    static readonly BackboneVariant s_test = new("smt_test", "smt",
        """{"embed_dims": [8, 16, 32, 32], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 4, 4], "mlp_ratios": [2, 2, 2, 2], "qkv_bias": true, "depths": [1, 2, 4, 1], "head_conv": 3, "num_classes": 5}""",
        ImageNetConfig(5) with { Height = 64, Width = 64 }, 77_245);

    /// <summary>Depth groups: the stem (<c>patch_embed1</c>) → 0; <c>block{i}.{j}</c> → its global block index + 1;
    /// <c>patch_embed{i}</c> (i ≥ 2) with the first block of its stage (in a network without blocks, with the head);
    /// <c>norm{i}</c> (i ≤ 3) with the stage's last block (or the last block before it); <c>norm4</c> and <c>head</c> → last.</summary>
    internal static readonly DepthGroupTable DepthGroups = new(
        new(@"head(\.|$)", DepthGroupKind.Head),
        new(@"patch_embed1(\.|$)", DepthGroupKind.Stem),
        new(@"patch_embed(?<stage>[234])(\.|$)", DepthGroupKind.StageStart, StageOffset: -1, MinCap: 1),
        new(@"norm4(\.|$)", DepthGroupKind.Head),
        new(@"norm(?<stage>[123])(\.|$)", DepthGroupKind.StageEnd, StageOffset: -1),
        new(@"block(?<stage>[1234])\.(?<block>\d+)(\.|$)", DepthGroupKind.Block, StageOffset: -1));

    /// <inheritdoc/>
    public override string Name => "smt";

    /// <inheritdoc/>
    public override IReadOnlyList<BackboneVariant> Variants => s_variants;

    /// <inheritdoc/>
    internal override BackboneVariant TestVariant => s_test;

    /// <summary>Reads the config record from official keyword arguments (defaults of the official constructor), validated.</summary>
    internal static SmtConfig ReadConfig(BackboneConfig k)
    {
        ArgumentNullException.ThrowIfNull(k);
        const int n = SmtConfig.Stages;
        k.Ignore("img_size", "stored nowhere that affects the computation in the official code");
        k.Ignore("use_checkpoint", "activation checkpointing switch passed by the official build_model; no effect on results");
        k.DefaultOnly("in_chans", v => IsInt(v, 3), "3: the official stem hard-codes 3 input channels");
        k.DefaultOnly("num_stages", v => IsInt(v, 4), "4");
        k.DefaultOnly("norm_layer", v => v is JsonValue jv && jv.TryGetValue(out string? s) &&
            s.Replace(" ", "", StringComparison.Ordinal) is "partial(nn.LayerNorm,eps=1e-6)" or "LayerNorm(eps=1e-6)", "\"partial(nn.LayerNorm, eps=1e-6)\"");
        var s = new SmtConfig(
            EmbedDims: k.Ints("embed_dims", new[] { 64, 128, 256, 512 }, n),
            CaNumHeads: k.Ints("ca_num_heads", new[] { 4, 4, 4, -1 }, n),
            SaNumHeads: k.Ints("sa_num_heads", new[] { -1, -1, 8, 16 }, n),
            MlpRatios: k.Doubles("mlp_ratios", new[] { 8.0, 6, 4, 2 }, n),
            QkvBias: k.Bool("qkv_bias", false),
            QkScale: k.NullableDouble("qk_scale", null),
            UseLayerScale: k.Bool("use_layerscale", false),
            LayerScaleValue: k.Double("layerscale_value", 1e-4),
            DropRate: k.Double("drop_rate", 0),
            AttnDropRate: k.Double("attn_drop_rate", 0),
            DropPathRate: k.Double("drop_path_rate", 0),
            Depths: k.Ints("depths", new[] { 2, 2, 8, 1 }, n),
            CaAttentions: k.Ints("ca_attentions", new[] { 1, 1, 1, 0 }, n),
            HeadConv: k.Int("head_conv", 3),
            ExpandRatio: k.Int("expand_ratio", 2),
            NumClasses: k.Int("num_classes", 1000));
        k.Finish();
        Validate(k.Context, s);
        return s;
    }

    static bool IsInt(JsonNode? v, int expected) => v is JsonValue jv && jv.TryGetValue(out int i) && i == expected;

    static void Validate(string ctx, SmtConfig s)
    {
        void Fail(string message) => throw new BackboneConfigException($"{ctx}: {message}");
        string List<T>(T[] a) => "[" + string.Join(", ", a.Select(x => Convert.ToString(x, CultureInfo.InvariantCulture))) + "]";
        for (int i = 0; i < SmtConfig.Stages; i++)
        {
            int dim = s.EmbedDims[i];
            if (dim < 1) Fail($"'embed_dims' must be positive, found {List(s.EmbedDims)}.");
            if (s.Depths[i] < 0) Fail($"'depths' must not be negative, found {List(s.Depths)}.");
            if (s.CaAttentions[i] is not (0 or 1)) Fail($"'ca_attentions' entries must be 1 (SAM) or 0 (MSA), found {List(s.CaAttentions)}.");
            if (s.Depths[i] == 0) continue;
            // the official Attention asserts both divisibilities for every block, whichever kind it is
            if (s.CaNumHeads[i] == 0 || dim % s.CaNumHeads[i] != 0)
                Fail($"stage {i + 1}: embed_dims {dim} must be divisible by ca_num_heads {s.CaNumHeads[i]} (found {List(s.CaNumHeads)}).");
            if (s.SaNumHeads[i] == 0 || dim % s.SaNumHeads[i] != 0)
                Fail($"stage {i + 1}: embed_dims {dim} must be divisible by sa_num_heads {s.SaNumHeads[i]} (found {List(s.SaNumHeads)}).");
            bool anySam = Enumerable.Range(0, s.Depths[i]).Any(j => s.IsSam(i, j));
            bool anyMsa = Enumerable.Range(0, s.Depths[i]).Any(j => !s.IsSam(i, j));
            if (anySam && s.CaNumHeads[i] < 1) Fail($"stage {i + 1} has SAM blocks and needs ca_num_heads ≥ 1, found {List(s.CaNumHeads)}.");
            if (anyMsa && s.SaNumHeads[i] < 1) Fail($"stage {i + 1} has attention blocks and needs sa_num_heads ≥ 1, found {List(s.SaNumHeads)}.");
            if (s.Hidden(i) < 1) Fail($"stage {i + 1}: int(embed_dims * mlp_ratios) = {s.Hidden(i)} must be at least 1 (mlp_ratios {List(s.MlpRatios)}).");
        }
        if (s.HeadConv < 1) Fail($"'head_conv' must be a positive kernel size, found {s.HeadConv}.");
        if (s.ExpandRatio < 1) Fail($"'expand_ratio' must be at least 1, found {s.ExpandRatio}.");
        if (s.NumClasses < 0) Fail($"'num_classes' must be 0 (no head) or more, found {s.NumClasses}.");
        foreach (var (key, v) in new[] { ("drop_rate", s.DropRate), ("attn_drop_rate", s.AttnDropRate), ("drop_path_rate", s.DropPathRate) })
            if (!(v >= 0 && v < 1)) Fail($"'{key}' must lie in [0, 1), found {v.ToString(CultureInfo.InvariantCulture)}.");
    }

    /// <inheritdoc/>
    protected internal override Backbone Build(BackboneConfig kwargs, BackboneVariant? variant)
    {
        var s = ReadConfig(kwargs);
        return new SmtModel(variant?.Name ?? CustomName, variant?.Pretrained ?? ImageNetConfig(s.NumClasses), s);
    }

    /// <summary>
    /// Builds a model and loads an ImageNet-22K checkpoint (for example the official <c>smt_large_22k.pth</c>,
    /// 21,841 classes) converting its classifier by the rows of a class-map file (the official repository's
    /// <c>data/map22kto1k.txt</c>, supplied by the caller: MLNetExt does not ship it). The model gets as many classes
    /// as the map has rows; <paramref name="customKwargs"/> builds a custom size of the family instead of a variant.
    /// To keep the 22K head as it is, use <c>Backbones.Load(variant, path, numClasses: 21841)</c> instead.
    /// </summary>
    public static (SmtModel Model, LoadPretrainedResult Load) LoadWithClassMap(string variantOrFamily, string weightsPath, string classMapPath,
                                                                              System.Text.Json.Nodes.JsonObject? customKwargs = null)
    {
        using var weights = Backbones.LoadWeightsFile(weightsPath);
        var head = weights.FirstOrDefault(kv => kv.Key.EndsWith("head.weight", StringComparison.Ordinal)).Value
            ?? throw new InvalidOperationException($"{weightsPath}: no head.weight entry to convert with the class map {classMapPath}.");
        var map = ReadClassMap(classMapPath, (int)head.Size(0));
        var model = (SmtModel)(customKwargs is null
            ? Backbones.Create(variantOrFamily, map.Length)
            : Backbones.CreateCustom(variantOrFamily, customKwargs, map.Length));
        try
        {
            model.HeadClassMap = map;
            return (model, model.LoadPretrained(weights));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads a class map for converting a 22K head (the official repository's <c>data/map22kto1k.txt</c>: one
    /// 0-based row index per line, 1000 lines). The file is not shipped with MLNetExt; pass the path of your copy
    /// and assign the result to <see cref="SmtModel.HeadClassMap"/> before <see cref="Backbone.LoadPretrained"/>.
    /// </summary>
    public static int[] ReadClassMap(string path, int sourceClasses = 21841)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Class map '{path}' does not exist.", path);
        var rows = new List<int>();
        int lineNo = 0;
        foreach (var raw in File.ReadLines(path))
        {
            lineNo++;
            var line = raw.Trim();
            if (line.Length == 0) continue;
            if (!int.TryParse(line, NumberStyles.Integer, CultureInfo.InvariantCulture, out int r) || r < 0 || r >= sourceClasses)
                throw new FormatException($"{path}:{lineNo}: expected a class index in [0, {sourceClasses}), found '{line}'.");
            rows.Add(r);
        }
        if (rows.Count == 0) throw new FormatException($"{path}: no class indices found.");
        return rows.ToArray();
    }
}

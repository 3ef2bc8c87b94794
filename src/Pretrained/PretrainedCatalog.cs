using System.Text.Json.Nodes;
using MLNetExt.Vision;

namespace MLNetExt.Pretrained;

/// <summary>
/// One official pretrained checkpoint: where its authors publish it, what it holds, and the tag that names it
/// (timm's <c>arch.tag</c> convention: <c>smt_t.in1k</c>, <c>smt_l.in22k_ft_in1k_384</c>).
/// </summary>
/// <param name="Tag">Variant name, a dot, and what the weights were trained on (and at which size when not the default).</param>
/// <param name="Variant">The variant row the weights load into.</param>
/// <param name="Url">The URL exactly as the official README links it.</param>
/// <param name="Bytes">File size when published (null: not known here).</param>
/// <param name="Sha256">SHA-256 when published by the authors or a reputable third party (null: unknown; the file is
/// then checked by structure — keys, shapes, parameter count — before it is cached).</param>
/// <param name="Resolution">Training resolution of the weights (the input size to use).</param>
/// <param name="Classes">Classes of the stored head (1000 for ImageNet-1K, 21841 for ImageNet-22K).</param>
/// <param name="Overrides">Constructor keyword arguments the weights need beyond the variant's (JSON; e.g. img_size 384).</param>
public sealed record PretrainedCheckpoint(string Tag, string Variant, string Url, long? Bytes, string? Sha256, int Resolution, int Classes,
    string? Overrides = null)
{
    /// <summary>The file name the URL ends with (the name in the cache).</summary>
    public string FileName => Uri.UnescapeDataString(new Uri(Url).Segments[^1]);

    /// <summary>When the weights need <see cref="Overrides"/>: the family and the variant's keyword arguments with them,
    /// a custom configuration to build the model with (null when the variant's own build takes the weights).</summary>
    public (string Family, JsonObject Kwargs)? CustomBuild()
    {
        if (Overrides is null) return null;
        var variant = Backbones.Find(Variant);
        var kwargs = variant.KwargsObject();
        foreach (var (key, value) in (JsonObject)JsonNode.Parse(Overrides)!) kwargs[key] = value?.DeepClone();
        return (variant.Family, kwargs);
    }
}

/// <summary>
/// The official checkpoints of every variant that has one, as the four projects publish them (sources: the official
/// READMEs and release pages, recorded in ../shared/specs). Hashes are filled in where a source gives one; no file could
/// be downloaded here to measure the rest, so those are verified by structure after download.
/// </summary>
public static class PretrainedCatalog
{
    const string TransXNet = "https://github.com/LMMMEng/TransXNet/releases/download/v1.0/";
    const string Smt = "https://github.com/AFeng-x/SMT/releases/download/v1.0.0/";
    const string Hub = "https://huggingface.co/DaiShiResearch/";
    const string Paddle = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/";

    static string TransNeXtHub(string repo, string file) => $"{Hub}{repo}/resolve/main/{file}";

    /// <summary>Every checkpoint, the default one of each variant first.</summary>
    public static IReadOnlyList<PretrainedCheckpoint> All { get; } =
    [
        // TransXNet: release v1.0 of LMMMEng/TransXNet (ImageNet-1K); SHA-256 of transx-t from a third-party converter.
        new("transxnet_t.in1k", "transxnet_t", TransXNet + "transx-t.pth.tar", null, "c8ef6f4834014e691c0e5a5c2f027b2a23172b16988e35742dda571f6b8e8704", 224, 1000),
        new("transxnet_s.in1k", "transxnet_s", TransXNet + "transx-s.pth.tar", null, null, 224, 1000),
        new("transxnet_b.in1k", "transxnet_b", TransXNet + "transx-b.pth.tar", null, null, 224, 1000),
        new("transxnet_b.in1k_384", "transxnet_b", TransXNet + "transx-b-384.pth.tar", null, null, 384, 1000),
        // SMT: release v1.0.0 of AFeng-x/SMT.
        new("smt_t.in1k", "smt_t", Smt + "smt_tiny.pth", null, null, 224, 1000),
        new("smt_s.in1k", "smt_s", Smt + "smt_small.pth", null, null, 224, 1000),
        new("smt_b.in1k", "smt_b", Smt + "smt_base.pth", null, null, 224, 1000),
        new("smt_l.in22k_ft_in1k", "smt_l", Smt + "smt_large_22k_224_ft.pth", null, null, 224, 1000),
        new("smt_l.in22k_ft_in1k_384", "smt_l", Smt + "smt_large_22k_384_ft.pth", null, null, 384, 1000),
        new("smt_l.in22k", "smt_l", Smt + "smt_large_22k.pth", null, null, 224, 21841),
        // TransNeXt: one Hugging Face repository per model under DaiShiResearch.
        new("transnext_micro.in1k", "transnext_micro", TransNeXtHub("transnext-micro-224-1k", "transnext_micro_224_1k.pth"), null, null, 224, 1000),
        new("transnext_tiny.in1k", "transnext_tiny", TransNeXtHub("transnext-tiny-224-1k", "transnext_tiny_224_1k.pth"), null, null, 224, 1000),
        new("transnext_small.in1k", "transnext_small", TransNeXtHub("transnext-small-224-1k", "transnext_small_224_1k.pth"), null, null, 224, 1000),
        new("transnext_small.in1k_384", "transnext_small", TransNeXtHub("transnext-small-384-1k-ft-1k", "transnext_small_384_1k_ft_1k.pth"), null, null, 384, 1000,
            """{"img_size": 384, "pretrain_size": 224}"""),
        new("transnext_base.in1k", "transnext_base", TransNeXtHub("transnext-base-224-1k", "transnext_base_224_1k.pth"), 359_219_401, null, 224, 1000),
        new("transnext_base.in1k_384", "transnext_base", TransNeXtHub("transnext-base-384-1k-ft-1k", "transnext_base_384_1k_ft_1k.pth"), null, null, 384, 1000,
            """{"img_size": 384, "pretrain_size": 224}"""),
        new("transnext_micro_aaaa.in1k_256", "transnext_micro_aaaa", TransNeXtHub("transnext-micro-AAAA-256-1k", "transnext_micro_AAAA_256_1k.pth"), null, null, 256, 1000),
        // MixFormer: PaddleClas's object store (B1, B2, B3, B4 and B6 only; no B0/B5 weights were published).
        new("mixformer_b1.in1k", "mixformer_b1", Paddle + "MixFormer_B1_pretrained.pdparams", null, null, 224, 1000),
        new("mixformer_b2.in1k", "mixformer_b2", Paddle + "MixFormer_B2_pretrained.pdparams", null, null, 224, 1000),
        new("mixformer_b3.in1k", "mixformer_b3", Paddle + "MixFormer_B3_pretrained.pdparams", null, null, 224, 1000),
        new("mixformer_b4.in1k", "mixformer_b4", Paddle + "MixFormer_B4_pretrained.pdparams", null, null, 224, 1000),
        new("mixformer_b6.in1k", "mixformer_b6", Paddle + "MixFormer_B6_pretrained.pdparams", null, null, 224, 1000),
    ];

    /// <summary>The checkpoints of <paramref name="variant"/>, default first (none when its authors published none).</summary>
    public static IReadOnlyList<PretrainedCheckpoint> Of(string variant) =>
        All.Where(c => string.Equals(c.Variant, variant, StringComparison.OrdinalIgnoreCase)).ToList();

    /// <summary>The checkpoint <paramref name="name"/> asks for to load into <paramref name="model"/>: "default" (or the
    /// variant's own name) for its default weights, else a tag of that variant.</summary>
    /// <exception cref="ArgumentException">An unknown name, or the tag of another variant.</exception>
    public static PretrainedCheckpoint For(string model, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        var checkpoint = Find(string.Equals(name, "default", StringComparison.OrdinalIgnoreCase) ? model : name);
        if (!string.Equals(checkpoint.Variant, model, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"The pretrained weights {checkpoint.Tag} are {checkpoint.Variant} weights, not {model}'s.");
        return checkpoint;
    }

    /// <summary>A checkpoint by tag (<c>smt_l.in22k_ft_in1k_384</c>) or by variant name (its default checkpoint).</summary>
    /// <exception cref="ArgumentException">No such tag, or a variant without published weights (the message lists what exists).</exception>
    public static PretrainedCheckpoint Find(string tagOrVariant)
    {
        ArgumentException.ThrowIfNullOrEmpty(tagOrVariant);
        var byTag = All.FirstOrDefault(c => string.Equals(c.Tag, tagOrVariant, StringComparison.OrdinalIgnoreCase));
        if (byTag is not null) return byTag;
        var variant = Backbones.Variants.FirstOrDefault(v => string.Equals(v.Name, tagOrVariant, StringComparison.OrdinalIgnoreCase));
        if (variant is not null)
            return Of(variant.Name).FirstOrDefault()
                ?? throw new ArgumentException($"{variant.Name} has no official pretrained weights (its authors published none); " +
                    $"variants with weights: {string.Join(", ", All.Select(c => c.Variant).Distinct())}.");
        var dot = tagOrVariant.IndexOf('.');
        var known = dot > 0 ? Of(tagOrVariant[..dot]) : [];
        throw new ArgumentException(known.Count > 0
            ? $"Unknown pretrained tag '{tagOrVariant}'; {tagOrVariant[..dot]} has {string.Join(", ", known.Select(c => c.Tag))}."
            : $"Unknown pretrained weights '{tagOrVariant}'{Backbones.DidYouMean(tagOrVariant, All.Select(c => c.Tag).Concat(Backbones.Variants.Select(v => v.Name)))}; " +
              "give a variant name (its default weights) or a tag from `mlnetext models`.");
    }
}

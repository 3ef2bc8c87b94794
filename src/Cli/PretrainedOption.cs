using System.CommandLine;
using MLNetExt.Pretrained;

namespace MLNetExt.Cli;

/// <summary>`--pretrained [TAG]` on every verb that takes `--weights`: official weights by name, downloaded once into
/// the cache (see <see cref="PretrainedWeights"/>) with progress lines on standard error.</summary>
internal static class PretrainedOption
{
    public static Option<string?> Create() => new("--pretrained")
    {
        Arity = ArgumentArity.ZeroOrOne,
        Description = "Official pretrained weights by name, downloaded once into the cache: a tag such as smt_t.in1k (see `mlnetext models`), " +
                      "or no value for the variant's default weights",
    };

    /// <summary>What was asked for: null when the option is absent, "default" when it has no value.</summary>
    public static string? Value(ParseResult r, Option<string?> option) => r.GetResult(option) is null ? null : r.GetValue(option) ?? "default";

    /// <summary>The checkpoint <paramref name="name"/> names for <paramref name="variant"/> ("default": its default).</summary>
    public static PretrainedCheckpoint Find(string name, string? variant)
    {
        if (string.Equals(name, "default", StringComparison.OrdinalIgnoreCase))
            return PretrainedCatalog.Find(variant ?? throw new ArgumentException("--pretrained without a tag needs --variant NAME to say whose default weights."));
        var checkpoint = PretrainedCatalog.Find(name);
        if (variant is not null && !string.Equals(checkpoint.Variant, variant, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--pretrained {checkpoint.Tag} holds {checkpoint.Variant} weights, not {variant}'s.");
        return checkpoint;
    }

    /// <summary>The cached file of <paramref name="checkpoint"/>, downloading it first with progress on <paramref name="log"/>.</summary>
    public static FileInfo Fetch(PretrainedCheckpoint checkpoint, TextWriter log)
    {
        int lastTenth = -1;
        var path = PretrainedWeights.Fetch(checkpoint, p =>
        {
            int tenth = p.Total is long t && t > 0 ? (int)(10 * p.Received / t) : (int)(p.Received >> 26);
            if (tenth == lastTenth) return;
            lastTenth = tenth;
            log.WriteLine($"downloading {p.FileName}: {p.Received / 1048576.0:F1} MB" + (p.Total is long total ? $" of {total / 1048576.0:F1} MB" : ""));
        }, w => log.WriteLine("warning: " + w));
        return new FileInfo(path);
    }

    /// <summary>--weights FILE or --pretrained [TAG] (not both) as the file to load; null when neither was given.</summary>
    public static FileInfo? Resolve(FileInfo? weights, string? pretrained, string? variant, TextWriter log)
    {
        if (pretrained is null) return weights;
        if (weights is not null) throw new ArgumentException("Give --weights FILE or --pretrained, not both.");
        return Fetch(Find(pretrained, variant), log);
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetExt.Export;
using MLNetExt.Pretrained;
using MLNetExt.Vision;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext models [--family NAME] [--json] [--no-macs]`: every official variant with its parameter count, the MACs we
/// measure at its default input size, the paper's "FLOPs" (multiply-accumulates) and top-1, the default input size and
/// the evaluation crop of the published weights.
/// <para>Measuring MACs costs one forward pass per variant (all 19 take tens of seconds on a small CPU), yet the list
/// should feel instant. So measurements are made only for the rows printed, once: they are cached in
/// <c>$XDG_CACHE_HOME/mlnetext/macs.json</c> (or <c>~/.cache/...</c>), keyed by variant, input size, library version
/// and the variant's keyword arguments, and the first run says on stderr what it is measuring. <c>--no-macs</c> skips
/// measuring (and the cache) for a quick look; the column then shows "—".</para>
/// </summary>
internal static class ModelsCommand
{
    public static Command Create()
    {
        var family = new Option<string?>("--family") { Description = "Only this family: transxnet, transnext, smt or mixformer" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var noMacs = new Option<bool>("--no-macs") { Description = "Do not measure MACs (no forward passes, no cache)" };
        var cmd = new Command("models", "List every variant: parameters, measured MACs, the paper's MACs and top-1, default input and crop.")
        {
            family, json, noMacs,
        };
        cmd.SetAction(r => Run(r.GetValue(family), r.GetValue(json), !r.GetValue(noMacs), DefaultCachePath(), Console.Out, Console.Error));
        return cmd;
    }

    /// <summary>One printed row.</summary>
    internal sealed record Row(BackboneVariant Variant, long? Macs);

    internal static int Run(string? family, bool json, bool measure, string cachePath, TextWriter output, TextWriter error)
    {
        IReadOnlyList<BackboneVariant> variants;
        try
        {
            variants = family is null ? Backbones.Variants.ToList() : Backbones.Family(family).Variants;
        }
        catch (ArgumentException e)
        {
            error.WriteLine($"error: --family: {e.Message}");
            return 2;
        }
        var rows = measure ? Measure(variants, cachePath, error) : variants.Select(v => new Row(v, null)).ToList();
        if (json) WriteJson(rows, output);
        else WriteTable(rows, output);
        return 0;
    }

    static List<Row> Measure(IReadOnlyList<BackboneVariant> variants, string cachePath, TextWriter error)
    {
        var cache = MacCache.Load(cachePath, error);
        var rows = new List<Row>();
        bool added = false;
        foreach (var v in variants)
        {
            string key = MacCache.Key(v);
            if (!cache.TryGetValue(key, out long macs))
            {
                int h = v.Pretrained.Height, w = v.Pretrained.Width;
                error.Write($"models: measuring MACs of {v.Name} (one forward at {h}x{w})... ");
                var sw = Stopwatch.StartNew();
                using (var model = Backbones.Create(v.Name)) macs = MacCounter.Count(model, h, w);
                error.WriteLine($"{macs / 1e9:F3} G in {sw.Elapsed.TotalSeconds:F1} s");
                cache[key] = macs;
                added = true;
            }
            rows.Add(new Row(v, macs));
        }
        if (added) MacCache.Save(cachePath, cache, error);
        return rows;
    }

    const string Dash = "—";

    static string Num(double? v, string format) => v is { } d ? d.ToString(format, CultureInfo.InvariantCulture) : Dash;

    static void WriteTable(IReadOnlyList<Row> rows, TextWriter output)
    {
        string[] header = { "variant", "family", "params", "GMACs (ours)", "GMACs (paper)", "top-1 % (paper)", "input", "crop", "pretrained (--pretrained TAG)" };
        var cells = rows.Select(r => new[]
        {
            r.Variant.Name,
            r.Variant.Family,
            r.Variant.ParameterCount.ToString("N0", CultureInfo.InvariantCulture),
            Num(r.Macs / 1e9, "F2"),
            Num(r.Variant.PaperGMacs, "0.0#"),
            Num(r.Variant.PaperTop1, "F1") + (r.Variant.PaperNote is null ? "" : "*"),
            $"{r.Variant.Pretrained.Height}x{r.Variant.Pretrained.Width}",
            r.Variant.Pretrained.CropPct.ToString("0.0##", CultureInfo.InvariantCulture),
            PretrainedCatalog.Of(r.Variant.Name) is { Count: > 0 } tags ? string.Join(", ", tags.Select(t => t.Tag)) : Dash,
        }).ToList();
        var widths = header.Select((h, c) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(row => row[c].Length))).ToArray();
        bool[] right = { false, false, true, true, true, true, true, true, false };
        string Line(string[] row) => string.Join("  ", row.Select((s, c) => right[c] ? s.PadLeft(widths[c]) : s.PadRight(widths[c]))).TrimEnd();
        output.WriteLine(Line(header));
        foreach (var row in cells) output.WriteLine(Line(row));
        foreach (var note in rows.Where(r => r.Variant.PaperNote is not null))
            output.WriteLine($"* {note.Variant.Name}: {note.Variant.PaperNote}");
        output.WriteLine("GMACs: multiply-accumulates of one forward at the default input (convolutions, linear layers and matrix " +
                         "products; element-wise operations not counted), which is what the papers call FLOPs. " + Dash + ": not measured or not in the paper.");
    }

    static void WriteJson(IReadOnlyList<Row> rows, TextWriter output)
    {
        var array = new JsonArray();
        foreach (var r in rows)
        {
            var v = r.Variant;
            array.Add(new JsonObject
            {
                ["variant"] = v.Name,
                ["family"] = v.Family,
                ["parameters"] = v.ParameterCount,
                ["macs"] = r.Macs,
                ["paper_gmacs"] = v.PaperGMacs,
                ["paper_top1"] = v.PaperTop1,
                ["paper_note"] = v.PaperNote,
                ["input_height"] = v.Pretrained.Height,
                ["input_width"] = v.Pretrained.Width,
                ["crop_pct"] = v.Pretrained.CropPct,
                ["pretrained"] = new JsonArray(PretrainedCatalog.Of(v.Name).Select(c => (JsonNode)new JsonObject
                {
                    ["tag"] = c.Tag, ["url"] = c.Url, ["bytes"] = c.Bytes, ["sha256"] = c.Sha256, ["resolution"] = c.Resolution, ["classes"] = c.Classes,
                    ["cached"] = File.Exists(PretrainedWeights.CachePath(c)),
                }).ToArray()),
                ["interpolation"] = v.Pretrained.Interpolation,
            });
        }
        output.WriteLine(array.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary><c>$XDG_CACHE_HOME/mlnetext/macs.json</c>, or <c>~/.cache/mlnetext/macs.json</c>.</summary>
    internal static string DefaultCachePath()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrEmpty(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "mlnetext", "macs.json");
    }
}

/// <summary>The measured-MACs cache: a JSON object <c>{"entries": {key: macs}}</c>. A missing file is empty; an
/// unreadable one is reported and replaced. Written atomically (temporary file, then rename).</summary>
internal static class MacCache
{
    /// <summary>variant | input size | library version | hash of the keyword arguments: a rebuilt library or an edited
    /// variant row never reuses a stale number.</summary>
    public static string Key(BackboneVariant v)
    {
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(v.Kwargs)))[..12].ToLowerInvariant();
        return $"{v.Name}|{v.Pretrained.Height}x{v.Pretrained.Width}|{LibraryInfo.Version}|{hash}";
    }

    public static Dictionary<string, long> Load(string path, TextWriter error)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!File.Exists(path)) return result;
        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is JsonObject root && root["entries"] is JsonObject entries)
            {
                foreach (var (key, value) in entries)
                    if (value is JsonValue jv && jv.TryGetValue(out long macs) && macs > 0) result[key] = macs;
                return result;
            }
            error.WriteLine($"models: ignoring the MAC cache '{path}': expected a JSON object with an \"entries\" object.");
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"models: ignoring the MAC cache '{path}': {e.Message}");
        }
        return result;
    }

    public static void Save(string path, Dictionary<string, long> entries, TextWriter error)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            // merge with what another run may have written meanwhile
            var merged = Load(path, TextWriter.Null);
            foreach (var (k, v) in entries) merged[k] = v;
            var obj = new JsonObject();
            foreach (var (k, v) in merged.OrderBy(kv => kv.Key, StringComparer.Ordinal)) obj[k] = v;
            var text = new JsonObject { ["entries"] = obj }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
            Serialization.AtomicFile.WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the listing is still right; only the next run is slower
            error.WriteLine($"models: could not write the MAC cache '{path}': {e.Message}");
        }
    }
}

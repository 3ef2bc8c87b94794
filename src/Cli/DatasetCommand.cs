using System.Collections.Concurrent;
using System.CommandLine;
using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.Cli;

/// <summary>`mlnetext dataset --data DIR [--val DIR]`: classes in label order with image counts per split, the image
/// size range, the photos stored rotated (an EXIF orientation: upright in training, as stored in plain ML.NET), and
/// every unreadable file with its reason. Every image is fully decoded (at reduced JPEG scale) so truncated files are
/// found too.</summary>
internal static class DatasetCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data")
        {
            Description = "A folder with one sub-folder per class (or train/ and val/ sub-folders), or a CSV/TSV of path,label",
            Required = true,
        };
        var val = new Option<string?>("--val") { Description = "A validation folder with the same class sub-folders" };
        var cmd = new Command("dataset", "Inspect an image dataset: classes, counts per split, image sizes, photos stored rotated and unreadable files.") { data, val };
        cmd.SetAction(r => Run(r.GetValue(data)!, r.GetValue(val), Console.Out, Console.Error));
        return cmd;
    }

    internal static int Run(string data, string? val, TextWriter output, TextWriter error)
    {
        ImageDataset train;
        ImageDataset? valSet;
        try
        {
            if (File.Exists(data) && (data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || data.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase)))
            {
                train = ImageDataset.FromCsv(data);
                valSet = val == null ? null : File.Exists(val) ? ImageDataset.FromCsv(val, train.Classes) : ImageDataset.FromFolder(val, train.Classes);
            }
            else (train, valSet) = ImageDataset.FromFolders(data, val);
        }
        catch (DatasetException e)
        {
            error.WriteLine($"error: {e.Message}");
            return 1;
        }

        var parts = new List<(string Name, ImageDataset Set)> { ("train", train) };
        if (valSet != null) parts.Add(("val", valSet));
        output.WriteLine($"Dataset: {train.Source}");
        if (valSet != null) output.WriteLine($"Validation: {valSet.Source}");
        else output.WriteLine("Validation: none (training splits off a stratified, seeded validation set)");

        // Decode everything once: sizes and unreadable files.
        var unreadable = new ConcurrentBag<DatasetIssue>();
        var sizes = new ConcurrentBag<(int W, int H)>();
        var rotated = new ConcurrentBag<string>();
        var readable = parts.Select(p => new int[p.Set.Classes.Count]).ToArray();
        for (int pi = 0; pi < parts.Count; pi++)
        {
            var counts = readable[pi];
            Parallel.ForEach(parts[pi].Set.Items, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, item =>
            {
                try
                {
                    var bytes = item.ReadBytes();
                    var info = ImageDecoder.ReadInfo(bytes);
                    ImageDecoder.Decode(bytes, 1, 1); // smallest DCT scale: still reads every scan, so truncation shows
                    sizes.Add((info.Width, info.Height));
                    if (info.Orientation != 1) rotated.Add(item.Source);
                    Interlocked.Increment(ref counts[item.Label]);
                }
                catch (Exception e) when (ImageDecodeException.IsImageProblem(e))
                {
                    unreadable.Add(new DatasetIssue(item.Source, e.Message));
                }
            });
        }

        output.WriteLine($"Classes ({train.Classes.Count}, label order):");
        int width = Math.Max(5, train.Classes.Max(c => c.Length));
        output.WriteLine($"  {"label",5}  {"class".PadRight(width)}  " + string.Join("  ", parts.Select(p => $"{p.Name,7}")));
        for (int c = 0; c < train.Classes.Count; c++)
            output.WriteLine($"  {c,5}  {train.Classes[c].PadRight(width)}  " + string.Join("  ", readable.Select(r => $"{r[c],7}")));
        output.WriteLine($"  {"",5}  {"total".PadRight(width)}  " + string.Join("  ", readable.Select(r => $"{r.Sum(),7}")));

        if (sizes.IsEmpty) output.WriteLine("Image sizes: no readable images");
        else
        {
            var s = sizes.ToArray();
            var smallest = s.MinBy(x => (long)x.W * x.H);
            var largest = s.MaxBy(x => (long)x.W * x.H);
            output.WriteLine($"Image sizes: width {s.Min(x => x.W)}..{s.Max(x => x.W)}, height {s.Min(x => x.H)}..{s.Max(x => x.H)} " +
                             $"(smallest {smallest.W}x{smallest.H}, largest {largest.W}x{largest.H})");
        }

        if (!rotated.IsEmpty)
        {
            var shown = rotated.Order(StringComparer.Ordinal).Take(3).ToList();
            output.WriteLine($"Stored rotated: {rotated.Count} {(rotated.Count == 1 ? "image carries" : "images carry")} an EXIF orientation " +
                             $"({string.Join(", ", shown)}{(rotated.Count > shown.Count ? ", ..." : "")}). Training and MLNetExt's scoring " +
                             "turn them upright; ML.NET's LoadImages (a model.zip's ImagePath input) reads them as stored, sideways " +
                             "or mirrored: serve such photos through MLNetExt (predict, OnnxImageScorer) or save them upright.");
        }

        var issues = parts.SelectMany(p => p.Set.Issues).Concat(unreadable).DistinctBy(i => (i.Path, i.Line))
            .OrderBy(i => i.Path, StringComparer.Ordinal).ThenBy(i => i.Line).ToList();
        output.WriteLine($"Unreadable files: {issues.Count}");
        foreach (var i in issues) output.WriteLine($"  {i}");

        var emptyAfterDecode = new List<string>();
        for (int pi = 0; pi < parts.Count; pi++)
            for (int c = 0; c < train.Classes.Count; c++)
                if (readable[pi][c] == 0 && parts[pi].Set.CountPerClass()[c] > 0)
                    emptyAfterDecode.Add($"{parts[pi].Name}/{train.Classes[c]}");
        if (emptyAfterDecode.Count > 0)
        {
            error.WriteLine($"error: no readable images left in: {string.Join(", ", emptyAfterDecode)}.");
            return 1;
        }
        return 0;
    }
}

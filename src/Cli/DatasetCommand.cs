using System.Collections.Concurrent;
using System.CommandLine;
using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.Cli;

/// <summary>`mlnetext dataset --data DIR [--val DIR]`: classes in label order with image counts per split, the image
/// size range, the photos stored rotated (an EXIF orientation: upright in training, as stored in plain ML.NET), the
/// same photo more than once (identical files or resized/re-encoded copies; across splits or classes first), and
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
        var cmd = new Command("dataset", "Inspect an image dataset: classes, counts per split, image sizes, photos stored rotated, duplicates and unreadable files.") { data, val };
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
        var fingerprints = new ConcurrentBag<(int Part, int Index, ImageFingerprint Print)>();
        var readable = parts.Select(p => new int[p.Set.Classes.Count]).ToArray();
        for (int pi = 0; pi < parts.Count; pi++)
        {
            var counts = readable[pi];
            var (split, set) = parts[pi];
            int part = pi;
            Parallel.ForEach(set.Items, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, (item, _, index) =>
            {
                try
                {
                    var bytes = item.ReadBytes();
                    var info = ImageDecoder.ReadInfo(bytes);
                    // a reduced DCT scale still reads every scan, so truncation shows; 64 px keep the difference hash steady
                    var image = ImageDecoder.Decode(bytes, 64, 64);
                    fingerprints.Add((part, (int)index, ImageFingerprint.Of(split, item.Source, set.Classes[item.Label], bytes, image)));
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

        var perClass = readable[0];
        int most = Array.IndexOf(perClass, perClass.Max()), fewest = Array.IndexOf(perClass, perClass.Min());
        if (perClass[fewest] > 0 && perClass[most] >= ImbalanceRatio * perClass[fewest])
            output.WriteLine($"Imbalanced: '{train.Classes[most]}' has {perClass[most]} training images, '{train.Classes[fewest]}' {perClass[fewest]} " +
                             $"({(double)perClass[most] / perClass[fewest]:0.#}x): train with --class-weights balanced (every class weighs alike in the loss) " +
                             "and --monitor macro_f1 (the kept epoch does best on every class, not on the largest).");

        int validation = valSet != null ? readable[1].Sum() : (int)Math.Round(readable[0].Sum() * DefaultValidationFraction);
        if (validation is > 0 and < SmallValidation)
        {
            string images = $"{validation} image{(validation == 1 ? "" : "s")}";
            output.WriteLine($"Small validation set: {(valSet != null ? images : $"training's {DefaultValidationFraction:0%} split holds out about {images}")}, " +
                             $"so one image moves top-1 by {100.0 / validation:0.#} points: the kept epoch and the scores follow chance at that size; " +
                             "a few hundred validation images make them trustworthy, and `mlnetext cross-validate` scores every image with a model that never trained on it.");
        }

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

        WriteDuplicates(fingerprints.OrderBy(f => f.Part).ThenBy(f => f.Index).Select(f => f.Print).ToList(), valSet == null, output);

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

    /// <summary>The duplicate groups, the most harmful first (different classes, then train and val), at most
    /// <see cref="MaxDuplicateLines"/> of them.</summary>
    static void WriteDuplicates(IReadOnlyList<ImageFingerprint> images, bool autoSplit, TextWriter output)
    {
        var groups = ImageDuplicates.Find(images);
        if (groups.Count == 0)
        {
            output.WriteLine("Duplicates: none (no identical files, no resized or re-encoded copies)");
            return;
        }
        int identical = groups.Count(g => g.Identical);
        output.WriteLine($"Duplicates: {groups.Count} {(groups.Count == 1 ? "photo is" : "photos are")} stored more than once " +
                         $"({identical} only as identical files, {groups.Count - identical} with resized or re-encoded copies)" +
                         (autoSplit ? "; training's validation split may put copies on both sides, counting them in its scores" : ""));
        foreach (var g in groups.Take(MaxDuplicateLines))
        {
            var notes = new List<string> { g.Identical ? "identical" : "look alike" };
            if (g.ConflictingLabels) notes.Add($"labelled {string.Join(" and ", g.Images.Select(i => $"'{i.Class}'").Distinct())} (at most one is right)");
            if (g.CrossesSplits) notes.Add("in train and val (validation scores count a photo the model trained on)");
            var shown = g.Images.Take(MaxDuplicateFiles).Select(i => i.Source).ToList();
            if (g.Images.Count > shown.Count) shown.Add($"and {g.Images.Count - shown.Count} more");
            output.WriteLine($"  {string.Join(", ", notes)}: {string.Join(", ", shown)}");
        }
        if (groups.Count > MaxDuplicateLines) output.WriteLine($"  ... and {groups.Count - MaxDuplicateLines} more");
    }

    const int MaxDuplicateLines = 20, MaxDuplicateFiles = 8;

    /// <summary>How many times the smallest class the largest must hold to be called imbalanced, and the validation size
    /// below which its scores are noise (as the trainer's notes); the share training holds out by default.</summary>
    const int ImbalanceRatio = 5, SmallValidation = 50;
    const double DefaultValidationFraction = 0.2;
}

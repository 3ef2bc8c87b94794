using System.Text;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Data;

/// <summary>A dataset that cannot be used (empty, a class without images, a single class, unreadable listing...).
/// The message names the folder or file.</summary>
public sealed class DatasetException(string message) : Exception(message);

/// <summary>A file that was left out, with the reason; <see cref="Line"/> is set for CSV rows.</summary>
public sealed record DatasetIssue(string Path, string Reason, int? Line = null)
{
    /// <summary>"path (line N): reason".</summary>
    public override string ToString() => Line is int l ? $"{Path} (line {l}): {Reason}" : $"{Path}: {Reason}";
}

/// <summary>One sample: a file path, encoded bytes, or an already decoded image, and its class index.</summary>
public sealed record ImageItem(string Name, int Label, string? Path = null, byte[]? Bytes = null, RgbImage? Image = null)
{
    /// <summary>How messages, reports and evaluation results name the item: its file path, else its name.</summary>
    public string Source => Path ?? Name;

    /// <summary>The encoded bytes (read from disk when the item is a path).</summary>
    public byte[] ReadBytes() => Bytes ?? (Path != null ? ImageFiles.ReadAllBytes(Path) : throw new InvalidOperationException($"Item {Name} has no encoded bytes."));
}

/// <summary>A labelled image collection: classes (index = label, in order), items and the files left out while
/// listing. Built from a folder of class sub-folders, a train/val layout, a CSV/TSV of path,label or an in-memory list.</summary>
public sealed class ImageDataset
{
    /// <summary>Where the items came from (folder, CSV file or a name), used in messages.</summary>
    public string Source { get; }
    /// <summary>Class names; an item's label is an index into this list.</summary>
    public IReadOnlyList<string> Classes { get; }
    /// <summary>The labelled images, in order.</summary>
    public IReadOnlyList<ImageItem> Items { get; }
    /// <summary>Files left out while listing (empty, unsupported format, missing CSV targets...).</summary>
    public IReadOnlyList<DatasetIssue> Issues { get; }

    /// <summary>A dataset of <paramref name="items"/> labelled by index into <paramref name="classes"/>; <paramref name="issues"/> lists what was skipped while building it.</summary>
    public ImageDataset(string source, IReadOnlyList<string> classes, IReadOnlyList<ImageItem> items, IReadOnlyList<DatasetIssue>? issues = null)
    {
        // Class names travel into model metadata, reports and generated code: checked here, before any training.
        foreach (var c in classes)
        {
            if (string.IsNullOrWhiteSpace(c)) throw new DatasetException($"{source}: a class name is empty; every class needs a name.");
            if (c.Any(char.IsControl)) throw new DatasetException($"{source}: class name '{c.ReplaceLineEndings("\\n")}' contains a line break or another control character.");
        }
        var twice = classes.GroupBy(c => c, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new DatasetException($"{source}: class '{twice.Key}' is listed more than once.");
        Source = source;
        Classes = classes;
        Items = items;
        Issues = issues ?? [];
        foreach (var it in items)
            if (it.Label < 0 || it.Label >= classes.Count)
                throw new DatasetException($"{source}: item {it.Name} has label {it.Label}, outside 0..{classes.Count - 1}.");
    }

    /// <summary>Number of items.</summary>
    public int Count => Items.Count;

    /// <summary>Number of items per class, in class order.</summary>
    public int[] CountPerClass()
    {
        var c = new int[Classes.Count];
        foreach (var it in Items) c[it.Label]++;
        return c;
    }

    /// <summary>At most <paramref name="max"/> items at an even stride over the set (all of a smaller set), so that every
    /// class is met whatever the item order: e.g. the images that calibrate an INT8 export.</summary>
    internal IReadOnlyList<ImageItem> EvenSample(int max)
    {
        int n = Math.Min(Count, max);
        return Enumerable.Range(0, n).Select(i => Items[(int)((long)i * Count / n)]).ToList();
    }

    /// <summary>The items at the given indices (same classes).</summary>
    public ImageDataset Subset(IEnumerable<int> indices, string? source = null) => new(source ?? Source, Classes, indices.Select(i => Items[i]).ToList(), Issues);

    static readonly string[] ValNames = ["val", "valid", "validation"];

    /// <summary>The file extensions listed without reading their header are none: every file is identified by its
    /// leading bytes, so a GIF named .jpg is still read; hidden files (".name") are ignored.</summary>
    public static ImageDataset FromFolder(string root, IReadOnlyList<string>? classes = null)
    {
        var dir = new DirectoryInfo(root);
        if (!dir.Exists) throw new DatasetException($"Dataset folder '{root}' does not exist.");
        var folders = dir.GetDirectories().Where(d => !d.Name.StartsWith('.')).OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
        if (folders.Count == 0)
            throw new DatasetException($"Dataset folder '{dir.FullName}' has no class sub-folders; expected one sub-folder per class (e.g. {root}/cats/*.jpg).");
        var names = classes ?? folders.Select(f => f.Name).ToList();
        if (classes == null && names.Count == 1)
            throw new DatasetException($"Dataset folder '{dir.FullName}' has only one class ('{names[0]}'); a classifier needs at least two class sub-folders.");
        var index = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        var items = new List<ImageItem>();
        var issues = new List<DatasetIssue>();
        foreach (var f in folders)
        {
            if (!index.TryGetValue(f.Name, out int label))
                throw new DatasetException($"Folder '{f.FullName}' is a class not present in the training set (classes: {string.Join(", ", names)}).");
            int before = items.Count, issuesBefore = issues.Count;
            foreach (var file in ImageFiles.Walk(f.FullName, (path, reason) => issues.Add(new DatasetIssue(path, reason))))
            {
                var reason = HeaderProblem(file);
                if (reason != null) issues.Add(new DatasetIssue(file, reason));
                else items.Add(new ImageItem(Path.GetRelativePath(dir.FullName, file), label, file));
            }
            if (items.Count == before)
                throw new DatasetException($"Class folder '{f.FullName}' contains no images ({ImageDecoder.Supported}){LeftOut(issues, issuesBefore)}.");
        }
        return new ImageDataset(dir.FullName, names, items, issues);
    }

    /// <summary>"; found only N files that were left out: a: why, b: why, ..." (the first three) for an error about a
    /// folder without images, so the user sees what was there instead; empty when nothing was left out.</summary>
    static string LeftOut(List<DatasetIssue> issues, int from)
    {
        int n = issues.Count - from;
        if (n == 0) return "";
        var shown = issues.Skip(from).Take(3).Select(i => $"{Path.GetFileName(i.Path)}: {i.Reason}");
        return $"; found only {n} file{(n == 1 ? "" : "s")} that {(n == 1 ? "was" : "were")} left out: {string.Join("; ", shown)}{(n > 3 ? "; ..." : "")}";
    }

    /// <summary>The image files (JPEG, PNG, WebP, GIF, BMP, judged by their first bytes) under <paramref name="folder"/> and
    /// its sub-folders, in ordinal path order; hidden names (".x") are left out and directory links are not followed.
    /// With <paramref name="namedLikeImages"/>, also the files whose name says image (.jpg, .png, .tif, .heic, ...) but
    /// whose bytes are not a readable one — an empty download, a web page saved as .jpg — for a caller that reports
    /// each file's outcome, so that they are not silently missing.</summary>
    /// <exception cref="DatasetException">The folder does not exist.</exception>
    public static IReadOnlyList<string> FindImages(string folder, bool namedLikeImages = false)
    {
        if (!Directory.Exists(folder)) throw new DatasetException($"Image folder '{folder}' does not exist.");
        return ImageFiles.Walk(folder).Where(f => HeaderProblem(f) is null || (namedLikeImages && ImageFiles.NamedLikeImage(f))).ToList();
    }

    /// <summary>Throws a <see cref="DatasetException"/> unless the dataset's classes are a model's (same names, same order).</summary>
    internal void RequireClasses(IReadOnlyList<string> modelClasses)
    {
        if (!Classes.SequenceEqual(modelClasses))
            throw new DatasetException($"The dataset's classes [{string.Join(", ", Classes)}] are not the model's [{string.Join(", ", modelClasses)}] (same names in the same order are needed).");
    }

    /// <summary>Reads the first bytes of a file: null when it looks like a supported image, else the reason.</summary>
    internal static string? HeaderProblem(string path)
    {
        try
        {
            Span<byte> head = stackalloc byte[ImageDecoder.HeadBytes];
            int n = ImageFiles.ReadHead(path, head);
            return ImageDecoder.UnsupportedReason(head.Slice(0, n));
        }
        catch (ImageDecodeException e) { return e.Message; } // not a readable regular file: ImageFiles says why
        catch (FileNotFoundException) { return "does not exist"; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot be read ({e.Message})";
        }
    }

    /// <summary>A training folder and, when given or present as a <c>val</c>/<c>valid</c>/<c>validation</c> sibling
    /// of a <c>train</c> sub-folder, a validation folder with the same classes.</summary>
    public static (ImageDataset Train, ImageDataset? Val) FromFolders(string data, string? val = null)
    {
        if (!Directory.Exists(data)) throw new DatasetException($"Dataset folder '{data}' does not exist.");
        string trainDir = data;
        if (val == null)
        {
            var trainSub = Path.Combine(data, "train");
            var valSub = ValNames.Select(n => Path.Combine(data, n)).FirstOrDefault(Directory.Exists);
            if (Directory.Exists(trainSub))
            {
                trainDir = trainSub;
                val = valSub;
            }
        }
        var train = FromFolder(trainDir);
        if (val == null) return (train, null);
        if (!Directory.Exists(val)) throw new DatasetException($"Validation folder '{val}' does not exist.");
        return (train, FromFolder(val, train.Classes));
    }

    /// <summary>A CSV (comma) or TSV (tab, for .tsv files) of <c>path,label</c> rows, paths relative to the file's
    /// folder; an optional header row is recognised, and with one the rows may have more columns, the path and label
    /// being those it names (so cross-validation's out-of-fold.csv, with its labels corrected, trains as it is). Rows
    /// whose file is missing or unreadable are reported with their line number. Classes are the sorted distinct labels unless <paramref name="classes"/> is given.</summary>
    public static ImageDataset FromCsv(string csvPath, IReadOnlyList<string>? classes = null)
    {
        if (!File.Exists(csvPath)) throw new DatasetException($"Label file '{csvPath}' does not exist.");
        char sep = csvPath.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase) ? '\t' : ',';
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(csvPath))!;
        var rows = new List<(string Path, string Label, int Line)>();
        var issues = new List<DatasetIssue>();
        int lineNo = 0, width = 2, pathColumn = 0, labelColumn = 1;
        foreach (var raw in File.ReadLines(csvPath))
        {
            lineNo++;
            var line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0 || line.StartsWith('#')) continue;
            var fields = SplitRow(line, sep);
            // a header names the columns: then the path and label columns may sit among others (out-of-fold.csv, a
            // spreadsheet's export)
            if (lineNo == 1 && HeaderColumns(fields) is var (pc, lc))
            {
                (width, pathColumn, labelColumn) = (fields.Count, pc, lc);
                continue;
            }
            if (fields.Count != width)
            {
                issues.Add(new DatasetIssue(csvPath, width == 2
                    ? $"expected 2 fields (path{(sep == '\t' ? "<TAB>" : ",")}label), found {fields.Count}"
                    : $"expected {width} fields as the header has, found {fields.Count}", lineNo));
                continue;
            }
            var (p, l) = (fields[pathColumn].Trim(), fields[labelColumn].Trim());
            if (p.Length == 0) { issues.Add(new DatasetIssue(csvPath, "empty path", lineNo)); continue; }
            if (l.Length == 0) { issues.Add(new DatasetIssue(csvPath, $"'{p}' has an empty label", lineNo)); continue; }
            rows.Add((p, l, lineNo));
        }
        var names = classes ?? rows.Select(r => r.Label).Distinct().OrderBy(s => s, StringComparer.Ordinal).ToList();
        var index = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => p.i, StringComparer.Ordinal);
        var items = new List<ImageItem>();
        foreach (var (p, l, ln) in rows)
        {
            var full = Path.IsPathRooted(p) ? p : Path.Combine(baseDir, p);
            if (!index.TryGetValue(l, out int label)) { issues.Add(new DatasetIssue(full, $"label '{l}' is not one of the classes ({string.Join(", ", names)})", ln)); continue; }
            if (!File.Exists(full)) { issues.Add(new DatasetIssue(full, "file not found", ln)); continue; }
            var reason = HeaderProblem(full);
            if (reason != null) { issues.Add(new DatasetIssue(full, reason, ln)); continue; }
            items.Add(new ImageItem(p, label, full));
        }
        if (items.Count == 0)
            throw new DatasetException($"Label file '{csvPath}' lists no readable images ({issues.Count} rows reported" +
                (issues.Count == 0 ? ")." : $", e.g. {string.Join("; ", issues.Take(3))}).") +
                (rows.Count == 0 && issues.Count > 0 ? $" Rows must be path{(sep == '\t' ? "<TAB>" : ",")}label, paths relative to the file's folder." : ""));
        var ds = new ImageDataset(Path.GetFullPath(csvPath), names, items, issues);
        CheckClasses(ds, $"label file '{csvPath}'");
        return ds;
    }

    /// <summary>The path and label columns a header row names (path, file, filename, image, img or source; label, class
    /// or category), or null when the row is not such a header.</summary>
    static (int Path, int Label)? HeaderColumns(List<string> fields)
    {
        var names = fields.Select(f => f.Trim().ToLowerInvariant()).ToList();
        int path = names.FindIndex(n => n is "path" or "file" or "filename" or "image" or "img" or "source");
        int label = names.FindIndex(n => n is "label" or "class" or "category");
        return path >= 0 && label >= 0 ? (path, label) : null;
    }

    static List<string> SplitRow(string line, char sep)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; }
                else if (ch == '"') quoted = false;
                else sb.Append(ch);
            }
            else if (ch == '"') quoted = true;
            else if (ch == sep) { fields.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(ch);
        }
        fields.Add(sb.ToString());
        return fields;
    }

    /// <summary>An in-memory list of (image, label) where an image is a file path, encoded bytes or a decoded
    /// <see cref="RgbImage"/>.</summary>
    public static ImageDataset FromList(IReadOnlyList<string> classes, IEnumerable<ImageItem> items, string source = "in-memory list")
    {
        var list = items.ToList();
        if (list.Count == 0) throw new DatasetException($"Dataset '{source}' is empty.");
        var ds = new ImageDataset(source, classes, list);
        CheckClasses(ds, $"dataset '{source}'");
        return ds;
    }

    static void CheckClasses(ImageDataset ds, string what)
    {
        if (ds.Classes.Count < 2) throw new DatasetException($"The {what} has {ds.Classes.Count} class(es); a classifier needs at least two.");
        var counts = ds.CountPerClass();
        var empty = ds.Classes.Where((c, i) => counts[i] == 0).ToList();
        if (empty.Count > 0) throw new DatasetException($"The {what}: class(es) {string.Join(", ", empty)} have no images.");
    }

    /// <summary>A stratified, seeded train/validation split: in each class, a shuffled round(n·fraction) items (at
    /// least one when the class has two or more) go to validation. Item order within each part follows this dataset.</summary>
    public (ImageDataset Train, ImageDataset Val) Split(double valFraction, ulong seed)
    {
        if (valFraction is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(valFraction), valFraction, "validation fraction must lie in (0, 1)");
        var byClass = Enumerable.Range(0, Classes.Count).Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < Items.Count; i++) byClass[Items[i].Label].Add(i);
        var val = new List<int>();
        for (int c = 0; c < byClass.Length; c++)
        {
            var idx = byClass[c];
            var rng = Rng.For(seed, c);
            rng.Shuffle(idx);
            int n = (int)Math.Round(idx.Count * valFraction, MidpointRounding.AwayFromZero);
            if (idx.Count >= 2) n = Math.Clamp(n, 1, idx.Count - 1);
            else n = 0;
            val.AddRange(idx.Take(n));
        }
        var valSet = val.ToHashSet();
        var trainIdx = Enumerable.Range(0, Items.Count).Where(i => !valSet.Contains(i)).ToList();
        val.Sort();
        return (Subset(trainIdx, Source + " [train split]"), Subset(val, Source + " [val split]"));
    }

    /// <summary>A stratified, seeded partition into <paramref name="folds"/> parts for cross-validation. The
    /// <paramref name="together"/> groups of item indices (copies of one photo) each go whole into one part, the
    /// largest first, each to the part with the fewest images; then each class's other items, shuffled, each to the part
    /// with the fewest images of its class (ties: the fewest images, then the first part), so the parts differ little in
    /// size and in each class. Part f is held out and the others train; every class needs images in two parts or more,
    /// so each part's training set has every class. Item order within each set follows this dataset.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than 2 folds, or more folds than images.</exception>
    /// <exception cref="DatasetException">A class with fewer than two images, or all of whose images are copies of one
    /// photo (named, with the count).</exception>
    public IReadOnlyList<(ImageDataset Train, ImageDataset HeldOut)> Folds(int folds, ulong seed, IReadOnlyList<IReadOnlyList<int>>? together = null)
    {
        if (folds < 2 || folds > Count)
            throw new ArgumentOutOfRangeException(nameof(folds), folds, $"cross-validation needs 2 to {Count} folds (the number of images)");
        CheckClasses(this, $"dataset '{Source}'");
        var counts = CountPerClass();
        var few = Enumerable.Range(0, Classes.Count).Where(c => counts[c] < 2).Select(c => $"{Classes[c]} ({counts[c]})").ToList();
        if (few.Count > 0)
            throw new DatasetException($"Cross-validation holds each image out once and trains on the rest, so every class needs at least two images; {Source} has {string.Join(", ", few)}.");
        var fold = Enumerable.Repeat(-1, Count).ToArray();
        var size = new int[folds];
        var perClass = new int[folds, Classes.Count];
        void Put(int item, int f)
        {
            fold[item] = f;
            size[f]++;
            perClass[f, Items[item].Label]++;
        }
        var groups = (together ?? []).Select(g => g.Distinct().ToList()).Where(g => g.Count > 1).ToList();
        Rng.For(seed, -1).Shuffle(groups);
        foreach (var g in groups.OrderByDescending(g => g.Count))   // stable: the shuffle orders groups of one size
        {
            if (g.Any(i => fold[i] >= 0)) throw new ArgumentException("An item is in two groups of copies.", nameof(together));
            int f = Enumerable.Range(0, folds).MinBy(f => size[f]);
            foreach (int i in g) Put(i, f);
        }
        for (int c = 0; c < Classes.Count; c++)
        {
            var idx = Enumerable.Range(0, Count).Where(i => Items[i].Label == c && fold[i] < 0).ToList();
            Rng.For(seed, c).Shuffle(idx);
            foreach (int i in idx) Put(i, Enumerable.Range(0, folds).MinBy(f => (perClass[f, c], size[f], f)));
        }
        var stuck = Enumerable.Range(0, Classes.Count).Where(c => Enumerable.Range(0, folds).Count(f => perClass[f, c] > 0) < 2).ToList();
        if (stuck.Count > 0)
            throw new DatasetException($"Cross-validation must train on every class while holding some of its images out, but the images of " +
                $"{string.Join(", ", stuck.Select(c => $"{Classes[c]} ({counts[c]})"))} all fall in one fold: they are copies of one photo, and copies stay " +
                "together so no fold is scored on a photo it trained on; add other photos of that class.");
        return Enumerable.Range(0, folds).Select(f => (
            Subset(Enumerable.Range(0, Count).Where(i => fold[i] != f), $"{Source} [fold {f + 1}/{folds} training]"),
            Subset(Enumerable.Range(0, Count).Where(i => fold[i] == f), $"{Source} [fold {f + 1}/{folds} held out]"))).ToList();
    }
}

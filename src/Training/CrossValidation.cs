using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetExt.Data;
using MLNetExt.Imaging;
using MLNetExt.Serialization;

namespace MLNetExt.Training;

/// <summary>One image scored by the fold's model that never trained on it: its class probabilities (in the order of
/// the classes) and the fold that held it out (1-based).</summary>
public sealed record OutOfFoldPrediction(string Source, int Label, int Fold, IReadOnlyList<float> Probabilities)
{
    /// <summary>The predicted class: the most probable (the first on ties).</summary>
    public int Predicted
    {
        get
        {
            int best = 0;
            for (int j = 1; j < Probabilities.Count; j++) if (Probabilities[j] > Probabilities[best]) best = j;
            return best;
        }
    }
}

/// <summary>An image whose given label the out-of-fold scores doubt: another class is confidently predicted for it (its
/// probability reaches that class's threshold, the mean probability the models give to images labelled with it) and
/// is the most probable of the classes that do. <see cref="LabelProbability"/> is what the model that never saw the
/// image gives the label it has; the lower, the likelier a mistake in the labels (or an image that belongs to neither).</summary>
public sealed record LabelIssue(string Source, int Label, int Suggested, float LabelProbability, float SuggestedProbability, int Fold);

/// <summary>One fold of a cross-validation: how many images trained it, its scores on the images it held out, and its
/// training record (the held-out scores after each epoch). <see cref="Reused"/>: read from an earlier run's fold file
/// (same settings, same images) instead of trained again.</summary>
public sealed record CrossValidationFold(int Fold, int TrainCount, ClassificationMetrics HeldOut, TrainingHistory History, bool Reused);

/// <summary>The held-out scores after one epoch, averaged over the folds (and their spread): how long to train.</summary>
public sealed record CrossValidationEpoch(int Epoch, double Top1, double Top1StandardDeviation, double LogLoss);

/// <summary>
/// The result of <see cref="MLNet.ImageClassificationEstimator.CrossValidate"/>: every image scored once by a model
/// trained without it. <see cref="OutOfFold"/> pools those scores over the whole dataset (the estimate of how a model
/// trained this way does on new images of the kind the folder holds, and the steadiest one on a small dataset);
/// <see cref="Spread"/> gives the fold-to-fold variation; <see cref="Epochs"/> the mean held-out score after each epoch;
/// <see cref="LabelIssues"/> the images whose labels the scores doubt (confident learning, Northcutt et al. 2021).
/// </summary>
public sealed class CrossValidationResult
{
    internal CrossValidationResult(IReadOnlyList<string> classes, IReadOnlyList<CrossValidationFold> folds, IReadOnlyList<OutOfFoldPrediction> predictions)
    {
        Classes = classes;
        Folds = folds;
        Predictions = predictions;
        var probabilities = predictions.SelectMany(p => p.Probabilities).ToArray();
        var labels = predictions.Select(p => p.Label).ToArray();
        OutOfFold = ClassificationMetrics.Compute(probabilities, labels, classes);
        LabelIssues = CrossValidator.FindLabelIssues(predictions, classes.Count);

        int epochs = folds.Min(f => f.History.Epochs.Count);
        Epochs = Enumerable.Range(0, epochs).Select(e =>
        {
            var top1 = folds.Select(f => f.History.Epochs[e].Validation!.Top1).ToList();
            return new CrossValidationEpoch(e + 1, top1.Average(), StandardDeviation(top1), folds.Average(f => f.History.Epochs[e].Validation!.LogLoss));
        }).ToList();
    }

    /// <summary>The summary a results folder receives: metrics, spread, epochs and label issues (JSON).</summary>
    public const string SummaryFileName = "crossval.json";

    /// <summary>The per-image file a results folder receives: each image's out-of-fold prediction (CSV).</summary>
    public const string PredictionsFileName = "out-of-fold.csv";

    /// <summary>The page a results folder receives: the estimate, the curves per epoch, the folds, the out-of-fold
    /// confusion matrix and per-class table, and the label issues as thumbnails (HTML, self-contained).</summary>
    public const string ReportFileName = "crossval.html";

    /// <summary>The class names, in the order of the probabilities.</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>Each fold, in order.</summary>
    public IReadOnlyList<CrossValidationFold> Folds { get; }

    /// <summary>Every image of the dataset once, in the dataset's order, scored by the model that held it out.</summary>
    public IReadOnlyList<OutOfFoldPrediction> Predictions { get; }

    /// <summary>The metrics of all out-of-fold predictions together (their <see cref="ClassificationMetrics.Selective"/>:
    /// the threshold on <c>Score</c> to choose for new images like these).</summary>
    public ClassificationMetrics OutOfFold { get; }

    /// <summary>Images whose label the out-of-fold scores doubt, likeliest mistakes first (lowest probability of the
    /// given label).</summary>
    public IReadOnlyList<LabelIssue> LabelIssues { get; }

    /// <summary>The mean held-out scores after each epoch, over the folds.</summary>
    public IReadOnlyList<CrossValidationEpoch> Epochs { get; }

    /// <summary>The epoch whose mean held-out top-1 is highest (the earliest on ties).</summary>
    public int BestEpoch => Epochs.Aggregate((a, b) => b.Top1 > a.Top1 ? b : a).Epoch;

    /// <summary>Mean and sample standard deviation over the folds of a held-out metric (<c>top1</c>, <c>top5</c>,
    /// <c>macro_f1</c>, <c>log_loss</c>).</summary>
    public (double Mean, double StandardDeviation) Spread(string metric)
    {
        var values = Folds.Select(f => f.HeldOut.Get(metric)).ToList();
        return (values.Average(), StandardDeviation(values));
    }

    static double StandardDeviation(IReadOnlyList<double> v)
    {
        if (v.Count < 2) return 0;
        double mean = v.Average();
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1));
    }
}

/// <summary>
/// K-fold cross-validation: <see cref="ImageDataset.Folds"/> splits the data, copies of one photo
/// (<see cref="ImageDuplicates"/>) kept in one fold; each fold trains a model with the
/// options on the others for the full number of epochs (the last epoch is kept: choosing an epoch on the held-out
/// images would flatter them) and scores its held-out images once. With a results folder, each finished fold is
/// written there (<c>fold-K.json</c>, atomically) and a later run with the same settings and images reuses it, so an
/// interrupted cross-validation continues where it stopped; the summary goes to <c>crossval.json</c> and
/// <c>out-of-fold.csv</c>.
/// </summary>
internal static class CrossValidator
{
    const string Format = "mlnetext.cross-validation-fold";
    const int Version = 1;

    public static string FoldFileName(int fold) => $"fold-{fold}.json";

    public static CrossValidationResult Run(ImageClassificationOptions o, ImageDataset data, int folds, string? folder,
        Func<ImageClassificationOptions, ImageDataset, ImageDataset, CancellationToken, TrainingOutcome> train, CancellationToken cancel)
    {
        if (o.EarlyStoppingPatience is not null)
            throw new TrainingOptionException("EarlyStoppingPatience", "is not used by cross-validation: each fold trains every epoch and keeps the last, since " +
                "stopping on the held-out images would flatter their scores; the mean held-out score after each epoch shows where training stops paying");
        if (o.CalibrateScores)
            throw new TrainingOptionException("CalibrateScores", "is not used by cross-validation: a temperature fitted on the held-out images would flatter their scores");
        if (o.TeacherPath is not null)
            throw new TrainingOptionException("TeacherPath", "is not used by cross-validation: a teacher trained on these images has seen each fold's " +
                "held-out ones and would pass on what it learned from them, flattering their scores");
        if (o.ProcessGroup is not null) throw new TrainingOptionException("ProcessGroup", "is not supported by cross-validation: run it in one process");
        TrainingKnobs.Validate(o);
        // the folds' runs would each repeat the trainer's notes (bfloat16, imbalanced classes): each is said once
        if (o.Progress is { } progress)
        {
            var said = new HashSet<string>();
            o = o with
            {
                Progress = p =>
                {
                    bool first;
                    lock (said) first = p.Phase != TrainingPhase.Info || p.Message is null || said.Add(p.Message);
                    if (first) progress(p);
                },
            };
        }
        void Say(string text) => o.Progress?.Invoke(TrainingProgress.Note(text, o.Epochs));
        ulong seed = o.Seed ?? 0;
        Say($"Looking for copies of one photo among the {data.Count} images (they will share a fold)");
        var copies = Copies(data, o.Workers);
        if (copies.Count > 0)
            Say($"{copies.Count} photo(s) are stored more than once ({copies.Sum(g => g.Count)} files): each one's copies stay in one fold, " +
                "so no fold is scored on a photo it trained on");
        var parts = data.Folds(folds, seed, copies);
        var settings = TrainingKnobs.OptionsFingerprint(o);
        if (folder is not null) Directory.CreateDirectory(folder);

        TrainingInterruptedException Stopped(int f, TrainingHistory? history) => new(
            $"Cross-validation stopped in fold {f + 1} of {folds}" +
            (folder is null ? "." : $"; the {f} finished fold(s) are in '{folder}' and the same call continues from fold {f + 1}."),
            null, history ?? new TrainingHistory { Model = o.Model, Classes = data.Classes, Settings = new Dictionary<string, string>() });

        var results = new List<CrossValidationFold>();
        var scored = new OutOfFoldPrediction[data.Count];
        var indexOf = new Dictionary<ImageItem, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < data.Count; i++) indexOf[data.Items[i]] = i;
        for (int f = 0; f < folds; f++)
        {
            var (trainPart, heldOut) = parts[f];
            string? file = folder is null ? null : Path.Combine(folder, FoldFileName(f + 1));
            var fold = file is not null && File.Exists(file) ? Reuse(file, f + 1, folds, seed, settings, data.Classes, heldOut, Say) : null;
            if (fold is null)
            {
                Say($"Fold {f + 1}/{folds}: training on {trainPart.Count} images, scoring the {heldOut.Count} held out");
                // a stop asked for during the last step of a fold ends that fold's run normally: stop before the next
                if (cancel.IsCancellationRequested) throw Stopped(f, null);
                TrainingOutcome outcome;
                try { outcome = train(o with { CrossValidationFold = true, CheckpointDirectory = null, ResumeFrom = null }, trainPart, heldOut, cancel); }
                catch (TrainingInterruptedException e) { throw Stopped(f, e.History); }
                outcome.Model.Dispose();
                var eval = outcome.Validation!;
                fold = new Fold(outcome.History, eval.Probabilities, eval.Labels, eval.Sources, Reused: false);
                if (file is not null)
                {
                    AtomicFile.WriteAllBytes(file, Encoding.UTF8.GetBytes(FoldJson(fold, f + 1, folds, seed, settings, data.Classes)));
                    Say($"Fold {f + 1}/{folds} written to {file}");
                }
            }
            int classes = data.Classes.Count;
            var rows = Align(fold.Sources, fold.Labels, heldOut)
                ?? throw new InvalidOperationException($"Fold {f + 1}: the scored images do not follow the held-out set's order.");
            for (int k = 0; k < rows.Length; k++)
                scored[indexOf[heldOut.Items[rows[k]]]] = new OutOfFoldPrediction(fold.Sources[k], fold.Labels[k], f + 1, fold.Probabilities.AsSpan(k * classes, classes).ToArray());
            results.Add(new CrossValidationFold(f + 1, trainPart.Count, ClassificationMetrics.Compute(fold.Probabilities, fold.Labels, data.Classes), fold.History, fold.Reused));
        }
        // images that could not be decoded were skipped by their fold's evaluation (and reported by its training)
        var result = new CrossValidationResult(data.Classes, results, scored.Where(p => p is not null).ToList());
        if (folder is not null)
        {
            var bySource = data.Items.GroupBy(i => i.Source).ToDictionary(g => g.Key, g => g.First());
            CrossValidationFile.Write(folder, result, source => bySource.TryGetValue(source, out var item)
                ? item.Image ?? (item.Path is { } path ? ImageDecoder.TryDecodeFile(path, out _) : ImageDecoder.Decode(item.ReadBytes()))
                : null);
        }
        return result;
    }

    sealed record Fold(TrainingHistory History, float[] Probabilities, int[] Labels, string[] Sources, bool Reused);

    static string FoldJson(Fold fold, int index, int folds, ulong seed, JsonObject settings, IReadOnlyList<string> classes)
    {
        int c = classes.Count;
        return new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["fold"] = index,
            ["folds"] = folds,
            ["split_seed"] = seed,
            ["classes"] = new JsonArray(classes.Select(n => (JsonNode?)n).ToArray()),
            ["settings"] = settings.DeepClone(),
            ["held_out"] = new JsonArray(fold.Sources.Select((s, k) => (JsonNode?)new JsonArray(s, fold.Labels[k],
                new JsonArray(fold.Probabilities.AsSpan(k * c, c).ToArray().Select(p => (JsonNode?)p).ToArray()))).ToArray()),
            ["history"] = TrainingCheckpoint.HistoryToJson(fold.History),
        }.ToJsonString();
    }

    /// <summary>The fold stored in <paramref name="file"/> when it was made with these settings on these held-out
    /// images; otherwise null, with the reason said (the fold is then trained again and the file replaced).</summary>
    static Fold? Reuse(string file, int index, int folds, ulong seed, JsonObject settings, IReadOnlyList<string> classes, ImageDataset heldOut, Action<string> say)
    {
        string? why;
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
            int c = classes.Count;
            why = o["format"]?.GetValue<string>() != Format || o["version"]?.GetValue<int>() != Version ? "it is not a fold file of this version"
                : o["fold"]!.GetValue<int>() != index || o["folds"]!.GetValue<int>() != folds || o["split_seed"]!.GetValue<ulong>() != seed ? "it is from another split (folds or seed)"
                : !o["classes"]!.AsArray().Select(n => n!.GetValue<string>()).SequenceEqual(classes) ? "its classes differ"
                : !JsonNode.DeepEquals(o["settings"], settings) ? "its training settings differ"
                : null;
            if (why is null)
            {
                var rows = o["held_out"]!.AsArray().Select(r => r!.AsArray()).ToList();
                var sources = rows.Select(r => r[0]!.GetValue<string>()).ToArray();
                var labels = rows.Select(r => r[1]!.GetValue<int>()).ToArray();
                var probabilities = rows.SelectMany(r => r[2]!.AsArray().Select(p => p!.GetValue<float>())).ToArray();
                if (Align(sources, labels, heldOut) is null) why = "its held-out images differ";
                else if (probabilities.Length != sources.Length * c || probabilities.Any(p => !float.IsFinite(p)))
                    why = "its scores are incomplete";
                else
                {
                    var history = TrainingCheckpoint.HistoryFromJson(o["history"]!.AsObject(), classes);
                    say($"Fold {index}/{folds}: reused from {file} (same settings and images)");
                    return new Fold(history, probabilities, labels, sources, Reused: true);
                }
            }
        }
        catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            why = $"it cannot be read ({e.Message})";
        }
        say($"Fold {index}/{folds}: {file} is not reused: {why}; the fold is trained again");
        return null;
    }

    /// <summary>The groups of item indices that are copies of one photo (identical files, or resized or re-encoded; see
    /// <see cref="ImageDuplicates"/>), fingerprinted in parallel; images that cannot be decoded are left to the trainer
    /// to report.</summary>
    static List<IReadOnlyList<int>> Copies(ImageDataset data, int? workers)
    {
        var prints = new ImageFingerprint?[data.Count];
        Parallel.For(0, data.Count, new ParallelOptions { MaxDegreeOfParallelism = workers ?? Environment.ProcessorCount }, i =>
        {
            var item = data.Items[i];
            try
            {
                if (item.Image is { } image)   // in memory: the pixels are the content
                    prints[i] = ImageFingerprint.Of("", item.Source, "", image.Pixels, image);
                else
                {
                    var bytes = item.ReadBytes();
                    // a reduced decode keeps the difference hash steady (as `dataset` compares)
                    prints[i] = ImageFingerprint.Of("", item.Source, "", bytes, ImageDecoder.Decode(bytes, 64, 64));
                }
            }
            catch (Exception e) when (ImageDecodeException.IsImageProblem(e)) { }
        });
        var index = new Dictionary<ImageFingerprint, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < prints.Length; i++) if (prints[i] is { } p) index[p] = i;
        return ImageDuplicates.Find(index.Keys.ToList()).Select(g => (IReadOnlyList<int>)g.Images.Select(p => index[p]).Order().ToList()).ToList();
    }

    /// <summary>For each scored row, its index in <paramref name="heldOut"/>: the rows are the held-out items in order,
    /// less those that could not be decoded. Null when they are not.</summary>
    static int[]? Align(string[] sources, int[] labels, ImageDataset heldOut)
    {
        var rows = new int[sources.Length];
        int next = 0;
        for (int k = 0; k < sources.Length; k++)
        {
            while (next < heldOut.Count && heldOut.Items[next].Source != sources[k]) next++;
            if (next == heldOut.Count || heldOut.Items[next].Label != labels[k]) return null;
            rows[k] = next++;
        }
        return rows;
    }

    /// <summary>Confident learning's label issues: class j's threshold is the mean probability of j over the images
    /// labelled j; an image's confident class is the most probable of the classes whose probability reaches their
    /// threshold, and it is an issue when that class is not its label. Likeliest first: lowest probability of the label.</summary>
    internal static List<LabelIssue> FindLabelIssues(IReadOnlyList<OutOfFoldPrediction> predictions, int classes)
    {
        var sum = new double[classes];
        var count = new int[classes];
        foreach (var p in predictions)
        {
            sum[p.Label] += p.Probabilities[p.Label];
            count[p.Label]++;
        }
        var threshold = Enumerable.Range(0, classes).Select(j => count[j] > 0 ? sum[j] / count[j] : double.PositiveInfinity).ToArray();
        var issues = new List<LabelIssue>();
        foreach (var p in predictions)
        {
            int confident = -1;
            for (int j = 0; j < classes; j++)
                if (p.Probabilities[j] >= threshold[j] && (confident < 0 || p.Probabilities[j] > p.Probabilities[confident])) confident = j;
            if (confident >= 0 && confident != p.Label)
                issues.Add(new LabelIssue(p.Source, p.Label, confident, p.Probabilities[p.Label], p.Probabilities[confident], p.Fold));
        }
        return issues.OrderBy(i => i.LabelProbability).ThenBy(i => i.Source, StringComparer.Ordinal).ToList();
    }
}

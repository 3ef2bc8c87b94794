using System.Text.Json;
using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Training;

namespace MLNetExt.Tests.Training;

/// <summary>K-fold cross-validation: the stratified split, confident learning's label issues, and whole runs with the
/// tiny MixFormer on the colour images (some labels deliberately wrong): every image scored once by a model that never
/// saw it, each fold keeping its last epoch, the result files, and reuse of finished folds.</summary>
[TestClass]
public sealed class CrossValidationTests
{
    static ImageDataset Uneven()
    {
        // 7, 5 and 2 images: folds of 14 images in 3 parts
        var counts = new[] { 7, 5, 2 };
        var items = counts.SelectMany((n, c) => Enumerable.Range(0, n).Select(i => new ImageItem($"{c}_{i}", c))).ToList();
        return new ImageDataset("uneven", ["a", "b", "c"], items);
    }

    [TestMethod]
    public void Folds_HoldEachImageOutOnce_Stratified_EvenSizes_Seeded()
    {
        var data = Uneven();
        var folds = data.Folds(3, seed: 4);
        Assert.HasCount(3, folds);
        var heldOut = folds.SelectMany(f => f.HeldOut.Items.Select(i => i.Name)).ToList();
        CollectionAssert.AreEquivalent(data.Items.Select(i => i.Name).ToList(), heldOut, "every image held out exactly once");
        var sizes = folds.Select(f => f.HeldOut.Count).ToList();
        Assert.IsLessThanOrEqualTo(1, sizes.Max() - sizes.Min(), string.Join(",", sizes));
        foreach (var (train, held) in folds)
        {
            Assert.AreEqual(data.Count, train.Count + held.Count);
            Assert.IsFalse(train.Items.Intersect(held.Items).Any(), "no image both trains and is held out");
            Assert.IsTrue(train.CountPerClass().All(n => n >= 1), "every class trains in every fold");
            for (int c = 0; c < 3; c++)
                Assert.IsLessThanOrEqualTo((int)Math.Ceiling(data.CountPerClass()[c] / 3.0), held.CountPerClass()[c], "stratified");
            CollectionAssert.AreEqual(held.Items.OrderBy(i => data.Items.ToList().IndexOf(i)).ToList(), held.Items.ToList(), "dataset order kept");
        }
        CollectionAssert.AreEqual(heldOut, data.Folds(3, seed: 4).SelectMany(f => f.HeldOut.Items.Select(i => i.Name)).ToList(), "same seed, same split");
        CollectionAssert.AreNotEqual(heldOut, data.Folds(3, seed: 5).SelectMany(f => f.HeldOut.Items.Select(i => i.Name)).ToList(), "another seed, another split");
    }

    [TestMethod]
    public void Folds_RefuseTooFewOrTooMany_AndAClassOfOneImage()
    {
        var data = Uneven();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => data.Folds(1, 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => data.Folds(15, 0));
        var single = new ImageDataset("single", ["a", "b"], [new ImageItem("a0", 0), new ImageItem("a1", 0), new ImageItem("b0", 1)]);
        var e = Assert.ThrowsExactly<DatasetException>(() => single.Folds(2, 0));
        StringAssert.Contains(e.Message, "b (1)");
        StringAssert.Contains(e.Message, "at least two images");
    }

    /// <summary>Copies of one photo go whole into one fold (else a fold is scored on a photo it trained on); the folds
    /// stay stratified and even around them; a class whose every image is a copy of one photo is refused by name.</summary>
    [TestMethod]
    public void Folds_KeepCopiesTogether_AndRefuseAClassThatIsOnePhoto()
    {
        var data = Uneven();   // a: 0-6, b: 7-11, c: 12-13
        IReadOnlyList<IReadOnlyList<int>> copies = [[0, 1, 2], [7, 8], [3, 12]];
        var folds = data.Folds(3, seed: 2, copies);
        int FoldOf(int item) => folds.Select((f, k) => (f, k)).Single(x => x.f.HeldOut.Items.Contains(data.Items[item])).k;
        foreach (var g in copies) Assert.AreEqual(1, g.Select(FoldOf).Distinct().Count(), $"copies {string.Join(",", g)} in one fold");
        CollectionAssert.AreEquivalent(data.Items.ToList(), folds.SelectMany(f => f.HeldOut.Items).ToList(), "every image held out once");
        var sizes = folds.Select(f => f.HeldOut.Count).ToList();
        Assert.IsLessThanOrEqualTo(2, sizes.Max() - sizes.Min(), string.Join(",", sizes));
        foreach (var (train, _) in folds) Assert.IsTrue(train.CountPerClass().All(n => n >= 1), "every class trains in every fold");

        var e = Assert.ThrowsExactly<DatasetException>(() => data.Folds(3, 2, [[12, 13]]));
        StringAssert.Contains(e.Message, "c (2) all fall in one fold: they are copies of one photo");
    }

    [TestMethod]
    public void LabelIssues_AreConfidentLearningsOffDiagonal_LikeliestFirst()
    {
        // class thresholds: mean p(a) over images labelled a = (0.9 + 0.8 + 0.1) / 3 = 0.6; p(b) over b = (0.7 + 0.5) / 2 = 0.6
        OutOfFoldPrediction P(string s, int label, float pa) => new(s, label, 1, [pa, 1 - pa]);
        var predictions = new[] { P("a1", 0, 0.9f), P("a2", 0, 0.8f), P("a3", 0, 0.1f), P("b1", 1, 0.3f), P("b2", 1, 0.5f) };
        var issues = CrossValidator.FindLabelIssues(predictions, 2);
        // a3: p(b) 0.9 >= 0.6 and p(a) 0.1 < 0.6: an issue. b2: p(a) 0.5 < 0.6, p(b) 0.5 < 0.6: no confident class, no issue.
        Assert.HasCount(1, issues);
        Assert.AreEqual(("a3", 0, 1), (issues[0].Source, issues[0].Label, issues[0].Suggested));
        Assert.AreEqual(0.1f, issues[0].LabelProbability, 1e-6f);
        // the thresholds follow the data: with b4 (p(a) 0.65) and a5 (p(a) 0.05) added, t_a = 1.85 / 4 = 0.4625 and
        // t_b = 1.55 / 3 = 0.517, so b2 (p(a) 0.5, p(b) 0.5) now has a confident class, a
        var more = predictions.Append(P("b4", 1, 0.65f)).Append(P("a5", 0, 0.05f)).ToArray();
        var ranked = CrossValidator.FindLabelIssues(more, 2);
        CollectionAssert.AreEqual(new[] { "a5", "a3", "b4", "b2" }, ranked.Select(i => i.Source).ToArray(), "lowest probability of the given label first");
        // both classes at or above their thresholds: the more probable one is the confident class
        var both = CrossValidator.FindLabelIssues([P("a1", 0, 0.6f), P("a2", 0, 0.6f), P("b1", 1, 0.8f), P("b2", 1, 0.4f), P("b3", 1, 0.7f)], 2);
        // t_a = 0.6, t_b = (0.2 + 0.6 + 0.3) / 3 = 0.367: b1 has p(a) 0.8 >= 0.6 and p(b) 0.2 < t_b: an issue; b3 p(a) 0.7, p(b) 0.3: an issue;
        // a1 p(a) 0.6 >= t_a and p(b) 0.4 >= t_b: both confident, a is more probable: no issue
        CollectionAssert.AreEqual(new[] { "b1", "b3" }, both.Select(i => i.Source).ToArray());
    }

    /// <summary>Colour images with the labels of <paramref name="flipped"/> images moved to the next colour.</summary>
    static (ImageDataset Data, HashSet<string> Flipped) Mislabelled(int perClass, int flipped)
    {
        var clean = TrainerTests.ColorData(perClass, 3);
        var wrong = new HashSet<string>();
        var items = clean.Items.Select((item, i) =>
        {
            if (i % perClass != 1 || wrong.Count >= flipped) return item;
            wrong.Add(item.Name);
            return item with { Label = (item.Label + 1) % clean.Classes.Count };
        }).ToList();
        return (new ImageDataset("colours with wrong labels", clean.Classes, items), wrong);
    }

    static ImageClassificationOptions Options() => TrainerTests.Tiny() with { Epochs = 3, Workers = 1 };

    /// <summary>Copies of one photo are found by cross-validation itself (a re-encoded PNG file beside its in-memory
    /// original would be another matter: here exact copies in memory and on disk) and kept in one fold.</summary>
    [TestMethod]
    public void CrossValidate_FindsCopiesOfOnePhoto_AndScoresThemInOneFold()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-crossval-copies-");
        try
        {
            var clean = TrainerTests.ColorData(6, 5);
            // item 0 twice more in memory, item 7 as a PNG file and a half-size PNG file
            var file = Path.Combine(dir.FullName, "copy.png");
            File.WriteAllBytes(file, MLNetExt.Imaging.PngEncoder.Encode(clean.Items[7].Image!));
            var half = Path.Combine(dir.FullName, "half.png");
            File.WriteAllBytes(half, MLNetExt.Imaging.PngEncoder.Encode(MLNetExt.Imaging.Resampler.Resize(clean.Items[7].Image!, 20, 20, MLNetExt.Imaging.Interpolation.Bilinear)));
            var items = clean.Items.Concat([
                clean.Items[0] with { Name = "again_0" }, clean.Items[0] with { Name = "again_1" },
                new ImageItem(file, clean.Items[7].Label, Path: file), new ImageItem(half, clean.Items[7].Label, Path: half)]).ToList();
            var data = new ImageDataset("colours with copies", clean.Classes, items);
            var notes = new List<string>();
            var r = new ImageClassificationEstimator(Options() with { Epochs = 1, Progress = p => { if (p.Message is { } m) lock (notes) notes.Add(m); } })
                .CrossValidate(data, 3);
            int FoldOf(string source) => r.Predictions.Single(p => p.Source == source).Fold;
            Assert.AreEqual(1, new[] { clean.Items[0].Source, "again_0", "again_1" }.Select(FoldOf).Distinct().Count());
            Assert.AreEqual(1, new[] { clean.Items[7].Source, file, half }.Select(FoldOf).Distinct().Count());
            Assert.IsTrue(notes.Any(n => n.StartsWith("2 photo(s) are stored more than once (6 files)", StringComparison.Ordinal)), string.Join("\n", notes));
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void CrossValidate_ScoresEveryImageOnce_KeepsTheLastEpoch_FindsTheWrongLabels_AndReusesFinishedFolds()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-crossval-");
        try
        {
            var (data, flipped) = Mislabelled(12, 3);
            var notes = new List<string>();
            var options = Options() with { Progress = p => { if (p.Message is { } m) lock (notes) notes.Add(m); } };
            var r = new ImageClassificationEstimator(options).CrossValidate(data, 3, dir.FullName);

            // every image once, from the fold that held it out, in the dataset's order
            CollectionAssert.AreEqual(data.Items.Select(i => i.Source).ToList(), r.Predictions.Select(p => p.Source).ToList());
            var split = data.Folds(3, 7);
            foreach (var p in r.Predictions)
                Assert.IsTrue(split[p.Fold - 1].HeldOut.Items.Any(i => i.Source == p.Source), $"{p.Source} scored by fold {p.Fold}, which held it out");
            Assert.AreEqual(data.Count, r.OutOfFold.Count);
            var pooled = ClassificationMetrics.Compute(r.Predictions.SelectMany(p => p.Probabilities).ToArray(), r.Predictions.Select(p => p.Label).ToArray(), data.Classes);
            Assert.AreEqual(pooled.Top1, r.OutOfFold.Top1);
            Assert.AreEqual(pooled.LogLoss, r.OutOfFold.LogLoss, 1e-12);
            // each fold keeps its last epoch: its held-out scores are that epoch's validation, not the best epoch's
            foreach (var f in r.Folds)
            {
                Assert.HasCount(3, f.History.Epochs);
                Assert.AreEqual(f.History.Epochs[^1].Validation!.Top1, f.HeldOut.Top1);
                Assert.AreEqual(f.History.Epochs[^1].Validation!.LogLoss, f.HeldOut.LogLoss, 1e-6);
                Assert.IsNull(f.History.BestEpoch, "no epoch chosen on the held-out images");
                Assert.IsFalse(f.Reused);
            }
            Assert.IsFalse(notes.Any(n => n.Contains("validation set", StringComparison.OrdinalIgnoreCase) && n.Contains("one image", StringComparison.OrdinalIgnoreCase)),
                "no small-validation note per fold");
            Assert.AreEqual(notes.Count, notes.Distinct().Count(), "each note once, not once a fold:\n" + string.Join("\n", notes));
            var (mean, sd) = r.Spread("top1");
            Assert.AreEqual(r.Folds.Average(f => f.HeldOut.Top1), mean, 1e-12);
            Assert.IsGreaterThanOrEqualTo(0.0, sd);
            Assert.HasCount(3, r.Epochs);
            // answering only when sure: all at no minimum (the out-of-fold top-1), fewer and surer answers as it rises
            var selective = r.OutOfFold.Selective!;
            Assert.AreEqual((0.0, 1.0, r.OutOfFold.Top1), (selective[0].MinScore, selective[0].Answered, selective[0].Accuracy));
            for (int k = 1; k < selective.Count; k++) Assert.IsLessThanOrEqualTo(selective[k - 1].Answered, selective[k].Answered);
            var at08 = r.Predictions.Where(p => p.Probabilities.Max() >= 0.8f).ToList();
            var point = selective.Single(p => p.MinScore == 0.8);
            Assert.AreEqual((double)at08.Count / data.Count, point.Answered, 1e-12);
            if (at08.Count > 0) Assert.AreEqual((double)at08.Count(p => p.Predicted == p.Label) / at08.Count, point.Accuracy, 1e-12);
            Assert.AreEqual(r.Folds.Average(f => f.History.Epochs[1].Validation!.Top1), r.Epochs[1].Top1, 1e-12);

            // the colours are learnt (the wrong labels cannot be), and the wrong labels are what confident learning finds
            Assert.IsGreaterThan(0.8, r.OutOfFold.Top1, $"out-of-fold top-1 {r.OutOfFold.Top1}");
            var found = r.LabelIssues.Select(i => i.Source).ToHashSet();
            Assert.IsTrue(flipped.IsSubsetOf(found), $"wrong labels {string.Join(", ", flipped)}; issues {string.Join(", ", found)}");
            Assert.IsLessThanOrEqualTo(flipped.Count + 2, found.Count, $"few correct labels doubted: {string.Join(", ", found)}");
            foreach (var i in r.LabelIssues.Where(i => flipped.Contains(i.Source)))
                Assert.AreEqual((data.Items.First(x => x.Source == i.Source).Label + data.Classes.Count - 1) % data.Classes.Count, i.Suggested, "the colour it really is");

            // the files
            using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, CrossValidationResult.SummaryFileName))))
            {
                var root = json.RootElement;
                Assert.AreEqual(3, root.GetProperty("folds").GetInt32());
                Assert.AreEqual(r.OutOfFold.Top1, root.GetProperty("out_of_fold").GetProperty("top1").GetDouble(), 1e-12);
                Assert.AreEqual(mean, root.GetProperty("mean").GetProperty("top1").GetDouble(), 1e-12);
                Assert.AreEqual(r.LabelIssues.Count, root.GetProperty("label_issues").GetArrayLength());
                Assert.AreEqual(r.BestEpoch, root.GetProperty("best_epoch").GetInt32());
                Assert.AreEqual(ClassificationMetrics.MinScores.Count, root.GetProperty("out_of_fold").GetProperty("selective").GetArrayLength());
            }
            var csv = File.ReadAllLines(Path.Combine(dir.FullName, CrossValidationResult.PredictionsFileName));
            Assert.HasCount(data.Count + 1, csv);
            Assert.AreEqual(r.LabelIssues.Count, csv.Skip(1).Count(l => !l.EndsWith(',')), "suggested_label set on the label issues' rows");
            Assert.AreEqual(0, Directory.GetFiles(dir.FullName, "*.tmp").Length);
            // the page: well-formed, one thumbnail per label issue (the images are in memory here), the folds and the curves
            var html = File.ReadAllText(Path.Combine(dir.FullName, CrossValidationResult.ReportFileName));
            var page = System.Xml.Linq.XDocument.Parse(html[html.IndexOf("<html", StringComparison.Ordinal)..]);
            Assert.AreEqual(r.LabelIssues.Count, page.Descendants("img").Count(i => ((string?)i.Attribute("src"))?.StartsWith("data:image/png;base64,") == true));
            foreach (var text in new[] { "Held-out top-1 after each epoch", "Folds", "Confusion matrix", "Label issues", "mean ± sd", "Answering only when sure" })
                StringAssert.Contains(html, text);

            // a rerun reuses every finished fold; a lost fold file is trained again, to the same scores
            var again = new ImageClassificationEstimator(Options()).CrossValidate(data, 3, dir.FullName);
            Assert.IsTrue(again.Folds.All(f => f.Reused));
            CollectionAssert.AreEqual(r.Predictions.SelectMany(p => p.Probabilities).ToArray(), again.Predictions.SelectMany(p => p.Probabilities).ToArray());
            File.Delete(Path.Combine(dir.FullName, "fold-2.json"));
            File.WriteAllText(Path.Combine(dir.FullName, "fold-3.json"), "{\"format\": \"mlnetext.cross-validation-fold\", \"vers");
            notes.Clear();
            var partly = new ImageClassificationEstimator(options).CrossValidate(data, 3, dir.FullName);
            CollectionAssert.AreEqual(new[] { true, false, false }, partly.Folds.Select(f => f.Reused).ToArray());
            Assert.IsTrue(notes.Any(n => n.Contains("fold-3.json is not reused: it cannot be read")), string.Join("\n", notes));
            var a = r.Predictions.SelectMany(p => p.Probabilities).ToArray();
            var b = partly.Predictions.SelectMany(p => p.Probabilities).ToArray();
            for (int i = 0; i < a.Length; i++) Assert.AreEqual(a[i], b[i], 1e-5f, "a fold trained again scores as before (same seed)");

            // other settings: nothing is reused
            notes.Clear();
            var other = new ImageClassificationEstimator(options with { Epochs = 2 }).CrossValidate(data, 3, dir.FullName);
            Assert.IsTrue(other.Folds.All(f => !f.Reused));
            Assert.IsTrue(notes.Any(n => n.Contains("fold-1.json is not reused: its training settings differ")), string.Join("\n", notes));
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void CrossValidate_RefusesChoicesMadeOnTheHeldOutImages_AndStopsOnCancel_KeepingFinishedFolds()
    {
        var (data, _) = Mislabelled(6, 0);
        var e = Assert.ThrowsExactly<TrainingOptionException>(() => new ImageClassificationEstimator(Options() with { EarlyStoppingPatience = 2 }).CrossValidate(data, 2));
        Assert.AreEqual("EarlyStoppingPatience", e.Option);
        e = Assert.ThrowsExactly<TrainingOptionException>(() => new ImageClassificationEstimator(Options() with { CalibrateScores = true }).CrossValidate(data, 2));
        Assert.AreEqual("CalibrateScores", e.Option);

        var dir = Directory.CreateTempSubdirectory("mlnetext-crossval-stop-");
        try
        {
            using var cancel = new CancellationTokenSource();
            var options = Options() with { Epochs = 1, Progress = p => { if (p.Message?.StartsWith("Fold 2/2: training") == true) cancel.Cancel(); } };
            Assert.ThrowsExactly<TrainingInterruptedException>(() => new ImageClassificationEstimator(options).CrossValidate(data, 2, dir.FullName, cancel.Token));
            CollectionAssert.AreEqual(new[] { "fold-1.json" }, Directory.GetFiles(dir.FullName).Select(Path.GetFileName).ToArray(), "the finished fold, and no summary");
            var resumed = new ImageClassificationEstimator(Options() with { Epochs = 1 }).CrossValidate(data, 2, dir.FullName);
            CollectionAssert.AreEqual(new[] { true, false }, resumed.Folds.Select(f => f.Reused).ToArray());

            // stopped mid-fold (in fold 2's first epoch, whose one step ends it: the trainer stops after that epoch's
            // validation): the fold's own interruption, told as the cross-validation's
            bool inFold2 = false;
            using var midway = new CancellationTokenSource();
            var two = Options() with
            {
                Epochs = 2,
                Progress = p =>
                {
                    if (p.Message?.StartsWith("Fold 2/2: training") == true) inFold2 = true;
                    if (inFold2 && p.Phase == TrainingPhase.Training) midway.Cancel();
                },
            };
            var e2 = Assert.ThrowsExactly<TrainingInterruptedException>(() => new ImageClassificationEstimator(two).CrossValidate(data, 2, dir.FullName, midway.Token));
            StringAssert.Contains(e2.Message, "Cross-validation stopped in fold 2 of 2; the 1 finished fold(s) are in");
            Assert.HasCount(1, e2.History.Epochs, "fold 2's record up to the stop");
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void CrossValidateCommand_PrintsTheEstimateAndTheDoubtedImages_AndRefusesBadFolds()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-crossval-");
        try
        {
            var classes = new[] { "circle", "square", "triangle" };
            var data = Path.Combine(dir.FullName, "data");
            SyntheticShapes.WriteSplit(data, 6, 3, 48, seed: 1, classes);
            var config = Path.Combine(dir.FullName, "tiny.json");
            File.WriteAllText(config, TrainerTests.TinyKwargs().ToJsonString());
            string[] common = ["--data", data, "--arch", "mixformer", "--config", config, "--image-size", "32", "--epochs", "2", "--batch-size", "6",
                "--workers", "1", "--output", Path.Combine(dir.FullName, "out"), "--plain"];
            var (code, output, error) = CliRun([.. common, "--folds", "3"]);
            Assert.AreEqual(0, code, error);
            StringAssert.Contains(output, "27 images in 3 classes", "train/ and val/ are pooled");
            StringAssert.Contains(output, "fold 3/3: top-1");
            StringAssert.Contains(output, "(mean ± sd over 3 folds)");
            StringAssert.Contains(output, "out-of-fold, all 27 images");
            StringAssert.Contains(output, "mean held-out top-1 after each epoch: 1: ");
            StringAssert.Contains(output, "answering only when sure (out of fold; predict --min-score): ");
            StringAssert.Contains(output, "label issues:");
            foreach (var f in new[] { "crossval.html", "crossval.json", "out-of-fold.csv", "fold-1.json", "fold-2.json", "fold-3.json" })
                Assert.IsTrue(File.Exists(Path.Combine(dir.FullName, "out", f)), f);
            // out-of-fold.csv is training data as it stands (labels fixed in it, or rows deleted, train the next model)
            var again = ImageDataset.FromCsv(Path.Combine(dir.FullName, "out", "out-of-fold.csv"));
            Assert.AreEqual(27, again.Count);
            Assert.IsEmpty(again.Issues);
            var (train, val) = TrainCommand.LoadData(data, null);
            CollectionAssert.AreEquivalent(train.Items.Concat(val!.Items).Select(i => (i.Path, classes[i.Label])).ToList(),
                again.Items.Select(i => (i.Path, again.Classes[i.Label])).ToList());

            (code, _, error) = CliRun([.. common, "--folds", "1"]);
            Assert.AreEqual(2, code);
            StringAssert.Contains(error, "--folds must be at least 2, got 1");
            (code, _, error) = CliRun([.. common, "--folds", "40"]);
            Assert.AreEqual(2, code);
            StringAssert.Contains(error, "--folds 40 is more than the 27 images");
            (code, _, error) = CliRun([.. common, "--patience", "2"]);
            Assert.AreEqual(2, code);
            StringAssert.StartsWith(error.Trim(), "error: --patience is not used by cross-validation");
        }
        finally { dir.Delete(recursive: true); }
    }

    static (int Code, string Output, string Error) CliRun(string[] args)
    {
        var (stdout, stderr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (CrossValidateCommand.Create().Parse(args).Invoke(), o.ToString(), e.ToString()); }
        finally
        {
            Console.SetOut(stdout);
            Console.SetError(stderr);
        }
    }
}

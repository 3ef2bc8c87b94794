using System.CommandLine;
using System.Globalization;
using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext cross-validate --data DIR|CSV [--folds 5] (--variant NAME | --arch FAMILY --config FILE.json) [train's
/// options] --output DIR`: K-fold cross-validation with the training recipe of `train`. Prints each fold's held-out
/// scores, their mean and spread, the pooled out-of-fold scores, the mean held-out top-1 after each epoch and the
/// images whose labels the scores doubt; writes crossval.html, crossval.json, out-of-fold.csv and one fold-K.json per fold (a rerun of
/// the same command reuses finished folds, so Ctrl-C loses at most the fold under way).
/// </summary>
internal static class CrossValidateCommand
{
    /// <summary>Label issues printed; the rest are in the files.</summary>
    const int IssuesShown = 10;

    sealed class Options
    {
        public readonly Option<string> Data = new("--data") { Description = "Images: a folder of class sub-folders (train/ and val/ inside are pooled), or a CSV/TSV of path,label", Required = true };
        public readonly Option<int> Folds = new("--folds") { Description = "Parts the images are split into; each is held out once", DefaultValueFactory = _ => 5 };
        public readonly ModelOptions Model = new();
        public readonly Option<FileInfo> Weights = new("--weights") { Description = "Pretrained weights every fold starts from (official .pth/.safetensors/.pdparams; default: random initialisation)" };
        public readonly Option<string?> Pretrained = PretrainedOption.Create();
        public readonly Option<int?> Threads = TrainingKnobOptions.ThreadsOption();
        public readonly Option<string> Output = new("--output") { Description = "Output folder (crossval.html, crossval.json, out-of-fold.csv, one fold-K.json per finished fold)", Required = true };
        public readonly Option<bool> Plain = new("--plain") { Description = "Plain progress lines instead of live bars" };
        // what only a single run uses: its validation split, the metric that picks its epoch, its export
        public readonly TrainingKnobOptions Knobs = new("ValidationFraction", "Monitor", "ScoringPrecision");

        public Command Command()
        {
            var cmd = new Command("cross-validate", "Estimate how well a training recipe does on your images: k-fold cross-validation, with the images whose labels look wrong.")
            {
                Data, Folds, Weights, Pretrained,
            };
            Knobs.AddTo(cmd);
            foreach (var option in new Option[] { Threads, Output, Plain }) cmd.Add(option);
            Model.AddTo(cmd);
            return cmd;
        }
    }

    public static Command Create()
    {
        var o = new Options();
        var cmd = o.Command();
        cmd.SetAction(r => CliErrors.Guarded(() => TrainingKnobOptions.AsCliError(() =>
        {
            TrainingKnobOptions.ApplyThreads(r, o.Threads);
            var options = o.Knobs.Recipe(r, o.Model, o.Weights, o.Pretrained, "cross-validate");
            int folds = r.GetValue(o.Folds);
            if (folds < 2) throw new ArgumentException($"--folds must be at least 2, got {folds}.");
            var data = LoadData(r.GetValue(o.Data)!);
            if (folds > data.Count) throw new ArgumentException($"--folds {folds} is more than the {data.Count} images.");
            return Run(options, data, folds, r.GetValue(o.Output)!, r.GetValue(o.Plain), Console.Out);
        })));
        return cmd;
    }

    /// <summary>The images of a folder or CSV; a folder's train/ and val/ pooled into one set.</summary>
    static ImageDataset LoadData(string data)
    {
        var (train, val) = TrainCommand.LoadData(data, null);
        return val is null ? train
            : new ImageDataset($"{train.Source} + {val.Source}", train.Classes, train.Items.Concat(val.Items).ToList(), train.Issues.Concat(val.Issues).ToList());
    }

    /// <summary>Cross-validates and reports. Returns the exit code (0, or 130 when interrupted).</summary>
    internal static int Run(ImageClassificationOptions options, ImageDataset data, int folds, string output, bool plain, TextWriter log)
    {
        Directory.CreateDirectory(output);
        foreach (var name in Serialization.AtomicFile.RemoveStale(output))
            log.WriteLine($"removed {name}: a temporary file left by an earlier run that was stopped mid-write");
        log.WriteLine($"data: {data.Count} images in {data.Classes.Count} classes ({string.Join(", ", data.Classes.Take(10))}{(data.Classes.Count > 10 ? ", ..." : "")}), {folds} folds of about {data.Count / folds} images");
        foreach (var issue in data.Issues.Take(5)) log.WriteLine($"skipped: {issue}");
        if (data.Issues.Count > 5) log.WriteLine($"skipped: ... and {data.Issues.Count - 5} more files");
        log.WriteLine($"libtorch {TorchRuntime.Version}, {TorchRuntime.Threads} threads, CUDA {(TorchRuntime.CudaIsAvailable ? "available" : "not available")}");

        using var stop = new StopSignals();
        CrossValidationResult result;
        try
        {
            result = TrainingProgressView.Run(progress =>
                new ImageClassificationEstimator(options with { Progress = progress }).CrossValidate(data, folds, output, stop.Token), plain, log);
        }
        catch (TrainingInterruptedException e)
        {
            log.WriteLine(e.Message.Replace("the same call", "the same command", StringComparison.Ordinal));
            return 130;
        }
        Report(result, output, log);
        return 0;
    }

    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    internal static void Report(CrossValidationResult r, string output, TextWriter log)
    {
        foreach (var f in r.Folds)
            log.WriteLine(string.Create(Inv, $"fold {f.Fold}/{r.Folds.Count}: top-1 {f.HeldOut.Top1:P1}, macro-F1 {f.HeldOut.MacroF1:F3}, log-loss {f.HeldOut.LogLoss:F4} on {f.HeldOut.Count} held-out images (trained on {f.TrainCount}){(f.Reused ? ", reused" : "")}"));
        var (top1, top1Sd) = r.Spread("top1");
        var (f1, f1Sd) = r.Spread("macro_f1");
        log.WriteLine(string.Create(Inv, $"held-out top-1 {top1:P1} ± {top1Sd:P1}, macro-F1 {f1:F3} ± {f1Sd:F3} (mean ± sd over {r.Folds.Count} folds)"));
        var m = r.OutOfFold;
        log.WriteLine(string.Create(Inv, $"out-of-fold, all {m.Count} images: top-1 {m.Top1:P1}, top-{m.TopK} {m.Top5:P1}, macro-F1 {m.MacroF1:F3}, log-loss {m.LogLoss:F4}, calibration error {m.ExpectedCalibrationError:P1}"));
        foreach (var c in m.PerClass.Where(c => c.Support > 0).OrderBy(c => c.Recall).Take(3).Where(c => c.Recall < 1))
            log.WriteLine(string.Create(Inv, $"  {c.Class}: recall {c.Recall:P1}, precision {c.Precision:P1} ({c.Support} images)"));
        log.WriteLine("answering only when sure (out of fold; predict --min-score): " + EvaluateCommand.SelectiveText(m));
        log.WriteLine("mean held-out top-1 after each epoch: " +
                      string.Join(", ", r.Epochs.Select(e => string.Create(Inv, $"{e.Epoch}: {e.Top1:P1}"))) + $" (best: epoch {r.BestEpoch})");
        // confident learning is only as good as the models: near the base rate it flags images the models cannot tell apart
        double majority = (double)m.PerClass.Max(c => c.Support) / Math.Max(1, m.Count);
        if (r.LabelIssues.Count > 0 && m.Top1 < majority + (1 - majority) / 2)
            log.WriteLine(string.Create(Inv, $"note: the fold models are weak (top-1 {m.Top1:P1}, against {majority:P1} for always the largest class): the label issues below are images they could not place, not necessarily wrong labels; pretrained weights make them telling"));
        if (r.LabelIssues.Count == 0) log.WriteLine("label issues: none (no image is confidently predicted as another class than its label)");
        else
        {
            log.WriteLine($"label issues: {r.LabelIssues.Count} image(s) confidently predicted as another class than their label, likeliest mistakes first:");
            foreach (var i in r.LabelIssues.Take(IssuesShown))
                log.WriteLine(string.Create(Inv, $"  {i.Source}: labelled {r.Classes[i.Label]} (p {i.LabelProbability:F3}), looks like {r.Classes[i.Suggested]} (p {i.SuggestedProbability:F3})"));
            if (r.LabelIssues.Count > IssuesShown) log.WriteLine($"  ... and {r.LabelIssues.Count - IssuesShown} more in {CrossValidationResult.PredictionsFileName}");
        }
        log.WriteLine($"wrote {Path.Combine(output, CrossValidationResult.ReportFileName)} (the label issues as thumbnails), " +
                      $"{Path.Combine(output, CrossValidationResult.SummaryFileName)} and {Path.Combine(output, CrossValidationResult.PredictionsFileName)}");
        log.WriteLine($"next: `./mlnetext train` with the same options on all the images (--epochs {r.BestEpoch} gave the best mean held-out top-1); " +
                      $"with labels corrected in {CrossValidationResult.PredictionsFileName}, `--data {Path.Combine(output, CrossValidationResult.PredictionsFileName)}` trains on it");
    }
}

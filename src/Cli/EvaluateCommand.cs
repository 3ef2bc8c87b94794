using System.CommandLine;
using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Training;
using MLNetExt.Transforms;
using MLNetExt.Inference;

namespace MLNetExt.Cli;

/// <summary>`mlnetext evaluate --model FILE --data DIR [--output DIR]`: metrics of a trained model (MLNetExt
/// .safetensors through libtorch, or an exported .onnx through ONNX Runtime) on a labelled folder or CSV: top-1,
/// top-5, macro-F1, log-loss, per-class precision/recall/F1 and the confusion matrix; with --output also
/// metrics.json and report.html.</summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model") { Description = "model.safetensors (libtorch), model.onnx (ONNX Runtime) or model.zip (ML.NET), from train or export", Required = true };
        var data = new Option<string>("--data") { Description = "Labelled images: class sub-folders or a CSV/TSV of path,label (class names must match the model's)", Required = true };
        var output = new Option<string>("--output") { Description = "Folder for metrics.json and report.html" };
        var batch = new Option<int>("--batch-size") { Description = "Images per batch", DefaultValueFactory = _ => 32 };
        var device = PredictCommand.DeviceOption();
        var tta = PredictCommand.TtaOption();
        var cmd = new Command("evaluate", "Evaluate a trained model on labelled images.") { model, data, output, batch, device, tta };
        cmd.SetAction(r => CliErrors.Guarded(() =>
            Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(output), r.GetValue(batch), Console.Out, r.GetValue(device), r.GetValue(tta))));
        return cmd;
    }

    internal static int Run(FileInfo modelFile, string data, string? output, int batchSize, TextWriter log, string? device = null, string? tta = null)
    {
        CliErrors.RequireFile(modelFile, "--model");
        if (batchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {batchSize}.");
        ImageDataset ds;
        EvaluationResult result;
        string name;
        ImageClassificationModel? model = null;   // the libtorch model also explains the hardest images in the report
        try
        {
            if (PredictCommand.OpenScorer(modelFile, batchSize, device, tta) is { } scorer)
            {
                using var _ = (IDisposable)scorer;
                if (scorer.Labels.Count == 0) throw new InvalidDataException($"'{modelFile.FullName}' stores no class names (export it with labels).");
                ds = Load(data, scorer.Labels);
                result = scorer.Evaluate(ds);
                name = Path.GetFileName(modelFile.FullName);
            }
            else
            {
                model = PredictCommand.LoadModel(modelFile, tta);
                ds = Load(data, model.Classes);
                result = model.EvaluateDetailed(ds, batchSize);
                name = model.Descriptor.Model;
            }
            Print(result.Metrics, log);
            if (result.SingleView is { } single)
                log.WriteLine($"each image averaged with its mirror image (--tta flip); the image alone: top-1 {single.Top1:P2}  top-{single.TopK} {single.Top5:P2}  " +
                              $"macro-F1 {single.MacroF1:F4}  log-loss {single.LogLoss:F4}");
            foreach (var s in result.Skipped) log.WriteLine($"skipped: {s}");
            if (output is not null)
            {
                var settings = new Dictionary<string, string> { ["evaluated"] = modelFile.FullName, ["data"] = ds.Source };
                // the report's numbers are the averaged views' when the libtorch model averages them
                if (model is { TestTimeAugmentation: not Export.TestTimeAugmentation.None } m)
                    settings["test_time_augmentation"] = m.TestTimeAugmentation.ToString().ToLowerInvariant();
                ModelFolder.WriteEvaluation(result, name, ds.Classes, settings, output, log, model);
            }
        }
        finally { model?.Dispose(); }
        return 0;
    }

    static ImageDataset Load(string data, IReadOnlyList<string> classes)
    {
        if (File.Exists(data) && (data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || data.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase)))
            return ImageDataset.FromCsv(data, classes);
        return ImageDataset.FromFolder(data, classes);
    }

    /// <summary>"≥ 0.5: 97 % answered, 91.2 % right; ..." for the minimum scores that leave answers.</summary>
    internal static string SelectiveText(ClassificationMetrics m) =>
        string.Join("; ", (m.Selective ?? []).Where(p => p.MinScore > 0 && p.Answered > 0));

    internal static void Print(ClassificationMetrics m, TextWriter log)
    {
        log.WriteLine($"images {m.Count}  top-1 {m.Top1:P2}  top-{m.TopK} {m.Top5:P2}  macro-F1 {m.MacroF1:F4}  log-loss {m.LogLoss:F4}");
        int width = Math.Max(5, m.Classes.Max(c => c.Length));
        log.WriteLine($"{"class".PadRight(width)}  precision  recall  f1      support");
        foreach (var c in m.PerClass)
            log.WriteLine($"{c.Class.PadRight(width)}  {c.Precision,9:F4}  {c.Recall,6:F4}  {c.F1,6:F4}  {c.Support,7}");
        if (m.MeanConfidence is double confidence && m.ExpectedCalibrationError is double ece)
            log.WriteLine($"calibration: mean confidence {confidence:P2} against top-1 {m.Top1:P2}, " +
                          $"expected calibration error {ece:P2}");
        if (m.Selective is not null) log.WriteLine("answering only when sure (predict --min-score): " + SelectiveText(m));
        if (m.Classes.Count <= 20)
        {
            log.WriteLine("confusion (rows: true, columns: predicted)");
            log.WriteLine($"{"".PadRight(width)}  {string.Join(" ", m.Classes.Select((_, j) => $"{j,6}"))}");
            for (int i = 0; i < m.Classes.Count; i++)
                log.WriteLine($"{$"{i} {m.Classes[i]}".PadRight(width + 2)}{string.Join(" ", m.Confusion[i].Select(v => $"{v,6}"))}");
        }
    }
}

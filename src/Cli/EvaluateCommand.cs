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
        var cmd = new Command("evaluate", "Evaluate a trained model on labelled images.") { model, data, output, batch, device };
        cmd.SetAction(r => CliErrors.Guarded(() =>
            Run(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(output), r.GetValue(batch), Console.Out, r.GetValue(device))));
        return cmd;
    }

    internal static int Run(FileInfo modelFile, string data, string? output, int batchSize, TextWriter log, string? device = null)
    {
        CliErrors.RequireFile(modelFile, "--model");
        if (batchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {batchSize}.");
        ImageDataset ds;
        ClassificationMetrics metrics;
        List<Misclassified> wrong;
        IReadOnlyList<DatasetIssue> skipped;
        string name;
        if (PredictCommand.OpenScorer(modelFile, batchSize, device) is { } scorer)
        {
            using var _ = (IDisposable)scorer;
            if (scorer.Labels.Count == 0) throw new InvalidDataException($"'{modelFile.FullName}' stores no class names (export it with labels).");
            ds = Load(data, scorer.Labels);
            var paths = ds.Items.Select(i => i.Path ?? throw new DatasetException($"Item {i.Name} has no file path.")).ToList();
            var scores = scorer.ScoreFiles(paths);
            var evaluator = new Evaluator();
            for (int i = 0; i < scores.Count; i++)
                if (scores[i].Scores is { } p) evaluator.Add(p, ds.Items[i].Label, scores[i].Source);
            skipped = scores.Where(s => s.Scores is null).Select(s => new DatasetIssue(s.Source, s.Error ?? "unreadable")).ToList();
            if (evaluator.Count == 0) throw new DatasetException($"No image of '{ds.Source}' could be scored.");
            var r = evaluator.Result($"'{ds.Source}'");
            (metrics, wrong) = (r.Metrics(ds.Classes), r.Misclassified());
            name = Path.GetFileName(modelFile.FullName);
        }
        else
        {
            using var m = ImageClassificationModel.Load(modelFile.FullName);
            ds = Load(data, m.Classes);
            (metrics, wrong, skipped) = m.EvaluateDetailed(ds, batchSize);
            name = m.Descriptor.Model;
        }
        Print(metrics, log);
        foreach (var s in skipped) log.WriteLine($"skipped: {s}");
        if (output is not null)
        {
            Directory.CreateDirectory(output);
            var history = new TrainingHistory
            {
                Model = name,
                Classes = ds.Classes,
                Settings = new Dictionary<string, string> { ["evaluated"] = modelFile.FullName, ["data"] = ds.Source },
                ValCount = metrics.Count,
                Final = metrics,
                StopReason = "evaluation only",
            };
            history.HardestList.AddRange(wrong.Take(32));
            ModelFolder.WriteRecord(history, output, log);
        }
        return 0;
    }

    static ImageDataset Load(string data, IReadOnlyList<string> classes)
    {
        if (File.Exists(data) && (data.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || data.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase)))
            return ImageDataset.FromCsv(data, classes);
        return ImageDataset.FromFolder(data, classes);
    }

    internal static void Print(ClassificationMetrics m, TextWriter log)
    {
        log.WriteLine($"images {m.Count}  top-1 {m.Top1:P2}  top-{m.TopK} {m.Top5:P2}  macro-F1 {m.MacroF1:F4}  log-loss {m.LogLoss:F4}");
        int width = Math.Max(5, m.Classes.Max(c => c.Length));
        log.WriteLine($"{"class".PadRight(width)}  precision  recall  f1      support");
        foreach (var c in m.PerClass)
            log.WriteLine($"{c.Class.PadRight(width)}  {c.Precision,9:F4}  {c.Recall,6:F4}  {c.F1,6:F4}  {c.Support,7}");
        if (m.Classes.Count <= 20)
        {
            log.WriteLine("confusion (rows: true, columns: predicted)");
            log.WriteLine($"{"".PadRight(width)}  {string.Join(" ", m.Classes.Select((_, j) => $"{j,6}"))}");
            for (int i = 0; i < m.Classes.Count; i++)
                log.WriteLine($"{$"{i} {m.Classes[i]}".PadRight(width + 2)}{string.Join(" ", m.Confusion[i].Select(v => $"{v,6}"))}");
        }
    }
}

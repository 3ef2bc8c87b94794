using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Imaging;
using MLNetExt.Inference;
using MLNetExt.Training;

namespace MLNetExt.MLNet;

/// <summary>
/// The output folder of a training run, the same from C# as from <c>mlnetext train</c>: <c>metrics.json</c> and
/// <c>report.html</c> (the run's record), <c>model.safetensors</c> (the trained model), <c>README.md</c> (a model card:
/// what the model is, how it scored, what each file is for), and with the export
/// <c>model.onnx</c>, the ML.NET <c>model.zip</c>, <c>ModelConsumption.cs</c>, and a console and a web API project that
/// predict with ML.NET alone. Checkpoints go there too when <see cref="ImageClassificationOptions.CheckpointDirectory"/> names it.
/// </summary>
public static class ModelFolder
{
    /// <summary>File names inside the folder.</summary>
    public const string ModelFileName = "model.safetensors", OnnxFileName = "model.onnx", MLNetFileName = "model.zip",
        MetricsFileName = "metrics.json", ReportFileName = "report.html", ConsumptionCodeFileName = "ModelConsumption.cs",
        LastCheckpointFileName = CheckpointStore.Last, BestCheckpointFileName = CheckpointStore.Best;

    /// <summary>Writes every output of a trained model into <paramref name="folder"/> (created when missing). Small files
    /// first, so a full disk costs the least; each output is tried on its own, and what could not be written is
    /// returned ("model.zip (No space left on device)"), empty when all was written. <paramref name="log"/> gets a line
    /// per file. <paramref name="precision"/> is the arithmetic of model.onnx and model.zip; INT8 is static, calibrated
    /// on an even sample of up to <see cref="ImageClassificationOptions.MaxCalibrationImages"/> images of
    /// <paramref name="calibration"/> (e.g. the training set), or dynamic (the linear layers only) without it.</summary>
    public static IReadOnlyList<string> Write(ImageClassificationModel model, string folder, bool export = true, TextWriter? log = null,
        OnnxPrecision precision = OnnxPrecision.Float32, ImageDataset? calibration = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        log ??= TextWriter.Null;
        Directory.CreateDirectory(folder);
        var failed = new List<string>();
        void Try(string what, Action write)
        {
            try { write(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { failed.Add($"{what} ({e.Message})"); }
        }
        if (model.History is { } history) Try($"{MetricsFileName} and {ReportFileName}", () => WriteRecord(history, folder, log, model));
        var modelPath = Path.Combine(folder, ModelFileName);
        Try(ModelFileName, () =>
        {
            model.Save(modelPath);
            log.WriteLine($"model: {modelPath}");
        });
        if (export)
            Try("the ONNX and ML.NET models and the consumption code", () => WriteExports(model, folder, log, ClassifierChain.ExportOptions(precision, calibration)));
        Try(ModelCard.FileName, () =>
        {
            var card = Path.Combine(folder, ModelCard.FileName);
            Serialization.AtomicFile.WriteAllBytes(card, System.Text.Encoding.UTF8.GetBytes(ModelCard.Markdown(model, export, precision)));
            log.WriteLine($"card: {card}");
        });
        return failed;
    }

    /// <summary>Writes <c>metrics.json</c> and <c>report.html</c> of a run (or an evaluation) into <paramref name="folder"/>;
    /// with <paramref name="model"/> (the model the record is of), the report shows where it found the evidence for each
    /// hardest image's wrong class.</summary>
    public static void WriteRecord(TrainingHistory history, string folder, TextWriter? log = null, ImageClassificationModel? model = null)
    {
        log ??= TextWriter.Null;
        var metrics = Path.Combine(folder, MetricsFileName);
        var report = Path.Combine(folder, ReportFileName);
        MetricsFile.Write(metrics, history);
        HtmlReport.Write(report, history, source => ImageDecoder.TryDecodeFile(source, out _),
            model is null ? null : (image, predicted) => model.Explain(image, predicted).Overlay());
        log.WriteLine($"metrics: {metrics}");
        log.WriteLine($"report: {report}");
    }

    /// <summary>Writes <c>metrics.json</c> and <c>report.html</c> of an evaluation (see
    /// <see cref="ImageClassificationModel.EvaluateDetailed"/> and <see cref="ImageFileScorerExtensions.Evaluate"/>)
    /// into <paramref name="folder"/> (created when missing), with the most confident mistakes (explained by
    /// <paramref name="explainWith"/>, the evaluated model, when it is a libtorch one).</summary>
    public static void WriteEvaluation(EvaluationResult result, string model, IReadOnlyList<string> classes,
        IReadOnlyDictionary<string, string> settings, string folder, TextWriter? log = null, ImageClassificationModel? explainWith = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        Directory.CreateDirectory(folder);
        var history = new TrainingHistory
        {
            Model = model,
            Classes = classes,
            Settings = settings,
            ValCount = result.Metrics.Count,
            Final = result.Metrics,
            StopReason = "evaluation only",
        };
        history.HardestList.AddRange(result.Misclassified.Take(TrainingHistory.MaxHardest));
        WriteRecord(history, folder, log, explainWith);
    }

    /// <summary>model.onnx, the ML.NET model.zip (the ONNX inside), the C# consumption code, a console project and a web API project.</summary>
    static void WriteExports(ImageClassificationModel model, string folder, TextWriter log, OnnxExportOptions exportOptions)
    {
        var onnx = Path.Combine(folder, OnnxFileName);
        var result = model.ExportOnnx(onnx, exportOptions);
        var crop = EvalCrop.For(model.Descriptor.ImageSize, model.Descriptor.ImageSize, model.Descriptor.CropPct);
        var precision = exportOptions.Precision;
        log.WriteLine($"onnx: {onnx} ({result.Elapsed.TotalSeconds:F1} s; input 'image' float32 [N,3,{crop.ResizeHeight},{crop.ResizeWidth}] RGB 0-255, " +
            $"centre {crop.Height}x{crop.Width} crop inside; outputs 'Score', 'logits'" +
            $"{(precision == OnnxPrecision.Float32 ? "" : $"; {OnnxExporter.PrecisionName(precision)} arithmetic inside")})");
        var zip = Path.Combine(folder, MLNetFileName);
        MLNetModelFile.Save(onnx, zip);
        log.WriteLine($"ml.net: {zip} (mlContext.Model.Load: input 'ImagePath', outputs 'Score', 'PredictedLabel')");
        var code = Path.Combine(folder, ConsumptionCodeFileName);
        var options = ConsumptionCodeOptions.FromOnnxModel(onnx, MLNetFileName);
        ConsumptionCode.Write(options, code);
        var project = Path.Combine(folder, ConsumptionCode.ProjectFolder);
        ConsumptionCode.WriteProject(options, project, $"../{ConsumptionCodeFileName}", $"../{MLNetFileName}");
        var webApi = Path.Combine(folder, ConsumptionCode.WebApiFolder);
        ConsumptionCode.WriteWebApi(options, webApi, $"../{ConsumptionCodeFileName}", $"../{MLNetFileName}");
        log.WriteLine($"code: {code}, {project}/ (dotnet run -- IMAGE...) and {webApi}/ (dotnet run: POST an image to /predict); ML.NET only");
    }
}

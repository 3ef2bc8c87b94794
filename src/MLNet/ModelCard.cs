using System.Globalization;
using System.Text;
using MLNetExt.Export;
using MLNetExt.Inference;

namespace MLNetExt.MLNet;

/// <summary>
/// The README.md of an output folder: a model card for whoever receives the folder — what the model is (backbone,
/// classes, input framing, score temperature), how well it did on its validation set, what each file is for and how to
/// use it, and what ML.NET serving does differently. Written by <see cref="ModelFolder.Write"/>.
/// </summary>
internal static class ModelCard
{
    public const string FileName = "README.md";

    /// <summary>The most class names the card lists (the report and the model's metadata have them all).</summary>
    const int MaxClassesNamed = 50;

    public static string Markdown(ImageClassificationModel model, bool exported, OnnxPrecision precision)
    {
        var d = model.Descriptor;
        var h = model.History;
        var crop = EvalCrop.For(d.ImageSize, d.ImageSize, d.CropPct);
        string P(double v) => (v * 100).ToString("0.0", CultureInfo.InvariantCulture) + " %";
        var b = new StringBuilder();
        b.AppendLine($"# {Md(d.Model)} image classifier").AppendLine();
        b.AppendLine($"Trained with MLNetExt {LibraryInfo.Version}: {d.Classes.Count} classes — {string.Join(", ", d.Classes.Take(MaxClassesNamed).Select(Md))}" +
                     $"{(d.Classes.Count > MaxClassesNamed ? $" and {d.Classes.Count - MaxClassesNamed} more" : "")}.").AppendLine();
        b.AppendLine("| | |").AppendLine("|---|---|");
        b.AppendLine($"| backbone | {Md(d.Model)}{(d.CustomKwargs is null ? "" : " (custom size)")}, {model.Backbone.ParameterCount():N0} parameters |");
        b.AppendLine($"| input | {d.ImageSize}x{d.ImageSize}: the shorter side resized to {crop.ResizeHeight} ({Md(d.Interpolation)}), the centre cropped " +
                     $"(crop fraction {d.CropPct.ToString("0.###", CultureInfo.InvariantCulture)}), normalised with mean " +
                     $"{string.Join("/", d.Mean.Select(v => v.ToString("0.###", CultureInfo.InvariantCulture)))} and std " +
                     $"{string.Join("/", d.Std.Select(v => v.ToString("0.###", CultureInfo.InvariantCulture)))} |");
        b.AppendLine(d.ScoreTemperature == 1
            ? "| scores | `Score = softmax(logits)` |"
            : $"| scores | `Score = softmax(logits / {d.ScoreTemperature.ToString("0.###", CultureInfo.InvariantCulture)})`: calibrated on the validation set |");
        if (d.TestTimeAugmentation == TestTimeAugmentation.Flip)
            b.AppendLine("| views | each image is scored with its left-right mirror in one batch and the logits averaged (test-time augmentation, in every file below) |");
        if (h is not null)
        {
            b.AppendLine($"| data | {h.TrainCount:N0} training images, {h.ValCount:N0} validation images |");
            if (h.Final is { } f)
                b.AppendLine($"| validation | top-1 {P(f.Top1)}, top-{f.TopK} {P(f.Top5)}, macro-F1 {f.MacroF1.ToString("0.000", CultureInfo.InvariantCulture)}, " +
                             $"log-loss {f.LogLoss.ToString("0.0000", CultureInfo.InvariantCulture)}" +
                             (f.ExpectedCalibrationError is double ece ? $", calibration error {P(ece)}" : "") +
                             $" on {f.Count:N0} images{(h.BestEpoch is int e ? $" (epoch {e} of {h.Epochs.Count})" : "")} |");
            if (h.Settings.TryGetValue("teacher", out var teacher) && teacher != "none")
                b.AppendLine($"| teacher | distilled from {Md(teacher)} |");
            b.AppendLine($"| training | {h.Epochs.Count} epoch{(h.Epochs.Count == 1 ? "" : "s")} in {h.Duration.TotalMinutes.ToString("0.#", CultureInfo.InvariantCulture)} min; {Md(h.StopReason)}; " +
                         $"every setting in `{ModelFolder.MetricsFileName}` |");
        }
        b.AppendLine();

        b.AppendLine("## Files").AppendLine();
        b.AppendLine($"- `{ModelFolder.ModelFileName}` — the model (libtorch): `mlnetext predict|evaluate|explain --model {ModelFolder.ModelFileName} ...`, " +
                     "`mlnetext export --model` for another precision, `ImageClassificationModel.Load` from C#.");
        if (exported)
        {
            b.AppendLine($"- `{ModelFolder.OnnxFileName}` — the same network in ONNX{(precision == OnnxPrecision.Float32 ? "" : $" ({OnnxExporter.PrecisionName(precision)} arithmetic)")} " +
                         $"for any ONNX Runtime: input `image`, float32 [N, 3, {crop.ResizeHeight}, {crop.ResizeWidth}], RGB planar 0-255 " +
                         "(the centre crop and the normalisation are inside the graph); outputs `Score` and `logits`; the class names in its metadata.");
            b.AppendLine($"- `{ModelFolder.MLNetFileName}` — the ML.NET model: `mlContext.Model.Load`, input column `ImagePath`, outputs `Score` and " +
                         "`PredictedLabel`; needs only the Microsoft.ML, ImageAnalytics, OnnxTransformer and OnnxRuntime packages.");
            b.AppendLine($"- `{ModelFolder.ConsumptionCodeFileName}`, `{ConsumptionCode.ProjectFolder}/`, `{ConsumptionCode.WebApiFolder}/` — C# that predicts " +
                         "with model.zip alone: a class to copy into a project (files, bytes, streams or decoded images), a console program, a web API.");
        }
        if (h is not null)
            b.AppendLine($"- `{ModelFolder.ReportFileName}`, `{ModelFolder.MetricsFileName}` — the training record: curves, confusion matrix, per-class " +
                         "scores, calibration, the hardest mistakes with where the model looked.");
        b.AppendLine($"- `checkpoint-last.safetensors`, `checkpoint-best.safetensors` (when present) — to continue the run: `mlnetext train ... --resume <this folder>`.");
        b.AppendLine();

        b.AppendLine("## Use").AppendLine().AppendLine("```bash");
        b.AppendLine($"mlnetext predict --model {ModelFolder.ModelFileName} photo.jpg            # the classes of a photo");
        b.AppendLine($"mlnetext explain --model {ModelFolder.ModelFileName} photo.jpg --output why/   # where the model found its evidence");
        if (exported)
        {
            b.AppendLine($"cd {ConsumptionCode.ProjectFolder} && dotnet run -- ../photo.jpg                 # through ML.NET alone");
            b.AppendLine($"cd {ConsumptionCode.WebApiFolder} && dotnet run --urls http://localhost:5000   # then: curl --data-binary @photo.jpg http://localhost:5000/predict");
        }
        b.AppendLine("```").AppendLine();

        b.AppendLine("## Know before serving").AppendLine();
        b.AppendLine("- The model knows only the classes above: a photo of anything else still gets one of them, often with a high score.");
        if (h?.Final?.Selective is { } selective && selective.Where(p => p.MinScore is 0.8 or 0.9 && p.Answered > 0).ToList() is { Count: > 0 } shown)
            b.AppendLine("- To answer only when sure, take a prediction only when its `Score` reaches a minimum (`mlnetext predict --min-score`); " +
                         $"on the validation images: {string.Join("; ", shown)} (every minimum in `{ModelFolder.ReportFileName}`).");
        b.AppendLine("- Scores are as trustworthy as the validation set is large and like the photos the model will see" +
                     (h?.Final is { } g ? $" (here {g.Count:N0} images)." : "."));
        if (exported)
            b.AppendLine("- ML.NET's `LoadImages` (model.zip's `ImagePath` input) reads photos stored rotated (an EXIF orientation, as phones save " +
                         "portrait shots) as stored, sideways, and resizes with another filter than training did; MLNetExt's own scorers " +
                         "(`mlnetext predict`, `OnnxImageScorer`) turn such photos upright and resize as training did.");
        return b.ToString();
    }

    /// <summary>Text in Markdown prose: the characters that would start markup escaped.</summary>
    static string Md(string text)
    {
        var b = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            if (c is '\\' or '`' or '*' or '_' or '[' or ']' or '<' or '>' or '#' or '|' or '!') b.Append('\\');
            b.Append(c);
        }
        return b.ToString();
    }

}

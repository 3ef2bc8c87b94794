using MLNetExt.Imaging;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MLNetExt.Data;
using MLNetExt.Transforms;
using MLNetExt.Inference;

namespace MLNetExt.Cli;

/// <summary>`mlnetext predict --model FILE IMAGES_OR_FOLDER... [--top-k 5] [--json]`: the top classes of each image
/// (a folder is searched recursively), with a .safetensors model through libtorch, an .onnx model through ONNX
/// Runtime or an ML.NET model.zip through ML.NET. Unreadable files are listed with the reason and do not stop the others.</summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model") { Description = "model.safetensors (libtorch), model.onnx (ONNX Runtime) or model.zip (ML.NET)", Required = true };
        var inputs = new Argument<string[]>("images") { Description = "Image files or folders", Arity = ArgumentArity.OneOrMore };
        var topK = new Option<int>("--top-k") { Description = "Classes shown per image", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "One JSON object per image instead of text" };
        var minScore = new Option<double?>("--min-score")
        {
            Description = "Answer only when the top probability reaches this (0 to 1); below it an image is marked not sure (cross-validate shows what each minimum answers and gets right)",
        };
        var leastSure = new Option<int?>("--least-sure")
        {
            Description = "Only the N images the model is least sure of (the smallest gap between its two best classes), most doubtful first: " +
                          "the unlabelled photos worth labelling next",
        };
        var device = DeviceOption();
        var tta = TtaOption();
        var cmd = new Command("predict", "Predict the classes of images with a trained model.") { model, inputs, topK, json, minScore, leastSure, device, tta };
        cmd.SetAction(r => CliErrors.Guarded(() =>
            Run(r.GetValue(model)!, r.GetValue(inputs)!, r.GetValue(topK), r.GetValue(json), Console.Out, r.GetValue(device), r.GetValue(minScore), r.GetValue(tta),
                r.GetValue(leastSure))));
        return cmd;
    }

    internal static IReadOnlyList<string> ExpandInputs(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(ImageDataset.FindImages(input, namedLikeImages: true)); // an unreadable photo gets its line and reason
            else if (File.Exists(input)) files.Add(input);
            else throw new FileNotFoundException($"'{input}' is neither an image file nor a folder.");
        }
        if (files.Count == 0) throw new ArgumentException($"No images found in {string.Join(", ", inputs)}.");
        return files;
    }

    /// <summary>The scorer of an exported model: ONNX Runtime for .onnx, ML.NET for an ML.NET model.zip; null for a
    /// .safetensors model (scored by libtorch). <paramref name="tta"/> (--tta) is refused for an exported model before
    /// it is opened: its graph holds its views.</summary>
    internal static IImageFileScorer? OpenScorer(FileInfo modelFile, int batchSize, string? device = null, string? tta = null)
    {
        int? cuda = null;
        if (device is not null)
        {
            Torch.Device d;
            try { d = Torch.Device.Parse(device); }
            catch (FormatException e) { throw new ArgumentException($"--device: {e.Message}"); }
            if (d.Type == Torch.DeviceType.Cuda) cuda = Math.Max(d.Index, 0);
        }
        var kind = modelFile.Extension.ToLowerInvariant();
        if (kind is ".onnx" or ".zip") RefuseTta(modelFile, tta);
        switch (kind)
        {
            case ".onnx": return new OnnxImageScorer(modelFile.FullName, new OnnxRuntime.OnnxSessionOptions { CudaDeviceId = cuda }, batchSize);
            case ".zip": return new MLNet.MLNetImageScorer(modelFile.FullName, new Microsoft.ML.MLContext { GpuDeviceId = cuda, FallbackToCpu = true });
            default:
                if (cuda is not null)
                    throw new ArgumentException($"--device {device} applies to exported models (.onnx, .zip); '{modelFile.Name}' runs on libtorch's CPU build here.");
                return null;
        }
    }

    /// <summary>The --device option of the scoring verbs: CUDA for .onnx (ONNX Runtime) and .zip (ML.NET) models, with
    /// one warning and CPU when the deployed ONNX Runtime cannot use CUDA.</summary>
    internal static Option<string?> DeviceOption() => new("--device")
    {
        Description = "cpu | cuda | cuda:N for .onnx and .zip models (falls back to CPU with a warning when CUDA is unusable; default cpu)",
    };

    /// <summary>The --tta option of the scoring verbs: the views a .safetensors model averages, instead of its own.</summary>
    internal static Option<string?> TtaOption() => new("--tta")
    {
        Description = "none | flip (the image and its mirror, logits averaged): the views a .safetensors model averages (default: the model's own, " +
                      "as trained); an exported model averages the views it was exported with",
    };

    /// <summary>Opens a .safetensors model with the views <paramref name="tta"/> names (null: its own).</summary>
    internal static ImageClassificationModel LoadModel(FileInfo modelFile, string? tta)
    {
        var views = ParseTta(tta);
        var m = ImageClassificationModel.Load(modelFile.FullName);
        if (views is { } v) m.TestTimeAugmentation = v;
        return m;
    }

    /// <summary>The views --tta names; null when it is not given.</summary>
    internal static Export.TestTimeAugmentation? ParseTta(string? tta) =>
        tta is null ? null : (Export.TestTimeAugmentation)TrainingKnobOptions.EnumValue(typeof(Export.TestTimeAugmentation), "--tta", tta);

    /// <summary>--tta is for libtorch models: an exported graph already holds its views.</summary>
    static void RefuseTta(FileInfo modelFile, string? tta)
    {
        if (tta is null) return;
        ParseTta(tta);
        throw new ArgumentException($"--tta applies to .safetensors models (scored by libtorch); '{modelFile.Name}' averages the views it was exported " +
            "with. Export the trained model again with them: export --model out/model.safetensors --tta flip --output model.onnx --mlnet model.zip");
    }

    /// <summary>How sure a prediction is: the gap between its two best classes' probabilities (its one probability for a
    /// model of one class); the least sure are the most informative to label (margin sampling, Scheffer et al. 2001).</summary>
    internal static float Margin(ImagePrediction p) => p.Top.Count > 1 ? p.Top[0].Probability - p.Top[1].Probability : p.Top[0].Probability;

    internal static int Run(FileInfo modelFile, IReadOnlyList<string> inputs, int topK, bool json, TextWriter log, string? device = null, double? minScore = null,
        string? tta = null, int? leastSure = null)
    {
        CliErrors.RequireFile(modelFile, "--model");
        if (topK < 1) throw new ArgumentException($"--top-k must be at least 1, got {topK}.");
        if (minScore is not (null or (>= 0 and <= 1))) throw new ArgumentException($"--min-score must lie in [0, 1], got {minScore}.");
        if (leastSure is < 1) throw new ArgumentException($"--least-sure must be at least 1, got {leastSure}.");
        var files = ExpandInputs(inputs);
        // ranking needs the two best classes whatever --top-k shows
        int scored = leastSure is null ? topK : Math.Max(topK, 2);
        IReadOnlyList<ImagePrediction> predictions;
        if (OpenScorer(modelFile, 16, device, tta) is { } scorer)
        {
            using var _ = (IDisposable)scorer;
            predictions = scorer.Predict(files, scored);
        }
        else
        {
            using var m = LoadModel(modelFile, tta);
            predictions = m.Predict(files, scored);
        }
        int failed = predictions.Count(p => p.Error is not null);
        bool allFailed = failed == predictions.Count;
        if (leastSure is int n)
        {
            // the least sure first, then the files that could not be read (each still listed with its reason)
            var ranked = predictions.Where(p => p.Error is null).OrderBy(Margin).ThenBy(p => p.Source, StringComparer.Ordinal).Take(n).ToList();
            if (!json)
                log.WriteLine($"the {ranked.Count} of {predictions.Count - failed} images the model is least sure of (smallest gap between its two best classes), most doubtful first:");
            predictions = ranked.Concat(predictions.Where(p => p.Error is not null)).ToList();
        }
        foreach (var p in predictions)
        {
            // below the minimum the answer is withheld, the scores still shown
            bool? sure = minScore is double min && p.Error is null ? p.Top[0].Probability >= min : null;
            var shown = p.Top.Take(topK).ToList();
            float? gap = leastSure is not null && p.Error is null ? Margin(p) : null;
            if (json)
            {
                // "sure" only with --min-score and "gap" only with --least-sure, so the format without them stays as it was
                var row = new Dictionary<string, object?> { ["image"] = p.Source, ["error"] = p.Error };
                if (minScore is not null) row["sure"] = sure;
                if (leastSure is not null) row["gap"] = gap is float g ? Math.Round(g, 6) : null;
                row["top"] = shown.Select(t => new { label = t.Label, probability = Math.Round(t.Probability, 6) });
                log.WriteLine(JsonSerializer.Serialize(row));
                continue;
            }
            if (p.Error is not null) { log.WriteLine($"{p.Source}\terror: {p.Error}"); continue; }
            string scores = string.Join("  ", shown.Select(t => $"{t.Label} {t.Probability.ToString("P1", CultureInfo.InvariantCulture)}")) +
                            (gap is float m ? $"  (gap {m.ToString("P1", CultureInfo.InvariantCulture)})" : "");
            log.WriteLine(sure == false ? $"{p.Source}\tnot sure (top score under {minScore!.Value.ToString("0.###", CultureInfo.InvariantCulture)}): {scores}" : $"{p.Source}\t{scores}");
        }
        return allFailed ? 1 : 0;
    }
}

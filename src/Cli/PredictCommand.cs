using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MLNetExt.Data;
using MLNetExt.Estimators;
using MLNetExt.Transforms;

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
        var cmd = new Command("predict", "Predict the classes of images with a trained model.") { model, inputs, topK, json };
        cmd.SetAction(r => CliErrors.Guarded(() =>
            Run(r.GetValue(model)!, r.GetValue(inputs)!, r.GetValue(topK), r.GetValue(json), Console.Out)));
        return cmd;
    }

    internal static IReadOnlyList<string> ExpandInputs(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(Directory.EnumerateFiles(input, "*", new EnumerationOptions { RecurseSubdirectories = true })
                    .Where(f => !Path.GetFileName(f).StartsWith('.') && ImageDataset.HeaderProblem(f) is null).Order(StringComparer.Ordinal));
            else if (File.Exists(input)) files.Add(input);
            else throw new FileNotFoundException($"'{input}' is neither an image file nor a folder.");
        }
        if (files.Count == 0) throw new ArgumentException($"No images found in {string.Join(", ", inputs)}.");
        return files;
    }

    /// <summary>The scorer of an exported model: ONNX Runtime for .onnx, ML.NET for an ML.NET model.zip; null for a
    /// .safetensors model (scored by libtorch).</summary>
    internal static IImageFileScorer? OpenScorer(FileInfo modelFile, int batchSize) => modelFile.Extension.ToLowerInvariant() switch
    {
        ".onnx" => new OnnxImageScorer(modelFile.FullName, batchSize: batchSize),
        ".zip" => new MLNet.MLNetImageScorer(modelFile.FullName),
        _ => null,
    };

    internal static int Run(FileInfo modelFile, IReadOnlyList<string> inputs, int topK, bool json, TextWriter log)
    {
        if (!modelFile.Exists) throw new FileNotFoundException($"--model: file '{modelFile.FullName}' does not exist.");
        if (topK < 1) throw new ArgumentException($"--top-k must be at least 1, got {topK}.");
        var files = ExpandInputs(inputs);
        IReadOnlyList<ImagePrediction> predictions;
        if (OpenScorer(modelFile, 16) is { } scorer)
        {
            using var _ = (IDisposable)scorer;
            predictions = scorer.ScoreFiles(files).Select(s => s.Scores is null
                ? new ImagePrediction(s.Source, null, -1, 0, [], s.Error)
                : ImagePrediction.FromScores(s.Source, s.Scores, scorer.Labels, topK)).ToList();
        }
        else
        {
            using var m = ImageClassificationModel.Load(modelFile.FullName);
            predictions = m.Predict(files, topK);
        }
        int failed = 0;
        foreach (var p in predictions)
        {
            if (p.Error is not null) failed++;
            if (json)
            {
                log.WriteLine(JsonSerializer.Serialize(new
                {
                    image = p.Source,
                    error = p.Error,
                    top = p.Top.Select(t => new { label = t.Label, probability = Math.Round(t.Probability, 6) }),
                }));
                continue;
            }
            if (p.Error is not null) { log.WriteLine($"{p.Source}\terror: {p.Error}"); continue; }
            log.WriteLine($"{p.Source}\t{string.Join("  ", p.Top.Select(t => $"{t.Label} {t.Probability.ToString("P1", CultureInfo.InvariantCulture)}"))}");
        }
        return failed == predictions.Count ? 1 : 0;
    }
}

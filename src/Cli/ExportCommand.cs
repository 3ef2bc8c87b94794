using System.CommandLine;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext export (--variant NAME | --arch FAMILY --config FILE.json) [--weights FILE] [--num-classes K]
/// [--labels a,b,c] [--image-size H[,W]] [--opset 17] [--preprocess mlnet|none] [--features] [--precision fp32|fp16|int8 [--calibrate DIR]] --output model.onnx [--mlnet model.zip]`:
/// traces the backbone and writes one ONNX file (plus model.onnx.data past 1 GB of weights). The file appears only when complete.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var weights = new Option<FileInfo>("--weights") { Description = "Weights: torch.save checkpoint or safetensors (default: initialised weights)" };
        var labels = new Option<string>("--labels") { Description = "Class names in output order, comma-separated (stored in the model)" };
        var size = new Option<string>("--image-size") { Description = "Input height[,width] (default: the variant's input size)" };
        var opset = new Option<int>("--opset") { Description = "Target ONNX opset (13-21)", DefaultValueFactory = _ => 17 };
        var preprocess = new Option<string>("--preprocess") { Description = "mlnet: input 'image' 0-255 RGB planar, normalised in the graph; none: normalised input 'input'", DefaultValueFactory = _ => "mlnet" };
        var features = new Option<bool>("--features") { Description = "Also output 'features' (pooled pre-logits)" };
        var precision = new Option<string>("--precision") { Description = "fp32: exact; int8: INT8 for CPU serving (linear layers dynamic, or with --calibrate the whole network static); fp16: half precision for GPU serving (half the size). Inputs and outputs stay float32", DefaultValueFactory = _ => "fp32" };
        var calibrate = new Option<DirectoryInfo?>("--calibrate") { Description = "With --precision int8: a folder of images (like those the model will serve) on which to calibrate a static INT8 model: the convolutions in integer arithmetic too (pays off where convolutions dominate, e.g. SMT; bench/README.md has the figures per family)" };
        var output = new Option<FileInfo>("--output") { Description = "The .onnx file to write", Required = true };
        var mlnet = new Option<FileInfo?>("--mlnet") { Description = "Also write an ML.NET model (model.zip: input ImagePath, outputs Score and PredictedLabel; needs --labels and preprocess mlnet)" };
        var pretrained = PretrainedOption.Create();
        var cmd = new Command("export", "Export a backbone to ONNX (outputs Score = softmax, logits).") { weights, pretrained, labels, size, opset, preprocess, features, precision, calibrate, output, mlnet };
        model.AddTo(cmd);
        cmd.SetAction(r =>
        {
            try
            {
                var (choice, file) = PretrainedOption.Resolve(model.Resolve(r), r.GetValue(weights), PretrainedOption.Value(r, pretrained), Console.Error);
                return Run(choice, file, r.GetValue(labels), r.GetValue(size), r.GetValue(opset),
                    r.GetValue(preprocess)!, r.GetValue(features), r.GetValue(output)!, Console.Out, r.GetValue(mlnet), r.GetValue(precision)!, r.GetValue(calibrate));
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or TorchException or OnnxExportException or OnnxRuntime.OnnxRuntimeException or Pretrained.WeightsDownloadException)
            {
                Console.Error.WriteLine(e.Message);
                return e is ArgumentException ? 2 : 1;
            }
        });
        return cmd;
    }

    internal static int Run(ModelOptions.Choice choice, FileInfo? weights, string? labelsText, string? sizeText, int opset, string preprocess,
        bool features, FileInfo output, TextWriter log, FileInfo? mlnetZip = null, string precisionText = "fp32", DirectoryInfo? calibrate = null)
    {
        var precision = OnnxExporter.PrecisionFromName(precisionText)
            ?? throw new ArgumentException($"--precision must be 'fp32', 'fp16' or 'int8', got '{precisionText}'.");
        IReadOnlyList<string>? calibration = null;
        if (calibrate is not null)
        {
            if (precision != OnnxPrecision.Int8)
                throw new ArgumentException($"--calibrate is for --precision int8 (static INT8); the precision is {OnnxExporter.PrecisionName(precision)}.");
            if (!calibrate.Exists) throw new DirectoryNotFoundException($"--calibrate: folder '{calibrate.FullName}' does not exist.");
            calibration = ImageDataset.FindImages(calibrate.FullName);
            if (calibration.Count == 0)
                throw new ArgumentException($"--calibrate: no readable images (jpg, png, bmp, ...) under '{calibrate.FullName}'.");
        }
        if (opset is < 13 or > 21) throw new ArgumentException($"--opset must be between 13 and 21, got {opset}.");
        var mode = preprocess.ToLowerInvariant() switch
        {
            "mlnet" => OnnxPreprocess.MLNet,
            "none" => OnnxPreprocess.None,
            _ => throw new ArgumentException($"--preprocess must be 'mlnet' or 'none', got '{preprocess}'."),
        };
        (int, int)? imageSize = null;
        if (sizeText is not null)
        {
            var parts = sizeText.Split(',', StringSplitOptions.TrimEntries);
            if (parts.Length is < 1 or > 2 || !parts.All(p => int.TryParse(p, out var v) && v > 0))
                throw new ArgumentException($"--image-size must be H or H,W with positive integers, got '{sizeText}'.");
            int h = int.Parse(parts[0]);
            imageSize = (h, parts.Length == 2 ? int.Parse(parts[1]) : h);
        }
        string[]? labels = labelsText?.Split(',', StringSplitOptions.TrimEntries);
        if (mlnetZip is not null && mode != OnnxPreprocess.MLNet)
            throw new ArgumentException("--mlnet needs --preprocess mlnet: the ML.NET model feeds 0-255 RGB pixels to the graph.");
        if (mlnetZip is not null && labels is null)
            throw new ArgumentException("--mlnet needs --labels: the ML.NET model's PredictedLabel and Score slots are named by the classes.");
        int? classes = choice.NumClasses ?? labels?.Length;
        if (labels is not null && choice.NumClasses is { } k && k != labels.Length)
            throw new ArgumentException($"--labels names {labels.Length} classes but --num-classes is {k}.");
        choice = choice with { NumClasses = classes };
        Backbone m;
        if (weights is not null)
        {
            CliErrors.RequireFile(weights, "--weights");
            var (loaded, load) = Backbones.Load(choice.VariantOrFamily, weights.FullName, choice.NumClasses, choice.CustomKwargs);
            if (load.SkippedHeadKeys.Count > 0)
                log.WriteLine($"note: classifier re-initialised ({string.Join(", ", load.SkippedHeadKeys)}): the weights have another class count");
            m = loaded;
        }
        else
        {
            m = choice.Create();
            log.WriteLine("note: no --weights given: exporting initialised (untrained) weights");
        }
        using (m)
        {
            var result = OnnxExporter.Export(m, output.FullName, new OnnxExportOptions
            {
                Opset = opset, Preprocess = mode, ImageSize = imageSize, Labels = labels, IncludeFeatures = features, Precision = precision,
                CalibrationImages = calibration,
            });
            log.WriteLine($"wrote {result.Path}{(result.ExternalDataPath is null ? "" : $" (+ {result.ExternalDataPath})")}: " +
                $"{result.NodeCount} nodes, {result.InitializerCount} initializers ({result.InitializerBytes / 1e6:F1} MB), " +
                $"input {result.Inputs[0]}, outputs {string.Join(", ", result.Outputs)}, opset {opset}, {OnnxExporter.PrecisionName(precision)}{(calibration is null ? "" : $" static, calibrated on {calibration.Count} images")}, {result.Elapsed.TotalSeconds:F2} s " +
                $"(tracing at batch 2 and 3: {result.TraceTime.TotalSeconds:F2} s, mapping: {result.MapTime.TotalSeconds:F2} s)");
        }
        if (mlnetZip is not null)
        {
            MLNet.MLNetModelFile.Save(output.FullName, mlnetZip.FullName);
            log.WriteLine($"wrote {mlnetZip.FullName}: ML.NET model (mlContext.Model.Load; input 'ImagePath', outputs 'Score', 'PredictedLabel'), the ONNX model inside");
        }
        return 0;
    }
}

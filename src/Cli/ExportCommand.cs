using System.CommandLine;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Inference;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Vision;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext export (--variant NAME | --arch FAMILY --config FILE.json) [--weights FILE] [--num-classes K]
/// [--labels a,b,c] [--image-size H[,W]] [--opset 17] [--preprocess mlnet|none] [--features] [--precision fp32|fp16|int8 [--calibrate DIR]] --output model.onnx [--mlnet model.zip]`,
/// or `mlnetext export --model out/model.safetensors [--precision ...] --output model.onnx` for a model `train` wrote (its
/// classes and input framing come with it): traces the backbone and writes one ONNX file (plus model.onnx.data past
/// 1 GB of weights). The file appears only when complete.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var trained = new Option<FileInfo?>("--model") { Description = "A model written by `mlnetext train` (model.safetensors or a checkpoint), exported with its classes, image size and crop, e.g. again at --precision int8; instead of --variant/--config and --weights" };
        var weights = new Option<FileInfo>("--weights") { Description = "Weights: torch.save checkpoint or safetensors (default: initialised weights)" };
        var labels = new Option<string>("--labels") { Description = "Class names in output order, comma-separated (stored in the model)" };
        var size = new Option<string>("--image-size") { Description = "Input height[,width] (default: the variant's input size)" };
        var opset = new Option<int>("--opset") { Description = "Target ONNX opset (13-21)", DefaultValueFactory = _ => 17 };
        var preprocess = new Option<string>("--preprocess") { Description = "mlnet: input 'image' 0-255 RGB planar, normalised in the graph; none: normalised input 'input'", DefaultValueFactory = _ => "mlnet" };
        var features = new Option<bool>("--features") { Description = "Also output 'features' (pooled pre-logits)" };
        var precision = new Option<string>("--precision") { Description = "fp32: exact; int8: INT8 for CPU serving (linear layers dynamic, or with --calibrate the whole network static); fp16: half precision for GPU serving (half the size). Inputs and outputs stay float32", DefaultValueFactory = _ => "fp32" };
        var calibrate = new Option<DirectoryInfo?>("--calibrate") { Description = "With --precision int8: a folder of images (like those the model will serve) on which to calibrate a static INT8 model: the convolutions in integer arithmetic too (pays off where convolutions dominate, e.g. SMT; bench/README.md has the figures per family)" };
        var output = new Option<FileInfo>("--output") { Description = "The .onnx file to write", Required = true };
        var mlnet = new Option<FileInfo?>("--mlnet") { Description = "Also write an ML.NET model (model.zip: input ImagePath, outputs Score and PredictedLabel; needs the class names: --labels, or --model, and preprocess mlnet)" };
        var tta = new Option<string?>("--tta")
        {
            Description = "none | flip: the graph scores each image with its mirror and averages the logits (twice the compute); default: a --model's own (as trained), else none",
        };
        var pretrained = PretrainedOption.Create();
        var cmd = new Command("export", "Export a backbone to ONNX (outputs Score = softmax, logits).") { trained, weights, pretrained, labels, size, opset, preprocess, features, precision, calibrate, tta, output, mlnet };
        model.AddTo(cmd);
        cmd.SetAction(r => CliErrors.Guarded(() =>
        {
            var settings = Settings.Parse(r.GetValue(precision)!, r.GetValue(calibrate), r.GetValue(opset), r.GetValue(preprocess)!, r.GetValue(features), r.GetValue(tta));
            if (r.GetValue(trained) is { } file)
            {
                // the model file fixes what these would choose: refuse them rather than ignore them
                var clash = new Option[] { model.Arch, model.Variant, model.Config, model.NumClasses, weights, pretrained, labels, size }
                    .Where(o => r.GetResult(o) is not null).Select(o => o.Name).ToList();
                if (clash.Count > 0)
                    throw new ArgumentException($"--model takes the architecture, weights, classes and input size from the model file; drop {string.Join(", ", clash)}.");
                return RunTrained(file, settings, r.GetValue(output)!, Console.Out, r.GetValue(mlnet));
            }
            var (choice, weightsFile) = PretrainedOption.Resolve(model.Resolve(r), r.GetValue(weights), PretrainedOption.Value(r, pretrained), Console.Error);
            return Run(choice, weightsFile, r.GetValue(labels), r.GetValue(size), settings, r.GetValue(output)!, Console.Out, r.GetValue(mlnet));
        }));
        return cmd;
    }

    /// <summary>What both kinds of export share: precision (and the calibration images of static INT8), opset, input
    /// convention, the features output and the test-time views (null: a trained model's own), checked before any model is
    /// built.</summary>
    internal sealed record Settings(OnnxPrecision Precision, IReadOnlyList<string>? Calibration, int Opset, OnnxPreprocess Preprocess, bool Features,
        TestTimeAugmentation? Tta = null)
    {
        public static Settings Parse(string precisionText = "fp32", DirectoryInfo? calibrate = null, int opset = 17, string preprocess = "mlnet", bool features = false,
            string? tta = null)
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
            return new Settings(precision, calibration, opset, mode, features, PredictCommand.ParseTta(tta));
        }

        public OnnxExportOptions Options => new()
        {
            Opset = Opset, Preprocess = Preprocess, IncludeFeatures = Features, Precision = Precision, CalibrationImages = Calibration,
            TestTimeAugmentation = Tta ?? TestTimeAugmentation.None,
        };
    }

    internal static int Run(ModelOptions.Choice choice, FileInfo? weights, string? labelsText, string? sizeText, Settings settings,
        FileInfo output, TextWriter log, FileInfo? mlnetZip = null)
    {
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
        RequireMLNetInputs(mlnetZip, settings, hasLabels: labels is not null);
        int? classes = choice.NumClasses ?? labels?.Length;
        if (labels is not null && choice.NumClasses is { } k && k != labels.Length)
            throw new ArgumentException($"--labels names {labels.Length} classes but --num-classes is {k}.");
        choice = choice with { NumClasses = classes };
        Backbone m;
        if (weights is not null)
        {
            CliErrors.RequireFile(weights, "--weights");
            if (ModelDescriptor.TryRead(weights.FullName) is { } trained)
                throw new ArgumentException($"--weights '{weights.FullName}' is a model written by `mlnetext train` ({trained.Describe()}): export it with " +
                                            $"--model {weights.FullName} (without --variant or --config), which keeps its classes and input framing.");
            var (loaded, load) = Backbones.Load(choice.VariantOrFamily, weights.FullName, choice.NumClasses, choice.CustomKwargs, choice.SizeKwargs(imageSize));
            if (load.SkippedHeadKeys.Count > 0)
                log.WriteLine($"note: classifier re-initialised ({string.Join(", ", load.SkippedHeadKeys)}): the weights have another class count");
            m = loaded;
        }
        else
        {
            m = choice.Create(choice.SizeKwargs(imageSize));
            log.WriteLine("note: no --weights given: exporting initialised (untrained) weights");
        }
        using (m)
            Written(OnnxExporter.Export(m, output.FullName, settings.Options with { ImageSize = imageSize, Labels = labels }), settings, log);
        WriteMLNet(output, mlnetZip, log);
        return 0;
    }

    /// <summary>Exports a model `train` wrote (or a checkpoint of one) with its own classes, image size and crop.</summary>
    internal static int RunTrained(FileInfo modelFile, Settings settings, FileInfo output, TextWriter log, FileInfo? mlnetZip = null)
    {
        RequireMLNetInputs(mlnetZip, settings, hasLabels: true);   // the model's classes
        CliErrors.RequireFile(modelFile, "--model");
        using (var model = ImageClassificationModel.Load(modelFile.FullName))
        {
            if (settings.Tta is { } views) model.TestTimeAugmentation = views;
            log.WriteLine($"model: {modelFile.FullName} ({model.Descriptor.Describe()})");
            Written(model.ExportOnnx(output.FullName, settings.Options), settings, log);
        }
        WriteMLNet(output, mlnetZip, log);
        return 0;
    }

    static void RequireMLNetInputs(FileInfo? mlnetZip, Settings settings, bool hasLabels)
    {
        if (mlnetZip is null) return;
        if (settings.Preprocess != OnnxPreprocess.MLNet)
            throw new ArgumentException("--mlnet needs --preprocess mlnet: the ML.NET model feeds 0-255 RGB pixels to the graph.");
        if (!hasLabels)
            throw new ArgumentException("--mlnet needs --labels: the ML.NET model's PredictedLabel and Score slots are named by the classes.");
    }

    static void Written(OnnxExportResult result, Settings settings, TextWriter log) =>
        log.WriteLine($"wrote {result.Path}{(result.ExternalDataPath is null ? "" : $" (+ {result.ExternalDataPath})")}: " +
            $"{result.NodeCount} nodes, {result.InitializerCount} initializers ({result.InitializerBytes / 1e6:F1} MB), " +
            $"input {result.Inputs[0]}, outputs {string.Join(", ", result.Outputs)}, opset {settings.Opset}, {OnnxExporter.PrecisionName(settings.Precision)}" +
            $"{(settings.Calibration is null ? "" : $" static, calibrated on {settings.Calibration.Count} images")}, {result.Elapsed.TotalSeconds:F2} s " +
            $"(tracing at batch 2 and 3: {result.TraceTime.TotalSeconds:F2} s, mapping: {result.MapTime.TotalSeconds:F2} s)");

    static void WriteMLNet(FileInfo output, FileInfo? mlnetZip, TextWriter log)
    {
        if (mlnetZip is null) return;
        MLNet.MLNetModelFile.Save(output.FullName, mlnetZip.FullName);
        log.WriteLine($"wrote {mlnetZip.FullName}: ML.NET model (mlContext.Model.Load; input 'ImagePath', outputs 'Score', 'PredictedLabel'), the ONNX model inside");
    }
}

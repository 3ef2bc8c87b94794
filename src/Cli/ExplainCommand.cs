using System.CommandLine;
using System.Globalization;
using MLNetExt.Imaging;
using MLNetExt.Inference;

namespace MLNetExt.Cli;

/// <summary>`mlnetext explain --model model.safetensors IMAGES_OR_FOLDER... --output DIR [--class NAME]`: for each image,
/// a PNG of the network's view of it beside the same view with the Grad-CAM heat of the predicted (or named) class laid
/// over it. Unreadable files are listed with the reason and do not stop the others.</summary>
internal static class ExplainCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model") { Description = "model.safetensors (or a checkpoint) written by `mlnetext train`: explaining needs gradients, so libtorch, not an export", Required = true };
        var inputs = new Argument<string[]>("images") { Description = "Image files or folders", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--output") { Description = "Folder for the pictures (NAME.cam.png per image)", Required = true };
        var cls = new Option<string?>("--class") { Description = "Explain this class for every image (default: each image's predicted class)" };
        var cmd = new Command("explain", "Show where a trained model finds the evidence for its prediction in each image (Grad-CAM heat maps).")
            { model, inputs, output, cls };
        cmd.SetAction(r => CliErrors.Guarded(() => Run(r.GetValue(model)!, r.GetValue(inputs)!, r.GetValue(output)!, r.GetValue(cls), Console.Out)));
        return cmd;
    }

    internal static int Run(FileInfo modelFile, IReadOnlyList<string> inputs, string outputFolder, string? className, TextWriter log)
    {
        CliErrors.RequireFile(modelFile, "--model");
        if (modelFile.Extension.ToLowerInvariant() is ".onnx" or ".zip")
            throw new ArgumentException($"--model: '{modelFile.Name}' is an export; explaining needs the gradients of the libtorch model: " +
                                        "give the model.safetensors `mlnetext train` wrote beside it.");
        var files = PredictCommand.ExpandInputs(inputs);
        using var model = ImageClassificationModel.Load(modelFile.FullName);
        int? classIndex = null;
        if (className is not null)
        {
            int k = model.Classes.ToList().IndexOf(className);
            if (k < 0) throw new ArgumentException($"--class: the model has no class '{className}'; its classes are {string.Join(", ", model.Classes.Select(c => $"'{c}'"))}.");
            classIndex = k;
        }
        Directory.CreateDirectory(outputFolder);
        var taken = new HashSet<string>(StringComparer.Ordinal);
        int failed = 0;
        foreach (var file in files)
        {
            var image = ImageDecoder.TryDecodeFile(file, out var reason);
            if (image is null)
            {
                log.WriteLine($"{file}\terror: {reason ?? "could not be decoded"}");
                failed++;
                continue;
            }
            var map = model.Explain(image, classIndex);
            var path = FreeName(outputFolder, Path.GetFileNameWithoutExtension(file), taken);
            map.SavePng(path);
            log.WriteLine($"{file}\t{map.Label} {map.Probability.ToString("P1", CultureInfo.InvariantCulture)}\t{path}");
        }
        return failed == files.Count ? 1 : 0;
    }

    /// <summary>NAME.cam.png in <paramref name="folder"/>, or NAME-2.cam.png... when an earlier image of this run took it.</summary>
    static string FreeName(string folder, string stem, HashSet<string> taken)
    {
        for (int n = 1; ; n++)
        {
            var path = Path.Combine(folder, n == 1 ? $"{stem}.cam.png" : $"{stem}-{n}.cam.png");
            if (taken.Add(path)) return path;
        }
    }
}

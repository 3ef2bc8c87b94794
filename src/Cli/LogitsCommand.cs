using System.CommandLine;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext logits --arch FAMILY (--variant NAME | --config FILE.json) --weights FILE --input RAW --shape N,C,H,W
/// --output RAW [--num-classes K]`: runs the model in eval mode on a raw little-endian float32 NCHW input and writes
/// the logits as raw little-endian float32 (N x classes). The output file appears only when complete.
/// </summary>
internal static class LogitsCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var weights = new Option<FileInfo>("--weights") { Description = "Weights: torch.save checkpoint or safetensors (or --pretrained)" };
        var pretrained = PretrainedOption.Create();
        var input = new Option<FileInfo>("--input") { Description = "Raw little-endian float32 NCHW images (normalised)", Required = true };
        var shape = new Option<string>("--shape") { Description = "N,C,H,W of the input", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write the logits (raw float32)", Required = true };
        var cmd = new Command("logits", "Run a backbone in eval mode on a raw float32 input and write the logits.") { weights, pretrained, input, shape, output };
        model.AddTo(cmd);
        model.Arch.Required = true;
        cmd.SetAction(r => CliErrors.Guarded(() =>
        {
            var (choice, file) = PretrainedOption.Resolve(model.Resolve(r), r.GetValue(weights), PretrainedOption.Value(r, pretrained), Console.Error);
            return Run(choice, file ?? throw new ArgumentException("logits needs --weights FILE or --pretrained [TAG]."), r.GetValue(input)!, r.GetValue(shape)!, r.GetValue(output)!, Console.Out);
        }));
        return cmd;
    }

    internal static int Run(ModelOptions.Choice choice, FileInfo weights, FileInfo input, string shapeText, FileInfo output, TextWriter log)
    {
        var shape = ParseShape(shapeText);
        CliErrors.RequireFile(input, "--input");
        long expectedBytes = shape.Aggregate(1L, (a, b) => a * b) * sizeof(float);
        if (input.Length != expectedBytes)
            throw new ArgumentException($"--input: '{input.FullName}' has {input.Length} bytes; --shape {shapeText} needs {expectedBytes} (float32).");
        CliErrors.RequireFile(weights, "--weights");

        var (model, load) = Backbones.Load(choice.VariantOrFamily, weights.FullName, choice.NumClasses, choice.CustomKwargs);
        using (model)
        {
            if (load.SkippedHeadKeys.Count > 0)
                log.WriteLine($"note: classifier re-initialised ({string.Join(", ", load.SkippedHeadKeys)}): the weights have another class count");
            model.Eval();
            using var scope = TensorScope.Begin();
            var data = new float[expectedBytes / sizeof(float)];
            using (var f = File.OpenRead(input.FullName)) f.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("raw files are little-endian");
            var x = Tensor.FromArray(data, shape);
            Tensor logits;
            using (Autograd.InferenceMode()) logits = model.Call(x);
            var values = logits.Contiguous().ToArray<float>();
            Serialization.AtomicFile.WriteAllBytes(output.FullName, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            log.WriteLine($"{model.Variant}: logits [{string.Join(", ", logits.Shape)}] written to {output.FullName}");
        }
        return 0;
    }

    internal static long[] ParseShape(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 4 || !parts.All(p => long.TryParse(p, out var d) && d > 0))
            throw new ArgumentException($"--shape must be four positive integers N,C,H,W; got '{text}'.");
        return parts.Select(long.Parse).ToArray();
    }
}

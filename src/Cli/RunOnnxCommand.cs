using System.CommandLine;
using System.Runtime.InteropServices;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext run-onnx --model model.onnx --input RAW --shape N,C,H,W --output RAW [--output-name Score|logits]
/// [--threads T] [--cuda DEVICE]`: runs an ONNX model in ONNX Runtime on a raw little-endian
/// float32 input (fed to the model's single input) and writes one output as raw little-endian float32. The output
/// file appears only when complete.
/// </summary>
internal static class RunOnnxCommand
{
    public static Command Create()
    {
        var model = new Option<FileInfo>("--model") { Description = "The ONNX model file", Required = true };
        var input = new Option<FileInfo>("--input") { Description = "Raw little-endian float32 input (e.g. NCHW images)", Required = true };
        var shape = new Option<string>("--shape") { Description = "Comma-separated input shape, e.g. N,C,H,W", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write the output (raw float32)", Required = true };
        var outputName = new Option<string?>("--output-name") { Description = "Which model output to write (default: Score if the model has it, else its first output)" };
        var threads = new Option<int>("--threads") { Description = "ONNX Runtime intra-op threads (0 = its default)", DefaultValueFactory = _ => 0 };
        var cuda = new Option<int?>("--cuda") { Description = "Run on this CUDA device (falls back to CPU with a warning when CUDA is unusable)" };
        var cmd = new Command("run-onnx", "Run an ONNX model in ONNX Runtime on a raw float32 input and write one output as raw float32.")
            { model, input, shape, output, outputName, threads, cuda };
        cmd.SetAction(r =>
        {
            try
            {
                var options = new OnnxSessionOptions { IntraOpThreads = r.GetValue(threads), CudaDeviceId = r.GetValue(cuda) };
                return Run(r.GetValue(model)!, r.GetValue(input)!, r.GetValue(shape)!, r.GetValue(output)!, r.GetValue(outputName), options, Console.Out);
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException or OnnxRuntimeException or DllNotFoundException)
            {
                Console.Error.WriteLine(e.Message);
                return e is ArgumentException ? 2 : 1;
            }
        });
        return cmd;
    }

    internal static int Run(FileInfo model, FileInfo input, string shapeText, FileInfo output, string? outputName, OnnxSessionOptions options, TextWriter log)
    {
        var shape = ParseShape(shapeText);
        CliErrors.RequireFile(model, "--model");
        CliErrors.RequireFile(input, "--input");
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (input.Length != count * sizeof(float))
            throw new ArgumentException($"--input: '{input.FullName}' has {input.Length} bytes; --shape {shapeText} needs {count * sizeof(float)} (float32).");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("raw files are little-endian");

        using var session = OnnxSession.FromFile(model.FullName, options);
        if (session.Inputs.Count != 1)
            throw new ArgumentException($"--model: run-onnx feeds one input, but '{model.Name}' has {session.Inputs.Count}: {string.Join("; ", session.Inputs)}");
        var name = outputName ?? (session.Outputs.Any(o => o.Name == "Score") ? "Score" : session.Outputs[0].Name);
        var data = new float[count];
        using (var f = File.OpenRead(input.FullName)) f.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
        using var result = session.Run(session.Inputs[0].Name, OnnxTensor.FromArray(data, shape), [name]);
        var value = result[0];
        if (value.ElementType != OnnxElementType.Float32)
            throw new ArgumentException($"--output-name: output '{name}' is {value.ElementType}, not float32; run-onnx writes float32 only.");
        Serialization.AtomicFile.WriteAllBytes(output.FullName, MemoryMarshal.AsBytes(value.AsSpan<float>()));
        log.WriteLine($"{model.Name} ({session.ExecutionProvider}, ONNX Runtime {OnnxRuntimeEnvironment.Version}): {name} [{string.Join(", ", value.Shape)}] written to {output.FullName}");
        return 0;
    }

    internal static long[] ParseShape(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length == 0 || !parts.All(p => long.TryParse(p, out var d) && d > 0))
            throw new ArgumentException($"--shape must be comma-separated positive integers such as N,C,H,W; got '{text}'.");
        return parts.Select(long.Parse).ToArray();
    }
}

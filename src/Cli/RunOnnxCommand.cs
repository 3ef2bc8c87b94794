using System.CommandLine;
using System.Runtime.InteropServices;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext run-onnx --model model.onnx --input RAW --shape N,C,H,W --output RAW [--output-name Score|logits]
/// [--threads T] [--cuda DEVICE]`: runs an ONNX model in ONNX Runtime on a raw little-endian
/// float32 input (fed to the model's single input) and writes one output as raw little-endian float32. The output
/// file appears only when complete. It uses the official ONNX Runtime API directly, as any ONNX Runtime user would.
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
        cmd.SetAction(r => CliErrors.Guarded(() => Run(r.GetValue(model)!, r.GetValue(input)!, r.GetValue(shape)!, r.GetValue(output)!,
            r.GetValue(outputName), r.GetValue(threads), r.GetValue(cuda), Console.Out, Console.Error)));
        return cmd;
    }

    internal static int Run(FileInfo model, FileInfo input, string shapeText, FileInfo output, string? outputName, int threads, int? cuda,
        TextWriter log, TextWriter warnings)
    {
        var shape = ParseShape(shapeText);
        CliErrors.RequireFile(model, "--model");
        CliErrors.RequireFile(input, "--input");
        if (threads < 0) throw new ArgumentException($"--threads must be >= 0 (0 = ONNX Runtime's default), got {threads}.");
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (input.Length != count * sizeof(float))
            throw new ArgumentException($"--input: '{input.FullName}' has {input.Length} bytes; --shape {shapeText} needs {count * sizeof(float)} (float32).");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("raw files are little-endian");

        using var options = new Ort.SessionOptions { IntraOpNumThreads = threads };
        string provider = "CPU";
        if (cuda is int device)
        {
            // the CPU package has no CUDA entry point; the GPU package fails here when CUDA/cuDNN or the device is missing
            try { options.AppendExecutionProvider_CUDA(device); provider = "CUDA"; }
            catch (Exception e) when (e is EntryPointNotFoundException or Ort.OnnxRuntimeException or DllNotFoundException)
            {
                warnings.WriteLine($"warning: CUDA device {device} is unusable by this ONNX Runtime ({e.Message.Trim()}); running on CPU.");
            }
        }
        using var session = new Ort.InferenceSession(model.FullName, options);
        if (session.InputNames.Count != 1)
            throw new ArgumentException($"--model: run-onnx feeds one input, but '{model.Name}' has {session.InputNames.Count}: {string.Join(", ", session.InputNames)}");
        var name = outputName ?? (session.OutputNames.Contains("Score") ? "Score" : session.OutputNames[0]);
        if (!session.OutputNames.Contains(name))
            throw new ArgumentException($"--output-name: '{model.Name}' has no output '{name}'; its outputs are {string.Join(", ", session.OutputNames)}.");
        if (session.OutputMetadata[name].ElementDataType != Ort.Tensors.TensorElementType.Float)
            throw new ArgumentException($"--output-name: output '{name}' is {session.OutputMetadata[name].ElementDataType}, not float32; run-onnx writes float32 only.");
        var data = new float[count];
        using (var f = File.OpenRead(input.FullName)) f.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
        using var value = Ort.OrtValue.CreateTensorValueFromMemory(data, shape);
        using var run = new Ort.RunOptions();
        using var results = session.Run(run, [session.InputNames[0]], [value], [name]);
        Serialization.AtomicFile.WriteAllBytes(output.FullName, MemoryMarshal.AsBytes(results[0].GetTensorDataAsSpan<float>()));
        var outShape = results[0].GetTensorTypeAndShape().Shape;
        log.WriteLine($"{model.Name} ({provider}, ONNX Runtime {Ort.OrtEnv.Instance().GetVersionString()}): {name} [{string.Join(", ", outShape)}] written to {output.FullName}");
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

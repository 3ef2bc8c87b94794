using System.Diagnostics;
using System.Text.Json;
using MLNetExt.Export;
using MLNetExt.OnnxRuntime;
using MLNetExt.Torch;
using MLNetExt.Vision;

// ExportBench VARIANT [--threads N] [--reps R] [--opset 17] [--serve-reps K]: the eager forward at batch 2 and 3 (the
// work the two traces repeat) and the full export (trace at 2 and 3, merge, map, write), median of R runs; then serving:
// libtorch eager vs ONNX Runtime (same thread count, normalised input, preprocess none) latency at batch 1 and
// throughput at batch 8, medians of K runs after warm-up. One JSON line.
// --save-weights FILE writes the model's initial weights (safetensors) and exits; --weights FILE loads them, so
// bench/torch_onnx_export.py can export the official code with the same values; --torch-onnx B1.onnx[,B8.onnx]
// times torch.onnx's export in the same ONNX Runtime session options, alternating with ours (one file: dynamic
// batch; two: static batch 1 and 8). --profile PREFIX writes ONNX Runtime's per-operator profiles of the serving
// sessions (PREFIXours-…json, PREFIXtorch-onnx-bN-…json).
string variant = args.Length > 0 && !args[0].StartsWith("--") ? args[0] : "transxnet_t";
int threads = Opt("--threads", Environment.ProcessorCount), reps = Opt("--reps", 3), opset = Opt("--opset", 17);
int serveReps = Opt("--serve-reps", 10);
TorchRuntime.Threads = threads;

string? Arg(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
using var model = Arg("--weights") is { } weightsFile ? Backbones.Load(variant, weightsFile).Model : Backbones.Create(variant);
model.Eval();
if (Arg("--save-weights") is { } saveTo)
{
    MLNetExt.Serialization.SafeTensors.Save(saveTo, model.StateDict());
    return;
}
var torchOnnx = Arg("--torch-onnx")?.Split(',');
var (h, w) = (model.PretrainedConfig.Height, model.PretrainedConfig.Width);
var eager = new List<double>();
var export = new List<double>();
var trace = new List<double>();
var map = new List<double>();
var path = Path.Combine(Path.GetTempPath(), $"exportbench-{Environment.ProcessId}.onnx");
OnnxExportResult? last = null;
var serving = new Dictionary<string, object>();
try
{
    for (int r = 0; r < reps; r++)
    {
        var sw = Stopwatch.StartNew();
        using (TensorScope.Begin())
        using (Autograd.NoGrad())
        {
            foreach (long n in new long[] { 2, 3 })
            {
                using var x = Tensor.Randn(new[] { n, 3L, h, w });
                model.Call(x).Dispose();
            }
        }
        eager.Add(sw.Elapsed.TotalSeconds);
        last = OnnxExporter.Export(model, path, new OnnxExportOptions { Opset = opset });
        export.Add(last.Elapsed.TotalSeconds);
        trace.Add(last.TraceTime.TotalSeconds);
        map.Add(last.MapTime.TotalSeconds);
    }
    // Serving: the same network on a normalised input in both runtimes.
    OnnxExporter.Export(model, path, new OnnxExportOptions { Opset = opset, Preprocess = OnnxPreprocess.None });
    // two sessions run by turns: their threads must not spin while the other one runs (on few cores, spinning threads
    // of the session that just finished slow down the next run of the other)
    string? profile = Arg("--profile");
    OnnxSessionOptions Profiled(string? prefix) => new() { IntraOpThreads = threads, IntraOpSpinning = torchOnnx is null, ProfilePrefix = prefix };
    using var session = OnnxSession.FromFile(path, Profiled(profile is null ? null : profile + "ours-"));
    foreach (int n in new[] { 1, 8 })
    {
        var data = new float[n * 3 * h * w];
        var rnd = new Random(n);
        for (int i = 0; i < data.Length; i++) data[i] = (float)(rnd.NextDouble() * 2 - 1);
        using var x = Tensor.FromArray<float>(data, new long[] { n, 3, h, w });
        var input = OnnxTensor.FromArray(data, n, 3, h, w);
        int k = n == 1 ? serveReps : Math.Max(3, serveReps / 3);
        double torchS = Serve(() => { using (Autograd.InferenceMode()) model.Call(x).Dispose(); }, k);
        if (torchOnnx is not null)
        {
            // ours and torch.onnx's, alternating run by run (and which goes first) so machine load hits both alike
            using var theirs = OnnxSession.FromFile(torchOnnx.Length > 1 && n > 1 ? torchOnnx[1] : torchOnnx[0],
                Profiled(profile is null ? null : $"{profile}torch-onnx-b{n}-"));
            void Ours() { using var r = session.Run(session.Inputs[0].Name, input, new[] { "logits" }); }
            void Theirs() { using var r = theirs.Run(theirs.Inputs[0].Name, input, new[] { theirs.Outputs[0].Name }); }
            Ours(); Theirs(); Ours(); Theirs();
            var (a, b) = (new List<double>(), new List<double>());
            for (int i = 0; i < k; i++)
            {
                if (i % 2 == 1) { var st = Stopwatch.StartNew(); Theirs(); b.Add(st.Elapsed.TotalSeconds); }
                var sw = Stopwatch.StartNew(); Ours(); a.Add(sw.Elapsed.TotalSeconds);
                if (i % 2 == 0) { var st = Stopwatch.StartNew(); Theirs(); b.Add(st.Elapsed.TotalSeconds); }
            }
            if (profile is not null) Console.Error.WriteLine($"profile: {theirs.EndProfiling()}");
            serving[$"batch{n}"] = new { libtorch_ms = torchS * 1e3, onnxruntime_ms = Median(a) * 1e3, torch_onnx_ms = Median(b) * 1e3,
                ours_vs_torch_onnx = Median(b) / Median(a), torch_onnx_dynamic_batch = torchOnnx.Length == 1 };
            continue;
        }
        double ortS = Serve(() => { using var r = session.Run(session.Inputs[0].Name, input, new[] { "logits" }); }, k);
        serving[$"batch{n}"] = new { libtorch_ms = torchS * 1e3, onnxruntime_ms = ortS * 1e3, libtorch_img_s = n / torchS, onnxruntime_img_s = n / ortS, ort_speedup = torchS / ortS };
    }
    if (profile is not null) Console.Error.WriteLine($"profile: {session.EndProfiling()}");
}
finally
{
    if (File.Exists(path)) File.Delete(path);
}
Console.WriteLine(JsonSerializer.Serialize(new
{
    variant, threads, reps, opset, input = $"3x{h}x{w}",
    eager_forward_batch2_and_3_s = Median(eager),
    export_total_s = Median(export), export_trace_s = Median(trace), export_map_s = Median(map),
    export_write_and_rest_s = Median(export) - Median(trace) - Median(map),
    nodes = last!.NodeCount, initializers = last.InitializerCount, mbytes = last.InitializerBytes / 1e6,
    serving,
}));

static double Serve(Action run, int reps)
{
    run(); run(); // warm-up: kernels, allocations, ORT arenas
    var t = new List<double>();
    for (int i = 0; i < reps; i++)
    {
        var sw = Stopwatch.StartNew();
        run();
        t.Add(sw.Elapsed.TotalSeconds);
    }
    return Median(t);
}

int Opt(string name, int dflt)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : dflt;
}

static double Median(List<double> v)
{
    var s = v.OrderBy(x => x).ToArray();
    return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
}

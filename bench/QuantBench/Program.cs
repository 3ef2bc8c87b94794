using System.Diagnostics;
using System.Text.Json;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Inference;
using MLNetExt.OnnxRuntime;
using MLNetExt.Torch;
using MLNetExt.Vision;

// QuantBench (VARIANT | --model FILE.safetensors) [--precision int8|fp16] [--calibrate DIR] [--opset 17] [--images DIR] [--optimized FILE]
//   [--profile PREFIX] [--seed N] [--threads N] [--reps K] [--spin]:
// exports the model in float32 and in the lower precision (default int8; ML.NET pixel layout), then in ONNX Runtime on CPU
// with the same session options: latency at
// batch 1 and throughput at batch 8, alternating the two models run by run so machine load hits both alike (medians of
// K runs after warm-up); model sizes; and over every image under DIR the top-1 agreement of the two, plus each one's
// top-1 accuracy when DIR has class folders named like the model's classes. One JSON line.
// --spin: intra-op threads spin between operators (ONNX Runtime's default, what OnnxImageScorer and ML.NET's
// ApplyOnnxModel run with); the models then run in blocks (float32, low, low, float32; each block's first run untimed),
// not run by run, so the threads still spinning after one model's run do not slow the other's.
string? Arg(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
int threads = int.Parse(Arg("--threads") ?? Environment.ProcessorCount.ToString()), reps = int.Parse(Arg("--reps") ?? "20");
TorchRuntime.Threads = threads;
// --seed N: the random-initialised weights of a given seed (the same model in two builds)
if (Arg("--seed") is { } seed) TorchRuntime.ManualSeed(ulong.Parse(seed));
ImageClassificationModel? trained = Arg("--model") is { } file ? ImageClassificationModel.Load(file) : null;
var backbone = trained?.Backbone ?? Backbones.Create(args[0]);
backbone.Eval();
var low = OnnxExporter.PrecisionFromName(Arg("--precision") ?? "int8") ?? throw new ArgumentException($"--precision must be int8 or fp16, got '{Arg("--precision")}'.");
string lowName = OnnxExporter.PrecisionName(low);
int opset = int.Parse(Arg("--opset") ?? "17");
// --calibrate DIR: static INT8 calibrated on the images under DIR (default: dynamic INT8 of the linear layers)
var calibration = Arg("--calibrate") is { } calDir ? ImageDataset.FindImages(calDir) : null;
var dir = Directory.CreateTempSubdirectory("quantbench-");
try
{
    var paths = new Dictionary<OnnxPrecision, string>();
    var bytes = new Dictionary<OnnxPrecision, long>();
    foreach (var p in new[] { OnnxPrecision.Float32, low })
    {
        paths[p] = Path.Combine(dir.FullName, $"{p}.onnx");
        var options = new OnnxExportOptions { Opset = opset, Precision = p, Labels = trained?.Classes, CalibrationImages = p == OnnxPrecision.Int8 ? calibration : null };
        if (trained is not null) trained.ExportOnnx(paths[p], options); else OnnxExporter.Export(backbone, paths[p], options);
        bytes[p] = new FileInfo(paths[p]).Length;
    }
    // the two sessions run by turns: no spinning threads of one slowing the other's next run on few cores
    bool spin = args.Contains("--spin");
    var sessionOptions = new OnnxSessionOptions { IntraOpThreads = threads, IntraOpSpinning = spin };
    // --optimized FILE: where ONNX Runtime writes the low-precision graph after its fusions (to see which kernels run;
    // the float32 one goes to FILE with the extension .fp32.onnx)
    // --profile PREFIX: ONNX Runtime's per-operator profiles of both models (PREFIX…json, PREFIXfp32-…json), and their
    // summaries on stderr (what share of float32's time the integer kernels can take on bounds the speed-up)
    using var fp32 = OnnxSession.FromFile(paths[OnnxPrecision.Float32], new OnnxSessionOptions
    {
        IntraOpThreads = threads, IntraOpSpinning = spin,
        OptimizedModelPath = Arg("--optimized") is { } opt ? Path.ChangeExtension(opt, ".fp32.onnx") : null,
        ProfilePrefix = Arg("--profile") is { } prefix ? prefix + "fp32-" : null,
    });
    using var lowSession = OnnxSession.FromFile(paths[low], new OnnxSessionOptions { IntraOpThreads = threads, IntraOpSpinning = spin,
        OptimizedModelPath = Arg("--optimized"), ProfilePrefix = Arg("--profile") });
    var dims = fp32.Inputs[0].Dimensions;
    var serving = new Dictionary<string, object>();
    foreach (int n in new[] { 1, 8 })
    {
        var data = new float[n * dims[1] * dims[2] * dims[3]];
        var rnd = new Random(n);
        for (int i = 0; i < data.Length; i++) data[i] = rnd.Next(256);
        var input = OnnxTensor.FromArray(data, n, dims[1], dims[2], dims[3]);
        void Run(OnnxSession s) { using var r = s.Run(s.Inputs[0].Name, input, ["logits"]); }
        Run(fp32); Run(lowSession); Run(fp32); Run(lowSession);
        var (a, b) = (new List<double>(), new List<double>());
        int k = n == 1 ? reps : Math.Max(3, reps / 4);
        if (!spin)
            for (int i = 0; i < k; i++)
            {
                var sw = Stopwatch.StartNew(); Run(fp32); a.Add(sw.Elapsed.TotalMilliseconds);
                sw.Restart(); Run(lowSession); b.Add(sw.Elapsed.TotalMilliseconds);
            }
        else
            foreach (var (session, times) in new[] { (fp32, a), (lowSession, b), (lowSession, b), (fp32, a) })
            {
                Run(session);
                for (int i = 0; i < (k + 1) / 2; i++)
                {
                    var sw = Stopwatch.StartNew(); Run(session); times.Add(sw.Elapsed.TotalMilliseconds);
                }
            }
        serving[$"batch{n}"] = new Dictionary<string, double>
        {
            ["fp32_ms"] = Median(a), [$"{lowName}_ms"] = Median(b), [$"{lowName}_speedup"] = Median(a) / Median(b),
            ["fp32_img_s"] = n * 1e3 / Median(a), [$"{lowName}_img_s"] = n * 1e3 / Median(b),
        };
    }
    if (Arg("--profile") is not null)
    {
        var f32 = ProfileSummary("fp32", fp32.EndProfiling());
        var f8 = ProfileSummary(lowName, lowSession.EndProfiling());
        // What the low-precision kernels allow at most: float32's time with its products (and the layout reorders
        // around its convolutions) replaced by the low-precision model's products, every other operator as in
        // float32 - as if quantizing added no Quantize/Dequantize, Transpose or unfused operator of its own.
        double fp32Products = f32.Where(kv => IsProduct(kv.Key)).Sum(kv => kv.Value), fp32Total = f32.Values.Sum();
        double lowProducts = f8.Where(kv => IsProduct(kv.Key)).Sum(kv => kv.Value), lowTotal = f8.Values.Sum();
        Console.Error.WriteLine($"profile bound: products {fp32Products:F0} of {fp32Total:F0} ms in fp32, {lowProducts:F0} of " +
            $"{lowTotal:F0} ms in {lowName}: speed-up at most {fp32Total / (fp32Total - fp32Products + lowProducts):F2}x " +
            $"(measured over the profiled runs {fp32Total / lowTotal:F2}x)");
    }
    object? photos = null;
    if (Arg("--images") is { } images)
    {
        var files = ImageDataset.FindImages(images);
        using var s32 = new OnnxImageScorer(paths[OnnxPrecision.Float32], sessionOptions);
        using var s8 = new OnnxImageScorer(paths[low], sessionOptions);
        var p32 = s32.Predict(files, 1);
        var p8 = s8.Predict(files, 1);
        int agree = p32.Zip(p8).Count(t => t.First.Index == t.Second.Index);
        // the true class is the image's folder when the model's classes name the folders
        int? Truth(string f) => trained?.Classes.ToList().IndexOf(Path.GetFileName(Path.GetDirectoryName(f))!) is int c and >= 0 ? c : null;
        var labelled = files.Select((f, i) => (Truth: Truth(f), i)).Where(t => t.Truth is not null).ToList();
        photos = new Dictionary<string, double?>
        {
            ["images"] = files.Count, ["top1_agreement"] = (double)agree / files.Count, ["labelled"] = labelled.Count,
            ["fp32_top1"] = labelled.Count == 0 ? null : labelled.Count(t => p32[t.i].Index == t.Truth) / (double)labelled.Count,
            [$"{lowName}_top1"] = labelled.Count == 0 ? null : labelled.Count(t => p8[t.i].Index == t.Truth) / (double)labelled.Count,
        };
    }
    var lowGraph = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(paths[low])).Graph;
    Console.WriteLine(JsonSerializer.Serialize(new
    {
        variant = backbone.Variant, trained = trained is not null, threads, spinning = spin, date = DateTime.UtcNow.ToString("yyyy-MM-dd"),
        load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?", cpu = Processor(),
        precision = lowName, fp32_mb = bytes[OnnxPrecision.Float32] / 1e6, low_mb = bytes[low] / 1e6,
        int8 = low != OnnxPrecision.Int8 ? null : calibration is null ? "dynamic" : $"static ({calibration.Count} images)",
        quantize_nodes = lowGraph.Node.Count(n => n.OpType == "QuantizeLinear"),
        matmul_integer_nodes = lowGraph.Node.Count(n => n.OpType == "MatMulInteger"),
        serving, photos,
    }));
}
finally
{
    trained?.Dispose();
    if (trained is null) backbone.Dispose();
    dir.Delete(true);
}

// Time per operator type over the profiled runs, largest first. Nodes inside a Scan's subgraph count in the Scan's
// time only (the profile lists them too, nested in the Scan's interval).
static Dictionary<string, double> ProfileSummary(string model, string file)
{
    var nodes = JsonDocument.Parse(File.ReadAllText(file)).RootElement.EnumerateArray()
        .Where(e => e.GetProperty("cat").GetString() == "Node" && e.GetProperty("name").GetString()!.EndsWith("_kernel_time")
            && e.GetProperty("args").TryGetProperty("op_name", out _))
        .Select(e => (Op: e.GetProperty("args").GetProperty("op_name").GetString()!, Start: e.GetProperty("ts").GetDouble(),
            Duration: e.GetProperty("dur").GetDouble()))
        .ToList();
    var scans = nodes.Where(n => n.Op is "Scan" or "Loop" or "If").ToList();
    var byOp = new Dictionary<string, double>();
    foreach (var n in nodes)
        if (!scans.Any(s => !s.Equals(n) && s.Start <= n.Start && n.Start + n.Duration <= s.Start + s.Duration))
            byOp[n.Op] = byOp.GetValueOrDefault(n.Op) + n.Duration / 1e3;
    double total = byOp.Values.Sum();
    foreach (var (op, ms) in byOp.OrderByDescending(kv => kv.Value))
        Console.Error.WriteLine($"profile {model,-5} {op,-28} {ms,10:F1} ms {100 * ms / total,5:F1} %");
    return byOp;
}

// matrix products and convolutions, float or integer, and the blocked-layout reorders ONNX Runtime puts around float
// convolutions (its NHWC QLinearConv needs none)
static bool IsProduct(string op) => op is "Conv" or "FusedConv" or "NchwcConv" or "MatMul" or "FusedMatMul" or "Gemm"
    or "ReorderInput" or "ReorderOutput" or "QLinearConv" or "ConvInteger" or "MatMulInteger" or "DynamicQuantizeMatMul"
    or "MatMulIntegerToFloat" or "QLinearMatMul";

// The processor's name and the vector extensions ONNX Runtime's integer and float kernels choose between: what INT8
// gains depends on them (bench/README.md).
static string Processor()
{
    try
    {
        var lines = File.ReadLines("/proc/cpuinfo").ToList();
        string name = lines.FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? "?";
        var flags = lines.FirstOrDefault(l => l.StartsWith("flags"))?.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        string[] known = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16"];
        return $"{name} ({string.Join(" ", known.Where(flags.Contains))})";
    }
    catch (IOException) { return "?"; }
}

static double Median(List<double> v) { var s = v.Order().ToList(); return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2; }

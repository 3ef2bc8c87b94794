// Training throughput of one variant, C# side. Prints one JSON object per measurement:
//   path "full"   the product path: ImageClassificationEstimator.Fit on an in-memory dataset of synthetic 256x256
//                 images (one epoch, no validation, fixed learning rate, "light" augmentation, Workers = threads unless --workers);
//                 images/s over the steps after the warm-up, from the Progress callback's timestamps.
//   path "model"  the same training step on pre-made tensors (train mode, label-smoothed cross-entropy, backward,
//                 clip 5.0, AdamW with the trainer's parameter groups): what the network costs without the data.
//   path "loader" the trainer's data pipeline alone (same DataLoader settings), images/s with no model running.
//   path "infer"  eval-mode forward under inference mode on pre-made tensors.
// --mode describe prints the drop-path rate the trainer uses for the variant, so the Python side can match it.
//   path "check"  the device against the CPU, same weights and batch (2 images, no drop path): eval logits, and one
//                 training step's loss and gradient norm, as relative differences.
// --device cuda runs every path on the GPU (what the trainer does with Device = "cuda"); a scalar read after each
// step waits for the device, so the clocks time finished work. --precision fp32|bf16|fp32,bf16: float32, or bfloat16
// autocast around forward and loss (default: the trainer's, bf16 on CUDA and fp32 on the CPU); each path runs once
// per precision.
// The Python twin is bench/train_bench.py; bench/run-train-bench.sh runs both.
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetExt.Data;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Imaging;
using MLNetExt.MLNet;

string variant = "transxnet_t", mode = "full,model";
string? profile = null;   // --profile FILE: libtorch's operator profile of the timed "model" steps, as TSV
string deviceName = "cpu";
string? precision = null;
int? workers = null;      // --workers N: the loader's worker threads (default: as many as --threads, as the trainer)
int batch = 16, size = 224, warmup = 1, steps = 4, threads = Environment.ProcessorCount, classes = 10, source = 256;
double lr = 1e-3;
for (int i = 0; i < args.Length; i += 2)
{
    string v = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"Option {args[i]} needs a value.");
    switch (args[i])
    {
        case "--variant": variant = v; break;
        case "--batch": batch = PositiveInt(args[i], v); break;
        case "--size": size = PositiveInt(args[i], v); break;
        case "--warmup": warmup = PositiveInt(args[i], v); break;
        case "--steps": steps = PositiveInt(args[i], v); break;
        case "--threads": threads = PositiveInt(args[i], v); break;
        case "--classes": classes = PositiveInt(args[i], v); break;
        case "--source-size": source = PositiveInt(args[i], v); break;
        case "--lr": lr = double.Parse(v, System.Globalization.CultureInfo.InvariantCulture); break;
        case "--mode": mode = v; break;
        case "--profile": profile = v; break;
        case "--device": deviceName = v; break;
        case "--precision": precision = v; break;
        case "--workers": workers = PositiveInt(args[i], v); break;
        default: throw new ArgumentException($"Unknown option '{args[i]}' (expected --variant, --batch, --size, --warmup, --steps, --threads, --classes, --source-size, --lr, --mode, --profile, --device, --precision, --workers).");
    }
}
var modes = mode.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
foreach (var m in modes)
    if (m is not ("full" or "model" or "loader" or "infer" or "check" or "describe"))
        throw new ArgumentException($"--mode: expected a comma list of full, model, loader, infer, check, describe; found '{m}'.");
var device = Device.Parse(deviceName);
if (device.Type == DeviceType.Cuda && !TorchRuntime.CudaIsAvailable)
    throw new ArgumentException($"--device {deviceName}: this libtorch sees no CUDA device (is MLNETEXT_NATIVE a CUDA build of the bridge?).");
var precisions = (precision ?? (device.Type == DeviceType.Cuda ? "bf16" : "fp32"))
    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
    .Select(p => p switch { "fp32" => false, "bf16" => true, _ => throw new ArgumentException($"--precision: expected a comma list of fp32, bf16; found '{p}'.") })
    .ToArray();
bool autocast = false; // the precision of the path being run (bfloat16 autocast when true)
TorchRuntime.CudnnBenchmark = device.Type == DeviceType.Cuda; // as the trainer (and the official training scripts) do

if (classes > (warmup + steps) * batch)
    throw new ArgumentException($"--classes {classes}: the synthetic dataset has (warmup + steps) × batch = {(warmup + steps) * batch} images, and every class needs one.");
TorchRuntime.Threads = threads;
double dropPath = TrainerDropPath(variant);
var common = new Dictionary<string, object>
{
    ["side"] = "csharp", ["variant"] = variant, ["batch"] = batch, ["size"] = size, ["threads"] = threads,
    ["warmup"] = warmup, ["steps"] = steps, ["drop_path"] = dropPath, ["blas"] = TorchRuntime.BlasLibrary,
    ["device"] = device.ToString(),
};
if (device.Type == DeviceType.Cuda) common["gpu"] = $"cuda ({TorchRuntime.CudaDeviceCount} device(s)), libtorch {TorchRuntime.Version}";
foreach (var m in modes)
    foreach (bool bf16 in m is "loader" or "describe" or "check" ? precisions.Take(1) : precisions)
    {
        autocast = bf16;
        var r = new Dictionary<string, object>(common) { ["path"] = m, ["precision"] = bf16 ? "bf16" : "fp32" };
        switch (m)
        {
            case "describe": break;
            case "full": Full(r); break;
            case "model": ModelOnly(r); break;
            case "loader": LoaderOnly(r); break;
            case "infer": Infer(r); break;
            case "check": Check(r); break;
        }
        Console.WriteLine(JsonSerializer.Serialize(r));
    }

// The trainer's rule (Trainer.DropPath): the variant's official rate for fine-tuning, capped at 0.1.
static double TrainerDropPath(string variant) =>
    Math.Min(Backbones.Find(variant).KwargsObject()["drop_path_rate"]?.GetValue<double>() ?? 0, 0.1);

// CPU seconds of this process (user + system, all threads): with the wall time it tells how much of the machine the
// run really had (cpu_util = CPU seconds / wall seconds / threads; near 1 on an idle machine).
static double CpuSeconds() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

static int PositiveInt(string option, string value) =>
    int.TryParse(value, out int n) && n > 0 ? n : throw new ArgumentException($"Option {option} must be a positive integer; got '{value}'.");

// Smooth colour gradients plus noise: cheap to make, and not so uniform that a resampler could shortcut them.
ImageDataset Synthetic(int count)
{
    var names = Enumerable.Range(0, classes).Select(c => $"class{c}").ToArray();
    var items = new List<ImageItem>(count);
    var rng = new Random(1);
    for (int i = 0; i < count; i++)
    {
        var img = new RgbImage(source, source);
        int c = i % classes;
        for (int y = 0; y < source; y++)
            for (int x = 0; x < source; x++)
            {
                int p = (y * source + x) * 3;
                img.Pixels[p] = (byte)Math.Clamp(x * 255 / source + rng.Next(-20, 21), 0, 255);
                img.Pixels[p + 1] = (byte)Math.Clamp(y * 255 / source + rng.Next(-20, 21), 0, 255);
                img.Pixels[p + 2] = (byte)Math.Clamp(c * 255 / classes + rng.Next(-20, 21), 0, 255);
            }
        items.Add(new ImageItem($"img{i}", c, Image: img));
    }
    return ImageDataset.FromList(names, items, "synthetic");
}

void Full(Dictionary<string, object> r)
{
    int total = warmup + steps;
    var data = Synthetic(total * batch);
    var stamps = new List<double>(); // Elapsed at the end of each optimizer step
    var cpu = new List<double>();    // process CPU seconds (all threads: torch's and the loader's) at the same moments
    var losses = new List<double>();
    double trainerIps = 0;
    var options = new ImageClassificationOptions
    {
        Model = variant,
        ImageSize = size,
        Epochs = 1,
        BatchSize = batch,
        LearningRate = lr,
        ValidationFraction = 0,
        Augment = "light",
        Workers = workers ?? threads,
        Device = deviceName,
        MixedPrecision = autocast,
        Seed = 0,
        Progress = p =>
        {
            if (p.Phase != TrainingPhase.Training) return;
            stamps.Add(p.Elapsed.TotalSeconds);
            cpu.Add(CpuSeconds());
            losses.Add(p.Loss);
            trainerIps = p.ImagesPerSecond;
        },
    };
    var clock = Stopwatch.StartNew();
    using var model = new ImageClassificationEstimator(options).Fit(data);
    double fit = clock.Elapsed.TotalSeconds;
    if (stamps.Count != total)
        throw new InvalidOperationException($"Expected {total} training steps from the trainer, got {stamps.Count}.");
    var stepTimes = new List<double> { stamps[0] };
    for (int i = 1; i < stamps.Count; i++) stepTimes.Add(stamps[i] - stamps[i - 1]);
    r["img_s"] = steps * batch / (stamps[^1] - stamps[warmup - 1]);
    r["step_s"] = stepTimes.Skip(warmup).Select(s => Math.Round(s, 3)).ToArray();
    r["cpu_util"] = Math.Round((cpu[^1] - cpu[warmup - 1]) / (stamps[^1] - stamps[warmup - 1]) / threads, 3);
    r["first_step_s"] = Math.Round(stamps[0], 3); // includes the loader's start (first batch decoded + augmented)
    r["fit_s"] = Math.Round(fit, 2);              // model build + all steps + final bookkeeping
    r["trainer_reported_img_s"] = trainerIps;     // the trainer's own running figure (includes the warm-up step)
    r["trainer_drop_path"] = model.History!.Settings["drop_path"];
    r["loss_last"] = losses[^1];
    r["workers"] = workers ?? threads;
}

void ModelOnly(Dictionary<string, object> r)
{
    TorchRuntime.ManualSeed(0);
    using var model = Backbones.Create(variant, classes, new JsonObject { ["drop_path_rate"] = dropPath });
    model.To(device);
    model.Train();
    // The trainer's parameter groups without layer decay: (no) decay by the family's exemption rule.
    var named = model.NamedParameters().ToList();
    var decay = named.Where(p => !model.ExemptFromWeightDecay(p.Name, p.Parameter)).Select(p => p.Parameter).ToList();
    var noDecay = named.Where(p => model.ExemptFromWeightDecay(p.Name, p.Parameter)).Select(p => p.Parameter).ToList();
    using var opt = new AdamW(new List<ParamGroup> { new(noDecay, lr, 0, "no_decay"), new(decay, lr, 0.05, "decay") });
    using var x = OnDevice(Tensor.Randn(new long[] { batch, 3, size, size }));
    using var y = OnDevice(Tensor.RandInt(0, classes, new long[] { batch }));
    var parameters = named.Select(p => p.Parameter).ToList();
    var times = new List<double>();
    double loss = 0, cpu0 = 0;
    for (int i = 0; i < warmup + steps; i++)
    {
        if (i == warmup)
        {
            cpu0 = CpuSeconds();
            if (profile != null) OperatorProfiler.Start();
        }
        var clock = Stopwatch.StartNew();
        using (TensorScope.Begin())
        {
            Tensor l;
            using (autocast ? Autocast.Enable(device.Type) : null)
                l = F.CrossEntropy(model.Call(x), y, labelSmoothing: 0.1);
            loss = l.ToDouble();
            l.Backward();
        }
        GradClip.ClipGradNorm(parameters, 5.0);
        opt.Step();
        opt.ZeroGrad();
        WaitForDevice(parameters[^1]);
        times.Add(clock.Elapsed.TotalSeconds);
    }
    if (profile != null)
    {
        // name, calls, self and total CPU microseconds over the timed steps (train_bench.py --profile writes the same)
        File.WriteAllLines(profile, OperatorProfiler.Stop().Select(t => FormattableString.Invariant(
            $"{t.Name}\t{t.Calls}\t{t.SelfMicroseconds:F0}\t{t.TotalMicroseconds:F0}")).Prepend("name\tcalls\tself_us\ttotal_us"));
        r["profile"] = profile;
    }
    r["img_s"] = steps * batch / times.Skip(warmup).Sum();
    r["cpu_util"] = Math.Round((CpuSeconds() - cpu0) / times.Skip(warmup).Sum() / threads, 3);
    r["step_s"] = times.Skip(warmup).Select(s => Math.Round(s, 3)).ToArray();
    r["first_step_s"] = Math.Round(times[0], 3);
    r["params_decay"] = decay.Count;
    r["params_no_decay"] = noDecay.Count;
    r["loss_last"] = loss;
}

void Infer(Dictionary<string, object> r)
{
    TorchRuntime.ManualSeed(0);
    using var model = Backbones.Create(variant, classes, new JsonObject { ["drop_path_rate"] = dropPath });
    model.To(device);
    model.Eval();
    using var x = OnDevice(Tensor.Randn(new long[] { batch, 3, size, size }));
    var times = new List<double>();
    double logitsAbsMean = 0;
    for (int i = 0; i < warmup + steps; i++)
    {
        var clock = Stopwatch.StartNew();
        using (TensorScope.Begin())
        using (Autograd.InferenceMode())
        using (autocast ? Autocast.Enable(device.Type) : null)
            logitsAbsMean = model.Call(x).To(DType.Float32).Abs().Mean().ToDouble(); // the scalar read waits for the device
        times.Add(clock.Elapsed.TotalSeconds);
    }
    r["img_s"] = steps * batch / times.Skip(warmup).Sum();
    r["step_s"] = times.Skip(warmup).Select(s => Math.Round(s, 4)).ToArray();
    r["first_step_s"] = Math.Round(times[0], 3);
    r["logits_abs_mean"] = logitsAbsMean;
}

void Check(Dictionary<string, object> r)
{
    TorchRuntime.ManualSeed(0);
    using var model = Backbones.Create(variant, classes, new JsonObject { ["drop_path_rate"] = 0.0 });
    using var x = Tensor.Randn(new long[] { 2, 3, size, size });
    using var y = Tensor.RandInt(0, classes, new long[] { 2 });
    var parameters = model.Parameters().ToList();
    float[] Logits(Device on)
    {
        model.To(on);
        model.Eval();
        using (TensorScope.Begin())
        using (Autograd.InferenceMode())
            return model.Call(x.To(on)).To(Device.Cpu).ToArray<float>();
    }
    // one training step's loss and gradient norm, without the optimizer step (the weights stay put; train mode
    // normalises with the batch's statistics, so the running ones it updates do not matter)
    (double Loss, double GradNorm) Step(Device on)
    {
        model.To(on);
        model.Train();
        double loss;
        using (TensorScope.Begin())
        {
            var l = F.CrossEntropy(model.Call(x.To(on)), y.To(on), labelSmoothing: 0.1);
            loss = l.ToDouble();
            l.Backward();
        }
        double norm = GradClip.ClipGradNorm(parameters, double.PositiveInfinity);
        model.ZeroGrad();
        return (loss, norm);
    }
    // both eval passes before any training step, which updates BatchNorm's running statistics
    float[] cpuLogits = Logits(Device.Cpu), deviceLogits = Logits(device);
    var deviceStep = Step(device);
    var cpuStep = Step(Device.Cpu);
    r["precision"] = "fp32";
    double diff = 0, reference = 0;
    for (int i = 0; i < cpuLogits.Length; i++)
    {
        diff += Math.Pow(cpuLogits[i] - deviceLogits[i], 2);
        reference += Math.Pow(cpuLogits[i], 2);
    }
    r["logits_rel_diff"] = Math.Sqrt(diff / reference);
    r["loss_cpu"] = cpuStep.Loss;
    r["loss_device"] = deviceStep.Loss;
    r["loss_rel_diff"] = Math.Abs(deviceStep.Loss - cpuStep.Loss) / Math.Abs(cpuStep.Loss);
    r["grad_norm_rel_diff"] = Math.Abs(deviceStep.GradNorm - cpuStep.GradNorm) / cpuStep.GradNorm;
}

// A tensor made on the CPU (so both devices see the same random numbers) moved to the benchmark's device.
Tensor OnDevice(Tensor t)
{
    if (device.Type == DeviceType.Cpu) return t;
    using (t) return t.To(device);
}

// Kernels run asynchronously on a GPU: reading one element back waits for everything queued before it.
void WaitForDevice(Tensor parameter)
{
    if (device.Type == DeviceType.Cpu) return;
    using (TensorScope.Begin())
    using (Autograd.NoGrad())
        parameter.Flatten().Select(0, 0).ToDouble();
}

void LoaderOnly(Dictionary<string, object> r)
{
    int total = warmup + steps;
    var data = Synthetic(total * batch);
    var cfg = Backbones.Find(variant).Pretrained;
    // The trainer's loader (Trainer: TrainPipeline + LoaderOptions), for "light" augmentation.
    var pipeline = ImagePipeline.Train(size, size, cfg.Mean, cfg.Std, Resampler.Parse(cfg.Interpolation), scaleMin: 0.35, hflip: 0.5,
        colorJitter: 0.3, trivialAugment: false, randomErasing: 0);
    var loader = new DataLoader(data, pipeline, new LoaderOptions
    {
        BatchSize = batch, Shuffle = true, Seed = 0, Workers = workers ?? threads, Cache = new DecodedImageCache(2 * size, maxBytes: 1L << 30),
    });
    var clock = Stopwatch.StartNew();
    var stamps = new List<double>();
    foreach (var b in loader.GetEpoch(0))
    {
        b.Dispose();
        stamps.Add(clock.Elapsed.TotalSeconds);
    }
    r["img_s"] = steps * batch / (stamps[^1] - stamps[warmup - 1]);
    r["first_batch_s"] = Math.Round(stamps[0], 3);
    r["workers"] = workers ?? threads;
}

// Measures one backbone variant: eval forward (inference mode) and a full training step (train mode, cross-entropy,
// backward, AdamW) in images per second. Prints one JSON object. The Python twin is bench/backbone_bench.py.
using System.Diagnostics;
using System.Text.Json;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;
using MLNetExt.Vision;

string variant = "transxnet_t";
int batch = 8, size = 224, warmup = 2, iters = 5, threads = Environment.ProcessorCount;
string mode = "both";
for (int i = 0; i < args.Length; i += 2)
{
    string v = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--variant": variant = v; break;
        case "--batch": batch = int.Parse(v); break;
        case "--size": size = int.Parse(v); break;
        case "--warmup": warmup = int.Parse(v); break;
        case "--iters": iters = int.Parse(v); break;
        case "--threads": threads = int.Parse(v); break;
        case "--mode": mode = v; break;
        default: throw new ArgumentException($"unknown option {args[i]}");
    }
}
TorchRuntime.Threads = threads;
TorchRuntime.ManualSeed(0);
using var model = Backbones.Create(variant);
var result = new Dictionary<string, object> { ["side"] = "csharp", ["variant"] = variant, ["batch"] = batch, ["size"] = size, ["threads"] = threads };

if (mode is "both" or "forward")
{
    model.Eval();
    using var x = Tensor.Randn(new long[] { batch, 3, size, size });
    double seconds = Time(() => { using (Autograd.InferenceMode()) model.Call(x).Dispose(); });
    result["forward_img_s"] = batch / seconds;
}
if (mode is "both" or "train")
{
    model.Train();
    using var x = Tensor.Randn(new long[] { batch, 3, size, size });
    using var y = Tensor.RandInt(0, model.NumClasses, new long[] { batch });
    using var opt = new AdamW(model.Parameters(), lr: 1e-4, weightDecay: 0.05);
    double seconds = Time(() =>
    {
        using var scope = TensorScope.Begin();
        var loss = F.CrossEntropy(model.Call(x), y);
        opt.ZeroGrad();
        loss.Backward();
        opt.Step();
    });
    result["train_img_s"] = batch / seconds;
}
Console.WriteLine(JsonSerializer.Serialize(result));

double Time(Action step)
{
    for (int i = 0; i < warmup; i++) step();
    var samples = new List<double>();
    for (int i = 0; i < iters; i++)
    {
        var clock = Stopwatch.StartNew();
        step();
        samples.Add(clock.Elapsed.TotalSeconds);
    }
    samples.Sort();
    return samples[samples.Count / 2]; // median: robust to the noisy shared machines
}

using System.CommandLine;
using System.Diagnostics;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;

namespace MLNetExt.Cli;

/// <summary>`mlnetext demo`: an end-to-end check of the engine that needs no data from outside. It trains a small
/// CNN on generated images (three classes of oriented stripes under noise), shows the loss falling and reports
/// the held-out accuracy, the libtorch version, thread count and BLAS in use.</summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var steps = new Option<int>("--steps") { Description = "Training steps", DefaultValueFactory = _ => 120 };
        var batch = new Option<int>("--batch") { Description = "Images per step", DefaultValueFactory = _ => 32 };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 0 };
        var cmd = new Command("demo", "Train a small CNN on generated data and show the engine at work.") { steps, batch, seed };
        cmd.SetAction(r => Run(r.GetValue(steps), r.GetValue(batch), r.GetValue(seed)));
        return cmd;
    }

    sealed class SmallCnn : Module<Tensor, Tensor>
    {
        readonly Sequential _features, _head;

        public SmallCnn(int classes)
        {
            _features = RegisterModule("features", new Sequential(
                new Conv2d(3, 16, 3, padding: 1, bias: false), new BatchNorm2d(16), new GELU(),
                new Conv2d(16, 32, 3, stride: 2, padding: 1, bias: false), new BatchNorm2d(32), new GELU(),
                new Conv2d(32, 32, 3, stride: 2, padding: 1, groups: 32), new Conv2d(32, 64, 1), new GELU()));
            _head = RegisterModule("head", new Sequential(new Dropout(0.1), new Linear(64, classes)));
        }

        public override Tensor Forward(Tensor x)
        {
            using var f = _features.Call(x);
            using var pooled = f.Mean(new long[] { 2, 3 });
            return _head.Call(pooled);
        }
    }

    /// <summary>Images of stripes at 0°, 45° or 90° with random phase, frequency and noise; labels 0..2.</summary>
    static (Tensor Images, Tensor Labels) MakeBatch(int n, int size = 32)
    {
        using var scope = TensorScope.Begin();
        var labels = Tensor.RandInt(0, 3, new long[] { n });
        var coords = Tensor.Arange(0, size, dtype: DType.Float32);
        var yy = coords.View(1, size, 1);
        var xx = coords.View(1, 1, size);
        var angle = labels.To(DType.Float32).Mul(Math.PI / 4).View(n, 1, 1);
        var freq = Tensor.Rand(new long[] { n, 1, 1 }).Mul(0.5).Add(0.5);
        var phase = Tensor.Rand(new long[] { n, 1, 1 }).Mul(2 * Math.PI);
        var proj = xx * angle.Cos() + yy * angle.Sin();
        var stripes = (proj * freq + phase).Sin().Unsqueeze(1).Expand(n, 3, size, size);
        var images = stripes + Tensor.Randn(new long[] { n, 3, size, size }).Mul(0.8);
        return (images.MoveToOuterScope(), labels.MoveToOuterScope());
    }

    static int Run(int steps, int batch, ulong seed)
    {
        if (steps < 1 || batch < 2)
        {
            Console.Error.WriteLine($"--steps must be >= 1 (got {steps}) and --batch >= 2 (got {batch}).");
            return 2;
        }
        Console.WriteLine($"libtorch {TorchRuntime.Version} | threads {TorchRuntime.Threads} | BLAS {TorchRuntime.BlasLibrary}");
        Console.WriteLine($"CUDA available: {TorchRuntime.CudaIsAvailable} ({TorchRuntime.CudaDeviceCount} devices)");
        TorchRuntime.ManualSeed(seed);
        using var model = new SmallCnn(3);
        Console.WriteLine($"model: {model.ParameterCount():N0} parameters in {model.StateDict().Count} state_dict entries");

        var decay = model.NamedParameters().Where(p => p.Parameter.Dim > 1).Select(p => p.Parameter);
        var noDecay = model.NamedParameters().Where(p => p.Parameter.Dim <= 1).Select(p => p.Parameter);
        using var optimizer = new AdamW(new[] { new ParamGroup(decay, 3e-3, 0.05, "decay"), new ParamGroup(noDecay, 3e-3, 0, "no_decay") });
        var schedule = new WarmupCosineSchedule(warmupSteps: Math.Max(1, steps / 10), totalSteps: steps + 1, warmupStartFactor: 0.1);

        long liveBefore = Tensor.LiveCount;
        var clock = Stopwatch.StartNew();
        double firstLoss = double.NaN, lastLoss = double.NaN;
        model.Train();
        for (int step = 0; step < steps; step++)
        {
            using var scope = TensorScope.Begin();
            schedule.Apply(optimizer, step);
            var (x, y) = MakeBatch(batch);
            var logits = model.Call(x);
            var loss = F.CrossEntropy(logits, y, labelSmoothing: 0.1);
            optimizer.ZeroGrad();
            loss.Backward();
            GradClip.ClipGradNorm(model.Parameters(), 5.0);
            optimizer.Step();
            double value = loss.ToDouble();
            if (step == 0) firstLoss = value;
            lastLoss = value;
            if (step % 20 == 0 || step == steps - 1)
                Console.WriteLine($"step {step,4}  loss {value:F4}  lr {optimizer.Groups[0].LearningRate:E2}");
        }
        double seconds = clock.Elapsed.TotalSeconds;

        model.Eval();
        double accuracy;
        using (TensorScope.Begin())
        using (Autograd.NoGrad())
        {
            var (x, y) = MakeBatch(512);
            var predicted = model.Call(x).Argmax(1);
            accuracy = predicted.Eq(y).To(DType.Float32).Mean().ToDouble();
        }
        Console.WriteLine($"trained {steps} steps of {batch} images in {seconds:F1} s ({steps * batch / seconds:F0} images/s)");
        Console.WriteLine($"loss {firstLoss:F4} -> {lastLoss:F4}; held-out accuracy {accuracy:P1} on 512 new images (chance 33.3%)");
        Console.WriteLine($"live tensors: {liveBefore} before training, {Tensor.LiveCount} after (parameters and optimizer state only)");
        return lastLoss < firstLoss ? 0 : 1;
    }
}

// C# side of the engine benchmark. Prints exactly one JSON line on stdout (diagnostics go to stderr).
//
//   EngineBench ops   --threads N [--iters K] [--reps R]
//   EngineBench train --threads N [--warmup W] [--steps S] [--batch B] [--size P]
//
// bench/run-engine-bench.sh runs this and bench/engine_bench.py alternately and compares them.

using System.Diagnostics;
using System.Text.Json;
using MLNetExt.Bench;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;
using MLNetExt.Torch.Interop;

var opts = Options.Parse(args);
// MLNETEXT_THREADS is read when the runtime loads; set the count explicitly as well so the flag always wins.
TorchRuntime.Threads = opts.Threads;

var result = opts.Mode switch
{
    "ops" => OpsBench.Run(opts),
    "train" => TrainBench.Run(opts),
    _ => throw new ArgumentException($"unknown mode '{opts.Mode}' (expected ops or train)"),
};
result["side"] = "cs";
result["mode"] = opts.Mode;
result["threads"] = TorchRuntime.Threads;
result["torch"] = TorchRuntime.Version;
result["blas"] = TorchRuntime.BlasLibrary;
result["dotnet"] = Environment.Version.ToString();
result["server_gc"] = System.Runtime.GCSettings.IsServerGC;
Console.Out.WriteLine(JsonSerializer.Serialize(result,
    new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
return 0;

sealed record Options(string Mode, int Threads, int Iters, int Reps, int Warmup, int Steps, int Batch, int Size)
{
    public static Options Parse(string[] args)
    {
        if (args.Length == 0) throw new ArgumentException("usage: EngineBench ops|train --threads N [...]");
        var d = new Dictionary<string, int>
        {
            ["threads"] = Environment.ProcessorCount, ["iters"] = 100_000, ["reps"] = 5,
            ["warmup"] = 2, ["steps"] = 4, ["batch"] = 16, ["size"] = 224,
        };
        for (int i = 1; i < args.Length; i++)
        {
            var key = args[i].TrimStart('-');
            if (!d.ContainsKey(key) || i + 1 >= args.Length) throw new ArgumentException($"unknown or incomplete option '{args[i]}'");
            d[key] = int.Parse(args[++i]);
        }
        return new Options(args[0], d["threads"], d["iters"], d["reps"], d["warmup"], d["steps"], d["batch"], d["size"]);
    }
}

static class Proc
{
    /// <summary>Resident set size of this process in MiB (VmRSS of /proc/self/status).</summary>
    public static double RssMb() => StatusMb("VmRSS:");

    /// <summary>Peak resident set size in MiB (VmHWM).</summary>
    public static double PeakRssMb() => StatusMb("VmHWM:");

    static double StatusMb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        return double.NaN;
    }

    [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    /// <summary>RSS after glibc's malloc_trim(0) has returned free heap pages to the system, so that what remains
    /// is (nearly) live memory; raw RSS also holds freed-but-cached chunks and swings by hundreds of MB.</summary>
    public static double TrimmedRssMb()
    {
        MallocTrim(0);
        return RssMb();
    }

    public static double Median(List<double> xs)
    {
        var s = xs.OrderBy(v => v).ToList();
        int n = s.Count;
        return n == 0 ? double.NaN : n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    public static double Us(long ticks, int iters) => ticks * 1e6 / Stopwatch.Frequency / iters;
}

/// <summary>Per-op overhead: <c>a + b</c> on two 2-element float32 tensors, result disposed at once, with and
/// without autograd recording; plus a breakdown of where the time goes (the raw native call, the P/Invoke floor,
/// the same op inside a TensorScope).</summary>
static class OpsBench
{
    public static Dictionary<string, object> Run(Options o)
    {
        using var a = Tensor.From(1f, 2f);
        using var b = Tensor.From(3f, 4f);
        using var ag = Tensor.From(1f, 2f).RequiresGrad_();
        using var bg = Tensor.From(3f, 4f).RequiresGrad_();

        // warm-up: tier-up the JIT (tiered compilation + PGO) and the allocator caches
        for (int k = 0; k < 3; k++)
        {
            Add(a, b, o.Iters / 4); Add(ag, bg, o.Iters / 4);
            NativeOnly(a, b, o.Iters / 4); Scoped(a, b, o.Iters / 4); PInvokeFloor(o.Iters / 4);
        }

        var plain = new List<double>(); var grad = new List<double>();
        var native = new List<double>(); var nativeGrad = new List<double>();
        var scoped = new List<double>(); var floor = new List<double>();
        int gen0Before = GC.CollectionCount(0);
        for (int r = 0; r < o.Reps; r++)
        {
            // alternate the variants rep by rep so machine drift hits all of them alike
            plain.Add(Add(a, b, o.Iters));
            grad.Add(Add(ag, bg, o.Iters));
            native.Add(NativeOnly(a, b, o.Iters));
            nativeGrad.Add(NativeOnly(ag, bg, o.Iters));
            scoped.Add(Scoped(a, b, o.Iters));
            floor.Add(PInvokeFloor(o.Iters));
        }
        int gen0 = GC.CollectionCount(0) - gen0Before;

        return new Dictionary<string, object>
        {
            ["iters"] = o.Iters,
            ["add_us"] = Proc.Median(plain), ["add_grad_us"] = Proc.Median(grad),
            ["add_us_samples"] = plain, ["add_grad_us_samples"] = grad,
            // breakdown
            ["native_call_us"] = Proc.Median(native), ["native_call_grad_us"] = Proc.Median(nativeGrad),
            ["add_scoped_us"] = Proc.Median(scoped), ["pinvoke_floor_us"] = Proc.Median(floor),
            ["gen0_collections"] = gen0,
        };
    }

    /// <summary>µs per <c>(a + b).Dispose()</c>, the way user code writes it.</summary>
    static double Add(Tensor a, Tensor b, int iters)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iters; i++)
        {
            var c = a + b;
            c.Dispose();
        }
        return Proc.Us(Stopwatch.GetTimestamp() - t0, iters);
    }

    /// <summary>µs per <c>a + b</c> inside a TensorScope that frees the results every 256 ops.</summary>
    static double Scoped(Tensor a, Tensor b, int iters)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iters;)
        {
            using (TensorScope.Begin())
            {
                for (int j = 0; j < 256 && i < iters; j++, i++) _ = a + b;
            }
        }
        return Proc.Us(Stopwatch.GetTimestamp() - t0, iters);
    }

    /// <summary>µs per raw boxed dispatcher call of aten::add.Tensor through the bridge plus the native free of
    /// its result: no managed Tensor object, no scope, no finalizer registration. The difference to
    /// <see cref="Add"/> is the managed wrapper's cost.</summary>
    static unsafe double NativeOnly(Tensor a, Tensor b, int iters)
    {
        Native.Check(Native.mlnx_op_find("aten::add", "Tensor", out var op));
        NativeValue* args = stackalloc NativeValue[2];
        NativeValue* results = stackalloc NativeValue[8];
        args[0] = new NativeValue { Kind = ValueKind.Tensor, P = a.Handle };
        args[1] = new NativeValue { Kind = ValueKind.Tensor, P = b.Handle };
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iters; i++)
        {
            Native.Check(Native.mlnx_op_call(op, args, 2, results, 8, out _));
            Native.mlnx_tensor_free(results[0].P);
        }
        long t = Stopwatch.GetTimestamp() - t0;
        GC.KeepAlive(a); GC.KeepAlive(b);
        return Proc.Us(t, iters);
    }

    /// <summary>µs per call of a trivial exported function (at::get_num_threads) with the normal GC transition.</summary>
    static double PInvokeFloor(int iters)
    {
        long t0 = Stopwatch.GetTimestamp();
        int sink = 0;
        for (int i = 0; i < iters; i++) sink += Native.mlnx_get_num_threads();
        long t = Stopwatch.GetTimestamp() - t0;
        if (sink == int.MinValue) Console.Error.WriteLine(sink);
        return Proc.Us(t, iters);
    }
}

/// <summary>Training steps of <see cref="BenchNet"/>: forward, cross-entropy (label smoothing 0.1), backward,
/// AdamW step, zero_grad, each step inside its own TensorScope.</summary>
static class TrainBench
{
    public static Dictionary<string, object> Run(Options o)
    {
        double rssStart = Proc.RssMb();
        TorchRuntime.ManualSeed(0);
        using var model = new BenchNet();
        model.Train();
        using var opt = new AdamW(model.Parameters(), lr: 1e-3, weightDecay: 0.05);
        using var x = Tensor.Randn(new long[] { o.Batch, 3, o.Size, o.Size });
        using var y = Tensor.RandInt(0, 10, new long[] { o.Batch });
        var phases = new double[5];

        double firstLoss = double.NaN;
        for (int i = 0; i < o.Warmup; i++)
        {
            double l = Step(model, opt, x, y, phases, wantLoss: i == 0);
            if (i == 0) firstLoss = l;
        }

        double rssBefore = Proc.RssMb();
        double rssBeforeTrim = Proc.TrimmedRssMb();
        long liveBefore = Tensor.LiveCount;
        long heapBefore = GC.GetTotalMemory(false);
        int gen0Before = GC.CollectionCount(0), gen2Before = GC.CollectionCount(2);

        var times = new List<double>();
        var fwd = new List<double>(); var bwd = new List<double>(); var stp = new List<double>();
        var zg = new List<double>(); var disp = new List<double>();
        double lastLoss = double.NaN;
        for (int i = 0; i < o.Steps; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            double l = Step(model, opt, x, y, phases, wantLoss: i == o.Steps - 1);
            times.Add((Stopwatch.GetTimestamp() - t0) / (double)Stopwatch.Frequency);
            fwd.Add(phases[0]); bwd.Add(phases[1]); stp.Add(phases[2]); zg.Add(phases[3]); disp.Add(phases[4]);
            if (i == o.Steps - 1) lastLoss = l;
        }

        double rssAfter = Proc.RssMb();
        double rssAfterTrim = Proc.TrimmedRssMb();
        long liveAfter = Tensor.LiveCount;
        int gen0 = GC.CollectionCount(0) - gen0Before, gen2 = GC.CollectionCount(2) - gen2Before;
        long heapAfter = GC.GetTotalMemory(false);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long liveAfterGc = Tensor.LiveCount;
        double rssAfterGc = Proc.RssMb();

        double med = Proc.Median(times);
        return new Dictionary<string, object>
        {
            ["batch"] = o.Batch, ["size"] = o.Size, ["warmup"] = o.Warmup, ["steps"] = o.Steps,
            ["step_s_samples"] = times, ["step_s"] = med,
            ["ips"] = o.Batch / med, ["ips_total"] = o.Batch * times.Count / times.Sum(),
            ["phase_s"] = new Dictionary<string, double>
            {
                ["forward"] = Proc.Median(fwd), ["backward"] = Proc.Median(bwd), ["optimizer_step"] = Proc.Median(stp),
                ["zero_grad"] = Proc.Median(zg), ["scope_dispose"] = Proc.Median(disp),
            },
            ["first_loss"] = firstLoss, ["loss"] = lastLoss, ["params"] = model.ParameterCount(),
            ["rss_start_mb"] = rssStart, ["rss_before_mb"] = rssBefore, ["rss_after_mb"] = rssAfter, ["rss_after_gc_mb"] = rssAfterGc,
            ["rss_peak_mb"] = Proc.PeakRssMb(), ["rss_before_trim_mb"] = rssBeforeTrim, ["rss_after_trim_mb"] = rssAfterTrim,
            ["live_before"] = liveBefore, ["live_after"] = liveAfter, ["live_after_gc"] = liveAfterGc,
            ["managed_heap_before_mb"] = heapBefore / 1048576.0, ["managed_heap_after_mb"] = heapAfter / 1048576.0,
            ["gen0_collections"] = gen0, ["gen2_collections"] = gen2,
        };
    }

    /// <summary>One step; <paramref name="phases"/> receives forward, backward, optimizer step, zero_grad and scope
    /// disposal times in seconds. Returns the loss when asked (read outside the timed phases).</summary>
    static double Step(BenchNet model, AdamW opt, Tensor x, Tensor y, double[] phases, bool wantLoss)
    {
        double loss = double.NaN;
        long t0 = Stopwatch.GetTimestamp(), t1, t2, t3, t4;
        using (TensorScope.Begin())
        {
            var logits = model.Call(x);
            var l = F.CrossEntropy(logits, y, labelSmoothing: 0.1);
            t1 = Stopwatch.GetTimestamp();
            l.Backward();
            t2 = Stopwatch.GetTimestamp();
            opt.Step();
            t3 = Stopwatch.GetTimestamp();
            opt.ZeroGrad();
            t4 = Stopwatch.GetTimestamp();
            if (wantLoss) loss = l.ToDouble();
        } // frees every temporary of the step (activations, grads read by the optimizer, views)
        long t5 = Stopwatch.GetTimestamp();
        double f = Stopwatch.Frequency;
        phases[0] = (t1 - t0) / f; phases[1] = (t2 - t1) / f; phases[2] = (t3 - t2) / f;
        phases[3] = (t4 - t3) / f; phases[4] = (t5 - t4) / f;
        return loss;
    }
}

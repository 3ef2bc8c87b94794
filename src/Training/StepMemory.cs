using System.Runtime.InteropServices;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Training;

/// <summary>
/// Resident memory of this process, for estimating what a training step will need before the first one runs: a
/// step that cannot fit otherwise ends in the kernel's OOM killer, with no message. Peak growth is measured through
/// /proc (VmHWM, reset by writing 5 to /proc/self/clear_refs) after returning freed heap to the system, so memory the
/// allocator keeps does not hide it.
/// </summary>
internal static partial class StepMemory
{
    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    /// <summary>MemAvailable from /proc/meminfo, in bytes; null when unknown.</summary>
    public static long? Available() => Field("/proc/meminfo", "MemAvailable:");

    /// <summary>How much the process's resident memory peaks above its level before <paramref name="action"/>; null
    /// when /proc does not allow measuring it.</summary>
    public static long? PeakGrowth(Action action)
    {
        try
        {
            MallocTrim(0);
            File.WriteAllText("/proc/self/clear_refs", "5");
            long? before = Field("/proc/self/status", "VmRSS:");
            action();
            long? peak = Field("/proc/self/status", "VmHWM:");
            MallocTrim(0);
            return before is long b && peak is long p ? Math.Max(0, p - b) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or EntryPointNotFoundException or DllNotFoundException)
        {
            return null;
        }
    }

    static long? Field(string file, string name)
    {
        try
        {
            foreach (var line in File.ReadLines(file))
                if (line.StartsWith(name, StringComparison.Ordinal))
                {
                    var parts = line[name.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0]) * 1024; // kB
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return null;
    }

    /// <summary>Bytes as "1.2 GB".</summary>
    public static string Format(double bytes) => bytes >= 1e9 ? $"{bytes / 1e9:F1} GB" : $"{bytes / 1e6:F0} MB";

    /// <summary>
    /// Refuses a CPU run whose training step cannot fit in the memory available, before the first step (which would
    /// end in the kernel's OOM killer with no message). Only for large steps (more than 64 images of 224x224 in
    /// pixels): a forward and backward of 2 images at two small sizes measures the memory a step takes as
    /// fixed + per-pixel cost, scaled to the run's size and batch with a 20 % margin, plus gradients and AdamW's two
    /// moments (checked against smt_t at 384, batch 8: 0.35 GB per image measured, 0.26 GB estimated). A probe
    /// that fails or cannot be measured skips the check. The probe changes nothing: BatchNorm statistics are restored
    /// and gradients cleared.
    /// </summary>
    public static void Check(Backbone model, Device device, int size, int batchSize, long trainedParameters)
    {
        long pixels = (long)size * size;
        if (device.Type != DeviceType.Cpu || (long)batchSize * pixels <= 64L * 224 * 224) return;
        if (Available() is not long available) return;
        var sizes = new List<int>();
        foreach (var s in new[] { 64, 128, 96, 160 })
        {
            if (s >= size || sizes.Count == 2) continue;
            try { model.CheckInputSize(s, s); sizes.Add(s); }
            catch (ArgumentException) { }
        }
        if (sizes.Count < 2) return;
        sizes.Sort();
        const int probeBatch = 2; // some layers need two images in training mode
        var buffers = model.NamedBuffers().Select(b => b.Buffer.Clone().DetachFromScope()).ToList();
        bool wasTraining = model.Training;
        var measured = new List<(double Pixels, double Bytes)>();
        try
        {
            model.Train();
            void Step(int s)
            {
                using var scope = TensorScope.Begin();
                var x = Tensor.Randn([probeBatch, 3, s, s]).To(device);
                model.Call(x).Sum().Backward();
            }
            Step(sizes[0]); // first use allocates once (kernel caches, thread pools): not part of a step's cost
            model.ZeroGrad();
            foreach (var s in sizes)
            {
                var grown = PeakGrowth(() => Step(s));
                model.ZeroGrad();
                if (grown is not long g) return;
                measured.Add(((double)s * s * probeBatch, g));
            }
        }
        catch (Exception e) when (e is TorchException or ArgumentException or InvalidOperationException) { return; }
        finally
        {
            model.ZeroGrad();
            using (Autograd.NoGrad())
                foreach (var ((_, b), saved) in model.NamedBuffers().Zip(buffers))
                {
                    b.Copy_(saved);
                    saved.Dispose();
                }
            model.Train(wasTraining);
        }
        var ((p0, d0), (p1, d1)) = (measured[0], measured[1]);
        double perPixel = Math.Max(0, (d1 - d0) / (p1 - p0)), fixedCost = Math.Max(0, d0 - perPixel * p0);
        if (perPixel == 0) return; // nothing measurable: no basis for refusing
        double state = 3.0 * trainedParameters * 4; // gradients and two AdamW moments, float32
        double need = 1.2 * (fixedCost + batchSize * perPixel * pixels) + state; // 20 % margin: measured a little low
        double budget = 0.9 * available;
        if (need <= budget) return;
        int batch = (int)Math.Floor(((budget - state) / 1.2 - fixedCost) / (perPixel * pixels));
        string fix = batch >= 1
            ? $"--batch-size {batch} (with --accumulate {(int)Math.Ceiling((double)batchSize / batch)} to keep the effective batch)"
            : $"a smaller --image-size (about {Math.Max(32, (int)Math.Sqrt(Math.Max(0, (budget - state) / 1.2 - fixedCost) / perPixel) / 32 * 32)} fits at batch 1)";
        throw new TrainingException($"A training step at {size}x{size} with batch {batchSize} needs about {Format(need)} of memory " +
            $"(measured at {string.Join(" and ", sizes.Select(s => $"{s}x{s}"))} and scaled), but {Format(available)} are available. " +
            $"Use {fix}, or a machine with more memory or a GPU.");
    }

}

using MLNetExt.Torch.Interop;

namespace MLNetExt.Torch;

/// <summary>CPU time of one operator name over a profiled stretch: <paramref name="SelfMicroseconds"/> excludes the
/// operators it called, <paramref name="TotalMicroseconds"/> includes them (torch.autograd.profiler's self and total
/// CPU time).</summary>
internal readonly record struct OperatorTime(string Name, long Calls, double SelfMicroseconds, double TotalMicroseconds);

/// <summary>libtorch's operator profiler on the calling thread: every operator the dispatcher runs, forward and
/// backward (CPU autograd runs on the thread that calls backward). For benchmarks that compare our steps with
/// PyTorch's operator by operator; one profile at a time per thread.</summary>
internal static class OperatorProfiler
{
    public static void Start() => Native.Check(Native.mlnx_profiler_start());

    /// <summary>Stops profiling and returns one row per operator name, the largest self time first.</summary>
    public static IReadOnlyList<OperatorTime> Stop()
    {
        Native.Check(Native.mlnx_profiler_stop(out var report));
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return Native.TakeString(report)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Skip(1)
            .Select(line => line.Split('\t'))
            .Select(f => new OperatorTime(f[0], long.Parse(f[1], inv), double.Parse(f[2], inv), double.Parse(f[3], inv)))
            .OrderByDescending(t => t.SelfMicroseconds)
            .ToList();
    }
}

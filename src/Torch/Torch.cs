using MLNetExt.Torch.Interop;

namespace MLNetExt.Torch;

/// <summary>Process-wide facts and settings of the libtorch runtime.</summary>
public static class TorchRuntime
{
    /// <summary>The libtorch version the bridge was built against, e.g. "1.13.0".</summary>
    public static string Version
    {
        get
        {
            Native.Check(Native.mlnx_version(out var s));
            return Native.TakeString(s);
        }
    }

    /// <summary>libtorch's build configuration (<c>torch.__config__.show()</c>).</summary>
    public static string BuildConfig
    {
        get
        {
            Native.Check(Native.mlnx_config(out var s));
            return Native.TakeString(s);
        }
    }

    /// <summary>The most threads any MLNetExt pool may be asked for: 8 per processor of this machine (at least 8). More
    /// only thrashes, and a huge count (100000) hangs thread creation.</summary>
    public static int MaxThreads => Math.Max(8, 8 * Environment.ProcessorCount);

    /// <summary>Why a requested thread count is unusable (null when it is fine); <paramref name="what"/> names it.</summary>
    public static string? ThreadCountProblem(int value, string what) =>
        value < 1 ? $"{what} must be at least 1; got {value}"
        : value > MaxThreads ? $"{what} is {value}, more than the {MaxThreads} this machine's {Environment.ProcessorCount} processors can use (8 per processor)"
        : null;

    /// <summary>Intra-op threads. Defaults to the processor count (or MLNETEXT_THREADS); 1 to <see cref="MaxThreads"/>.</summary>
    public static int Threads
    {
        get => Native.mlnx_get_num_threads();
        set
        {
            if (ThreadCountProblem(value, "The libtorch thread count") is { } problem) throw new ArgumentOutOfRangeException(nameof(value), value, problem);
            Native.mlnx_set_num_threads(value);
        }
    }

    /// <summary>Seeds the CPU generator and every CUDA generator (<c>torch.manual_seed</c>).</summary>
    public static void ManualSeed(ulong seed) => Native.Check(Native.mlnx_manual_seed(seed));

    /// <summary>True when libtorch was built with CUDA and a device is present.</summary>
    public static bool CudaIsAvailable => Native.mlnx_cuda_is_available() != 0 && CudaDeviceCount > 0;

    /// <summary>Number of visible CUDA devices (0 without CUDA).</summary>
    public static int CudaDeviceCount => Native.mlnx_cuda_device_count();

    /// <summary>cuDNN's autotuner (<c>torch.backends.cudnn.benchmark</c>): each new convolution shape is timed once and
    /// its fastest algorithm kept. The trainer turns it on for CUDA, as the official training scripts of TransXNet,
    /// TransNeXt and SMT do (MixFormer's is PaddleClas); it does nothing on the CPU.</summary>
    internal static bool CudnnBenchmark
    {
        get => Native.mlnx_get_cudnn_benchmark() != 0;
        set => Native.mlnx_set_cudnn_benchmark(value ? 1 : 0);
    }

    /// <summary>The BLAS library mapped into this process (read from /proc/self/maps), or "unknown".
    /// Debian's libtorch uses whatever provides libblas.so.3; without OpenBLAS matmuls are ~70x slower.</summary>
    public static string BlasLibrary
    {
        get
        {
            Native.EnsureLoaded();
            try
            {
                var libs = File.ReadLines("/proc/self/maps")
                    .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
                    .Where(p => Path.GetFileName(p).Contains("blas", StringComparison.OrdinalIgnoreCase))
                    .Select(p => ResolveLink(p))
                    .Distinct()
                    .Where(p => !Path.GetFileName(p).Contains("lapack"))
                    .ToList();
                return libs.Count == 0 ? "unknown" : string.Join(", ", libs);
            }
            catch (IOException)
            {
                return "unknown";
            }
        }
    }

    /// <summary>A one-line hint when libtorch runs on OpenBLAS's pthread build because the OpenMP build is not
    /// installed (null otherwise, or when <c>MLNETEXT_BLAS=system</c> asked for the system's BLAS): that build's own
    /// thread pool competes with libtorch's threads, and training runs 1.2–1.9x faster on the OpenMP build.</summary>
    public static string? BlasAdvice => AdviseOnBlas(BlasLibrary, Environment.GetEnvironmentVariable("MLNETEXT_BLAS"));

    /// <summary>The flag in <c>/proc/cpuinfo</c> by which this processor computes bfloat16 natively (<c>amx_bf16</c> or
    /// <c>avx512_bf16</c>), or null: none, or not Linux. Without one, libtorch emulates bfloat16 on the CPU, and bfloat16
    /// autocast trains many times slower than float32 (13-32x on an AVX2 processor, bench/README.md).</summary>
    public static string? NativeBfloat16Flag => s_bfloat16Flag.Value;

    static readonly Lazy<string?> s_bfloat16Flag = new(() =>
    {
        try { return Bfloat16Flag(File.ReadLines("/proc/cpuinfo")); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    });

    // the first processor's "flags" line decides (they are alike on the machines libtorch supports)
    internal static string? Bfloat16Flag(IEnumerable<string> cpuinfo)
    {
        foreach (var line in cpuinfo)
            if (line.StartsWith("flags", StringComparison.Ordinal))
            {
                var flags = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                return flags.Contains("amx_bf16") ? "amx_bf16" : flags.Contains("avx512_bf16") ? "avx512_bf16" : null;
            }
        return null;
    }

    internal static string? AdviseOnBlas(string mappedBlas, string? choice) =>
        mappedBlas.Contains("/openblas-pthread/", StringComparison.Ordinal) && !Native.AsksForSystemBlas(choice)
            ? "libtorch runs on OpenBLAS's pthread build, whose thread pool competes with libtorch's; " +
              "'apt-get install libopenblas0-openmp' (the engine then loads it by itself) makes training 1.2-1.9x faster"
            : null;

    static string ResolveLink(string path)
    {
        try { return new FileInfo(path).ResolveLinkTarget(true)?.FullName ?? path; }
        catch (IOException) { return path; }
    }
}

using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MLNetExt.Torch.Interop;

/// <summary>Kinds of <see cref="NativeValue"/>; mirrors <c>enum mlnx_kind</c> in src/Native/mlnx.h.</summary>
internal enum ValueKind : int
{
    None = 0, Tensor = 1, Int = 2, Double = 3, Bool = 4, IntList = 5, DoubleList = 6, BoolList = 7,
    String = 8, Device = 9, TensorList = 10, OptionalTensorList = 11, Default = 12,
}

/// <summary>One boxed argument or result; mirrors <c>mlnx_value</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NativeValue
{
    public ValueKind Kind;
    public int Aux;
    public long I;
    public double D;
    public IntPtr P;
    public long N;
}

/// <summary>Mirrors <c>mlnx_tensor_meta</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct TensorMeta
{
    public int NDim;
    public int DType;
    public int DeviceType;
    public int DeviceIndex;
    public int RequiresGrad;
    public int IsLeaf;
    public int IsContiguous;
    public int Reserved;
    public long Numel;
    public IntPtr DataPtr;
}

/// <summary>The P/Invoke surface of libmlnetext_native. Every call that can fail returns an error
/// string pointer (zero on success) that <see cref="Check"/> turns into a <see cref="TorchException"/>.</summary>
internal static unsafe partial class Native
{
    internal const string Library = "mlnetext_native";
    internal const string FileName = "libmlnetext_native.so";

    static Native()
    {
        NativeLibrary.SetDllImportResolver(typeof(Native).Assembly, Resolve);
        Check(mlnx_init());
        // libtorch starts with one intra-op thread here; use the machine unless told otherwise.
        var threads = Environment.GetEnvironmentVariable("MLNETEXT_THREADS");
        // A value that is not a usable count (0, "abc", 100000) is ignored with a warning rather than hanging the process.
        int n = Environment.ProcessorCount;
        if (!string.IsNullOrEmpty(threads))
        {
            if (int.TryParse(threads, out var v) && TorchRuntime.ThreadCountProblem(v, "MLNETEXT_THREADS") is null) n = v;
            else Console.Error.WriteLine($"warning: MLNETEXT_THREADS='{threads}' is not a thread count from 1 to {TorchRuntime.MaxThreads}; using {n}.");
        }
        mlnx_set_num_threads(n);
    }

    /// <summary>Forces the resolver registration and the one-time runtime set-up.</summary>
    internal static void EnsureLoaded() => RuntimeHelpers.RunClassConstructor(typeof(Native).TypeHandle);

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library) return IntPtr.Zero;
        PreferOpenMpBlas();
        var tried = new List<string>();
        foreach (var candidate in Candidates())
        {
            tried.Add(candidate);
            if (!File.Exists(candidate)) continue;
            try
            {
                return NativeLibrary.Load(candidate);
            }
            catch (DllNotFoundException e)
            {
                throw new DllNotFoundException(
                    $"Found {candidate} but could not load it: {e.Message}. The bridge needs Debian's libtorch " +
                    "(apt-get install libtorch-dev libopenblas0-openmp) or the libtorch it was built against; " +
                    "run tools/setup.sh.", e);
            }
        }
        throw new DllNotFoundException(
            $"{FileName} was not found (looked in: {string.Join(", ", tried)}). Build it with tools/setup.sh, " +
            "or set MLNETEXT_NATIVE to its full path (or folder), or put its folder on LD_LIBRARY_PATH.");
    }

    /// <summary>The folder of Debian's OpenMP build of OpenBLAS (package libopenblas0-openmp) for this architecture.</summary>
    internal static string OpenMpBlasFolder =>
        $"/usr/lib/{(RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "aarch64" : "x86_64")}-linux-gnu/openblas-openmp";

    /// <summary>Loads the OpenMP build of OpenBLAS, when installed, before the bridge pulls in libtorch: libtorch's
    /// libblas.so.3 and liblapack.so.3 then resolve to it (the dynamic loader reuses a library already loaded under
    /// that soname), whatever the system's libblas.so.3 alternative says. Debian's default, libopenblas0-pthread, keeps
    /// a pthread pool of its own that competes with libtorch's OpenMP threads for the same cores; the OpenMP build
    /// works in libtorch's pool (training 1.2–1.9x faster on 2 cores, bench/README.md "BLAS threads").
    /// <c>MLNETEXT_BLAS=system</c> keeps the system's choice.</summary>
    static void PreferOpenMpBlas()
    {
        var choice = Environment.GetEnvironmentVariable("MLNETEXT_BLAS");
        if (AsksForSystemBlas(choice)) return;
        if (!string.IsNullOrEmpty(choice) && !string.Equals(choice, "openmp", StringComparison.OrdinalIgnoreCase))
            Console.Error.WriteLine($"warning: MLNETEXT_BLAS='{choice}' is neither 'openmp' nor 'system'; using openmp.");
        foreach (var file in new[] { "libblas.so.3", "liblapack.so.3" })
        {
            var path = Path.Combine(OpenMpBlasFolder, file);
            // Not installed, or not loadable: libtorch then takes the system's BLAS, which works, only slower.
            if (File.Exists(path)) NativeLibrary.TryLoad(path, out _);
        }
    }

    /// <summary>Whether an MLNETEXT_BLAS value asks for the system's BLAS rather than the OpenMP build.</summary>
    internal static bool AsksForSystemBlas(string? choice) => string.Equals(choice, "system", StringComparison.OrdinalIgnoreCase);

    /// <summary>Where the bridge is looked for, in order and each place once: MLNETEXT_NATIVE (file or folder), the
    /// application folder and its runtimes/RID/native (a package reference), the assembly's folder, the folders of LD_LIBRARY_PATH, and a development checkout's
    /// artifacts/native above the application.</summary>
    static IEnumerable<string> Candidates()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        IEnumerable<string> All()
        {
            var env = Environment.GetEnvironmentVariable("MLNETEXT_NATIVE");
            if (!string.IsNullOrEmpty(env)) yield return Directory.Exists(env) ? Path.Combine(env, FileName) : env;
            yield return Path.Combine(AppContext.BaseDirectory, FileName);
            // where a project that references the NuGet package gets it (the package's runtimes/linux-x64/native)
            yield return Path.Combine(AppContext.BaseDirectory, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", FileName);
            yield return Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", FileName);
            var asmDir = Path.GetDirectoryName(typeof(Native).Assembly.Location);
            if (!string.IsNullOrEmpty(asmDir)) yield return Path.Combine(asmDir, FileName);
            foreach (var dir in (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
                yield return Path.Combine(dir, FileName);
            // A development checkout: walk up to the repository's artifacts/native.
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            {
                var p = Path.Combine(dir.FullName, "artifacts", "native", FileName);
                if (File.Exists(p)) { yield return p; yield break; }
            }
        }
        foreach (var c in All())
            if (seen.Add(Path.GetFullPath(c))) yield return Path.GetFullPath(c);
    }

    /// <summary>Throws a <see cref="TorchException"/> carrying (and freeing) a native error message.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Check(IntPtr error)
    {
        if (error != IntPtr.Zero) Throw(error);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    static void Throw(IntPtr error) => throw new TorchException(TakeString(error));

    /// <summary>Copies a malloc'd UTF-8 string and frees it.</summary>
    internal static string TakeString(IntPtr p)
    {
        try { return Marshal.PtrToStringUTF8(p) ?? ""; }
        finally { mlnx_free(p); }
    }

    // ---- distributed (c10d: TCPStore + Gloo) ----
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr mlnx_dist_init(string host, int port, int rank, int size, long timeoutMs, string? interfaceName, out IntPtr group);
    [LibraryImport(Library)] internal static partial void mlnx_dist_free(IntPtr group);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_dist_all_reduce_sum(IntPtr group, IntPtr tensor);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_dist_broadcast(IntPtr group, IntPtr tensor, int root);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_dist_barrier(IntPtr group);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_dist_all_reduce_sum_autograd(IntPtr group, IntPtr tensor, out IntPtr result);
    [LibraryImport(Library)] internal static unsafe partial IntPtr mlnx_dist_reducer_create(IntPtr group, IntPtr* parameters, int count, long bucketBytes, out IntPtr reducer);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_dist_reducer_arm(IntPtr reducer, double share);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_dist_reducer_finish(IntPtr reducer, out long startedInBackward);
    [LibraryImport(Library)] internal static partial void mlnx_dist_reducer_free(IntPtr reducer);

    [LibraryImport(Library)] internal static partial void mlnx_free(IntPtr p);

    [LibraryImport(Library)] internal static partial IntPtr mlnx_init();
    [LibraryImport(Library)] internal static partial IntPtr mlnx_version(out IntPtr str);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_config(out IntPtr str);
    [LibraryImport(Library)] internal static partial void mlnx_set_num_threads(int n);
    [LibraryImport(Library)] internal static partial int mlnx_get_num_threads();
    [LibraryImport(Library)] internal static partial IntPtr mlnx_manual_seed(ulong seed);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_set_autocast(int deviceType, int enabled, int dtype, int entering);
    [LibraryImport(Library)] internal static partial int mlnx_cuda_is_available();
    [LibraryImport(Library)] internal static partial int mlnx_cuda_device_count();
    [LibraryImport(Library)] internal static partial void mlnx_set_cudnn_benchmark(int enabled);
    [LibraryImport(Library)] internal static partial int mlnx_get_cudnn_benchmark();
    [LibraryImport(Library)] internal static partial IntPtr mlnx_profiler_start();
    [LibraryImport(Library)] internal static partial IntPtr mlnx_profiler_stop(out IntPtr report);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr mlnx_op_find(string name, string overload, out IntPtr op);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_op_schema(IntPtr op, out IntPtr str);
    [LibraryImport(Library)]
    internal static partial IntPtr mlnx_op_call(IntPtr op, NativeValue* args, int nargs, NativeValue* results,
                                                int maxResults, out int nresults);

    [LibraryImport(Library)] internal static partial void mlnx_tensor_free(IntPtr t);
    [LibraryImport(Library)]
    internal static partial IntPtr mlnx_tensor_from_data(void* data, long* sizes, int ndim, int dtype,
                                                         int deviceType, int deviceIndex, out IntPtr tensor);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_tensor_copy_to(IntPtr t, void* dest, long nbytes);
    [LibraryImport(Library), SuppressGCTransition]
    internal static partial IntPtr mlnx_tensor_meta_get(IntPtr t, TensorMeta* meta);
    [LibraryImport(Library), SuppressGCTransition]
    internal static partial IntPtr mlnx_tensor_shape(IntPtr t, long* sizes, long* strides, int cap);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_tensor_alias(IntPtr t, out IntPtr alias);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_tensor_set_data(IntPtr t, IntPtr src);

    [LibraryImport(Library)]
    internal static partial IntPtr mlnx_backward(IntPtr* tensors, IntPtr* grads, int n, int retainGraph, int createGraph);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_tensor_grad(IntPtr t, out IntPtr grad);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_tensor_set_grad(IntPtr t, IntPtr grad);
    [LibraryImport(Library)] internal static partial IntPtr mlnx_tensor_set_requires_grad(IntPtr t, int requiresGrad);
    [LibraryImport(Library), SuppressGCTransition] internal static partial int mlnx_grad_mode_set(int enabled);
    [LibraryImport(Library), SuppressGCTransition] internal static partial int mlnx_grad_mode_get();
    [LibraryImport(Library)] internal static partial IntPtr mlnx_inference_mode_enter(out IntPtr guard);
    [LibraryImport(Library)] internal static partial void mlnx_inference_mode_exit(IntPtr guard);
}

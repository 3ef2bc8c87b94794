using System.Runtime.InteropServices;
using System.Text;

namespace MLNetExt.OnnxRuntime;

/// <summary>
/// Finds, loads and holds the ONNX Runtime shared library (<c>libonnxruntime.so.1</c>) and its C function table.
/// One library per process: the first successful <see cref="Initialize"/> (or the first session) fixes it.
/// </summary>
/// <remarks>
/// Resolution order: (1) an explicit path (<see cref="OnnxSessionOptions.LibraryPath"/> or <see cref="Initialize"/>),
/// (2) the environment variable <c>MLNETEXT_ONNXRUNTIME</c> (the file, or the folder holding it), (3) the application
/// directory (<see cref="AppContext.BaseDirectory"/>), (4) the set-up cache
/// (<c>$XDG_CACHE_HOME</c> or <c>~/.cache</c>, then <c>mlnetext/onnxruntime/1.30.0/</c>), filled by <c>tools/setup.sh</c>.
/// An explicit path or the environment variable, when given, must name an existing file: MLNetExt does not silently
/// use another library than the one asked for. ONNX Runtime looks for execution-provider libraries (CUDA) in the
/// folder of the library it was loaded from.
/// </remarks>
public static unsafe class OnnxRuntimeLibrary
{
    /// <summary>The library file name on Linux.</summary>
    public const string FileName = "libonnxruntime.so.1";

    /// <summary>The ONNX Runtime version the set-up script installs (npm <c>onnxruntime-node@1.30.0</c>).</summary>
    public const string SetupVersion = "1.30.0";

    /// <summary>The environment variable naming the library (file or folder).</summary>
    public const string EnvironmentVariable = "MLNETEXT_ONNXRUNTIME";

    private static readonly object Gate = new();
    private static volatile OrtApi? api;
    private static IntPtr env;
    private static string? loadedPath, version;

    /// <summary>The folder where <c>tools/setup.sh</c> caches the library.</summary>
    public static string CacheDirectory
    {
        get
        {
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var baseDir = !string.IsNullOrEmpty(xdg) ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(baseDir, "mlnetext", "onnxruntime", SetupVersion);
        }
    }

    /// <summary>One place the resolver considered: where it came from, the file path (null when that source was not
    /// given), and whether the file exists.</summary>
    public sealed record Candidate(string Source, string? Path, bool Exists, bool MustExist);

    /// <summary>The places consulted, in order, for an explicit path (may be null) and the current environment.</summary>
    public static IReadOnlyList<Candidate> Candidates(string? explicitPath) =>
        Candidates(explicitPath, Environment.GetEnvironmentVariable(EnvironmentVariable), AppContext.BaseDirectory, CacheDirectory);

    internal static IReadOnlyList<Candidate> Candidates(string? explicitPath, string? environmentValue, string appDirectory, string cacheDirectory)
    {
        static string AsFile(string p) => Directory.Exists(p) ? Path.Combine(p, FileName) : p;
        var list = new List<Candidate>();
        string? e = string.IsNullOrWhiteSpace(explicitPath) ? null : Path.GetFullPath(AsFile(explicitPath));
        list.Add(new("explicit path option", e, e != null && File.Exists(e), true));
        string? v = string.IsNullOrWhiteSpace(environmentValue) ? null : Path.GetFullPath(AsFile(environmentValue));
        list.Add(new($"environment variable {EnvironmentVariable}", v, v != null && File.Exists(v), true));
        var a = Path.Combine(appDirectory, FileName);
        list.Add(new("application directory", a, File.Exists(a), false));
        var c = Path.Combine(cacheDirectory, FileName);
        list.Add(new("set-up cache (tools/setup.sh)", c, File.Exists(c), false));
        return list;
    }

    /// <summary>Applies the resolution order: the first source that is given decides for the explicit path and the
    /// environment variable (a missing file there is an error); otherwise the first existing file of the application
    /// directory and the cache. Throws <see cref="DllNotFoundException"/> saying where it looked and how to get it.</summary>
    public static string Resolve(string? explicitPath) => Resolve(Candidates(explicitPath));

    internal static string Resolve(IReadOnlyList<Candidate> candidates)
    {
        foreach (var c in candidates)
        {
            if (c.Path == null) continue;
            if (c.Exists) return c.Path;
            if (c.MustExist)
                throw new DllNotFoundException($"ONNX Runtime library not found: the {c.Source} names '{c.Path}', which does not exist. " + HowToGet());
        }
        var sb = new StringBuilder($"ONNX Runtime library ({FileName}) not found. Looked in:");
        foreach (var c in candidates)
            sb.Append($"\n  - {c.Source}: {(c.Path == null ? "(not given)" : c.Path + " (missing)")}");
        sb.Append('\n').Append(HowToGet());
        throw new DllNotFoundException(sb.ToString());
    }

    private static string HowToGet() =>
        $"Run tools/setup.sh once (it fetches {FileName} from npm's onnxruntime-node@{SetupVersion} into {CacheDirectory}), " +
        $"or point {EnvironmentVariable} at an existing {FileName}.";

    /// <summary>Loads ONNX Runtime (resolving as described on the class) unless it is already loaded. Asking for a
    /// different explicit library once one is loaded is an error.</summary>
    public static void Initialize(string? libraryPath = null)
    {
        lock (Gate)
        {
            if (api != null)
            {
                if (!string.IsNullOrWhiteSpace(libraryPath))
                {
                    var wanted = Path.GetFullPath(Directory.Exists(libraryPath) ? Path.Combine(libraryPath, FileName) : libraryPath);
                    if (!SameFile(wanted, loadedPath!))
                        throw new InvalidOperationException($"ONNX Runtime is already loaded from '{loadedPath}' in this process; " +
                            $"'{wanted}' cannot be loaded as well (one ONNX Runtime library per process).");
                }
                return;
            }
            var path = Resolve(libraryPath);
            IntPtr lib;
            try { lib = NativeLibrary.Load(path); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new DllNotFoundException($"ONNX Runtime library '{path}' exists but could not be loaded: {e.Message}", e);
            }
            if (!NativeLibrary.TryGetExport(lib, "OrtGetApiBase", out var getApiBase))
                throw new DllNotFoundException($"'{path}' is not ONNX Runtime: it has no OrtGetApiBase export.");
            // struct OrtApiBase { const OrtApi* (*GetApi)(uint32_t version); const char* (*GetVersionString)(void); }
            var apiBase = ((delegate* unmanaged<IntPtr>)getApiBase)();
            var getApi = ((delegate* unmanaged<uint, IntPtr>*)apiBase)[0];
            var getVersion = ((delegate* unmanaged<byte*>*)apiBase)[1];
            var v = Marshal.PtrToStringUTF8((IntPtr)getVersion()) ?? "?";
            var table = getApi(OrtApiIndex.ApiVersion);
            if (table == IntPtr.Zero)
                throw new DllNotFoundException($"ONNX Runtime {v} at '{path}' does not provide C API version {OrtApiIndex.ApiVersion}; " +
                    $"MLNetExt needs ONNX Runtime 1.{OrtApiIndex.ApiVersion} or later. " + HowToGet());
            var a = new OrtApi((IntPtr*)table);
            IntPtr e2;
            var logId = "mlnetext\0"u8;
            fixed (byte* id = logId)
                a.Check(a.CreateEnv(2 /* ORT_LOGGING_LEVEL_WARNING */, id, &e2), "creating the ONNX Runtime environment");
            env = e2;
            loadedPath = path;
            version = v;
            api = a;
        }
    }

    private static bool SameFile(string a, string b)
    {
        static string Real(string p) => new FileInfo(p).ResolveLinkTarget(true)?.FullName ?? Path.GetFullPath(p);
        return Real(a) == Real(b);
    }

    /// <summary>Whether a library is loaded.</summary>
    public static bool IsLoaded => api != null;

    /// <summary>The ORT version string (<c>OrtApiBase::GetVersionString</c>), loading the library if needed.</summary>
    public static string Version { get { Initialize(); return version!; } }

    /// <summary>The full path of the loaded library, loading it if needed.</summary>
    public static string LoadedPath { get { Initialize(); return loadedPath!; } }

    /// <summary>The execution providers compiled into the loaded library (<c>GetAvailableProviders</c>), e.g.
    /// <c>CPUExecutionProvider</c>. A provider listed here may still be unusable when its own library or its
    /// dependencies (CUDA, cuDNN) are missing.</summary>
    public static IReadOnlyList<string> AvailableProviders
    {
        get
        {
            var a = Api;
            IntPtr names;
            int count;
            a.Check(a.GetAvailableProviders(&names, &count), "listing the available execution providers");
            try
            {
                var result = new string[count];
                for (int i = 0; i < count; i++) result[i] = Marshal.PtrToStringUTF8(((IntPtr*)names)[i]) ?? "";
                return result;
            }
            finally { a.Check(a.ReleaseAvailableProviders(names, count), "releasing the provider list"); }
        }
    }

    internal static OrtApi Api { get { if (api == null) Initialize(); return api!; } }

    internal static IntPtr Env { get { if (api == null) Initialize(); return env; } }
}

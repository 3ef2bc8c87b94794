using Ort = Microsoft.ML.OnnxRuntime;

namespace MLNetExt.OnnxRuntime;

/// <summary>
/// The ONNX Runtime this process uses: the official managed API (NuGet <c>Microsoft.ML.OnnxRuntime.Managed</c>, which
/// MLNetExt references) over the native library that the application brings with ONE of the native packages —
/// <c>Microsoft.ML.OnnxRuntime</c> (CPU) or <c>Microsoft.ML.OnnxRuntime.Gpu</c> (CUDA). ML.NET's OnnxTransformer uses
/// the same library, so a process holds one ONNX Runtime.
/// </summary>
internal static class OnnxRuntimeEnvironment
{
    /// <summary>The version of the managed API MLNetExt is built against; the native package must have the same.</summary>
    public const string PackageVersion = "1.32.0";

    /// <summary>The native library's version string (e.g. <c>1.32.0</c>).</summary>
    /// <exception cref="DllNotFoundException">No native ONNX Runtime is deployed with the application (see <see cref="Load"/>).</exception>
    public static string Version => Load().GetVersionString();

    /// <summary>The execution providers compiled into the native library (<c>CPUExecutionProvider</c>, and
    /// <c>CUDAExecutionProvider</c> with the Gpu package).</summary>
    public static IReadOnlyList<string> AvailableProviders => Load().GetAvailableProviders();

    /// <summary>The ORT environment, with a clear error when the application did not bring a native library.</summary>
    internal static Ort.OrtEnv Load()
    {
        try { return Ort.OrtEnv.Instance(); }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new DllNotFoundException(
                $"The native ONNX Runtime library is not deployed with this application ({Root(e).Message.Trim()}). MLNetExt references only " +
                $"the managed API (Microsoft.ML.OnnxRuntime.Managed {PackageVersion}); add ONE native package to the application project: " +
                $"<PackageReference Include=\"Microsoft.ML.OnnxRuntime\" Version=\"{PackageVersion}\" /> for CPU, or " +
                $"<PackageReference Include=\"Microsoft.ML.OnnxRuntime.Gpu\" Version=\"{PackageVersion}\" /> for CUDA.", e);
        }
    }

    static Exception Root(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }
}

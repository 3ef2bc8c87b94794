using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace MLNetExt.MLNet;

/// <summary>
/// What an ML.NET catalog knows about its MLContext: the host environment (for <c>MLContext.Log</c> and the seeded
/// random source every ML.NET trainer draws from) and the context's <c>Seed</c>, <c>GpuDeviceId</c> and
/// <c>FallbackToCpu</c>. ML.NET's own components reach these through internal interfaces
/// (<c>IInternalCatalog.Environment</c>, <c>IHostEnvironmentInternal</c>); an extension method outside ML.NET can only
/// reach them by reflection, pinned to Microsoft.ML 6.0.0 and tested.
/// </summary>
internal sealed record MLNetEnvironment(IHostEnvironment Host, int? Seed, int? GpuDeviceId, bool FallbackToCpu)
{
    const BindingFlags Public = BindingFlags.Instance | BindingFlags.Public;

    /// <summary>The environment of the MLContext that <paramref name="catalog"/> (any of its catalogs) belongs to.</summary>
    public static MLNetEnvironment Of(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var env = (IHostEnvironment)Read(catalog, "Microsoft.ML.Data.IInternalCatalog", "Environment")!;
        return new MLNetEnvironment(env,
            (int?)Read(env, "Microsoft.ML.Runtime.IHostEnvironmentInternal", "Seed"),
            (int?)Read(env, "Microsoft.ML.Runtime.IHostEnvironmentInternal", "GpuDeviceId"),
            (bool)Read(env, "Microsoft.ML.Runtime.IHostEnvironmentInternal", "FallbackToCpu")!);
    }

    /// <summary>A context of its own, for estimators made with <c>new</c> rather than through an MLContext catalog.</summary>
    public static MLNetEnvironment Default(int? seed = null)
    {
        var ml = new MLContext(seed);
        return new MLNetEnvironment(((IHostEnvironment)ml), seed, null, false);
    }

    static object? Read(object target, string interfaceName, string property)
    {
        var type = target.GetType().GetInterfaces().FirstOrDefault(i => i.FullName == interfaceName)
            ?? throw Unsupported($"{target.GetType().Name} does not implement {interfaceName}");
        var p = type.GetProperty(property, Public)
            ?? throw Unsupported($"{interfaceName} has no property {property}");
        return p.GetValue(target);
    }

    static NotSupportedException Unsupported(string what) =>
        new($"Microsoft.ML {typeof(MLContext).Assembly.GetName().Version}: {what}. MLNetExt's catalog extensions read the MLContext's " +
            "seed, GPU and log settings as Microsoft.ML 6.0.0 keeps them; use Microsoft.ML 6.0.0.");

    /// <summary>The libtorch device this context asks for: <c>cuda:GpuDeviceId</c> when it sets one (CPU with one
    /// warning when libtorch has no usable CUDA and FallbackToCpu is set; an error otherwise), else CPU (ML.NET's default).</summary>
    public string TorchDevice(Action<string> warn)
    {
        if (GpuDeviceId is not int gpu) return "cpu";
        if (gpu < 0) throw new ArgumentOutOfRangeException(nameof(GpuDeviceId), gpu, "MLContext.GpuDeviceId must be 0 or more.");
        int count = Torch.TorchRuntime.CudaIsAvailable ? Torch.TorchRuntime.CudaDeviceCount : 0;
        if (gpu < count) return $"cuda:{gpu}";
        var text = $"MLContext.GpuDeviceId is {gpu}, but libtorch here has {(count == 0 ? "no usable CUDA device" : $"{count} CUDA device(s)")}.";
        if (!FallbackToCpu) throw new InvalidOperationException(text + " Set MLContext.FallbackToCpu to train on the CPU instead.");
        warn(text + " Training on the CPU (MLContext.FallbackToCpu is set).");
        return "cpu";
    }

    /// <summary>The GPU ONNX Runtime should use for this context (see <see cref="OnnxGpu(int?, bool, Action{string})"/>).</summary>
    public int? OnnxGpu(Action<string> warn) => OnnxGpu(GpuDeviceId, FallbackToCpu, warn);

    /// <summary>The GPU for ML.NET's ONNX transformer: <paramref name="gpu"/> when the deployed ONNX Runtime has the CUDA
    /// provider; otherwise null (CPU) with one warning when <paramref name="fallbackToCpu"/> is set, and an error when it
    /// is not (ML.NET alone fails with EntryPointNotFoundException on the CPU package, even with fallback set).</summary>
    public static int? OnnxGpu(int? gpu, bool fallbackToCpu, Action<string> warn)
    {
        if (gpu is not int device || OnnxRuntime.OnnxRuntimeEnvironment.AvailableProviders.Contains("CUDAExecutionProvider")) return gpu;
        var text = $"MLContext.GpuDeviceId is {device}, but the ONNX Runtime deployed with this application is the CPU-only package " +
                   $"(providers: {string.Join(", ", OnnxRuntime.OnnxRuntimeEnvironment.AvailableProviders)}); reference Microsoft.ML.OnnxRuntime.Gpu " +
                   $"{OnnxRuntime.OnnxRuntimeEnvironment.PackageVersion} instead of Microsoft.ML.OnnxRuntime for CUDA. " +
                   (fallbackToCpu ? "Running on CPU instead." : "MLContext.FallbackToCpu is false.");
        if (!fallbackToCpu) throw new InvalidOperationException(text);
        warn(text);
        return null;
    }
}

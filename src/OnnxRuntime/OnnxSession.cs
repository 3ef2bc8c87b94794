using System.Text.RegularExpressions;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MLNetExt.OnnxRuntime;

/// <summary>How an <see cref="OnnxSession"/> is created.</summary>
public sealed class OnnxSessionOptions
{
    /// <summary>Threads inside one operator (ORT's intra-op pool); 0 = ONNX Runtime's default (one per core).</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>Whether the intra-op threads spin while waiting for work (ONNX Runtime's default: the lowest latency for
    /// one model alone). The benchmarks that run two sessions by turns on few cores turn it off, so that the threads of
    /// the session that just ran do not slow down the other's run.</summary>
    internal bool IntraOpSpinning { get; set; } = true;

    /// <summary>Graph optimisation level (default: all).</summary>
    public OnnxGraphOptimization GraphOptimization { get; set; } = OnnxGraphOptimization.All;

    /// <summary>Run on this CUDA device (null = CPU only). If ONNX Runtime cannot use CUDA — the application deployed
    /// the CPU package, or the GPU package's CUDA/cuDNN libraries or a device are missing — the session falls back to
    /// CPU with one warning naming what is missing, or throws when <see cref="FallbackToCpu"/> is false.</summary>
    public int? CudaDeviceId { get; set; }

    /// <summary>Fall back to CPU when CUDA was asked for but is unusable (default true).</summary>
    public bool FallbackToCpu { get; set; } = true;

    /// <summary>Where ONNX Runtime writes the model after graph optimisation (for inspection); null = not written.</summary>
    public string? OptimizedModelPath { get; set; }

    /// <summary>ONNX Runtime's per-operator profile goes to a JSON file starting with this prefix (benchmarks find where
    /// the time goes); null = no profiling. <see cref="OnnxSession.EndProfiling"/> closes it.</summary>
    internal string? ProfilePrefix { get; set; }

    /// <summary>Receives warnings (CUDA fallback); null = standard error.</summary>
    public Action<string>? Warning { get; set; }
}

/// <summary>
/// An ONNX Runtime inference session (the official <c>Microsoft.ML.OnnxRuntime</c> API) over a model file or
/// in-memory model bytes, with the model's input/output descriptions and metadata. What it adds to the official API:
/// inputs validated against the model with messages that say what was expected and what was given, inputs that
/// point into caller memory (no copy), a CUDA request that falls back to CPU with one warning naming what is missing,
/// and errors that say what was being done. <see cref="Run(IReadOnlyDictionary{string, OnnxTensor}, IReadOnlyList{string}?)"/>
/// may be called from several threads at once on one session; <see cref="Dispose"/> waits for runs in progress.
/// </summary>
internal sealed class OnnxSession : IDisposable
{
    private readonly Ort.InferenceSession session;
    private readonly Ort.RunOptions runOptions = new(); // read-only during runs: one per session serves every thread
    private readonly Dictionary<string, int> inputIndex = new(), outputIndex = new();
    private readonly string[] allOutputNames;
    private readonly ReaderWriterLockSlim runs = new(LockRecursionPolicy.NoRecursion);
    private bool disposed;

    private OnnxSession(Ort.InferenceSession session, string executionProvider, IReadOnlyList<string> warnings)
    {
        this.session = session;
        ExecutionProvider = executionProvider;
        Warnings = warnings;
        Inputs = session.InputNames.Select(n => Describe(n, session.InputMetadata[n])).ToArray();
        Outputs = session.OutputNames.Select(n => Describe(n, session.OutputMetadata[n])).ToArray();
        for (int i = 0; i < Inputs.Count; i++) inputIndex[Inputs[i].Name] = i;
        for (int i = 0; i < Outputs.Count; i++) outputIndex[Outputs[i].Name] = i;
        allOutputNames = Outputs.Select(o => o.Name).ToArray();
        var m = session.ModelMetadata;
        Metadata = new OnnxModelMetadata(m.ProducerName, m.GraphName, m.Domain, m.Description, m.GraphDescription, m.Version,
            new Dictionary<string, string>(m.CustomMetadataMap));
    }

    /// <summary>The model's inputs, in model order.</summary>
    public IReadOnlyList<OnnxNodeInfo> Inputs { get; }

    /// <summary>The model's outputs, in model order.</summary>
    public IReadOnlyList<OnnxNodeInfo> Outputs { get; }

    /// <summary>Producer, graph name, descriptions, version and the custom key/value map.</summary>
    public OnnxModelMetadata Metadata { get; }

    /// <summary>"CUDA" when the CUDA execution provider was added, else "CPU".</summary>
    public string ExecutionProvider { get; }

    /// <summary>Warnings raised while creating the session (CUDA fallback).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Opens a model file.</summary>
    public static OnnxSession FromFile(string path, OnnxSessionOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model file '{Path.GetFullPath(path)}' does not exist.", path);
        var full = Path.GetFullPath(path);
        return Create(options, so => new Ort.InferenceSession(full, so), $"loading the ONNX model '{path}'");
    }

    /// <summary>Opens a model held in memory (ORT copies what it needs; the bytes may be reused afterwards).</summary>
    public static OnnxSession FromBytes(ReadOnlySpan<byte> model, OnnxSessionOptions? options = null)
    {
        if (model.IsEmpty) throw new ArgumentException("the ONNX model bytes are empty", nameof(model));
        var bytes = model.ToArray();
        return Create(options, so => new Ort.InferenceSession(bytes, so), $"loading an ONNX model from {bytes.Length} bytes in memory");
    }

    private static OnnxSession Create(OnnxSessionOptions? options, Func<Ort.SessionOptions, Ort.InferenceSession> open, string what)
    {
        options ??= new OnnxSessionOptions();
        if (options.IntraOpThreads < 0) throw new ArgumentException($"IntraOpThreads must be >= 0 (0 = ONNX Runtime's default); got {options.IntraOpThreads}");
        if (!Enum.IsDefined(options.GraphOptimization)) throw new ArgumentException($"unknown graph optimisation level {(int)options.GraphOptimization}");
        if (options.CudaDeviceId is < 0) throw new ArgumentException($"CUDA device id must be >= 0; got {options.CudaDeviceId}");
        OnnxRuntimeEnvironment.Load();
        using var so = new Ort.SessionOptions
        {
            IntraOpNumThreads = options.IntraOpThreads,
            GraphOptimizationLevel = (Ort.GraphOptimizationLevel)(int)options.GraphOptimization,
        };
        if (!options.IntraOpSpinning) so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        if (options.ProfilePrefix != null) { so.ProfileOutputPathPrefix = options.ProfilePrefix; so.EnableProfiling = true; }  // the prefix first: enabling reads it
        if (options.OptimizedModelPath != null) so.OptimizedModelFilePath = Path.GetFullPath(options.OptimizedModelPath);
        var warnings = new List<string>();
        var provider = "CPU";
        if (options.CudaDeviceId is int device)
        {
            var failure = AppendCuda(so, device);
            if (failure == null) provider = "CUDA";
            else
            {
                var text = CudaUnavailableMessage(device, failure, options.FallbackToCpu);
                if (!options.FallbackToCpu)
                    throw new OnnxRuntimeException(text, OrtErrorCode.EpFail, failure.Message, $"adding the CUDA execution provider (device {device})", failure);
                warnings.Add(text);
                (options.Warning ?? (w => Console.Error.WriteLine("warning: " + w)))(text);
            }
        }
        Ort.InferenceSession s;
        try { s = open(so); }
        catch (Ort.OnnxRuntimeException e) { throw OnnxRuntimeException.From(e, what); }
        try { return new OnnxSession(s, provider, warnings); }
        catch { s.Dispose(); throw; }
    }

    /// <summary>Adds the CUDA provider; returns why it could not be added (null when it was).</summary>
    private static Exception? AppendCuda(Ort.SessionOptions so, int device)
    {
        try
        {
            so.AppendExecutionProvider_CUDA(device);
            return null;
        }
        // The CPU package does not export the CUDA entry point; the GPU package fails to load its CUDA provider
        // library when CUDA or cuDNN is missing, or reports a missing device.
        catch (Exception e) when (e is EntryPointNotFoundException or Ort.OnnxRuntimeException or DllNotFoundException) { return e; }
    }

    /// <summary>Names what is missing when CUDA cannot be used: the GPU package (when the CPU package is deployed), or
    /// the shared libraries the GPU package could not load, with ONNX Runtime's own message.</summary>
    internal static string CudaUnavailableMessage(int device, Exception failure, bool fallback)
    {
        string what;
        if (failure is EntryPointNotFoundException)
            what = $"the ONNX Runtime deployed with this application is the CPU-only package, which has no CUDA provider " +
                   $"(reference Microsoft.ML.OnnxRuntime.Gpu {OnnxRuntimeEnvironment.PackageVersion} instead of Microsoft.ML.OnnxRuntime; it needs CUDA 13 and cuDNN 9)";
        else
        {
            var libraries = Regex.Matches(failure.Message, @"lib[\w+\-.]+?\.so(\.\d+)*").Select(m => m.Value).Distinct().ToList();
            var missing = libraries.Where(l => !l.StartsWith("libonnxruntime", StringComparison.Ordinal)).ToList();
            what = missing.Count > 0
                ? $"{string.Join(" and ", missing)} could not be loaded (the GPU build of ONNX Runtime {OnnxRuntimeEnvironment.PackageVersion} needs the CUDA 13 and cuDNN 9 runtime libraries on the library path)"
                : libraries.Count > 0
                    ? $"{string.Join(" and ", libraries)} could not be loaded"
                    : "the CUDA provider could not be initialised (no CUDA device visible, or a driver or library problem)";
        }
        return $"CUDA execution provider (device {device}) is unavailable: {what}. ONNX Runtime said: {failure.Message.Trim()}. " +
               (fallback ? "Running on CPU instead." : "CPU fallback is disabled.");
    }

    private static OnnxNodeInfo Describe(string name, Ort.NodeMetadata m)
    {
        var kind = (OnnxValueKind)(int)m.OnnxValueType;
        if (kind != OnnxValueKind.Tensor) return new OnnxNodeInfo(name, kind, OnnxElementType.Undefined, [], []);
        return new OnnxNodeInfo(name, kind, (OnnxElementType)(int)m.ElementDataType,
            m.Dimensions.Select(d => (long)d).ToArray(), m.SymbolicDimensions.Select(d => d ?? "").ToArray());
    }

    /// <summary>Ends profiling (<see cref="OnnxSessionOptions.ProfilePrefix"/>); returns the profile file written.</summary>
    internal string EndProfiling() => session.EndProfiling();

    /// <summary>The description of the input with this name.</summary>
    public OnnxNodeInfo Input(string name) => inputIndex.TryGetValue(name, out var i) ? Inputs[i]
        : throw new OnnxInputException($"the model has no input '{name}'; its inputs are: {string.Join("; ", Inputs)}");

    /// <summary>Runs the model with a single input, returning the named outputs (all when null).</summary>
    public OnnxRunResult Run(string inputName, OnnxTensor input, IReadOnlyList<string>? outputNames = null) =>
        Run(new Dictionary<string, OnnxTensor> { [inputName] = input }, outputNames);

    /// <summary>
    /// Runs the model. Every model input must be given, with the model's element type and a shape that matches the
    /// model's fixed dimensions (dynamic dimensions take any size, but one symbolic name has one size across inputs).
    /// Returns the requested outputs (all, in model order, when <paramref name="outputNames"/> is null); the caller
    /// disposes the result. Safe to call from several threads at once.
    /// </summary>
    public OnnxRunResult Run(IReadOnlyDictionary<string, OnnxTensor> inputs, IReadOnlyList<string>? outputNames = null)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var order = Validate(inputs);
        var outs = outputNames ?? allOutputNames;
        foreach (var name in outs)
            if (!outputIndex.ContainsKey(name))
                throw new OnnxInputException($"the model has no output '{name}'; its outputs are: {string.Join("; ", Outputs)}");
        if (outs.Count == 0) throw new ArgumentException("at least one output must be requested");

        var names = new string[order.Length];
        var values = new Ort.OrtValue[order.Length];
        runs.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            for (int k = 0; k < order.Length; k++)
            {
                names[k] = Inputs[order[k].Index].Name;
                values[k] = order[k].Tensor.ToOrtValue();
            }
            Ort.IDisposableReadOnlyCollection<Ort.OrtValue> results;
            try { results = session.Run(runOptions, names, values, outs); }
            catch (Ort.OnnxRuntimeException e) { throw OnnxRuntimeException.From(e, "running the model"); }
            // The result collection only lists the values; each OnnxValue owns and releases its own.
            var list = results.ToArray();
            var wrapped = new OnnxValue[list.Length];
            try
            {
                for (int k = 0; k < list.Length; k++) wrapped[k] = new OnnxValue(outs[k], list[k]);
            }
            catch
            {
                foreach (var v in list) v.Dispose();
                throw;
            }
            return new OnnxRunResult(wrapped);
        }
        finally
        {
            foreach (var v in values) v?.Dispose();
            runs.ExitReadLock();
        }
    }

    /// <summary>Checks names, element types and shapes against the model; returns (model input index, tensor) in model
    /// order. The happy path allocates only the result array; messages are built only on error.</summary>
    private (int Index, OnnxTensor Tensor)[] Validate(IReadOnlyDictionary<string, OnnxTensor> inputs)
    {
        var order = new (int, OnnxTensor)[Inputs.Count];
        int found = 0;
        for (int i = 0; i < Inputs.Count; i++)
            if (inputs.TryGetValue(Inputs[i].Name, out var t)) { order[i] = (i, t); found++; }
        if (found != inputs.Count)
            foreach (var name in inputs.Keys)
                if (!inputIndex.ContainsKey(name))
                    throw new OnnxInputException($"the model has no input '{name}'; its inputs are: {string.Join("; ", Inputs)}");
        if (found != Inputs.Count)
        {
            var missing = Inputs.Where(i => !inputs.ContainsKey(i.Name)).ToList();
            throw new OnnxInputException($"missing model input{(missing.Count > 1 ? "s" : "")}: {string.Join("; ", missing)} (given: {string.Join(", ", inputs.Keys)})");
        }
        for (int i = 0; i < Inputs.Count; i++)
        {
            var info = Inputs[i];
            var t = order[i].Item2 ?? throw new OnnxInputException($"input '{info.Name}' is null; the model expects {info}");
            if (info.Kind != OnnxValueKind.Tensor)
                throw new OnnxInputException($"input '{info.Name}' is a {info.Kind} in the model; only tensor inputs are supported");
            if (t.ElementType != info.ElementType)
                throw new OnnxInputException($"input '{info.Name}': element type {OnnxElementTypes.Name(t.ElementType)} given, the model expects " +
                    $"{OnnxElementTypes.Name(info.ElementType)} {info.ShapeText}");
            var shape = t.ShapeArray;
            if (shape.Length != info.Dimensions.Count)
                throw new OnnxInputException($"input '{info.Name}': shape {OnnxElementTypes.Shape(shape)} given, the model expects {info.ShapeText} " +
                    $"(rank {shape.Length} given, {info.Dimensions.Count} expected)");
            for (int d = 0; d < shape.Length; d++)
            {
                long want = info.Dimensions[d];
                if (want >= 0)
                {
                    if (shape[d] != want)
                        throw new OnnxInputException($"input '{info.Name}': shape {OnnxElementTypes.Shape(shape)} given, the model expects {info.ShapeText} " +
                            $"(dimension {d} is {shape[d]}, expected {want})");
                    continue;
                }
                // One symbolic name has one size across all inputs: compare with its first use in an earlier position.
                var symbol = d < info.SymbolicDimensions.Count ? info.SymbolicDimensions[d] : "";
                if (symbol.Length == 0) continue;
                for (int j = 0; j <= i; j++)
                {
                    var other = Inputs[j];
                    var otherShape = order[j].Item2.ShapeArray;
                    int limit = j == i ? d : Math.Min(other.SymbolicDimensions.Count, otherShape.Length);
                    for (int e = 0; e < limit; e++)
                        if (other.Dimensions[e] < 0 && other.SymbolicDimensions[e] == symbol && otherShape[e] != shape[d])
                            throw new OnnxInputException($"input '{info.Name}': shape {OnnxElementTypes.Shape(shape)} given, the model expects {info.ShapeText}: " +
                                $"dimension {d} ('{symbol}') is {shape[d]}, but '{symbol}' is {otherShape[e]} in input '{other.Name}'");
                }
            }
        }
        return order;
    }

    /// <summary>Releases the session, after runs in progress on other threads finish.</summary>
    public void Dispose()
    {
        runs.EnterWriteLock();
        try
        {
            if (disposed) return;
            disposed = true;
            session.Dispose();
            runOptions.Dispose();
        }
        finally { runs.ExitWriteLock(); }
    }
}

using System.Runtime.InteropServices;
using System.Text;

namespace MLNetExt.OnnxRuntime;

/// <summary>How an <see cref="OnnxSession"/> is created.</summary>
public sealed class OnnxSessionOptions
{
    /// <summary>Explicit path of <c>libonnxruntime.so.1</c> (file or folder); null = resolve as described on
    /// <see cref="OnnxRuntimeLibrary"/>. Only the first library loaded in a process counts.</summary>
    public string? LibraryPath { get; set; }

    /// <summary>Threads inside one operator (ORT's intra-op pool); 0 = ONNX Runtime's default (one per core).</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>Graph optimisation level (default: all).</summary>
    public OnnxGraphOptimization GraphOptimization { get; set; } = OnnxGraphOptimization.All;

    /// <summary>Run on this CUDA device (null = CPU only). If ONNX Runtime cannot use CUDA — the CUDA provider
    /// library, CUDA or cuDNN missing — the session falls back to CPU with a warning naming what is missing, or
    /// throws when <see cref="FallbackToCpu"/> is false.</summary>
    public int? CudaDeviceId { get; set; }

    /// <summary>Fall back to CPU when CUDA was asked for but is unusable (default true).</summary>
    public bool FallbackToCpu { get; set; } = true;

    /// <summary>Where ONNX Runtime writes the model after graph optimisation (for inspection); null = not written.</summary>
    public string? OptimizedModelPath { get; set; }

    /// <summary>Receives warnings (CUDA fallback); null = standard error.</summary>
    public Action<string>? Warning { get; set; }
}

/// <summary>
/// An ONNX Runtime inference session over a model file or in-memory model bytes, with the model's input/output
/// descriptions and metadata. <see cref="Run(IReadOnlyDictionary{string, OnnxTensor}, IReadOnlyList{string}?)"/>
/// validates inputs against the model (name, element type, shape) and may be called from several threads at once on
/// one session (ONNX Runtime's Run is thread-safe; the session is kept alive while any run is in progress).
/// </summary>
public sealed unsafe class OnnxSession : IDisposable
{
    private readonly OrtSessionHandle handle;
    private readonly Dictionary<string, int> inputIndex = new(), outputIndex = new();
    private readonly int[] allOutputs;

    private OnnxSession(OrtSessionHandle handle, string executionProvider, IReadOnlyList<string> warnings)
    {
        this.handle = handle;
        ExecutionProvider = executionProvider;
        Warnings = warnings;
        var api = OnnxRuntimeLibrary.Api;
        var s = handle.DangerousGetHandle();
        Inputs = ReadNodes(api, s, input: true, out handle.InputNames);
        Outputs = ReadNodes(api, s, input: false, out handle.OutputNames);
        for (int i = 0; i < Inputs.Count; i++) inputIndex[Inputs[i].Name] = i;
        for (int i = 0; i < Outputs.Count; i++) outputIndex[Outputs[i].Name] = i;
        allOutputs = Enumerable.Range(0, Outputs.Count).ToArray();
        Metadata = ReadMetadata(api, s);
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
        var bytes = Encoding.UTF8.GetBytes(Path.GetFullPath(path) + "\0");
        return Create(options, (api, env, so) =>
        {
            IntPtr s;
            fixed (byte* p = bytes) api.Check(api.CreateSession(env, p, so, &s), $"loading the ONNX model '{path}'");
            return s;
        });
    }

    /// <summary>Opens a model held in memory (ORT copies what it needs; the bytes may be reused afterwards).</summary>
    public static OnnxSession FromBytes(ReadOnlySpan<byte> model, OnnxSessionOptions? options = null)
    {
        if (model.IsEmpty) throw new ArgumentException("the ONNX model bytes are empty", nameof(model));
        fixed (byte* p = model)
        {
            var ptr = p;
            var length = (nuint)model.Length;
            return Create(options, (api, env, so) =>
            {
                IntPtr s;
                api.Check(api.CreateSessionFromArray(env, ptr, length, so, &s), $"loading an ONNX model from {length} bytes in memory");
                return s;
            });
        }
    }

    private delegate IntPtr SessionFactory(OrtApi api, IntPtr env, IntPtr sessionOptions);

    private static OnnxSession Create(OnnxSessionOptions? options, SessionFactory factory)
    {
        options ??= new OnnxSessionOptions();
        OnnxRuntimeLibrary.Initialize(options.LibraryPath);
        var api = OnnxRuntimeLibrary.Api;
        if (options.IntraOpThreads < 0) throw new ArgumentException($"IntraOpThreads must be >= 0 (0 = ONNX Runtime's default); got {options.IntraOpThreads}");
        if (!Enum.IsDefined(options.GraphOptimization)) throw new ArgumentException($"unknown graph optimisation level {(int)options.GraphOptimization}");
        IntPtr so;
        api.Check(api.CreateSessionOptions(&so), "creating session options");
        using var soHandle = new OrtSessionOptionsHandle(so);
        api.Check(api.SetIntraOpNumThreads(so, options.IntraOpThreads), $"setting {options.IntraOpThreads} intra-op threads");
        api.Check(api.SetSessionGraphOptimizationLevel(so, (int)options.GraphOptimization), $"setting graph optimisation level {options.GraphOptimization}");
        if (options.OptimizedModelPath != null)
        {
            var p = Encoding.UTF8.GetBytes(Path.GetFullPath(options.OptimizedModelPath) + "\0");
            fixed (byte* pp = p) api.Check(api.SetOptimizedModelFilePath(so, pp), $"setting the optimized model path '{options.OptimizedModelPath}'");
        }
        var warnings = new List<string>();
        var provider = "CPU";
        if (options.CudaDeviceId is int device)
        {
            var failure = AppendCuda(api, so, device);
            if (failure == null) provider = "CUDA";
            else
            {
                var text = CudaUnavailableMessage(device, failure, options.FallbackToCpu);
                if (!options.FallbackToCpu) throw new OnnxRuntimeException(failure.Code, failure.OrtMessage, text);
                warnings.Add(text);
                (options.Warning ?? (w => Console.Error.WriteLine("warning: " + w)))(text);
            }
        }
        var session = factory(api, OnnxRuntimeLibrary.Env, so);
        var sh = new OrtSessionHandle(session);
        try { return new OnnxSession(sh, provider, warnings); }
        catch { sh.Dispose(); throw; }
    }

    /// <summary>OrtCUDAProviderOptions (legacy struct; 64 bytes on 64-bit): device_id, cudnn_conv_algo_search,
    /// gpu_mem_limit, arena_extend_strategy, do_copy_in_default_stream, has_user_compute_stream, user_compute_stream,
    /// default_memory_arena_cfg, tunable_op_enable, tunable_op_tuning_enable, tunable_op_max_tuning_duration_ms.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct CudaProviderOptions
    {
        public int DeviceId, CudnnConvAlgoSearch;
        public nuint GpuMemLimit;
        public int ArenaExtendStrategy, DoCopyInDefaultStream, HasUserComputeStream;
        public IntPtr UserComputeStream, DefaultMemoryArenaCfg;
        public int TunableOpEnable, TunableOpTuningEnable, TunableOpMaxTuningDurationMs;
    }

    private static OnnxRuntimeException? AppendCuda(OrtApi api, IntPtr so, int device)
    {
        if (device < 0) throw new ArgumentException($"CUDA device id must be >= 0; got {device}");
        // The C API's defaults: exhaustive cuDNN search, no memory limit, next-power-of-two arena, copies in the default stream.
        var o = new CudaProviderOptions { DeviceId = device, GpuMemLimit = nuint.MaxValue, DoCopyInDefaultStream = 1 };
        var status = api.SessionOptionsAppendExecutionProvider_CUDA(so, &o);
        return status == IntPtr.Zero ? null : api.ToException(status, $"adding the CUDA execution provider (device {device})");
    }

    /// <summary>Names what is missing when CUDA cannot be used: the provider libraries ORT loads from its own folder,
    /// or (when they are present) what ORT reports, typically a CUDA or cuDNN library.</summary>
    internal static string CudaUnavailableMessage(int device, OnnxRuntimeException failure, bool fallback)
    {
        var dir = Path.GetDirectoryName(OnnxRuntimeLibrary.LoadedPath)!;
        var missing = new[] { "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so" }
            .Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
        var what = missing.Count > 0
            ? $"{string.Join(" and ", missing)} {(missing.Count > 1 ? "are" : "is")} missing from {dir} (ONNX Runtime loads its CUDA " +
              $"provider from the folder of {OnnxRuntimeLibrary.FileName}; they come with the GPU build of ONNX Runtime {OnnxRuntimeLibrary.Version}, which also needs the CUDA and cuDNN runtime libraries it was built for)"
            : "the CUDA provider library is present but could not be used (a CUDA, cuDNN or driver library is missing or no device is visible)";
        return $"CUDA execution provider (device {device}) is unavailable: {what}. ONNX Runtime said: [{failure.Code}] {failure.OrtMessage.Trim()}. " +
               (fallback ? "Running on CPU instead." : "CPU fallback is disabled.");
    }

    private static IReadOnlyList<OnnxNodeInfo> ReadNodes(OrtApi api, IntPtr s, bool input, out IntPtr[] namePointers)
    {
        nuint count;
        api.Check(input ? api.SessionGetInputCount(s, &count) : api.SessionGetOutputCount(s, &count), $"counting the model's {(input ? "inputs" : "outputs")}");
        var nodes = new OnnxNodeInfo[(int)count];
        namePointers = new IntPtr[(int)count];
        for (nuint i = 0; i < count; i++)
        {
            IntPtr namePtr;
            api.Check(input ? api.SessionGetInputName(s, i, api.DefaultAllocator, &namePtr) : api.SessionGetOutputName(s, i, api.DefaultAllocator, &namePtr),
                $"reading the name of {(input ? "input" : "output")} {i}");
            var name = api.FreeString(namePtr);
            namePointers[(int)i] = Marshal.StringToCoTaskMemUTF8(name);
            IntPtr typeInfo;
            api.Check(input ? api.SessionGetInputTypeInfo(s, i, &typeInfo) : api.SessionGetOutputTypeInfo(s, i, &typeInfo), $"reading the type of '{name}'");
            try { nodes[(int)i] = Describe(api, name, typeInfo); }
            finally { api.ReleaseTypeInfo(typeInfo); }
        }
        return nodes;
    }

    private static OnnxNodeInfo Describe(OrtApi api, string name, IntPtr typeInfo)
    {
        int kind;
        api.Check(api.GetOnnxTypeFromTypeInfo(typeInfo, &kind), $"reading the kind of '{name}'");
        if ((OnnxValueKind)kind != OnnxValueKind.Tensor) return new OnnxNodeInfo(name, (OnnxValueKind)kind, OnnxElementType.Undefined, [], []);
        IntPtr tensorInfo; // owned by typeInfo: not released here
        api.Check(api.CastTypeInfoToTensorInfo(typeInfo, &tensorInfo), $"reading the tensor type of '{name}'");
        int type;
        api.Check(api.GetTensorElementType(tensorInfo, &type), $"reading the element type of '{name}'");
        nuint rank;
        api.Check(api.GetDimensionsCount(tensorInfo, &rank), $"reading the rank of '{name}'");
        var dims = new long[(int)rank];
        var symbols = new IntPtr[(int)rank];
        fixed (long* d = dims) api.Check(api.GetDimensions(tensorInfo, d, rank), $"reading the shape of '{name}'");
        fixed (IntPtr* p = symbols) api.Check(api.GetSymbolicDimensions(tensorInfo, p, rank), $"reading the symbolic dimensions of '{name}'");
        return new OnnxNodeInfo(name, OnnxValueKind.Tensor, (OnnxElementType)type, dims,
            symbols.Select(p => p == IntPtr.Zero ? "" : Marshal.PtrToStringUTF8(p) ?? "").ToArray());
    }

    private static OnnxModelMetadata ReadMetadata(OrtApi api, IntPtr s)
    {
        IntPtr metadata;
        api.Check(api.SessionGetModelMetadata(s, &metadata), "reading the model metadata");
        var m = metadata;
        try
        {
            string Get(delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr> f, string what)
            {
                IntPtr v;
                api.Check(f(m, api.DefaultAllocator, &v), $"reading the model's {what}");
                return api.FreeString(v);
            }
            var producer = Get(api.ModelMetadataGetProducerName, "producer name");
            var graph = Get(api.ModelMetadataGetGraphName, "graph name");
            var domain = Get(api.ModelMetadataGetDomain, "domain");
            var description = Get(api.ModelMetadataGetDescription, "description");
            var graphDescription = Get(api.ModelMetadataGetGraphDescription, "graph description");
            long version;
            api.Check(api.ModelMetadataGetVersion(m, &version), "reading the model version");
            IntPtr keys;
            long nkeys;
            api.Check(api.ModelMetadataGetCustomMetadataMapKeys(m, api.DefaultAllocator, &keys, &nkeys), "listing the custom metadata keys");
            var custom = new Dictionary<string, string>();
            try
            {
                for (long i = 0; i < nkeys; i++)
                {
                    var key = api.FreeString(((IntPtr*)keys)[i]);
                    var keyBytes = Encoding.UTF8.GetBytes(key + "\0");
                    IntPtr value;
                    fixed (byte* k = keyBytes)
                        api.Check(api.ModelMetadataLookupCustomMetadataMap(m, api.DefaultAllocator, k, &value), $"reading custom metadata '{key}'");
                    custom[key] = api.FreeString(value);
                }
            }
            finally
            {
                if (keys != IntPtr.Zero) api.Check(api.AllocatorFree(api.DefaultAllocator, keys), "freeing the metadata key list");
            }
            return new OnnxModelMetadata(producer, graph, domain, description, graphDescription, version, custom);
        }
        finally { api.ReleaseModelMetadata(m); }
    }

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
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        var order = Validate(inputs);
        var outs = outputNames == null ? allOutputs : new int[outputNames.Count];
        if (outputNames != null)
            for (int k = 0; k < outs.Length; k++)
                outs[k] = outputIndex.TryGetValue(outputNames[k], out var i) ? i
                    : throw new OnnxInputException($"the model has no output '{outputNames[k]}'; its outputs are: {string.Join("; ", Outputs)}");
        if (outs.Length == 0) throw new ArgumentException("at least one output must be requested");

        var api = OnnxRuntimeLibrary.Api;
        int n = order.Length;
        var pins = new System.Buffers.MemoryHandle[n];
        var values = new IntPtr[n];
        var inNames = new IntPtr[n];
        var outNames = new IntPtr[outs.Length];
        var outValues = new IntPtr[outs.Length];
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            for (int k = 0; k < n; k++)
            {
                var (index, tensor) = order[k];
                inNames[k] = handle.InputNames[index];
                pins[k] = tensor.Pin();
                var shape = tensor.ShapeArray;
                IntPtr v;
                fixed (long* sp = shape)
                    api.Check(api.CreateTensorWithDataAsOrtValue(api.CpuMemoryInfo, pins[k].Pointer, (nuint)tensor.ByteLength, sp, (nuint)shape.Length,
                        (int)tensor.ElementType, &v), $"wrapping input '{Inputs[index].Name}' as a tensor");
                values[k] = v;
            }
            for (int k = 0; k < outs.Length; k++) outNames[k] = handle.OutputNames[outs[k]];
            fixed (IntPtr* ip = inNames, vp = values, op = outNames, ov = outValues)
                api.Check(api.Run(handle.DangerousGetHandle(), IntPtr.Zero, ip, vp, (nuint)n, op, (nuint)outs.Length, ov), "running the model");
            var result = new OnnxValue[outs.Length];
            for (int k = 0; k < outs.Length; k++)
            {
                var h = new OrtValueHandle(outValues[k]);
                outValues[k] = IntPtr.Zero;
                try { result[k] = new OnnxValue(Outputs[outs[k]].Name, h); }
                catch { h.Dispose(); foreach (var r in result) r?.Dispose(); throw; }
            }
            return new OnnxRunResult(result);
        }
        finally
        {
            foreach (var v in values) if (v != IntPtr.Zero) api.ReleaseValue(v);
            foreach (var v in outValues) if (v != IntPtr.Zero) api.ReleaseValue(v);
            foreach (var p in pins) p.Dispose();
            if (added) handle.DangerousRelease();
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

    /// <summary>Releases the session (deferred until runs in progress on other threads finish).</summary>
    public void Dispose() => handle.Dispose();
}

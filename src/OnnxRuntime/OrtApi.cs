using System.Runtime.InteropServices;

namespace MLNetExt.OnnxRuntime;

/// <summary>
/// Positions in ONNX Runtime's C function table (<c>struct OrtApi</c>, whose member order is the ABI: the table is
/// append-only, so an index never changes between versions). Only the functions MLNetExt calls are listed; every
/// index is exercised by behaviour in tests/MLNetExt.Tests/OnnxRuntime/OrtApiTableTests.cs.
/// </summary>
internal static class OrtApiIndex
{
    public const int CreateStatus = 0, GetErrorCode = 1, GetErrorMessage = 2, CreateEnv = 3;
    public const int CreateSession = 7, CreateSessionFromArray = 8, Run = 9, CreateSessionOptions = 10;
    public const int SetOptimizedModelFilePath = 11, SetSessionGraphOptimizationLevel = 23, SetIntraOpNumThreads = 24;
    public const int SessionGetInputCount = 30, SessionGetOutputCount = 31;
    public const int SessionGetInputTypeInfo = 33, SessionGetOutputTypeInfo = 34;
    public const int SessionGetInputName = 36, SessionGetOutputName = 37;
    public const int CreateTensorWithDataAsOrtValue = 49, GetTensorMutableData = 51;
    public const int CastTypeInfoToTensorInfo = 55, GetOnnxTypeFromTypeInfo = 56;
    public const int GetTensorElementType = 60, GetDimensionsCount = 61, GetDimensions = 62, GetSymbolicDimensions = 63;
    public const int GetTensorTypeAndShape = 65, CreateCpuMemoryInfo = 69, AllocatorFree = 76, GetAllocatorWithDefaultOptions = 78;
    public const int ReleaseEnv = 92, ReleaseStatus = 93, ReleaseMemoryInfo = 94, ReleaseSession = 95, ReleaseValue = 96;
    public const int ReleaseTypeInfo = 98, ReleaseTensorTypeAndShapeInfo = 99, ReleaseSessionOptions = 100;
    public const int SessionGetModelMetadata = 111, ModelMetadataGetProducerName = 112, ModelMetadataGetGraphName = 113;
    public const int ModelMetadataGetDomain = 114, ModelMetadataGetDescription = 115, ModelMetadataLookupCustomMetadataMap = 116;
    public const int ModelMetadataGetVersion = 117, ReleaseModelMetadata = 118, ModelMetadataGetCustomMetadataMapKeys = 123;
    public const int GetAvailableProviders = 125, ReleaseAvailableProviders = 126;
    public const int SessionOptionsAppendExecutionProvider_CUDA = 152, ModelMetadataGetGraphDescription = 158;

    /// <summary>The C API version requested from <c>OrtGetApiBase()->GetApi</c>: every function above exists in it
    /// (ONNX Runtime 1.16 and later provide it; the set-up script installs 1.30.0).</summary>
    public const uint ApiVersion = 16;
}

/// <summary>ONNX Runtime's error codes (<c>OrtErrorCode</c>).</summary>
public enum OrtErrorCode
{
    Ok = 0, Fail = 1, InvalidArgument = 2, NoSuchFile = 3, NoModel = 4, EngineError = 5, RuntimeException = 6,
    InvalidProtobuf = 7, ModelLoaded = 8, NotImplemented = 9, InvalidGraph = 10, EpFail = 11,
    ModelLoadCanceled = 12, ModelRequiresCompilation = 13, NotFound = 14,
}

/// <summary>
/// The subset of ONNX Runtime's C function table that MLNetExt uses, as typed function pointers read once from the
/// table at the positions in <see cref="OrtApiIndex"/>. Every function returning an <c>OrtStatus*</c> is checked
/// through <see cref="Check"/>, the one place that turns a status into an <see cref="OnnxRuntimeException"/>.
/// </summary>
internal sealed unsafe class OrtApi
{
    public readonly delegate* unmanaged<int, byte*, IntPtr> CreateStatus;
    public readonly delegate* unmanaged<IntPtr, int> GetErrorCode;
    public readonly delegate* unmanaged<IntPtr, byte*> GetErrorMessage;
    public readonly delegate* unmanaged<int, byte*, IntPtr*, IntPtr> CreateEnv;
    public readonly delegate* unmanaged<IntPtr, byte*, IntPtr, IntPtr*, IntPtr> CreateSession;
    public readonly delegate* unmanaged<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr> CreateSessionFromArray;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr> Run;
    public readonly delegate* unmanaged<IntPtr*, IntPtr> CreateSessionOptions;
    public readonly delegate* unmanaged<IntPtr, byte*, IntPtr> SetOptimizedModelFilePath;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> SetSessionGraphOptimizationLevel;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> SetIntraOpNumThreads;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> SessionGetInputCount;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> SessionGetOutputCount;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr> SessionGetInputTypeInfo;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr> SessionGetOutputTypeInfo;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr, IntPtr*, IntPtr> SessionGetInputName;
    public readonly delegate* unmanaged<IntPtr, nuint, IntPtr, IntPtr*, IntPtr> SessionGetOutputName;
    public readonly delegate* unmanaged<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr> CreateTensorWithDataAsOrtValue;
    public readonly delegate* unmanaged<IntPtr, void**, IntPtr> GetTensorMutableData;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr> CastTypeInfoToTensorInfo;
    public readonly delegate* unmanaged<IntPtr, int*, IntPtr> GetOnnxTypeFromTypeInfo;
    public readonly delegate* unmanaged<IntPtr, int*, IntPtr> GetTensorElementType;
    public readonly delegate* unmanaged<IntPtr, nuint*, IntPtr> GetDimensionsCount;
    public readonly delegate* unmanaged<IntPtr, long*, nuint, IntPtr> GetDimensions;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, nuint, IntPtr> GetSymbolicDimensions;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr> GetTensorTypeAndShape;
    public readonly delegate* unmanaged<int, int, IntPtr*, IntPtr> CreateCpuMemoryInfo;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr> AllocatorFree;
    public readonly delegate* unmanaged<IntPtr*, IntPtr> GetAllocatorWithDefaultOptions;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseEnv;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseStatus;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseMemoryInfo;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseSession;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseValue;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseTypeInfo;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseTensorTypeAndShapeInfo;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseSessionOptions;
    public readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr> SessionGetModelMetadata;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr> ModelMetadataGetProducerName;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr> ModelMetadataGetGraphName;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr> ModelMetadataGetDomain;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr> ModelMetadataGetDescription;
    public readonly delegate* unmanaged<IntPtr, IntPtr, byte*, IntPtr*, IntPtr> ModelMetadataLookupCustomMetadataMap;
    public readonly delegate* unmanaged<IntPtr, long*, IntPtr> ModelMetadataGetVersion;
    public readonly delegate* unmanaged<IntPtr, void> ReleaseModelMetadata;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, long*, IntPtr> ModelMetadataGetCustomMetadataMapKeys;
    public readonly delegate* unmanaged<IntPtr*, int*, IntPtr> GetAvailableProviders;
    public readonly delegate* unmanaged<IntPtr, int, IntPtr> ReleaseAvailableProviders;
    public readonly delegate* unmanaged<IntPtr, void*, IntPtr> SessionOptionsAppendExecutionProvider_CUDA;
    public readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr> ModelMetadataGetGraphDescription;

    /// <summary>The library's default CPU allocator (owned by ONNX Runtime; never freed). Strings that ORT returns
    /// through it are freed with <see cref="FreeString"/>.</summary>
    public readonly IntPtr DefaultAllocator;

    /// <summary>The CPU memory description used for every tensor created over caller memory (process lifetime).</summary>
    public readonly IntPtr CpuMemoryInfo;

    public OrtApi(IntPtr* t)
    {
        CreateStatus = (delegate* unmanaged<int, byte*, IntPtr>)t[OrtApiIndex.CreateStatus];
        GetErrorCode = (delegate* unmanaged<IntPtr, int>)t[OrtApiIndex.GetErrorCode];
        GetErrorMessage = (delegate* unmanaged<IntPtr, byte*>)t[OrtApiIndex.GetErrorMessage];
        CreateEnv = (delegate* unmanaged<int, byte*, IntPtr*, IntPtr>)t[OrtApiIndex.CreateEnv];
        CreateSession = (delegate* unmanaged<IntPtr, byte*, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.CreateSession];
        CreateSessionFromArray = (delegate* unmanaged<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.CreateSessionFromArray];
        Run = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr>)t[OrtApiIndex.Run];
        CreateSessionOptions = (delegate* unmanaged<IntPtr*, IntPtr>)t[OrtApiIndex.CreateSessionOptions];
        SetOptimizedModelFilePath = (delegate* unmanaged<IntPtr, byte*, IntPtr>)t[OrtApiIndex.SetOptimizedModelFilePath];
        SetSessionGraphOptimizationLevel = (delegate* unmanaged<IntPtr, int, IntPtr>)t[OrtApiIndex.SetSessionGraphOptimizationLevel];
        SetIntraOpNumThreads = (delegate* unmanaged<IntPtr, int, IntPtr>)t[OrtApiIndex.SetIntraOpNumThreads];
        SessionGetInputCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[OrtApiIndex.SessionGetInputCount];
        SessionGetOutputCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[OrtApiIndex.SessionGetOutputCount];
        SessionGetInputTypeInfo = (delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)t[OrtApiIndex.SessionGetInputTypeInfo];
        SessionGetOutputTypeInfo = (delegate* unmanaged<IntPtr, nuint, IntPtr*, IntPtr>)t[OrtApiIndex.SessionGetOutputTypeInfo];
        SessionGetInputName = (delegate* unmanaged<IntPtr, nuint, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.SessionGetInputName];
        SessionGetOutputName = (delegate* unmanaged<IntPtr, nuint, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.SessionGetOutputName];
        CreateTensorWithDataAsOrtValue = (delegate* unmanaged<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr>)t[OrtApiIndex.CreateTensorWithDataAsOrtValue];
        GetTensorMutableData = (delegate* unmanaged<IntPtr, void**, IntPtr>)t[OrtApiIndex.GetTensorMutableData];
        CastTypeInfoToTensorInfo = (delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.CastTypeInfoToTensorInfo];
        GetOnnxTypeFromTypeInfo = (delegate* unmanaged<IntPtr, int*, IntPtr>)t[OrtApiIndex.GetOnnxTypeFromTypeInfo];
        GetTensorElementType = (delegate* unmanaged<IntPtr, int*, IntPtr>)t[OrtApiIndex.GetTensorElementType];
        GetDimensionsCount = (delegate* unmanaged<IntPtr, nuint*, IntPtr>)t[OrtApiIndex.GetDimensionsCount];
        GetDimensions = (delegate* unmanaged<IntPtr, long*, nuint, IntPtr>)t[OrtApiIndex.GetDimensions];
        GetSymbolicDimensions = (delegate* unmanaged<IntPtr, IntPtr*, nuint, IntPtr>)t[OrtApiIndex.GetSymbolicDimensions];
        GetTensorTypeAndShape = (delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.GetTensorTypeAndShape];
        CreateCpuMemoryInfo = (delegate* unmanaged<int, int, IntPtr*, IntPtr>)t[OrtApiIndex.CreateCpuMemoryInfo];
        AllocatorFree = (delegate* unmanaged<IntPtr, IntPtr, IntPtr>)t[OrtApiIndex.AllocatorFree];
        GetAllocatorWithDefaultOptions = (delegate* unmanaged<IntPtr*, IntPtr>)t[OrtApiIndex.GetAllocatorWithDefaultOptions];
        ReleaseEnv = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseEnv];
        ReleaseStatus = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseStatus];
        ReleaseMemoryInfo = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseMemoryInfo];
        ReleaseSession = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseSession];
        ReleaseValue = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseValue];
        ReleaseTypeInfo = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseTypeInfo];
        ReleaseTensorTypeAndShapeInfo = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseTensorTypeAndShapeInfo];
        ReleaseSessionOptions = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseSessionOptions];
        SessionGetModelMetadata = (delegate* unmanaged<IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.SessionGetModelMetadata];
        ModelMetadataGetProducerName = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.ModelMetadataGetProducerName];
        ModelMetadataGetGraphName = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.ModelMetadataGetGraphName];
        ModelMetadataGetDomain = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.ModelMetadataGetDomain];
        ModelMetadataGetDescription = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.ModelMetadataGetDescription];
        ModelMetadataLookupCustomMetadataMap = (delegate* unmanaged<IntPtr, IntPtr, byte*, IntPtr*, IntPtr>)t[OrtApiIndex.ModelMetadataLookupCustomMetadataMap];
        ModelMetadataGetVersion = (delegate* unmanaged<IntPtr, long*, IntPtr>)t[OrtApiIndex.ModelMetadataGetVersion];
        ReleaseModelMetadata = (delegate* unmanaged<IntPtr, void>)t[OrtApiIndex.ReleaseModelMetadata];
        ModelMetadataGetCustomMetadataMapKeys = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, long*, IntPtr>)t[OrtApiIndex.ModelMetadataGetCustomMetadataMapKeys];
        GetAvailableProviders = (delegate* unmanaged<IntPtr*, int*, IntPtr>)t[OrtApiIndex.GetAvailableProviders];
        ReleaseAvailableProviders = (delegate* unmanaged<IntPtr, int, IntPtr>)t[OrtApiIndex.ReleaseAvailableProviders];
        SessionOptionsAppendExecutionProvider_CUDA = (delegate* unmanaged<IntPtr, void*, IntPtr>)t[OrtApiIndex.SessionOptionsAppendExecutionProvider_CUDA];
        ModelMetadataGetGraphDescription = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, IntPtr>)t[OrtApiIndex.ModelMetadataGetGraphDescription];

        IntPtr allocator;
        Check(GetAllocatorWithDefaultOptions(&allocator), "getting the default allocator");
        DefaultAllocator = allocator;
        IntPtr memoryInfo;
        // OrtArenaAllocator = 1, OrtMemTypeDefault = 0: plain CPU memory.
        Check(CreateCpuMemoryInfo(1, 0, &memoryInfo), "creating the CPU memory description");
        CpuMemoryInfo = memoryInfo;
    }

    /// <summary>The one status verifier: a non-null status becomes an <see cref="OnnxRuntimeException"/> carrying
    /// ORT's error code and message (the status is released here); <paramref name="what"/> says what was being done.</summary>
    public void Check(IntPtr status, string what)
    {
        if (status == IntPtr.Zero) return;
        throw ToException(status, what);
    }

    /// <summary>Reads and releases a non-null status.</summary>
    public OnnxRuntimeException ToException(IntPtr status, string what)
    {
        var code = (OrtErrorCode)GetErrorCode(status);
        var message = Marshal.PtrToStringUTF8((IntPtr)GetErrorMessage(status)) ?? "";
        ReleaseStatus(status);
        return new OnnxRuntimeException(code, message, what);
    }

    /// <summary>Copies a string that ORT allocated with the default allocator, then frees it.</summary>
    public string FreeString(IntPtr s)
    {
        if (s == IntPtr.Zero) return "";
        try { return Marshal.PtrToStringUTF8(s) ?? ""; }
        finally { Check(AllocatorFree(DefaultAllocator, s), "freeing a string"); }
    }
}

/// <summary>An error reported by ONNX Runtime: its error code, its message, and what MLNetExt was doing.</summary>
public sealed class OnnxRuntimeException : Exception
{
    public OnnxRuntimeException(OrtErrorCode code, string ortMessage, string operation)
        : base($"ONNX Runtime failed {operation}: [{code}] {ortMessage}")
    {
        Code = code;
        OrtMessage = ortMessage;
        Operation = operation;
    }

    /// <summary>ORT's error code (<c>OrtErrorCode</c>).</summary>
    public OrtErrorCode Code { get; }

    /// <summary>ORT's own message, unchanged.</summary>
    public string OrtMessage { get; }

    /// <summary>What MLNetExt was doing when ORT failed.</summary>
    public string Operation { get; }
}

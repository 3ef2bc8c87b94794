using System.Buffers;
using System.Runtime.InteropServices;

namespace MLNetExt.OnnxRuntime;

/// <summary>Tensor element types (<c>ONNXTensorElementDataType</c>, the same numbers as ONNX's TensorProto.DataType).</summary>
public enum OnnxElementType
{
    Undefined = 0, Float32 = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7, String = 8,
    Bool = 9, Float16 = 10, Float64 = 11, UInt32 = 12, UInt64 = 13, Complex64 = 14, Complex128 = 15, BFloat16 = 16,
}

/// <summary>Kinds of values a model input or output can be (<c>ONNXType</c>).</summary>
public enum OnnxValueKind { Unknown = 0, Tensor = 1, Sequence = 2, Map = 3, Opaque = 4, SparseTensor = 5, Optional = 6 }

/// <summary>Graph optimisation levels (<c>GraphOptimizationLevel</c>).</summary>
public enum OnnxGraphOptimization { Disabled = 0, Basic = 1, Extended = 2, All = 99 }

internal static class OnnxElementTypes
{
    public static string Name(OnnxElementType t) => t switch
    {
        OnnxElementType.Float32 => "float32", OnnxElementType.Float64 => "float64", OnnxElementType.Float16 => "float16",
        OnnxElementType.BFloat16 => "bfloat16", OnnxElementType.Int8 => "int8", OnnxElementType.UInt8 => "uint8",
        OnnxElementType.Int16 => "int16", OnnxElementType.UInt16 => "uint16", OnnxElementType.Int32 => "int32",
        OnnxElementType.UInt32 => "uint32", OnnxElementType.Int64 => "int64", OnnxElementType.UInt64 => "uint64",
        OnnxElementType.Bool => "bool", OnnxElementType.String => "string", OnnxElementType.Complex64 => "complex64",
        OnnxElementType.Complex128 => "complex128", _ => $"type {(int)t}",
    };

    /// <summary>The ONNX element type of a C# element type (bool is one byte in both).</summary>
    public static OnnxElementType Of<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? OnnxElementType.Float32 :
        typeof(T) == typeof(double) ? OnnxElementType.Float64 :
        typeof(T) == typeof(long) ? OnnxElementType.Int64 :
        typeof(T) == typeof(int) ? OnnxElementType.Int32 :
        typeof(T) == typeof(short) ? OnnxElementType.Int16 :
        typeof(T) == typeof(ushort) ? OnnxElementType.UInt16 :
        typeof(T) == typeof(byte) ? OnnxElementType.UInt8 :
        typeof(T) == typeof(sbyte) ? OnnxElementType.Int8 :
        typeof(T) == typeof(uint) ? OnnxElementType.UInt32 :
        typeof(T) == typeof(ulong) ? OnnxElementType.UInt64 :
        typeof(T) == typeof(bool) ? OnnxElementType.Bool :
        typeof(T) == typeof(Half) ? OnnxElementType.Float16 :
        throw new NotSupportedException($"{typeof(T).Name} has no ONNX tensor element type");

    public static string Shape(IReadOnlyList<long> dims) => "[" + string.Join(",", dims) + "]";
}

/// <summary>A model input or output as ONNX Runtime describes it: name, kind, element type and shape, where a
/// dynamic dimension is -1 in <see cref="Dimensions"/> and has its symbolic name (e.g. <c>N</c>, or "" when the model
/// gives none) in <see cref="SymbolicDimensions"/>.</summary>
public sealed record OnnxNodeInfo(string Name, OnnxValueKind Kind, OnnxElementType ElementType,
    IReadOnlyList<long> Dimensions, IReadOnlyList<string> SymbolicDimensions)
{
    /// <summary>The shape as text with dynamic dimensions shown by their symbolic names ("?" when unnamed): <c>[N,3,224,224]</c>.</summary>
    public string ShapeText => "[" + string.Join(",", Dimensions.Select((d, i) =>
        d >= 0 ? d.ToString() : (i < SymbolicDimensions.Count && SymbolicDimensions[i].Length > 0 ? SymbolicDimensions[i] : "?"))) + "]";

    /// <summary>"name: float32 [N,3,224,224]".</summary>
    public override string ToString() =>
        Kind == OnnxValueKind.Tensor ? $"{Name}: {OnnxElementTypes.Name(ElementType)} {ShapeText}" : $"{Name}: {Kind}";
}

/// <summary>Model-level metadata (<c>OrtModelMetadata</c>): producer, graph name, domain, descriptions, model version
/// and the custom key/value map (ONNX <c>metadata_props</c>; MLNetExt's exporter stores class names, mean/std, input
/// size and the like there).</summary>
public sealed record OnnxModelMetadata(string ProducerName, string GraphName, string Domain, string Description,
    string GraphDescription, long Version, IReadOnlyDictionary<string, string> Custom);

/// <summary>
/// An input tensor over caller memory: no copy is made. The memory is pinned only for the duration of each
/// <see cref="OnnxSession.Run(IReadOnlyDictionary{string, OnnxTensor}, IReadOnlyList{string}?)"/> call; the caller
/// must not change it while a run that uses it is in progress.
/// </summary>
public abstract class OnnxTensor
{
    private protected OnnxTensor(OnnxElementType elementType, long[] shape, long length)
    {
        foreach (var d in shape)
            if (d < 0) throw new ArgumentException($"tensor shape {OnnxElementTypes.Shape(shape)} has a negative dimension");
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (count != length)
            throw new ArgumentException($"tensor shape {OnnxElementTypes.Shape(shape)} needs {count} elements, but the data has {length}");
        ElementType = elementType;
        Shape = shape;
    }

    public OnnxElementType ElementType { get; }
    public IReadOnlyList<long> Shape { get; }
    internal long[] ShapeArray => (long[])Shape;
    internal abstract MemoryHandle Pin();
    internal abstract long ByteLength { get; }

    /// <summary>A tensor over <paramref name="data"/> (row-major) with the given shape; the element count must match.</summary>
    public static OnnxTensor FromMemory<T>(ReadOnlyMemory<T> data, params long[] shape) where T : unmanaged =>
        new OnnxTensor<T>(data, (long[])shape.Clone());

    /// <summary>A float32 tensor over an array (no copy).</summary>
    public static OnnxTensor FromArray(float[] data, params long[] shape) => FromMemory<float>(data, shape);
}

internal sealed class OnnxTensor<T>(ReadOnlyMemory<T> data, long[] shape)
    : OnnxTensor(OnnxElementTypes.Of<T>(), shape, data.Length) where T : unmanaged
{
    internal override MemoryHandle Pin() => data.Pin();
    internal override unsafe long ByteLength => (long)data.Length * sizeof(T);
}

/// <summary>
/// An output tensor owned by ONNX Runtime. <see cref="AsSpan{T}"/> views ORT's buffer without copying; the span is
/// valid only until this value (or the <see cref="OnnxRunResult"/> holding it) is disposed. <see cref="ToArray{T}"/>
/// copies once into a new managed array that outlives it.
/// </summary>
public sealed unsafe class OnnxValue : IDisposable
{
    private readonly OrtValueHandle handle;
    private readonly void* data;

    internal OnnxValue(string name, OrtValueHandle handle)
    {
        Name = name;
        this.handle = handle;
        var api = OnnxRuntimeLibrary.Api;
        IntPtr info;
        api.Check(api.GetTensorTypeAndShape(handle.DangerousGetHandle(), &info), $"reading the type of output '{name}'");
        try
        {
            int type;
            api.Check(api.GetTensorElementType(info, &type), $"reading the element type of output '{name}'");
            ElementType = (OnnxElementType)type;
            nuint rank;
            api.Check(api.GetDimensionsCount(info, &rank), $"reading the rank of output '{name}'");
            var dims = new long[(int)rank];
            fixed (long* d = dims) api.Check(api.GetDimensions(info, d, rank), $"reading the shape of output '{name}'");
            Shape = dims;
            long count = 1;
            foreach (var x in dims) count *= x;
            ElementCount = count;
        }
        finally { api.ReleaseTensorTypeAndShapeInfo(info); }
        void* p;
        api.Check(api.GetTensorMutableData(handle.DangerousGetHandle(), &p), $"reading the data of output '{name}'");
        data = p;
    }

    public string Name { get; }
    public OnnxElementType ElementType { get; }
    public IReadOnlyList<long> Shape { get; }
    public long ElementCount { get; }

    /// <summary>ORT's buffer as a span, no copy; valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(handle.IsClosed, this);
        var want = OnnxElementTypes.Of<T>();
        if (want != ElementType)
            throw new InvalidOperationException($"output '{Name}' holds {OnnxElementTypes.Name(ElementType)}, not {OnnxElementTypes.Name(want)}");
        if (ElementCount > int.MaxValue) throw new InvalidOperationException($"output '{Name}' has {ElementCount} elements, more than a span can hold");
        return new ReadOnlySpan<T>(data, (int)ElementCount);
    }

    /// <summary>Copies the tensor into a new array (one copy).</summary>
    public T[] ToArray<T>() where T : unmanaged => AsSpan<T>().ToArray();

    public void Dispose() => handle.Dispose();
}

/// <summary>The outputs of one run, in the order requested; disposing it frees every output's ORT buffer.</summary>
public sealed class OnnxRunResult : IDisposable, IReadOnlyList<OnnxValue>
{
    private readonly OnnxValue[] values;
    internal OnnxRunResult(OnnxValue[] values) => this.values = values;

    public OnnxValue this[int index] => values[index];

    /// <summary>The output with the given name.</summary>
    public OnnxValue this[string name] => values.FirstOrDefault(v => v.Name == name)
        ?? throw new KeyNotFoundException($"this run has no output '{name}'; it has: {string.Join(", ", values.Select(v => v.Name))}");

    public int Count => values.Length;
    public IEnumerator<OnnxValue> GetEnumerator() => ((IEnumerable<OnnxValue>)values).GetEnumerator();
    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => values.GetEnumerator();

    public void Dispose()
    {
        foreach (var v in values) v.Dispose();
    }
}

/// <summary>An ORT object released by its <c>Release*</c> function when the last user lets go.</summary>
internal abstract class OrtHandle : SafeHandle
{
    protected OrtHandle(IntPtr h) : base(IntPtr.Zero, true) => SetHandle(h);
    public override bool IsInvalid => handle == IntPtr.Zero;
}

internal sealed unsafe class OrtValueHandle(IntPtr h) : OrtHandle(h)
{
    protected override bool ReleaseHandle() { OnnxRuntimeLibrary.Api.ReleaseValue(handle); return true; }
}

internal sealed unsafe class OrtSessionOptionsHandle(IntPtr h) : OrtHandle(h)
{
    protected override bool ReleaseHandle() { OnnxRuntimeLibrary.Api.ReleaseSessionOptions(handle); return true; }
}

/// <summary>The session, plus the UTF-8 names of its inputs and outputs (native memory freed with the session).</summary>
internal sealed unsafe class OrtSessionHandle(IntPtr h) : OrtHandle(h)
{
    public IntPtr[] InputNames = [], OutputNames = [];

    protected override bool ReleaseHandle()
    {
        OnnxRuntimeLibrary.Api.ReleaseSession(handle);
        foreach (var p in InputNames) Marshal.FreeCoTaskMem(p);
        foreach (var p in OutputNames) Marshal.FreeCoTaskMem(p);
        return true;
    }
}

/// <summary>A run-time input that does not match the model: wrong name, element type or shape. The message gives
/// what the model expects (dynamic dimensions by their symbolic names) and what was given.</summary>
public sealed class OnnxInputException(string message) : ArgumentException(message);

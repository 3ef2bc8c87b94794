using System.Runtime.InteropServices;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MLNetExt.OnnxRuntime;

/// <summary>Tensor element types (<c>ONNXTensorElementDataType</c>, the same numbers as ONNX's TensorProto.DataType).</summary>
internal enum OnnxElementType
{
    Undefined = 0, Float32 = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7, String = 8,
    Bool = 9, Float16 = 10, Float64 = 11, UInt32 = 12, UInt64 = 13, Complex64 = 14, Complex128 = 15, BFloat16 = 16,
}

/// <summary>Kinds of values a model input or output can be (<c>ONNXType</c>).</summary>
internal enum OnnxValueKind { Unknown = 0, Tensor = 1, Sequence = 2, Map = 3, Opaque = 4, SparseTensor = 5, Optional = 6 }

/// <summary>ONNX Runtime's error codes (<c>OrtErrorCode</c>), as its messages name them.</summary>
internal enum OrtErrorCode
{
    Ok = 0, Fail = 1, InvalidArgument = 2, NoSuchFile = 3, NoModel = 4, EngineError = 5, RuntimeException = 6, InvalidProtobuf = 7,
    ModelLoaded = 8, NotImplemented = 9, InvalidGraph = 10, EpFail = 11,
}

/// <summary>Graph optimisation levels (<c>GraphOptimizationLevel</c>).</summary>
public enum OnnxGraphOptimization
{
    /// <summary>No graph rewrites.</summary>
    Disabled = 0,
    /// <summary>Constant folding and redundant-node removal.</summary>
    Basic = 1,
    /// <summary>Basic plus node fusions.</summary>
    Extended = 2,
    /// <summary>Every optimisation, layout changes included (ORT's default).</summary>
    All = 99,
}

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
internal sealed record OnnxNodeInfo(string Name, OnnxValueKind Kind, OnnxElementType ElementType,
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
internal sealed record OnnxModelMetadata(string ProducerName, string GraphName, string Domain, string Description,
    string GraphDescription, long Version, IReadOnlyDictionary<string, string> Custom);

/// <summary>
/// An input tensor over caller memory: no copy is made. The memory is pinned only for the duration of each
/// <see cref="OnnxSession.Run(IReadOnlyDictionary{string, OnnxTensor}, IReadOnlyList{string}?)"/> call; the caller
/// must not change it while a run that uses it is in progress.
/// </summary>
internal abstract class OnnxTensor
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

    /// <summary>An ORT value over the caller's memory (pinned until the value is disposed).</summary>
    internal abstract Ort.OrtValue ToOrtValue();

    /// <summary>A tensor over <paramref name="data"/> (row-major) with the given shape; the element count must match.</summary>
    public static OnnxTensor FromMemory<T>(ReadOnlyMemory<T> data, params long[] shape) where T : unmanaged =>
        new OnnxTensor<T>(data, (long[])shape.Clone());

    /// <summary>A float32 tensor over an array (no copy).</summary>
    public static OnnxTensor FromArray(float[] data, params long[] shape) => FromMemory<float>(data, shape);
}

internal sealed class OnnxTensor<T>(ReadOnlyMemory<T> data, long[] shape)
    : OnnxTensor(OnnxElementTypes.Of<T>(), shape, data.Length) where T : unmanaged
{
    // ORT reads inputs only; its API takes Memory<T> because the same call also makes writable tensors.
    internal override Ort.OrtValue ToOrtValue() =>
        Ort.OrtValue.CreateTensorValueFromMemory(Ort.OrtMemoryInfo.DefaultInstance, MemoryMarshal.AsMemory(data), ShapeArray);
}

/// <summary>
/// An output tensor owned by ONNX Runtime. <see cref="AsSpan{T}"/> views ORT's buffer without copying; the span is
/// valid only until this value (or the <see cref="OnnxRunResult"/> holding it) is disposed. <see cref="ToArray{T}"/>
/// copies once into a new managed array that outlives it.
/// </summary>
internal sealed class OnnxValue : IDisposable
{
    private readonly Ort.OrtValue value;
    private bool disposed;

    internal OnnxValue(string name, Ort.OrtValue value)
    {
        Name = name;
        this.value = value;
        if (!value.IsTensor) throw new OnnxInputException($"output '{name}' is a {value.OnnxType}; only tensor outputs are supported");
        var info = value.GetTensorTypeAndShape();
        ElementType = (OnnxElementType)(int)info.ElementDataType;
        Shape = info.Shape;
        ElementCount = info.ElementCount;
    }

    public string Name { get; }
    public OnnxElementType ElementType { get; }
    public IReadOnlyList<long> Shape { get; }
    public long ElementCount { get; }

    /// <summary>ORT's buffer as a span, no copy; valid until <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var want = OnnxElementTypes.Of<T>();
        if (want != ElementType)
            throw new InvalidOperationException($"output '{Name}' holds {OnnxElementTypes.Name(ElementType)}, not {OnnxElementTypes.Name(want)}");
        if (ElementCount > int.MaxValue) throw new InvalidOperationException($"output '{Name}' has {ElementCount} elements, more than a span can hold");
        return value.GetTensorDataAsSpan<T>();
    }

    /// <summary>Copies the tensor into a new array (one copy).</summary>
    public T[] ToArray<T>() where T : unmanaged => AsSpan<T>().ToArray();

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        value.Dispose();
    }
}

/// <summary>The outputs of one run, in the order requested; disposing it frees every output's ORT buffer.</summary>
internal sealed class OnnxRunResult : IDisposable, IReadOnlyList<OnnxValue>
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

/// <summary>A run-time input that does not match the model: wrong name, element type or shape. The message gives
/// what the model expects (dynamic dimensions by their symbolic names) and what was given.</summary>
public sealed class OnnxInputException(string message) : ArgumentException(message);

/// <summary>An error reported by ONNX Runtime: its error code, its message, and what MLNetExt was doing.</summary>
public sealed class OnnxRuntimeException : Exception
{
    internal OnnxRuntimeException(OrtErrorCode code, string ortMessage, string operation, Exception? inner = null)
        : this($"ONNX Runtime failed {operation}: [{code}] {ortMessage}", code, ortMessage, operation, inner) { }

    internal OnnxRuntimeException(string message, OrtErrorCode code, string ortMessage, string operation, Exception? inner)
        : base(message, inner)
    {
        Code = code;
        OrtMessage = ortMessage;
        Operation = operation;
    }

    /// <summary>ORT's error code.</summary>
    internal OrtErrorCode Code { get; }

    /// <summary>ORT's own message, without the code prefix.</summary>
    public string OrtMessage { get; }

    /// <summary>What MLNetExt was doing when ORT failed.</summary>
    public string Operation { get; }

    /// <summary>Wraps the managed API's exception, whose message starts with <c>[ErrorCode:Name] </c>.</summary>
    internal static OnnxRuntimeException From(Ort.OnnxRuntimeException e, string operation)
    {
        var m = System.Text.RegularExpressions.Regex.Match(e.Message, @"^\[ErrorCode:(\w+)\]\s*");
        var code = m.Success && Enum.TryParse<OrtErrorCode>(m.Groups[1].Value, out var c) ? c : OrtErrorCode.Fail;
        return new OnnxRuntimeException(code, e.Message[m.Length..], operation, e);
    }
}

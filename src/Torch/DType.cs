namespace MLNetExt.Torch;

/// <summary>Element types; the values are libtorch's <c>c10::ScalarType</c> codes.</summary>
public enum DType
{
    /// <summary>torch.uint8</summary>
    UInt8 = 0,
    /// <summary>torch.int8</summary>
    Int8 = 1,
    /// <summary>torch.int16</summary>
    Int16 = 2,
    /// <summary>torch.int32</summary>
    Int32 = 3,
    /// <summary>torch.int64 (labels, indices)</summary>
    Int64 = 4,
    /// <summary>torch.float16</summary>
    Float16 = 5,
    /// <summary>torch.float32 (the default)</summary>
    Float32 = 6,
    /// <summary>torch.float64</summary>
    Float64 = 7,
    /// <summary>torch.bool</summary>
    Bool = 11,
    /// <summary>torch.bfloat16 (autocast on CPU and CUDA)</summary>
    BFloat16 = 15,
}

/// <summary>Facts about <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this DType t) => t switch
    {
        DType.UInt8 or DType.Int8 or DType.Bool => 1,
        DType.Int16 or DType.Float16 or DType.BFloat16 => 2,
        DType.Int32 or DType.Float32 => 4,
        DType.Int64 or DType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown dtype"),
    };

    /// <summary>True for float16, bfloat16, float32 and float64.</summary>
    public static bool IsFloatingPoint(this DType t) =>
        t is DType.Float16 or DType.BFloat16 or DType.Float32 or DType.Float64;

    /// <summary>The name torch prints: float32, float16, bfloat16, int64, uint8, bool...</summary>
    public static string TorchName(this DType t) => t switch
    {
        DType.UInt8 => "uint8", DType.Int8 => "int8", DType.Int16 => "int16", DType.Int32 => "int32",
        DType.Int64 => "int64", DType.Float16 => "float16", DType.Float32 => "float32", DType.Float64 => "float64",
        DType.Bool => "bool", DType.BFloat16 => "bfloat16",
        _ => $"dtype({(int)t})",
    };

    internal static DType FromCode(int code) =>
        Enum.IsDefined(typeof(DType), code) ? (DType)code
        : throw new NotSupportedException($"libtorch scalar type code {code} is not supported by MLNetExt");
}

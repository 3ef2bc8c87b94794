using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Export.Tracing;

/// <summary>Kinds of recorded operator arguments (the dispatcher's argument kinds, tensors replaced by value ids).</summary>
internal enum TArgKind { None, Default, Tensor, TensorList, OptionalTensorList, Int, Double, Bool, IntList, DoubleList, BoolList, String, Device }

/// <summary>An integer that depends on the batch size: <c>A * N + B</c>.</summary>
internal readonly record struct SymInt(long A, long B)
{
    public long At(long n) => A * n + B;
    public override string ToString() => B == 0 ? $"{A}*N" : $"{A}*N{(B < 0 ? "-" : "+")}{Math.Abs(B)}";
}

/// <summary>One recorded argument. Tensor arguments hold value ids; integers that differed between the two
/// traces carry their batch-dependent form in <see cref="Sym"/> (one entry per element; null = constant).</summary>
internal sealed class TArg
{
    public TArgKind Kind;
    public long I;
    public double D;
    public object? Ref;          // int (value id), int?[] (tensor lists), long[]/double[]/bool[]/string
    public SymInt?[]? Sym;

    public int ValueId => (int)Ref!;
    public bool IsNone => Kind is TArgKind.None;
    public bool IsSymbolic => Sym is not null && Sym.Any(s => s is not null);

    public override string ToString() => Kind switch
    {
        TArgKind.Tensor => $"%{Ref}",
        TArgKind.TensorList or TArgKind.OptionalTensorList => "[" + string.Join(", ", ((int?[])Ref!).Select(v => v is null ? "None" : $"%{v}")) + "]",
        TArgKind.Int => Sym?[0] is { } s ? s.ToString() : I.ToString(),
        TArgKind.Double => D.ToString("R"),
        TArgKind.Bool => I != 0 ? "True" : "False",
        TArgKind.IntList => "[" + string.Join(", ", ((long[])Ref!).Select((v, k) => Sym?[k] is { } s ? s.ToString() : v.ToString())) + "]",
        TArgKind.DoubleList => "[" + string.Join(", ", (double[])Ref!) + "]",
        TArgKind.BoolList => "[" + string.Join(", ", (bool[])Ref!) + "]",
        TArgKind.String => $"'{Ref}'",
        _ => Kind.ToString(),
    };
}

/// <summary>One recorded operator call.</summary>
internal sealed class TNode
{
    public required Op Op;
    public required TArg[] Args;
    public required int[] Outputs;
    public bool InPlace;
    /// <summary>Where the call happened, as well as the trace can tell (the module of the parameter used last).</summary>
    public string ModulePath = "";
    public string OpName => Op.ToString();
}

/// <summary>A tensor value seen by the trace.</summary>
internal sealed class TValue
{
    public int Id;
    public DType DType;
    public long[] Shape = Array.Empty<long>();
    /// <summary>Dimensions whose size differs between the two traces (batch-dependent).</summary>
    public bool[] DynamicDims = Array.Empty<bool>();
    /// <summary>Dimensions equal to the batch size in both traces (written as the symbolic dimension N).</summary>
    public bool[] BatchDims = Array.Empty<bool>();
    /// <summary>Computed from the graph input (or from batch-dependent sizes): must become graph nodes.</summary>
    public bool Dynamic;
    public bool IsInput;
    /// <summary>state_dict key (or buffer name) for parameters and buffers.</summary>
    public string? StateKey;
    /// <summary>For values that do not depend on the input: a handle to the value computed during the trace.</summary>
    public Tensor? Constant;
    /// <summary>Index of the producing node, or -1 (input, parameter, lifted constant).</summary>
    public int Producer = -1;
    /// <summary>A readable hint for the name of a derived constant.</summary>
    public string? Hint;
}

/// <summary>The record of one forward pass.</summary>
internal sealed class Trace : IDisposable
{
    public readonly List<TNode> Nodes = new();
    public readonly List<TValue> Values = new();
    public int InputId = -1;
    public int[] OutputIds = Array.Empty<int>();
    public long Batch;

    public TValue this[int id] => Values[id];

    public void Dispose()
    {
        foreach (var v in Values)
        {
            v.Constant?.Dispose();
            v.Constant = null;
        }
    }
}

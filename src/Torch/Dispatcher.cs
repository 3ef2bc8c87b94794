using System.Runtime.CompilerServices;
using System.Text;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Torch;

/// <summary>One boxed operator argument. Implicit conversions make call sites read like the schema:
/// <c>Ops.Add.Call(self, other, alpha)</c>.</summary>
internal readonly struct Arg
{
    internal readonly ValueKind Kind;
    internal readonly long I;
    internal readonly double D;
    internal readonly object? Ref;

    Arg(ValueKind kind, long i = 0, double d = 0, object? r = null) { Kind = kind; I = i; D = d; Ref = r; }

    /// <summary>Python's None.</summary>
    public static readonly Arg None = new(ValueKind.None);

    /// <summary>The schema default for this position.</summary>
    public static readonly Arg Default = new(ValueKind.Default);

    public static implicit operator Arg(Tensor? t) => t is null ? None : new(ValueKind.Tensor, r: t);
    public static implicit operator Arg(long v) => new(ValueKind.Int, i: v);
    public static implicit operator Arg(int v) => new(ValueKind.Int, i: v);
    public static implicit operator Arg(double v) => new(ValueKind.Double, d: v);
    public static implicit operator Arg(bool v) => new(ValueKind.Bool, i: v ? 1 : 0);
    public static implicit operator Arg(DType v) => new(ValueKind.Int, i: (int)v);
    public static implicit operator Arg(Device v) => new(ValueKind.Device, i: (int)v.Type, d: v.Index);
    public static implicit operator Arg(long[]? v) => v is null ? None : new(ValueKind.IntList, r: v);
    public static implicit operator Arg(double[]? v) => v is null ? None : new(ValueKind.DoubleList, r: v);
    public static implicit operator Arg(bool[]? v) => v is null ? None : new(ValueKind.BoolList, r: v);
    public static implicit operator Arg(string? v) => v is null ? None : new(ValueKind.String, r: v);
    public static implicit operator Arg(Tensor[] v) => new(ValueKind.TensorList, r: v);

    /// <summary>An optional dtype: None when null.</summary>
    public static Arg Of(DType? v) => v is { } d ? d : None;

    /// <summary>An optional double: None when null.</summary>
    public static Arg Of(double? v) => v is { } d ? d : None;

    /// <summary>An optional int: None when null.</summary>
    public static Arg Of(long? v) => v is { } d ? d : None;

    /// <summary>An optional device: None when null.</summary>
    public static Arg Of(Device? v) => v is { } d ? d : None;

    /// <summary>A <c>Tensor?[]</c> argument (null entries are None), as <c>aten::index</c> takes.</summary>
    public static Arg OptionalTensors(Tensor?[] v) => new(ValueKind.OptionalTensorList, r: v);

    /// <summary>Scratch space the argument needs when marshalled (list elements or UTF-8 bytes).</summary>
    internal int ScratchLongs => Kind switch
    {
        ValueKind.IntList => ((long[])Ref!).Length,
        ValueKind.DoubleList => ((double[])Ref!).Length,
        ValueKind.BoolList => (((bool[])Ref!).Length + 7) / 8,
        ValueKind.TensorList or ValueKind.OptionalTensorList => ((Tensor?[])Ref!).Length,
        ValueKind.String => (Encoding.UTF8.GetByteCount((string)Ref!) + 7) / 8,
        _ => 0,
    };
}

// ---- [export hook] the ONNX exporter's recording door (src/Export/Tracing). When no trace is running, each
// call pays one static null check. ----

/// <summary>Receives every operator call while an ONNX export trace runs (see <c>MLNetExt.Export.Tracing</c>).</summary>
internal interface IOpRecorder
{
    /// <summary>After an operator returned tensors (or, <paramref name="inPlace"/>, modified its first argument).</summary>
    void OnCall(Op op, ReadOnlySpan<Arg> args, ReadOnlySpan<Tensor> results, bool inPlace);

    /// <summary>Before an operator that returns a plain value to the host (<c>aten::item</c>).</summary>
    void OnHostValue(Op op, ReadOnlySpan<Arg> args);

    /// <summary>Before tensor data is copied to host memory.</summary>
    void OnHostRead(Tensor tensor);

    /// <summary>After <paramref name="alias"/> was made as a second handle to <paramref name="source"/>.</summary>
    void OnAlias(Tensor source, Tensor alias);
}

/// <summary>The recorder of the running trace, or null (the normal case).</summary>
internal static class OpTrace
{
    [ThreadStatic] internal static IOpRecorder? Recorder;
}

/// <summary>An aten operator, resolved once through the dispatcher and then called boxed. This is the one
/// door to the engine: every tensor operation passes through <see cref="Invoke"/>, which keeps errors,
/// lifetimes and (later) tracing uniform.</summary>
internal sealed unsafe class Op
{
    /// <summary>Qualified name, e.g. <c>aten::add</c>.</summary>
    public readonly string Name;

    /// <summary>Overload name, e.g. <c>Tensor</c>, or empty.</summary>
    public readonly string Overload;

    IntPtr _handle;

    public Op(string name, string overload = "")
    {
        Name = name;
        Overload = overload;
    }

    /// <summary><c>aten::add.Tensor</c>.</summary>
    public override string ToString() => Overload.Length == 0 ? Name : $"{Name}.{Overload}";

    IntPtr Handle
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _handle != IntPtr.Zero ? _handle : Resolve();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    IntPtr Resolve()
    {
        Native.Check(Native.mlnx_op_find(Name, Overload, out var h));
        return _handle = h;
    }

    /// <summary>The operator's schema as libtorch prints it.</summary>
    public string Schema
    {
        get
        {
            Native.Check(Native.mlnx_op_schema(Handle, out var s));
            return Native.TakeString(s);
        }
    }

    const int MaxResults = 8;

    /// <summary>Calls the operator and returns its single tensor result.</summary>
    public Tensor Call(params ReadOnlySpan<Arg> args)
    {
        NativeValue* results = stackalloc NativeValue[MaxResults];
        int n = Invoke(args, results, MaxResults);
        if (n != 1 || results[0].Kind != ValueKind.Tensor)
        {
            ReleaseResults(results, n);
            throw new TorchException($"{this} returned {n} values where one tensor was expected");
        }
        var result = new Tensor(results[0].P);
        if (OpTrace.Recorder is { } recorder) recorder.OnCall(this, args, [result], inPlace: false);  // [export hook]
        return result;
    }

    /// <summary>Calls an operator that returns several tensors (a tuple, or one tensor list).</summary>
    public Tensor[] CallMany(params ReadOnlySpan<Arg> args)
    {
        NativeValue* results = stackalloc NativeValue[MaxResults];
        int n = Invoke(args, results, MaxResults);
        if (n == 1 && results[0].Kind == ValueKind.TensorList)
        {
            var handles = (IntPtr*)results[0].P;
            var list = new Tensor[results[0].N];
            for (int k = 0; k < list.Length; k++) list[k] = new Tensor(handles[k]);
            Native.mlnx_free(results[0].P);
            if (OpTrace.Recorder is { } r1) r1.OnCall(this, args, list, inPlace: false);  // [export hook]
            return list;
        }
        var outs = new Tensor[n];
        for (int k = 0; k < n; k++)
        {
            if (results[k].Kind != ValueKind.Tensor)
            {
                for (int j = 0; j < k; j++) outs[j].Dispose();
                ReleaseResults(results + k, n - k);
                throw new TorchException($"{this} returned a non-tensor value at position {k}");
            }
            outs[k] = new Tensor(results[k].P);
        }
        if (OpTrace.Recorder is { } r2) r2.OnCall(this, args, outs, inPlace: false);  // [export hook]
        return outs;
    }

    /// <summary>Calls an in-place or out-variant operator whose results alias its inputs.</summary>
    public void CallVoid(params ReadOnlySpan<Arg> args)
    {
        Invoke(args, null, 0);
        if (OpTrace.Recorder is { } recorder) recorder.OnCall(this, args, [], inPlace: true);  // [export hook]
    }

    /// <summary>Calls an operator returning one non-tensor value (int, float or bool).</summary>
    public NativeValue CallValue(params ReadOnlySpan<Arg> args)
    {
        if (OpTrace.Recorder is { } recorder) recorder.OnHostValue(this, args);  // [export hook]
        NativeValue* results = stackalloc NativeValue[MaxResults];
        int n = Invoke(args, results, MaxResults);
        if (n != 1 || results[0].Kind is ValueKind.Tensor or ValueKind.TensorList)
        {
            ReleaseResults(results, n);
            throw new TorchException($"{this} did not return a single plain value");
        }
        return results[0];
    }

    static void ReleaseResults(NativeValue* results, int n)
    {
        for (int k = 0; k < n; k++)
        {
            if (results[k].Kind == ValueKind.Tensor) Native.mlnx_tensor_free(results[k].P);
            else if (results[k].Kind == ValueKind.TensorList)
            {
                for (long j = 0; j < results[k].N; j++) Native.mlnx_tensor_free(((IntPtr*)results[k].P)[j]);
                Native.mlnx_free(results[k].P);
            }
            else if (results[k].Kind == ValueKind.IntList) Native.mlnx_free(results[k].P);
        }
    }

    /// <summary>Marshals the arguments onto the native stack (lists and strings into stack scratch space)
    /// and calls the operator. Managed objects referenced by the arguments stay alive for the call.</summary>
    int Invoke(ReadOnlySpan<Arg> args, NativeValue* results, int maxResults)
    {
        int scratchLongs = 0;
        foreach (ref readonly var a in args) scratchLongs += a.ScratchLongs;
        NativeValue* values = stackalloc NativeValue[args.Length];
        Span<long> scratch = scratchLongs <= 512 ? stackalloc long[scratchLongs] : new long[scratchLongs];
        fixed (long* scratchBase = scratch)
        {
            long* next = scratchBase;
            for (int k = 0; k < args.Length; k++) Marshal(args[k], ref values[k], ref next);
            var error = Native.mlnx_op_call(Handle, values, args.Length, results, maxResults, out int count);
            KeepAlive(args);  // before Check: on the error path too, no argument may be finalized mid-call
            Native.Check(error);
            return count;
        }
    }

    static void KeepAlive(ReadOnlySpan<Arg> args)
    {
        foreach (ref readonly var a in args) GC.KeepAlive(a.Ref);
    }

    static void Marshal(in Arg a, ref NativeValue v, ref long* next)
    {
        v.Kind = a.Kind;
        v.Aux = 0;
        v.I = a.I;
        v.D = a.D;
        v.P = IntPtr.Zero;
        v.N = 0;
        switch (a.Kind)
        {
            case ValueKind.Tensor:
                v.P = ((Tensor)a.Ref!).Handle;
                break;
            case ValueKind.Device:
                v.Aux = (int)a.D;
                break;
            case ValueKind.IntList:
            {
                var src = (long[])a.Ref!;
                src.AsSpan().CopyTo(new Span<long>(next, src.Length));
                v.P = (IntPtr)next; v.N = src.Length; next += src.Length;
                break;
            }
            case ValueKind.DoubleList:
            {
                var src = (double[])a.Ref!;
                src.AsSpan().CopyTo(new Span<double>(next, src.Length));
                v.P = (IntPtr)next; v.N = src.Length; next += src.Length;
                break;
            }
            case ValueKind.BoolList:
            {
                var src = (bool[])a.Ref!;
                var dst = (byte*)next;
                for (int k = 0; k < src.Length; k++) dst[k] = src[k] ? (byte)1 : (byte)0;
                v.P = (IntPtr)next; v.N = src.Length; next += (src.Length + 7) / 8;
                break;
            }
            case ValueKind.String:
            {
                var s = (string)a.Ref!;
                int bytes = Encoding.UTF8.GetBytes(s, new Span<byte>(next, (Encoding.UTF8.GetByteCount(s) + 7) / 8 * 8));
                v.P = (IntPtr)next; v.N = bytes; next += (bytes + 7) / 8;
                break;
            }
            case ValueKind.TensorList:
            case ValueKind.OptionalTensorList:
            {
                var src = (Tensor?[])a.Ref!;
                var dst = (IntPtr*)next;
                for (int k = 0; k < src.Length; k++)
                {
                    if (src[k] is { } t) dst[k] = t.Handle;
                    else if (a.Kind == ValueKind.TensorList)
                        throw new ArgumentNullException(nameof(a), $"tensor list entry {k} is null");
                    else dst[k] = IntPtr.Zero;
                }
                v.P = (IntPtr)next; v.N = src.Length; next += src.Length;
                break;
            }
        }
    }
}

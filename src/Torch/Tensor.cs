using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Torch;

/// <summary>
/// A libtorch tensor. The object owns one native reference, released by <see cref="Dispose"/> or, for a
/// tensor created inside a <see cref="TensorScope"/>, when the scope ends. The finalizer is only a backstop:
/// native memory is invisible to the garbage collector, so code that relies on it grows without bound.
/// </summary>
/// <remarks>Operations live in the partial files <c>Tensor.*.cs</c>; each names its aten schema.</remarks>
public partial class Tensor : IDisposable
{
    static long s_live;

    IntPtr _handle;
    long[]? _sizes;
    int _dtype = -1;

    /// <summary>The scope that frees this tensor, or null when the caller owns it.</summary>
    internal TensorScope? Scope;

    internal Tensor(IntPtr handle)
    {
        _handle = handle;
        Interlocked.Increment(ref s_live);
        TensorScope.Register(this);
    }

    /// <summary>Number of tensors (in this process) whose native reference has not been released yet.
    /// Leak tests compare it before and after a loop.</summary>
    public static long LiveCount => Interlocked.Read(ref s_live);

    /// <summary>The native handle; throws <see cref="ObjectDisposedException"/> after disposal.</summary>
    internal IntPtr Handle
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _handle != IntPtr.Zero ? _handle : throw DisposedError();
    }

    /// <summary>True once the native reference has been released.</summary>
    public bool IsDisposed => _handle == IntPtr.Zero;

    ObjectDisposedException DisposedError() =>
        new(nameof(Tensor), $"This tensor ({DescribeCached()}) was disposed (explicitly or by the end of its " +
            "TensorScope) and cannot be used. Keep it with MoveToOuterScope or DetachFromScope, or clone it.");

    string DescribeCached() =>
        _sizes is null ? "shape unknown" : $"{(_dtype >= 0 ? ((DType)_dtype).TorchName() : "?")}[{string.Join(", ", _sizes)}]";

    /// <summary>Releases the native reference now. Safe to call twice.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Backstop only; see the class remarks.</summary>
    ~Tensor() => Release();

    void Release()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h == IntPtr.Zero) return;
        Native.mlnx_tensor_free(h);
        Interlocked.Decrement(ref s_live);
    }

    /// <summary>Takes the native reference out of this object (which becomes disposed) without releasing it.</summary>
    internal IntPtr TakeHandle()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h == IntPtr.Zero) throw DisposedError();
        Interlocked.Decrement(ref s_live);
        Scope = null;
        GC.SuppressFinalize(this);
        return h;
    }

    internal void InvalidateMetadata()
    {
        _sizes = null;
        _dtype = -1;
    }

    /// <summary>Checks a native call's result while keeping this tensor (and <paramref name="other"/>) reachable
    /// until the call has returned: after reading <see cref="Handle"/> the JIT may otherwise consider the object
    /// dead, and its finalizer could free the handle mid-call.</summary>
    void Checked(IntPtr error, object? other = null)
    {
        GC.KeepAlive(this);
        GC.KeepAlive(other);
        Native.Check(error);
    }

    // ---- scope ownership ----

    /// <summary>Hands this tensor from its scope to the enclosing one (or to the caller when there is none)
    /// and returns it, so results survive the scope that computed them.</summary>
    public Tensor MoveToOuterScope()
    {
        Scope?.MoveOut(this);
        return this;
    }

    /// <summary>Removes this tensor from every scope: the caller now owns it and must dispose it.</summary>
    public Tensor DetachFromScope()
    {
        Scope = null;
        return this;
    }

    // ---- metadata ----

    unsafe TensorMeta Meta()
    {
        TensorMeta m;
        Checked(Native.mlnx_tensor_meta_get(Handle, &m));
        return m;
    }

    unsafe long[] Sizes()
    {
        if (_sizes is { } s) return s;
        var m = Meta();
        var sizes = new long[m.NDim];
        fixed (long* p = sizes) Checked(Native.mlnx_tensor_shape(Handle, p, null, m.NDim));
        _dtype = m.DType;
        return _sizes = sizes;
    }

    /// <summary>The sizes of every dimension (a copy).</summary>
    public long[] Shape => Sizes().AsSpan().ToArray();

    /// <summary>The strides of every dimension, in elements.</summary>
    public unsafe long[] Strides
    {
        get
        {
            var strides = new long[Dim];
            fixed (long* p = strides) Checked(Native.mlnx_tensor_shape(Handle, null, p, strides.Length));
            return strides;
        }
    }

    /// <summary>Number of dimensions.</summary>
    public int Dim => Sizes().Length;

    /// <summary>A 4-D tensor stored densely channels-last and not also contiguous (<see cref="ChannelsLast"/>):
    /// its (B, H, W, C) permutation is contiguous.</summary>
    internal bool IsChannelsLast
    {
        get
        {
            var sizes = Sizes();
            if (sizes.Length != 4 || sizes[1] == 1 || IsContiguous) return false;
            var strides = Strides;
            long c = sizes[1], w = sizes[3], h = sizes[2];
            return strides[1] == 1 && (w == 1 || strides[3] == c) && (h == 1 || strides[2] == w * c)
                   && (sizes[0] == 1 || strides[0] == h * w * c);
        }
    }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public long Size(int dim)
    {
        var s = Sizes();
        int d = dim < 0 ? dim + s.Length : dim;
        if ((uint)d >= (uint)s.Length)
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"Dimension out of range for a tensor of shape [{string.Join(", ", s)}]");
        return s[d];
    }

    /// <summary>Total number of elements.</summary>
    public long NumEl
    {
        get
        {
            long n = 1;
            foreach (var s in Sizes()) n *= s;
            return n;
        }
    }

    /// <summary>Element type.</summary>
    public DType DType
    {
        get
        {
            if (_dtype < 0) Sizes();
            return DTypes.FromCode(_dtype);
        }
    }

    /// <summary>The device that holds the data.</summary>
    public Device Device
    {
        get
        {
            var m = Meta();
            return new Device((DeviceType)m.DeviceType, m.DeviceIndex);
        }
    }

    /// <summary>Address of the first element (storage offset included) of a CPU tensor; for IO that moves bytes
    /// straight between files and tensor memory. Valid while this tensor lives.</summary>
    internal IntPtr CpuDataPointer
    {
        get
        {
            var m = Meta();
            if (m.DeviceType != (int)DeviceType.Cpu)
                throw new InvalidOperationException($"Direct data access needs a CPU tensor; this one is on {new Device((DeviceType)m.DeviceType, m.DeviceIndex)}.");
            return m.DataPtr;
        }
    }

    /// <summary>True when the strides are the row-major ones.</summary>
    public bool IsContiguous => Meta().IsContiguous != 0;

    /// <summary>True for tensors created by the user rather than by a recorded operation.</summary>
    public bool IsLeaf => Meta().IsLeaf != 0;

    /// <summary>Whether autograd records operations on this tensor.</summary>
    public bool RequiresGrad
    {
        get => Meta().RequiresGrad != 0;
        set => Checked(Native.mlnx_tensor_set_requires_grad(Handle, value ? 1 : 0));
    }

    /// <summary>Sets <see cref="RequiresGrad"/> and returns this tensor.</summary>
    public Tensor RequiresGrad_(bool requiresGrad = true)
    {
        RequiresGrad = requiresGrad;
        return this;
    }

    /// <summary>A second, independently owned handle to this same tensor (no copy).</summary>
    internal Tensor Alias()
    {
        Checked(Native.mlnx_tensor_alias(Handle, out var h));
        var alias = new Tensor(h);
        OpTrace.Recorder?.OnAlias(this, alias);  // [export hook]
        return alias;
    }

    /// <summary><c>tensor.data = source</c>: swaps the storage and metadata under this tensor while keeping
    /// its identity and autograd flags (moving parameters between devices or dtypes).</summary>
    public void SetData(Tensor source)
    {
        Checked(Native.mlnx_tensor_set_data(Handle, source.Handle), source);
        InvalidateMetadata();
    }

    // ---- autograd ----

    /// <summary>The accumulated gradient, or null. Setting null clears it.</summary>
    /// <remarks>Each read returns a new handle owned by the caller (or the current scope).</remarks>
    public Tensor? Grad
    {
        get
        {
            Checked(Native.mlnx_tensor_grad(Handle, out var g));
            return g == IntPtr.Zero ? null : new Tensor(g);
        }
        set => Checked(Native.mlnx_tensor_set_grad(Handle, value is null ? IntPtr.Zero : value.Handle), value);
    }

    /// <summary>Back-propagates from this tensor (a scalar unless <paramref name="gradient"/> is given). As in
    /// PyTorch, <paramref name="retainGraph"/> defaults to <paramref name="createGraph"/>.</summary>
    public unsafe void Backward(Tensor? gradient = null, bool? retainGraph = null, bool createGraph = false)
    {
        IntPtr t = Handle, g = gradient?.Handle ?? IntPtr.Zero;
        Checked(Native.mlnx_backward(&t, &g, 1, (retainGraph ?? createGraph) ? 1 : 0, createGraph ? 1 : 0), gradient);
    }

    // ---- data in and out ----

    /// <summary>Creates a tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static unsafe Tensor FromArray<T>(ReadOnlySpan<T> data, ReadOnlySpan<long> shape, Device? device = null)
        where T : unmanaged
    {
        var dtype = DTypeOf<T>();
        long n = 1;
        foreach (var s in shape)
        {
            if (s < 0) throw new ArgumentException($"Shape [{string.Join(", ", shape.ToArray())}] has a negative size.", nameof(shape));
            n *= s;
        }
        if (n != data.Length)
            throw new ArgumentException($"Shape [{string.Join(", ", shape.ToArray())}] holds {n} elements but {data.Length} were given.", nameof(shape));
        var dev = device ?? Device.Cpu;
        fixed (T* d = data)
        fixed (long* s = shape)
        {
            Native.Check(Native.mlnx_tensor_from_data(d, s, shape.Length, (int)dtype, (int)dev.Type, dev.Index, out var h));
            return new Tensor(h);
        }
    }

    /// <summary>Creates a tensor from raw little-endian bytes of the given dtype and shape.</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, ReadOnlySpan<long> shape)
    {
        long n = 1;
        foreach (var s in shape) n *= s;
        if (n * dtype.ElementSize() != bytes.Length)
            throw new ArgumentException($"{dtype.TorchName()}[{string.Join(", ", shape.ToArray())}] needs {n * dtype.ElementSize()} bytes but {bytes.Length} were given.", nameof(bytes));
        fixed (byte* d = bytes)
        fixed (long* s = shape)
        {
            Native.Check(Native.mlnx_tensor_from_data(d, s, shape.Length, (int)dtype, 0, 0, out var h));
            return new Tensor(h);
        }
    }

    /// <summary>Copies the elements (row-major, moved to the CPU) into a new array.</summary>
    public T[] ToArray<T>() where T : unmanaged
    {
        var expected = DTypeOf<T>();
        if (DType != expected)
            throw new InvalidOperationException($"ToArray<{typeof(T).Name}> needs a {expected.TorchName()} tensor but this one is {DType.TorchName()}; convert it with To(DType.{expected}) first.");
        var result = new T[NumEl];
        CopyTo<T>(result);
        return result;
    }

    /// <summary>Copies the elements (row-major, moved to the CPU) into <paramref name="destination"/>,
    /// which must hold exactly <see cref="NumEl"/> elements of this tensor's dtype.</summary>
    public unsafe void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        OpTrace.Recorder?.OnHostRead(this);  // [export hook]
        fixed (T* d = destination)
            Checked(Native.mlnx_tensor_copy_to(Handle, d, (long)destination.Length * sizeof(T)));
    }

    /// <summary>The raw bytes (row-major, on the CPU).</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[NumEl * DType.ElementSize()];
        CopyTo<byte>(bytes);
        return bytes;
    }

    /// <summary>The value of a one-element tensor as a double.</summary>
    public double ToDouble() => ScalarValue(this).D;

    /// <summary>The value of a one-element tensor as a float.</summary>
    public float ToSingle() => (float)ToDouble();

    /// <summary>The value of a one-element integer or bool tensor.</summary>
    public long ToInt64()
    {
        var v = ScalarValue(this);
        return v.Kind == ValueKind.Double ? (long)v.D : v.I;
    }

    /// <summary>The value of a one-element tensor as a bool.</summary>
    public bool ToBoolean() => ToInt64() != 0;

    static NativeValue ScalarValue(Tensor t)
    {
        var v = Ops.Item.CallValue(t);
        if (v.Kind == ValueKind.Int || v.Kind == ValueKind.Bool) v.D = v.I;
        return v;
    }

    internal static DType DTypeOf<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return DType.Float32;
        if (typeof(T) == typeof(double)) return DType.Float64;
        if (typeof(T) == typeof(Half)) return DType.Float16;
        if (typeof(T) == typeof(BFloat16)) return DType.BFloat16;
        if (typeof(T) == typeof(long)) return DType.Int64;
        if (typeof(T) == typeof(int)) return DType.Int32;
        if (typeof(T) == typeof(short)) return DType.Int16;
        if (typeof(T) == typeof(sbyte)) return DType.Int8;
        if (typeof(T) == typeof(byte)) return DType.UInt8;
        if (typeof(T) == typeof(bool)) return DType.Bool;
        throw new NotSupportedException($"No tensor dtype corresponds to {typeof(T).Name}.");
    }

    /// <summary>"tensor(float32[2, 3], cpu)" plus the values of small tensors.</summary>
    public override string ToString()
    {
        if (IsDisposed) return "tensor(disposed)";
        var head = $"tensor({DType.TorchName()}[{string.Join(", ", Sizes())}], {Device}";
        if (NumEl > 16 || NumEl == 0) return head + ")";
        using var flat = To(DType.Float64);
        return head + ", [" + string.Join(", ", flat.ToArray<double>().Select(v => v.ToString("G6"))) + "])";
    }
}

/// <summary>A bfloat16 value as its raw 16 bits (the upper half of a float32).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct BFloat16(ushort Bits)
{
    /// <summary>Rounds a float to bfloat16 (round to nearest even), as torch does.</summary>
    public static BFloat16 FromSingle(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return new BFloat16(0x7FC0);
        uint rounding = 0x7FFF + ((u >> 16) & 1);
        return new BFloat16((ushort)((u + rounding) >> 16));
    }

    /// <summary>The float32 value.</summary>
    public float ToSingle() => BitConverter.UInt32BitsToSingle((uint)Bits << 16);
}

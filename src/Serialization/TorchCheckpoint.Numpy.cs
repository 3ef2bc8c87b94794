using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using MLNetExt.Torch;

namespace MLNetExt.Serialization;

// --- added for mixformer ---
// Plain pickles of numpy arrays: PaddlePaddle's .pdparams (paddle.save: a dict of structured name -> ndarray, plus
// a bookkeeping dict "StructuredToParameterName@@"), and likewise any pickle.dump of numpy arrays (protocols 2-4).
public sealed partial class TorchCheckpoint
{
    /// <summary>Reads a plain pickle whose numpy arrays become tensors (see <see cref="NumpyArrays"/>).</summary>
    static TorchCheckpoint LoadNumpyPickle(string path, SafeFileHandle file)
    {
        long length = RandomAccess.GetLength(file);
        if (length > int.MaxValue)
            throw new CheckpointException(path, $"the pickle is {length} bytes; plain pickles over 2 GiB are not supported.");
        var data = new byte[length];
        unsafe
        {
            fixed (byte* p = data) TensorMemory.ReadExactly(file, 0, p, length, m => new CheckpointException(path, m));
        }
        var root = new Unpickler(data, path, Path.GetFileName(path)).Load();
        var conv = new NumpyArrays(path);
        try
        {
            root = conv.Convert(root, "", 0);
            if (conv.Tensors.Count == 0)
                throw new CheckpointException(path, "this is a plain Python pickle (pickle.dump) holding no numpy arrays, not a torch.save " +
                    "zip archive or a PaddlePaddle .pdparams file; expected a file starting with 'PK' or a pickle of numpy arrays.");
            return new TorchCheckpoint(path, root, conv.Tensors);
        }
        catch
        {
            foreach (var t in conv.Tensors) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Turns the numpy arrays of an unpickled object into tensors, in place of the placeholders the pickle reader
    /// built for them: <c>numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')</c> followed by BUILD with the state
    /// <c>(version, shape, dtype, is_fortran, raw bytes)</c>, where dtype is <c>numpy.dtype(code, False, True)</c> with
    /// state <c>(3, byte order, ...)</c>. Bytes arrive as bytes (protocol 3+) or latin-1 text (protocol 2). Supported
    /// dtypes: float16/32/64, int8/16/32/64, uint8 and bool in either byte order, C or Fortran order. Arrays shared
    /// through the pickle memo become one tensor.
    /// </summary>
    sealed class NumpyArrays(string file)
    {
        const int MaxDepth = 200;
        readonly Dictionary<object, object?> _done = new(ReferenceEqualityComparer.Instance);

        public List<Tensor> Tensors { get; } = new();

        static bool IsReconstruct(PyObject o) =>
            o.TypeName is "numpy.core.multiarray._reconstruct" or "numpy._core.multiarray._reconstruct";

        public object? Convert(object? v, string name, int depth)
        {
            if (v is null or string or long or double or bool or byte[] or PyGlobal or Tensor) return v;
            if (depth > MaxDepth) throw new CheckpointException(file, $"objects are nested more than {MaxDepth} levels deep at '{name}'.");
            if (_done.TryGetValue(v, out var known)) return known;
            switch (v)
            {
                case PyObject o when IsReconstruct(o):
                {
                    var t = ToTensor(o, name);
                    Tensors.Add(t);
                    _done[v] = t;
                    return t;
                }
                case PyDict d:
                    _done[v] = d;
                    for (int i = 0; i < d.Count; i++)
                    {
                        var kv = d[i];
                        var c = Convert(kv.Value, Join(name, PyFormat.KeyName(kv.Key)), depth + 1);
                        if (!ReferenceEquals(c, kv.Value)) d.Set(kv.Key, c);
                    }
                    return d;
                case List<object?> l:
                    _done[v] = l;
                    for (int i = 0; i < l.Count; i++) l[i] = Convert(l[i], Join(name, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), depth + 1);
                    return l;
                case PyTuple t:
                {
                    _done[v] = t;   // a cycle through a tuple keeps the original
                    var items = new object?[t.Count];
                    bool changed = false;
                    for (int i = 0; i < t.Count; i++)
                    {
                        items[i] = Convert(t[i], Join(name, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), depth + 1);
                        changed |= !ReferenceEquals(items[i], t[i]);
                    }
                    var r = changed ? new PyTuple(items) : t;
                    _done[v] = r;
                    return r;
                }
                case PyObject o:
                    _done[v] = o;
                    o.State = Convert(o.State, name, depth + 1);
                    for (int i = 0; i < o.Items.Count; i++) o.Items[i] = Convert(o.Items[i], Join(name, i.ToString(System.Globalization.CultureInfo.InvariantCulture)), depth + 1);
                    for (int i = 0; i < o.DictItems.Count; i++)
                        o.DictItems[i] = new(o.DictItems[i].Key, Convert(o.DictItems[i].Value, Join(name, PyFormat.KeyName(o.DictItems[i].Key)), depth + 1));
                    return o;
                default:
                    return v;
            }
        }

        static string Join(string prefix, string n) => prefix.Length == 0 ? n : prefix + "." + n;

        CheckpointException Fail(string name, string what) => new(file, $"numpy array at key '{name}': {what}.");

        Tensor ToTensor(PyObject o, string name)
        {
            // state: (version, shape, dtype, is_fortran, data) or, from old numpy, (shape, dtype, is_fortran, data)
            if (o.State is not PyTuple { Count: 4 or 5 } st)
                throw Fail(name, $"expected the ndarray state (version, shape, dtype, is_fortran, data) but found {PyFormat.Repr(o.State)}");
            int b = st.Count - 4;
            if (st[b] is not PyTuple shapeTuple || shapeTuple.Any(x => x is not long l || l < 0))
                throw Fail(name, $"shape {PyFormat.Repr(st[b])} is not a tuple of non-negative integers");
            var shape = shapeTuple.Select(x => (long)x!).ToArray();
            var (dtype, bigEndian) = DTypeOf(st[b + 1], name);
            bool fortran = st[b + 2] switch { bool f => f, long l => l != 0, _ => throw Fail(name, $"is_fortran {PyFormat.Repr(st[b + 2])} is not a bool") };
            byte[] raw = st[b + 3] switch
            {
                byte[] bytes => bytes,
                string text => System.Text.Encoding.Latin1.GetBytes(text),   // Python 2 pickles keep bytes as str
                List<object?> => throw Fail(name, "object arrays (dtype=object) hold Python objects, not numbers, and are not supported"),
                var other => throw Fail(name, $"expected the raw array bytes but found {PyFormat.Repr(other)}"),
            };
            long count = 1, bytesNeeded;
            try
            {
                foreach (var s in shape) count = checked(count * s);
                bytesNeeded = checked(count * dtype.ElementSize());
            }
            catch (OverflowException)
            {
                throw Fail(name, $"declares shape [{string.Join(", ", shape)}] of {dtype.TorchName()}, more elements than a 64-bit size can count");
            }
            if (raw.LongLength != bytesNeeded)
                throw Fail(name, $"{dtype.TorchName()}[{string.Join(", ", shape)}] needs {bytesNeeded} bytes but the pickle holds {raw.LongLength}");
            if (bigEndian && dtype.ElementSize() > 1)
            {
                raw = (byte[])raw.Clone();
                int w = dtype.ElementSize();
                for (int i = 0; i < raw.Length; i += w) raw.AsSpan(i, w).Reverse();
            }
            if (!fortran || shape.Length < 2)
                return Tensor.FromBytes(raw, dtype, shape).DetachFromScope();
            // Fortran order: the bytes are the transpose laid out row-major.
            var reversed = shape.Reverse().ToArray();
            using var t = Tensor.FromBytes(raw, dtype, reversed);
            var dims = Enumerable.Range(0, shape.Length).Reverse().Select(i => (long)i).ToArray();
            using var view = t.Permute(dims);
            return view.Contiguous().DetachFromScope();
        }

        (DType, bool BigEndian) DTypeOf(object? d, string name)
        {
            if (d is not PyObject { TypeName: "numpy.dtype" } dt || dt.Args.Count == 0 || dt.Args[0] is not string code)
                throw Fail(name, $"expected a numpy.dtype but found {PyFormat.Repr(d)}");
            string order = dt.State is PyTuple { Count: >= 2 } s && s[1] is string bo ? bo : "|";
            bool big = order == ">" || (order == "=" && !BitConverter.IsLittleEndian);
            DType? t = code switch
            {
                "f2" => DType.Float16, "f4" => DType.Float32, "f8" => DType.Float64,
                "i1" => DType.Int8, "i2" => DType.Int16, "i4" => DType.Int32, "i8" => DType.Int64,
                "u1" => DType.UInt8, "b1" => DType.Bool,
                _ => null,
            };
            return t is DType ok ? (ok, big)
                : throw Fail(name, $"numpy dtype '{code}' is not supported; supported: f2, f4, f8 (float16/32/64), i1, i2, i4, i8, u1, b1 (bool)");
        }
    }
}

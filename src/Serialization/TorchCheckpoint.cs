using System.Text;
using Microsoft.Win32.SafeHandles;
using MLNetExt.Torch;

namespace MLNetExt.Serialization;

/// <summary>
/// A file written by <c>torch.save</c> (.pth, .pt, .pth.tar; PyTorch 1.6 and later), read without Python:
/// the zip container and its pickle are interpreted by MLNetExt, never executed. Every tensor is loaded to
/// the CPU with the dtype, shape, strides and storage sharing it had in Python.
/// </summary>
/// <remarks>
/// <para><see cref="Root"/> maps Python values to: <see cref="PyDict"/> (dict, OrderedDict), <see cref="List{T}"/>
/// of object (list), <see cref="PyTuple"/>, <see cref="string"/>, <see cref="long"/> (int; a
/// <see cref="System.Numerics.BigInteger"/> beyond 64 bits), <see cref="double"/>, <see cref="bool"/>,
/// <c>byte[]</c>, null (None), <see cref="Tensor"/>, and <see cref="PyObject"/> / <see cref="PyGlobal"/> for
/// everything else (argparse.Namespace, numpy scalars, pickled modules...).</para>
/// <para>Loaded tensors never require grad, whatever they did when saved. The checkpoint owns them:
/// <see cref="Dispose"/> frees them, while <see cref="ToStateDict"/> and <see cref="ModelWeights"/> return
/// independently owned handles to the same memory (no copy).</para>
/// </remarks>
public sealed partial class TorchCheckpoint : IDisposable
{
    readonly List<Tensor> _tensors;
    bool _disposed;

    TorchCheckpoint(string path, object? root, List<Tensor> tensors)
    {
        FilePath = path;
        Root = root;
        _tensors = tensors;
    }

    /// <summary>The file this checkpoint was read from.</summary>
    public string FilePath { get; }

    /// <summary>The unpickled object (see the class remarks for the type mapping).</summary>
    public object? Root { get; }

    /// <summary>Reads a <c>torch.save</c> file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointException">The file is truncated or corrupt, is a legacy (pre-1.6) or
    /// TorchScript file, or holds tensors of an unsupported dtype. Nothing stays allocated.</exception>
    public static TorchCheckpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        var loader = new Loader(path, file);
        try
        {
            if (loader.IsPlainPickle()) return LoadNumpyPickle(path, file);   // added for mixformer: .pdparams
            return loader.Run();
        }
        catch (Exception e)
        {
            loader.FreeAll();
            if (e is CheckpointException or OutOfMemoryException) throw;
            throw new CheckpointException(path, $"could not be read: {e.Message}", e);
        }
    }

    /// <summary>Every tensor in the file, named by its path through dicts, lists and tuples joined with dots
    /// (<c>{'model': {'fc.weight': t}}</c> gives <c>model.fc.weight</c>), in file order.</summary>
    public static StateDict LoadStateDict(string path)
    {
        using var c = Load(path);
        return c.ToStateDict();
    }

    /// <summary>The model weights of a training checkpoint; see <see cref="ModelWeights"/>.</summary>
    public static StateDict LoadModelWeights(string path, bool preferEma = false)
    {
        using var c = Load(path);
        return c.ModelWeights(preferEma);
    }

    /// <summary>Every tensor, flattened as in <see cref="LoadStateDict"/>. The result owns new handles
    /// to the same memory, so it outlives this checkpoint.</summary>
    /// <exception cref="CheckpointException">Two different paths flatten to the same name.</exception>
    public StateDict ToStateDict() => Flatten(Root);

    /// <summary>
    /// The model's state_dict out of the usual checkpoint wrappers: the first top-level entry among
    /// <c>state_dict</c>, <c>model</c>, <c>module</c> (or, with <paramref name="preferEma"/> or when those
    /// hold no tensors, <c>state_dict_ema</c>, <c>model_ema</c>, <c>ema</c>) that holds tensors, else the
    /// whole file. A pickled
    /// <c>nn.Module</c> yields its parameters and persistent buffers under state_dict names. A leading
    /// <c>module.</c> (from DataParallel) is stripped when every name has it.
    /// </summary>
    public StateDict ModelWeights(bool preferEma = false)
    {
        object? node = Root;
        if (Root is PyDict d)
        {
            string[] plain = { "state_dict", "model", "module" }, ema = { "state_dict_ema", "model_ema", "ema" };
            foreach (var key in preferEma ? ema.Concat(plain) : plain.Concat(ema))
                if (d.TryGetValue(key, out var v) && ContainsTensor(v))
                {
                    node = v;
                    break;
                }
        }
        var sd = Flatten(node);
        if (sd.Count > 0 && sd.All(kv => kv.Key.StartsWith("module.", StringComparison.Ordinal))) sd.StripPrefix("module.");
        return sd;
    }

    /// <summary>Frees every tensor the checkpoint loaded. Safe to call twice.</summary>
    public void Dispose()
    {
        _disposed = true;
        foreach (var t in _tensors) t.Dispose();
        _tensors.Clear();
    }

    // ---- flattening ----

    StateDict Flatten(object? node)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var sd = new StateDict();
        try
        {
            new Flattener(FilePath, sd).Walk(node, "", 0);
            return sd;
        }
        catch
        {
            sd.Dispose();
            throw;
        }
    }

    static bool ContainsTensor(object? v) => new Flattener("", null).HasTensor(v, 0);

    /// <summary>Names every tensor reachable from a node. Pickles share objects through the memo, so the
    /// walk skips subtrees without tensors (each checked once), cuts cycles and bounds depth and work.</summary>
    sealed class Flattener(string file, StateDict? sd)
    {
        const int MaxDepth = 200;
        // A real state dict has tens of thousands of tensors at most; shared references that multiply paths beyond this
        // are a bomb (a 1 KB pickle can make 2^30 paths), stopped before the names take memory.
        const long MaxVisits = 1_000_000;

        readonly Dictionary<object, bool> _hasTensor = new(ReferenceEqualityComparer.Instance);
        readonly HashSet<object> _path = new(ReferenceEqualityComparer.Instance);
        long _visits;

        public bool HasTensor(object? v, int depth)
        {
            if (v is Tensor) return true;
            if (v is null or string or long or double or bool or byte[] || depth > MaxDepth) return false;
            if (_hasTensor.TryGetValue(v, out bool known)) return known;
            _hasTensor[v] = false;   // in progress: a cycle back here adds nothing
            bool r = v switch
            {
                PyDict d => d.Any(kv => HasTensor(kv.Value, depth + 1)),
                PyObject o => HasTensor(o.State, depth + 1) || o.Items.Any(i => HasTensor(i, depth + 1))
                              || o.DictItems.Any(kv => HasTensor(kv.Value, depth + 1)),
                IReadOnlyList<object?> l => l.Any(i => HasTensor(i, depth + 1)),
                _ => false,
            };
            return _hasTensor[v] = r;
        }

        static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

        static string Index(int i) => i.ToString(System.Globalization.CultureInfo.InvariantCulture);

        public void Walk(object? v, string name, int depth)
        {
            if (depth > MaxDepth) throw new CheckpointException(file, $"objects are nested more than {MaxDepth} levels deep at '{name}'.");
            if (++_visits > MaxVisits)
                throw new CheckpointException(file, $"shared references make more than {MaxVisits} paths to tensors; read the tensors from Root instead.");
            if (v is Tensor t)
            {
                if (sd!.ContainsKey(name))
                    throw new CheckpointException(file, $"two tensors flatten to the name '{name}'; read them from Root instead.");
                sd.Add(name, t.Alias().DetachFromScope());
                return;
            }
            if (!HasTensor(v, depth) || !_path.Add(v!)) return;   // nothing to find, or a cycle
            switch (v)
            {
                case PyDict d:
                    foreach (var kv in d) Walk(kv.Value, Join(name, PyFormat.KeyName(kv.Key)), depth + 1);
                    break;
                case IReadOnlyList<object?> list:   // list or tuple
                    for (int i = 0; i < list.Count; i++) Walk(list[i], Join(name, Index(i)), depth + 1);
                    break;
                case PyObject { State: PyDict s } when s.TryGetValue("_parameters", out var p) && p is PyDict && s.TryGetValue("_modules", out var m) && m is PyDict:
                    WalkModule(s, name, depth);
                    break;
                case PyObject o:
                    Walk(o.State, name, depth + 1);
                    for (int i = 0; i < o.Items.Count; i++) Walk(o.Items[i], Join(name, Index(i)), depth + 1);
                    foreach (var kv in o.DictItems) Walk(kv.Value, Join(name, PyFormat.KeyName(kv.Key)), depth + 1);
                    break;
            }
            _path.Remove(v!);
        }

        /// <summary>A pickled nn.Module: parameters, persistent buffers, then submodules, as state_dict() orders them.</summary>
        void WalkModule(PyDict state, string name, int depth)
        {
            var skip = state.TryGetValue("_non_persistent_buffers_set", out var np) && np is PyObject set
                ? set.Items.OfType<string>().ToHashSet() : new HashSet<string>();
            foreach (var group in new[] { "_parameters", "_buffers" })
                if (state.TryGetValue(group, out var g) && g is PyDict entries)
                    foreach (var kv in entries)
                        if (kv.Value is Tensor && !(group == "_buffers" && kv.Key is string k && skip.Contains(k)))
                            Walk(kv.Value, Join(name, PyFormat.KeyName(kv.Key)), depth + 1);
            if (state.TryGetValue("_modules", out var mods) && mods is PyDict children)
                foreach (var kv in children) Walk(kv.Value, Join(name, PyFormat.KeyName(kv.Key)), depth + 1);
        }
    }

    // ---- loading ----

    /// <summary>One load: owns every tensor it creates until it hands them to the checkpoint.</summary>
    sealed class Loader
    {
        readonly string _path;
        readonly SafeFileHandle _file;
        readonly List<Tensor> _views = new();
        readonly Dictionary<string, TorchStorage> _storages = new(StringComparer.Ordinal);
        ZipReader? _zip;
        string _prefix = "";

        public Loader(string path, SafeFileHandle file)
        {
            _path = path;
            _file = file;
        }

        CheckpointException Fail(string message) => new(_path, message);

        public void FreeAll()
        {
            foreach (var s in _storages.Values) s.Base.Dispose();
            foreach (var v in _views) v.Dispose();
            _views.Clear();
        }

        public TorchCheckpoint Run()
        {
            Sniff();
            _zip = ZipReader.Open(_path, _file);
            var pkl = FindPickle(_zip);
            _prefix = pkl.Name[..^"data.pkl".Length];

            if (_zip.Find(_prefix + "byteorder") is { } bo)
            {
                var order = Encoding.ASCII.GetString(_zip.ReadAll(bo)).Trim();
                if (order != "little") throw Fail($"the checkpoint was written on a '{order}'-endian machine; only 'little' is supported.");
            }

            var reader = new TorchUnpickler(this, _zip.ReadAll(pkl), pkl.Name);
            var root = reader.Load();

            // The pickle only described the storages; fill them now, largest first and in parallel.
            var pending = _storages.Values.OrderByDescending(s => s.Entry.Size).ToList();
            TensorMemory.ForEach(pending, pending.Sum(s => s.Entry.Size), s =>
            {
                if (s.Entry.Size == 0) return;
                unsafe { _zip.Read(s.Entry, (byte*)s.Base.CpuDataPointer, verifyCrc: true); }
            });

            // The views keep their storages alive; the 1-D base tensors are no longer needed.
            foreach (var s in _storages.Values) s.Base.Dispose();
            _storages.Clear();
            return new TorchCheckpoint(_path, root, new List<Tensor>(_views));
        }

        /// <summary>A pickle that is not a legacy torch.save file (added for mixformer: .pdparams and other numpy pickles).</summary>
        public bool IsPlainPickle()
        {
            var head = new byte[512];
            int n = RandomAccess.Read(_file, head, 0);
            return n > 0 && head[0] == 0x80 && !IsLegacy(head, n);
        }

        /// <summary>Legacy torch.save: a pickle whose first object is the LONG 0x1950a86a20f9469cfc6c, or a tar.</summary>
        static bool IsLegacy(byte[] head, int n)
        {
            ReadOnlySpan<byte> magic = new byte[] { 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };
            bool legacyTar = n >= 262 && Encoding.ASCII.GetString(head, 257, 5) == "ustar";
            return head[0] == 0x80 && head.AsSpan(0, Math.Min(n, 32)).IndexOf(magic) >= 0 || legacyTar;
        }

        /// <summary>Recognises the formats that are not a torch.save zip before trying to read one.</summary>
        void Sniff()
        {
            var head = new byte[512];
            int n = RandomAccess.Read(_file, head, 0);
            if (n == 0) throw Fail("the file is empty; expected a torch.save zip archive.");
            if (n >= 2 && head[0] == 'P' && head[1] == 'K') return;

            // Legacy torch.save: a pickle whose first object is the LONG 0x1950a86a20f9469cfc6c.
            ReadOnlySpan<byte> magic = new byte[] { 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };
            bool legacyTar = n >= 262 && Encoding.ASCII.GetString(head, 257, 5) == "ustar";
            if (head[0] == 0x80 && head.AsSpan(0, Math.Min(n, 32)).IndexOf(magic) >= 0 || legacyTar)
            {
                string stem = Path.GetFileNameWithoutExtension(_path), ext = Path.GetExtension(_path);
                string output = Path.Combine(Path.GetDirectoryName(_path) ?? "", $"{stem}.converted{ext}");
                throw Fail("this is a legacy torch.save file (the format of PyTorch before 1.6, or of torch.save(..., " +
                    "_use_new_zipfile_serialization=False)), which is not supported: expected a zip archive. Convert it with " +
                    $"PyTorch: python3 -c \"import torch; torch.save(torch.load('{_path}'), '{output}')\" " +
                    "(PyTorch 2.6+ needs torch.load(..., weights_only=False) for files holding more than tensors).");
            }
            if (head[0] == 0x80)
                throw Fail("this is a plain Python pickle (pickle.dump), not a torch.save zip archive; expected a file starting with 'PK'.");
            throw Fail($"not a torch.save file: expected a zip archive starting with 'PK' but the file starts with bytes {Convert.ToHexString(head, 0, Math.Min(n, 8))}.");
        }

        ZipEntry FindPickle(ZipReader zip)
        {
            // TorchScript archives also hold data.pkl, so recognise them first.
            if (zip.Entries.Any(e => e.Name.EndsWith("/constants.pkl", StringComparison.Ordinal) || e.Name.Contains("/code/", StringComparison.Ordinal)))
                throw Fail("this is a TorchScript archive (torch.jit.save; it has constants.pkl and code/), not a torch.save " +
                    "state_dict. Export its weights with PyTorch: python3 -c \"import torch; " +
                    $"torch.save(torch.jit.load('{_path}').state_dict(), 'weights.pth')\".");
            var pkl = zip.Entries.FirstOrDefault(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) && e.Name.IndexOf('/') == e.Name.Length - 9)
                      ?? zip.Entries.FirstOrDefault(e => e.Name == "data.pkl" || e.Name.EndsWith("/data.pkl", StringComparison.Ordinal));
            return pkl ?? throw Fail($"expected an entry '<archive>/data.pkl' in the zip but found {zip.Entries.Count} entries " +
                $"({string.Join(", ", zip.Entries.Take(5).Select(e => e.Name))}{(zip.Entries.Count > 5 ? ", ..." : "")}): not a torch.save checkpoint.");
        }

        static readonly Dictionary<string, DType> s_storageTypes = new()
        {
            ["FloatStorage"] = DType.Float32, ["DoubleStorage"] = DType.Float64, ["HalfStorage"] = DType.Float16,
            ["BFloat16Storage"] = DType.BFloat16, ["LongStorage"] = DType.Int64, ["IntStorage"] = DType.Int32,
            ["ShortStorage"] = DType.Int16, ["CharStorage"] = DType.Int8, ["ByteStorage"] = DType.UInt8,
            ["BoolStorage"] = DType.Bool, ["UntypedStorage"] = DType.UInt8,
        };

        /// <summary>Persistent id <c>('storage', storage_type, key, location, numel)</c>: allocates the storage
        /// (filled after the pickle is read) and returns a placeholder object that refers to it.</summary>
        object? PersistentLoad(TorchUnpickler u, object? pid)
        {
            if (pid is not PyTuple { Count: >= 5 } t || t[0] is not "storage")
                throw u.Error($"expected a persistent id ('storage', type, key, location, numel) but found {PyFormat.Repr(pid)}");
            if (t[1] is not PyGlobal type || t[2] is not string key || t[4] is not long numel || numel < 0)
                throw u.Error($"malformed storage id {PyFormat.Repr(pid)}");
            string typeName = type.Module is "torch" or "torch.cuda" ? type.Name : type.FullName;
            if (!s_storageTypes.TryGetValue(typeName, out var dtype))
                throw Fail($"storage type {type.FullName} (at key '{u.CurrentKey}') is not supported; expected one of " +
                    $"torch.{string.Join(", torch.", s_storageTypes.Keys)}.");

            if (!_storages.TryGetValue(key, out var storage))
            {
                string entryName = _prefix + "data/" + key;
                var entry = _zip!.Find(entryName) ?? throw Fail($"the pickle refers to storage '{key}' (at key '{u.CurrentKey}') " +
                    $"but the archive has no entry '{entryName}'.");
                long bytes = numel <= long.MaxValue / dtype.ElementSize() ? numel * dtype.ElementSize()
                    : throw Fail($"storage '{key}' (at key '{u.CurrentKey}') declares {numel} {dtype.TorchName()} elements, more bytes than a file can hold.");
                if (entry.Size != bytes)
                    throw Fail($"storage entry '{entryName}' should hold {numel} {dtype.TorchName()} elements ({bytes} bytes) " +
                        $"but holds {entry.Size} bytes.");
                storage = new TorchStorage(key, entryName, dtype, numel, entry, TensorMemory.Allocate(new[] { numel }, dtype));
                _storages.Add(key, storage);
            }
            else if (storage.DType != dtype || storage.NumEl != numel)
                throw Fail($"storage '{key}' is declared as {storage.NumEl} {storage.DType.TorchName()} elements and again as " +
                    $"{numel} {dtype.TorchName()} elements.");
            return new PyObject(type.FullName, new PyTuple(new object?[] { key, t[3], numel })) { Storage = storage };
        }

        /// <summary><c>_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)</c>: a strided view of the storage.</summary>
        Tensor RebuildTensor(TorchUnpickler u, PyTuple args)
        {
            if (args.Count < 4 || (args[0] as PyObject)?.Storage is not { } storage)
                throw u.Error($"_rebuild_tensor expects (storage, offset, size, stride, ...) but found {PyFormat.Repr(args)}");
            string key = u.CurrentKey ?? "?";
            long offset = args[1] as long? ?? throw u.Error($"tensor at key '{key}': storage offset {PyFormat.Repr(args[1])} is not an integer");
            long[] size = Dims(u, args[2], "size", key), stride = Dims(u, args[3], "stride", key);
            if (size.Length != stride.Length)
                throw u.Error($"tensor at key '{key}' has {size.Length} sizes but {stride.Length} strides");

            // The furthest element the view touches must lie inside the storage (an empty view touches none).
            long last = offset;
            bool empty = false;
            for (int i = 0; i < size.Length; i++)
            {
                if (size[i] < 0 || stride[i] < 0) throw u.Error($"tensor at key '{key}' has a negative size or stride ([{string.Join(", ", size)}], [{string.Join(", ", stride)}])");
                if (size[i] == 0) empty = true;
                else
                {
                    try { last = checked(last + (size[i] - 1) * stride[i]); }
                    catch (OverflowException)
                    {
                        throw Fail($"tensor at key '{key}' declares size [{string.Join(", ", size)}] with stride [{string.Join(", ", stride)}], " +
                            "which spans more elements than a 64-bit index can count.");
                    }
                }
            }
            if (offset < 0 || (!empty && last >= storage.NumEl))
                throw Fail($"tensor at key '{key}' (size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}], offset {offset}) " +
                    $"needs {last + 1} {storage.DType.TorchName()} elements of storage '{storage.EntryName}' but the storage holds {storage.NumEl}.");

            var view = storage.Base.AsStrided(size, stride, offset).DetachFromScope();
            _views.Add(view);
            return view;
        }

        static long[] Dims(TorchUnpickler u, object? v, string what, string key)
        {
            if (v is PyObject { TypeName: "torch.Size", Args: [PyTuple inner] }) v = inner;
            if (v is not PyTuple t || t.Any(x => x is not long))
                throw u.Error($"tensor at key '{key}': {what} {PyFormat.Repr(v)} is not a tuple of integers");
            return t.Select(x => (long)x!).ToArray();
        }

        sealed class TorchUnpickler(Loader owner, byte[] data, string entry) : Unpickler(data, owner._path, entry)
        {
            protected override object? PersistentLoad(object? pid) => owner.PersistentLoad(this, pid);

            protected override object? Call(PyGlobal fn, PyTuple args)
            {
                switch (fn.FullName)
                {
                    case "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_tensor":
                        return owner.RebuildTensor(this, args);
                    case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                        return args.Count > 0 && args[0] is Tensor data ? data : throw Error("_rebuild_parameter expects a tensor");
                    case "torch._tensor._rebuild_from_type_v2" or "torch._tensor._rebuild_from_type":
                        // Tensor subclasses: rebuild the plain tensor, drop the Python type and attributes.
                        return args.Count >= 3 && args[2] is PyTuple inner ? CallAny(args[0], inner) : throw Error("_rebuild_from_type expects (func, type, args, state)");
                    default:
                        return NotHandled;
                }
            }
        }
    }
}

/// <summary>One storage of a checkpoint: a 1-D tensor over the whole zip entry.</summary>
internal sealed record TorchStorage(string Key, string EntryName, DType DType, long NumEl, ZipEntry Entry, Tensor Base);

using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using MLNetExt.Torch;

namespace MLNetExt.Serialization;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header
/// <c>{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}</c>
/// padded with spaces, then the tensors' bytes back to back.
/// </summary>
public static class SafeTensors
{
    /// <summary>Headers above this size are refused as corrupt (the reference implementation's limit).</summary>
    const long MaxHeader = 100_000_000;

    static readonly Dictionary<string, DType> s_dtypes = new(StringComparer.Ordinal)
    {
        ["F32"] = DType.Float32, ["F16"] = DType.Float16, ["BF16"] = DType.BFloat16, ["F64"] = DType.Float64,
        ["I64"] = DType.Int64, ["I32"] = DType.Int32, ["I16"] = DType.Int16, ["I8"] = DType.Int8,
        ["U8"] = DType.UInt8, ["BOOL"] = DType.Bool,
    };

    internal static string Code(DType t) => s_dtypes.First(kv => kv.Value == t).Key;

    /// <summary>Whether a file is safetensors: by extension, or by its header (an 8-byte length then '{'; torch.save
    /// files are zips and start with "PK").</summary>
    public static bool IsSafeTensorsFile(string path)
    {
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return true;
        Span<byte> head = stackalloc byte[9];
        using var f = File.OpenRead(path);
        return f.Read(head) == 9 && head[8] == (byte)'{';
    }

    /// <summary>Reads every tensor (CPU, contiguous) in the order of their data offsets; the header's
    /// <c>__metadata__</c> becomes <see cref="StateDict.Metadata"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="CheckpointException">The file is truncated or its header is invalid (bad JSON,
    /// an unknown dtype, offsets out of range, overlapping or not matching the shape).</exception>
    public static StateDict Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        var sd = new StateDict();
        try
        {
            var (entries, metadata, dataStart) = ReadHeader(path, file);
            sd.Metadata = metadata;
            foreach (var e in entries) sd.Add(e.Name, TensorMemory.Allocate(e.Shape, e.DType));
            TensorMemory.ForEach(entries.Select((e, i) => (e, t: sd[i].Value)).OrderByDescending(x => x.e.End - x.e.Begin).ToList(),
                entries.Sum(e => e.End - e.Begin), x =>
                {
                    if (x.e.End == x.e.Begin) return;
                    unsafe
                    {
                        TensorMemory.ReadExactly(file, dataStart + x.e.Begin, (byte*)x.t.CpuDataPointer, x.e.End - x.e.Begin,
                            m => new CheckpointException(path, $"tensor '{x.e.Name}': {m} (truncated file?)."));
                    }
                });
            return sd;
        }
        catch (Exception e)
        {
            sd.Dispose();
            if (e is CheckpointException or OutOfMemoryException) throw;
            throw new CheckpointException(path, $"could not be read as safetensors: {e.Message}", e);
        }
    }

    /// <summary>The header's <c>__metadata__</c> alone, without reading any tensor.</summary>
    /// <exception cref="CheckpointException">The header is invalid.</exception>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try { return ReadHeader(path, file).Item2; }
        catch (Exception e) when (e is not (CheckpointException or OutOfMemoryException))
        {
            throw new CheckpointException(path, $"could not be read as safetensors: {e.Message}", e);
        }
    }

    sealed record Entry(string Name, DType DType, long[] Shape, long Begin, long End);

    static (List<Entry>, Dictionary<string, string>, long) ReadHeader(string path, SafeFileHandle file)
    {
        CheckpointException Fail(string m) => new(path, m);
        long length = RandomAccess.GetLength(file);
        if (length < 8) throw Fail($"expected at least 8 bytes (the header length) but the file has {length}.");
        var lenBytes = new byte[8];
        RandomAccess.Read(file, lenBytes, 0);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > (ulong)(length - 8))
            throw Fail($"the header length field says {headerLen} bytes but only {length - 8} follow it (truncated or not a safetensors file).");
        if (headerLen > MaxHeader) throw Fail($"the header length {headerLen} exceeds the {MaxHeader}-byte limit.");
        var header = new byte[headerLen];
        if (RandomAccess.Read(file, header, 8) != header.Length) throw Fail("the header could not be read in full.");
        long dataStart = 8 + (long)headerLen, dataLen = length - dataStart;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw Fail($"the header is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Fail($"expected the header to be a JSON object but found {doc.RootElement.ValueKind}.");
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!seen.Add(p.Name)) throw Fail($"the header names '{p.Name}' twice.");
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object) throw Fail("__metadata__ must be an object of strings.");
                    foreach (var m in p.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()!
                            : throw Fail($"__metadata__ entry '{m.Name}' must be a string but is {m.Value.ValueKind}.");
                    continue;
                }
                entries.Add(ParseEntry(p, dataLen, Fail));
            }

            // Offsets index the buffer without overlaps or holes, covering it entirely.
            entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            long expect = 0;
            Entry? prev = null;
            foreach (var e in entries)
            {
                if (e.Begin < expect)
                    throw Fail($"tensor '{e.Name}' (bytes {e.Begin}..{e.End}) overlaps tensor '{prev!.Name}' (bytes {prev.Begin}..{prev.End}).");
                if (e.Begin > expect)
                    throw Fail($"expected tensor '{e.Name}' to start at byte {expect} of the data but it starts at {e.Begin}, leaving a hole.");
                expect = e.End;
                prev = e;
            }
            if (expect != dataLen)
                throw Fail($"the tensors cover {expect} bytes of data but the file holds {dataLen} after the header.");
            return (entries, metadata, dataStart);
        }
    }

    static Entry ParseEntry(JsonProperty p, long dataLen, Func<string, CheckpointException> fail)
    {
        string name = p.Name;
        var v = p.Value;
        if (v.ValueKind != JsonValueKind.Object) throw fail($"tensor '{name}': expected an object with dtype, shape and data_offsets.");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw fail($"tensor '{name}' has no dtype string.");
        if (!s_dtypes.TryGetValue(dt.GetString()!, out var dtype))
            throw fail($"tensor '{name}' has dtype '{dt.GetString()}'; supported: {string.Join(", ", s_dtypes.Keys)}.");
        long[] shape = Ints(v, "shape", -1), offsets = Ints(v, "data_offsets", 2);
        long numel = 1;
        try
        {
            foreach (var s in shape) numel = checked(numel * s);
            long bytes = checked(numel * dtype.ElementSize());
            if (offsets[0] > offsets[1] || offsets[1] > dataLen)
                throw fail($"tensor '{name}' has data_offsets [{offsets[0]}, {offsets[1]}] outside the {dataLen}-byte data buffer" +
                    (offsets[0] <= offsets[1] ? " (truncated file?)." : "."));
            if (offsets[1] - offsets[0] != bytes)
                throw fail($"tensor '{name}' is {dt.GetString()}[{string.Join(", ", shape)}] ({bytes} bytes) but its data_offsets " +
                    $"[{offsets[0]}, {offsets[1]}] span {offsets[1] - offsets[0]} bytes.");
        }
        catch (OverflowException)
        {
            throw fail($"tensor '{name}' has shape [{string.Join(", ", shape)}], too large to address.");
        }
        return new Entry(name, dtype, shape, offsets[0], offsets[1]);

        long[] Ints(JsonElement obj, string field, int count)
        {
            if (!obj.TryGetProperty(field, out var a) || a.ValueKind != JsonValueKind.Array || (count >= 0 && a.GetArrayLength() != count))
                throw fail($"tensor '{name}': expected '{field}' to be an array{(count >= 0 ? $" of {count}" : "")} of non-negative integers.");
            var r = new long[a.GetArrayLength()];
            int i = 0;
            foreach (var x in a.EnumerateArray())
                r[i++] = x.ValueKind == JsonValueKind.Number && x.TryGetInt64(out var n) && n >= 0 ? n
                    : throw fail($"tensor '{name}': '{field}' holds {x.GetRawText()}, not a non-negative integer.");
            return r;
        }
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> in the given order (any device, any strides: the bytes written are
    /// the contiguous CPU values) with optional string <paramref name="metadata"/>. The file is written under
    /// a temporary name in the same folder and renamed at the end, so an existing file is replaced whole or
    /// not at all.
    /// </summary>
    /// <exception cref="ArgumentException">A name is empty, repeated or <c>__metadata__</c>.</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in list)
        {
            if (string.IsNullOrEmpty(name) || name == "__metadata__")
                throw new ArgumentException($"'{name}' cannot name a tensor in a safetensors file.", nameof(tensors));
            if (!names.Add(name)) throw new ArgumentException($"Two tensors are named '{name}'.", nameof(tensors));
            ArgumentNullException.ThrowIfNull(t, name);
        }

        byte[] header = BuildHeader(list, metadata);
        string full = Path.GetFullPath(path);
        string temp = AtomicFile.TempPath(full);
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Stream output = WriteInterceptor?.Invoke(fs) ?? fs;
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
                output.Write(len);
                output.Write(header);
                foreach (var (_, t) in list) WriteData(output, t);
                output.Flush();
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            AtomicFile.TryDelete(temp);
            throw;
        }
    }

    /// <summary>Test seam: wraps the file stream of <see cref="Save"/> on this thread (to simulate a full disk).</summary>
    [ThreadStatic] internal static Func<Stream, Stream>? WriteInterceptor;

    static byte[] BuildHeader(List<KeyValuePair<string, Tensor>> list, IReadOnlyDictionary<string, string>? metadata)
    {
        var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                long bytes = t.NumEl * t.DType.ElementSize();
                w.WriteStartObject(name);
                w.WriteString("dtype", Code(t.DType));
                w.WriteStartArray("shape");
                foreach (var s in t.Shape) w.WriteNumberValue(s);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        // Pad with spaces so the data starts 8-byte aligned.
        int padded = (int)((ms.Length + 7) & ~7L);
        while (ms.Length < padded) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    static unsafe void WriteData(Stream fs, Tensor t)
    {
        if (t.NumEl == 0) return;
        // Contiguous CPU tensors are written from their own memory; others through one contiguous CPU copy.
        using var cpu = t.To(Device.Cpu);
        using var dense = cpu.Contiguous();
        byte* p = (byte*)dense.CpuDataPointer;
        long left = dense.NumEl * dense.DType.ElementSize();
        while (left > 0)
        {
            int chunk = (int)Math.Min(left, 1 << 30);
            fs.Write(new ReadOnlySpan<byte>(p, chunk));
            p += chunk;
            left -= chunk;
        }
    }
}

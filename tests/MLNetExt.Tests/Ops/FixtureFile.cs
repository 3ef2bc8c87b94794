using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text.Json;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>A minimal reader of the raw safetensors files written by tests/fixtures/make_op_fixtures.py: an
/// 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then the data.
/// Deliberately independent of the product's reader in src/Serialization. Files are cached as bytes, never as
/// tensors, so <see cref="Tensor.LiveCount"/> is unaffected between tests.</summary>
internal sealed class FixtureFile
{
    readonly record struct Entry(DType DType, long[] Shape, int Begin, int End);

    static readonly ConcurrentDictionary<string, FixtureFile> s_files = new();

    readonly byte[] _bytes;
    readonly int _dataStart;
    readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    FixtureFile(byte[] bytes)
    {
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        _bytes = bytes;
        _dataStart = checked(8 + (int)headerLength);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        foreach (var e in header.RootElement.EnumerateObject())
        {
            if (e.Name == "__metadata__") continue;
            var offsets = e.Value.GetProperty("data_offsets");
            _entries[e.Name] = new Entry(
                ParseDType(e.Value.GetProperty("dtype").GetString()!),
                e.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(),
                offsets[0].GetInt32(), offsets[1].GetInt32());
        }
    }

    /// <summary>The file at tests/fixtures/<paramref name="relativePath"/>, read once per test run.</summary>
    public static FixtureFile Open(string relativePath) =>
        s_files.GetOrAdd(relativePath, p => new FixtureFile(File.ReadAllBytes(Fixtures.Path(p))));

    public IEnumerable<string> Keys => _entries.Keys;

    public bool Contains(string key) => _entries.ContainsKey(key);

    /// <summary>A new CPU tensor holding the stored values (owned by the current scope).</summary>
    public Tensor Load(string key)
    {
        if (!_entries.TryGetValue(key, out var e)) throw new KeyNotFoundException($"Fixture tensor '{key}' is missing; regenerate with tests/fixtures/make_op_fixtures.py.");
        return Tensor.FromBytes(_bytes.AsSpan(_dataStart + e.Begin, e.End - e.Begin), e.DType, e.Shape);
    }

    static DType ParseDType(string code) => code switch
    {
        "F32" => DType.Float32, "F64" => DType.Float64, "F16" => DType.Float16, "BF16" => DType.BFloat16,
        "I64" => DType.Int64, "I32" => DType.Int32, "I16" => DType.Int16, "I8" => DType.Int8,
        "U8" => DType.UInt8, "BOOL" => DType.Bool,
        _ => throw new InvalidDataException($"Unsupported safetensors dtype '{code}'."),
    };
}

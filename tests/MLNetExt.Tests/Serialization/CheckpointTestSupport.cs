using System.IO.Compression;
using System.Text.Json;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Serialization;

/// <summary>Fixture access and comparisons shared by the serialization tests.</summary>
internal static class Ckpt
{
    public static string Path(string name) => Fixtures.Path("checkpoints/" + name);

    /// <summary>What Python recorded about one tensor of a fixture (see make_checkpoint_fixtures.py).</summary>
    public sealed record Row(string Name, string DType, long[] Shape, long[] Stride, long StorageOffset, int Storage);

    public static List<Row> Rows(string fixture)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path(fixture + ".expected.json")));
        return doc.RootElement.GetProperty("tensors").EnumerateArray().Select(r => new Row(
            r.GetProperty("name").GetString()!, r.GetProperty("dtype").GetString()!,
            r.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(),
            r.GetProperty("stride").EnumerateArray().Select(x => x.GetInt64()).ToArray(),
            r.GetProperty("storage_offset").GetInt64(), r.GetProperty("storage").GetInt32())).ToList();
    }

    /// <summary>The fixture's tensors as Python wrote them, contiguous, in a safetensors file.</summary>
    public static StateDict Expected(string fixture) => SafeTensors.Load(Path(fixture + ".expected.safetensors"));

    /// <summary>Same names in the same order, same dtypes and shapes, identical bytes (NaN payloads included).</summary>
    public static void AssertSame(StateDict expected, StateDict actual, string what)
    {
        CollectionAssert.AreEqual(expected.Names.ToList(), actual.Names.ToList(), $"{what}: names or their order differ");
        for (int i = 0; i < expected.Count; i++)
        {
            var (name, e) = expected[i];
            var a = actual[i].Value;
            Assert.AreEqual(e.DType, a.DType, $"{what}: dtype of {name}");
            CollectionAssert.AreEqual(e.Shape, a.Shape, $"{what}: shape of {name}");
            CollectionAssert.AreEqual(e.ToBytes(), a.ToBytes(), $"{what}: values of {name}");
        }
    }

    /// <summary>Address of a tensor's storage: its data pointer minus the storage offset.</summary>
    public static long StorageBase(Tensor t, long storageOffset) =>
        (long)t.CpuDataPointer - storageOffset * t.DType.ElementSize();

    /// <summary>Runs <paramref name="body"/> and checks it left no tensor alive (finalizers of other
    /// tests' garbage are drained first so they cannot move the count).</summary>
    public static void NoLeak(Action body, string what)
    {
        Drain();
        long before = Tensor.LiveCount;
        body();
        Drain();
        Assert.AreEqual(before, Tensor.LiveCount, $"{what}: tensors leaked");
    }

    static void Drain()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>Expects a <see cref="CheckpointException"/> whose message names the file and contains every fragment.</summary>
    public static CheckpointException Throws(Action load, string file, params string[] fragments)
    {
        var e = Assert.ThrowsExactly<CheckpointException>(load);
        StringAssert.Contains(e.Message, file, "the message should name the file");
        Assert.AreEqual(file, e.FilePath);
        foreach (var f in fragments) StringAssert.Contains(e.Message, f);
        return e;
    }

    /// <summary>Copies a zip entry by entry, letting <paramref name="edit"/> replace (or, returning null, drop)
    /// the bytes of each; CRCs are recomputed, so only the edited meaning is wrong.</summary>
    public static void RewriteZip(string source, string dest, Func<string, byte[], byte[]?> edit, CompressionLevel level = CompressionLevel.NoCompression)
    {
        using var src = ZipFile.OpenRead(source);
        using var dst = ZipFile.Open(dest, ZipArchiveMode.Create);
        foreach (var e in src.Entries)
        {
            using var ms = new MemoryStream();
            using (var s = e.Open()) s.CopyTo(ms);
            var bytes = edit(e.FullName, ms.ToArray());
            if (bytes is null) continue;
            using var o = dst.CreateEntry(e.FullName, level).Open();
            o.Write(bytes);
        }
    }
}

/// <summary>A temporary folder deleted at the end of a test.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => System.IO.Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mlnx-ser-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

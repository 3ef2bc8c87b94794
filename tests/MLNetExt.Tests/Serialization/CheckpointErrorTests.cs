using System.Text;
using MLNetExt.Serialization;

namespace MLNetExt.Tests.Serialization;

[TestClass]
public sealed class CheckpointErrorTests
{
    static string Copy(TempDir dir, string fixture, Func<byte[], byte[]> edit)
    {
        var path = dir.File(fixture);
        File.WriteAllBytes(path, edit(File.ReadAllBytes(Ckpt.Path(fixture))));
        return path;
    }

    [TestMethod]
    public void TruncatedFilesFailClearly()
    {
        using var dir = new TempDir();
        int full = (int)new FileInfo(Ckpt.Path("views.pt")).Length;
        foreach (int len in new[] { 0, 1, 2, 10, 21, 22, 64, 100, full / 3, full / 2, full - 200, full - 23, full - 22, full - 1 })
        {
            var path = Copy(dir, "views.pt", b => b[..len]);
            Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path, len switch
            {
                0 => "empty",
                1 => "expected a zip archive",
                _ => "truncated",
            }), $"truncated to {len}");
        }
    }

    // Any single damaged byte either leaves the content intact (a timestamp, padding) or is reported;
    // CRCs catch damage to tensor bytes. Never another exception type, never different values.
    [TestMethod]
    public void EveryFlippedByteIsReportedOrHarmless()
    {
        using var dir = new TempDir();
        using var good = TorchCheckpoint.LoadStateDict(Ckpt.Path("flat.pth"));
        var original = File.ReadAllBytes(Ckpt.Path("flat.pth"));
        var path = dir.File("flipped.pth");

        // The bytes that carry content (the pickle and the storages) must never be damaged silently.
        var content = new HashSet<int>();
        using (var h = File.OpenHandle(Ckpt.Path("flat.pth")))
        {
            var zip = ZipReader.Open("flat.pth", h);
            foreach (var e in zip.Entries.Where(e => e.Name.EndsWith("data.pkl") || e.Name.Contains("/data/")))
                for (long p = zip.DataOffset(e); p < zip.DataOffset(e) + e.Size; p++) content.Add((int)p);
        }
        int reported = 0;
        Ckpt.NoLeak(() =>
        {
            File.WriteAllBytes(path, original);
            for (int i = 0; i < original.Length; i++)
            {
                // Flip byte i and restore byte i - 1 in place (rewriting the whole file each time is slow).
                using (var h = File.OpenHandle(path, FileMode.Open, FileAccess.Write))
                {
                    RandomAccess.Write(h, new[] { (byte)(original[i] ^ 0x5A) }, i);
                    if (i > 0) RandomAccess.Write(h, new[] { original[i - 1] }, i - 1);
                }
                try
                {
                    using var sd = TorchCheckpoint.LoadStateDict(path);
                    Assert.IsFalse(content.Contains(i), $"byte {i} (content) flipped and not reported");
                    Ckpt.AssertSame(good, sd, $"byte {i} flipped and not reported");
                }
                catch (CheckpointException e)
                {
                    StringAssert.Contains(e.Message, path);
                    reported++;
                }
            }
        }, "flipped bytes");
        Assert.IsTrue(content.Count > 500 && reported >= content.Count, $"{reported} of {original.Length} flips were reported; {content.Count} bytes are content");
    }

    [TestMethod]
    public void LegacyFormatExplainsHowToConvert()
    {
        var path = Ckpt.Path("legacy.pth");
        Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path,
            "legacy", "_use_new_zipfile_serialization=False", "python3 -c \"import torch; torch.save(torch.load('" + path + "'), '"), "legacy");
    }

    [TestMethod]
    public void TorchScriptIsNotAStateDict()
    {
        var path = Ckpt.Path("torchscript.pt");
        Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path, "TorchScript", "not a torch.save state_dict", "torch.jit.load"), "torchscript");
    }

    [TestMethod]
    public void NotACheckpoint()
    {
        using var dir = new TempDir();
        var text = dir.File("notes.pth");
        File.WriteAllText(text, "hello, not a checkpoint");
        Ckpt.Throws(() => TorchCheckpoint.Load(text), text, "expected a zip archive", "68656C6C6F");

        var pickle = dir.File("plain.pkl");
        File.Copy(Ckpt.Path("plain_p2.pkl"), pickle);
        Ckpt.Throws(() => TorchCheckpoint.Load(pickle), pickle, "plain Python pickle");

        var zip = dir.File("other.zip");
        Ckpt.RewriteZip(Ckpt.Path("flat.pth"), zip, (n, b) => n.EndsWith("data.pkl") ? null : b);
        Ckpt.Throws(() => TorchCheckpoint.Load(zip), zip, "expected an entry '<archive>/data.pkl'");

        Assert.ThrowsExactly<FileNotFoundException>(() => TorchCheckpoint.Load(dir.File("missing.pth")));
    }

    [TestMethod]
    public void MissingStorageEntryFreesWhatWasLoaded()
    {
        using var dir = new TempDir();
        var path = dir.File("missing_storage.pth");
        Ckpt.RewriteZip(Ckpt.Path("flat.pth"), path, (n, b) => n == "flat/data/3" ? null : b);
        Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path, "no entry 'flat/data/3'", "storage '3'"), "missing storage");
    }

    [TestMethod]
    public void StorageEntryOfTheWrongSize()
    {
        using var dir = new TempDir();
        var path = dir.File("short_entry.pth");
        Ckpt.RewriteZip(Ckpt.Path("flat.pth"), path, (n, b) => n == "flat/data/1" ? b[..^4] : b);
        Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path, "'flat/data/1'", "should hold 3 float32 elements (12 bytes) but holds 8 bytes"), "short entry");
    }

    [TestMethod]
    public void StorageShorterThanTheTensor()
    {
        var path = Ckpt.Path("short_storage.pth");
        Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path,
            "tensor at key 'w'", "needs 6 float32 elements", "holds 2"), "short storage");
    }

    [TestMethod]
    public void CorruptPickles()
    {
        using var dir = new TempDir();
        foreach (var (label, edit, fragment) in new (string, Func<byte[], byte[]>, string)[]
        {
            ("cut", b => b[..(b.Length / 2)], "the pickle ended"),
            ("no stop", b => b[..^1], "expected the STOP opcode"),
            ("bad opcode", b => { var c = (byte[])b.Clone(); c[2] = 0xFF; return c; }, "unknown opcode 0xff"),
            ("bad memo", _ => new byte[] { 0x80, 2, (byte)'h', 250, (byte)'.' }, "memo slot 250"),
            ("wrong type", _ => new byte[] { 0x80, 2, (byte)']', (byte)'K', 1, (byte)'K', 2, (byte)'s', (byte)'.' }, "cannot assign items to a list"),
        })
        {
            var path = dir.File($"pickle_{label.Replace(' ', '_')}.pth");
            Ckpt.RewriteZip(Ckpt.Path("flat.pth"), path, (n, b) => n.EndsWith("data.pkl") ? edit(b) : b);
            Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path, "corrupt pickle in 'flat/data.pkl'", fragment), label);
        }
    }

    // Shared references can make cycles or exponentially many paths, and nesting can be arbitrarily deep:
    // none of it may hang or overflow the stack.
    [TestMethod]
    public void HostilePicklesNeitherHangNorCrash()
    {
        var cycle = new List<byte> { 0x80, 2, (byte)']', (byte)'q', 0, (byte)'h', 0, (byte)'a', (byte)'.' };
        var dag = new List<byte> { 0x80, 2, (byte)']', (byte)'q', 0, (byte)'0' };
        for (byte k = 1; k <= 60; k++)
        {
            dag.AddRange(new byte[] { (byte)']', (byte)'q', k, (byte)'(', (byte)'h', (byte)(k - 1), (byte)'h', (byte)(k - 1), (byte)'e' });
            if (k < 60) dag.Add((byte)'0');
        }
        dag.Add((byte)'.');
        const int deep = 100_000;
        var nested = new List<byte> { 0x80, 2 };
        nested.AddRange(Enumerable.Repeat((byte)']', deep));
        nested.AddRange(Enumerable.Repeat((byte)'a', deep - 1));
        nested.Add((byte)'.');

        using var dir = new TempDir();
        foreach (var (label, pickle) in new[] { ("cycle", cycle), ("dag", dag), ("deep", nested) })
        {
            var path = dir.File(label + ".pth");
            Ckpt.RewriteZip(Ckpt.Path("flat.pth"), path, (n, b) => n.EndsWith("data.pkl") ? pickle.ToArray() : b);
            using var ckpt = TorchCheckpoint.Load(path);
            Assert.IsInstanceOfType<List<object?>>(ckpt.Root, label);
            using var sd = ckpt.ToStateDict();
            Assert.AreEqual(0, sd.Count, label);
            using var w = ckpt.ModelWeights();
            Assert.AreEqual(0, w.Count, label);
        }
    }

    /// <summary>Bombs: a 945-byte torch.save whose shared references make 2^30 paths to one tensor, and a zip whose
    /// data.pkl inflates to 300 MB. Both are refused quickly, before the names or the inflated bytes take memory.</summary>
    [TestMethod]
    public void PathAndDeflateBombs_AreRefusedEarly()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using (var ckpt = TorchCheckpoint.Load(Ckpt.Path("path_bomb.pt")))
        {
            var e = Assert.ThrowsExactly<CheckpointException>(() => ckpt.ToStateDict());
            StringAssert.Contains(e.Message, "paths to tensors");
        }
        Assert.IsLessThan(10.0, sw.Elapsed.TotalSeconds, "refused early");

        using var dir = new TempDir();
        var path = dir.File("deflate_bomb.pth");
        Ckpt.RewriteZip(Ckpt.Path("flat.pth"), path, (n, b) => n.EndsWith("data.pkl") ? new byte[300 << 20] : b, System.IO.Compression.CompressionLevel.Fastest);
        Assert.IsLessThan(4_000_000L, new FileInfo(path).Length, "the bomb is small on disk (about 100:1)");
        long before = GC.GetTotalAllocatedBytes();
        var d = Assert.ThrowsExactly<CheckpointException>(() => TorchCheckpoint.Load(path));
        StringAssert.Contains(d.Message, "declares 314,572,800 bytes");
        Assert.IsLessThan(64L << 20, GC.GetTotalAllocatedBytes() - before, "nothing was inflated");
    }

    /// <summary>A tensor whose declared size and stride overflow a 64-bit index is named with its sizes, not reported
    /// as a bare arithmetic overflow.</summary>
    [TestMethod]
    public void OverflowingDeclaredSizes_NameTheTensorAndTheSizes()
    {
        using var dir = new TempDir();
        var path = dir.File("huge.pth");
        byte[] huge = [0x8a, 0x06, 0, 0, 0, 0, 0, 1]; // LONG1 2^40
        Ckpt.RewriteZip(Ckpt.Path("short_storage.pth"), path, (n, b) =>
        {
            if (!n.EndsWith("data.pkl")) return b;
            // size (2, 3) -> (2^40, 2^40) and stride (3, 1) -> (2^40, 1), keeping the pickle's structure
            var text = Convert.ToHexString(b);
            string K(int v) => $"4B{v:X2}";
            var h = Convert.ToHexString(huge);
            var sized = text.Replace(K(2) + K(3) + "86", h + h + "86").Replace(K(3) + K(1) + "86", h + K(1) + "86");
            Assert.AreNotEqual(text, sized, "the size and stride tuples were found");
            return Convert.FromHexString(sized);
        });
        var e = Assert.ThrowsExactly<CheckpointException>(() => { using var c = TorchCheckpoint.Load(path); });
        StringAssert.Contains(e.Message, "tensor at key 'w'");
        StringAssert.Contains(e.Message, "[1099511627776, 1099511627776]");
    }

    [TestMethod]
    public void PlainPicklesInEveryProtocol()
    {
        foreach (var protocol in new[] { 0, 2, 4 })
        {
            var file = Ckpt.Path($"plain_p{protocol}.pkl");
            var root = (PyDict)new Unpickler(File.ReadAllBytes(file), file, "plain").Load()!;
            string what = $"protocol {protocol}";
            Assert.AreEqual(5L, root["int"], what);
            Assert.AreEqual(-70000L, root["neg"], what);
            Assert.AreEqual(-System.Numerics.BigInteger.Pow(2, 80), root["big"], what);
            Assert.AreEqual(-1.25, root["float"], what);
            Assert.AreEqual(true, root["true"], what);
            Assert.IsNull(root["none"], what);
            Assert.AreEqual("h\u00e9llo \u2603", root["text"], what);
            CollectionAssert.AreEqual(new byte[] { 0, 0xff, (byte)'a', (byte)'b' }, (byte[])root["bytes"]!, what);
            var tuple = (PyTuple)root["tuple"]!;
            Assert.AreEqual(1L, tuple[0]);
            Assert.AreEqual("nested", ((PyTuple)tuple[1]!)[0]);
            Assert.AreEqual(0, ((PyTuple)tuple[2]!).Count);
            var list = (List<object?>)root["list"]!;
            Assert.AreSame(list[0], list[1], $"{what}: the memo keeps shared objects shared");
            CollectionAssert.AreEqual(new object[] { 7L }, ((PyObject)root["set"]!).Items, what);
            Assert.AreEqual("builtins.frozenset", ((PyObject)root["frozen"]!).TypeName, what);
            Assert.IsTrue(root.TryGetValue(3L, out var intKey) && (string)intKey! == "int key", what);
            Assert.IsTrue(root.TryGetValue(3.0, out _), $"{what}: 3.0 == 3 as a key");
            Assert.IsTrue(root.TryGetValue(new PyTuple(new object?[] { 1L, 2L }), out var tk) && (string)tk! == "tuple key", what);
            var ordered = (PyDict)root["ordered"]!;
            CollectionAssert.AreEqual(new object[] { "b", "a" }, ordered.Select(kv => kv.Key).ToArray(), what);
        }
    }

    [TestMethod]
    public void Crc32MatchesTheStandard()
    {
        Assert.AreEqual(0xCBF43926u, Crc32.Append(0, "123456789"u8));
        var rng = new Random(1);
        var data = new byte[5000];
        rng.NextBytes(data);
        foreach (int len in new[] { 0, 1, 15, 63, 64, 127, 128, 129, 200, 1023, 4096, 4999 })
        {
            // Byte-at-a-time (the table path) must agree with the folded bulk path.
            uint slow = 0;
            for (int i = 0; i < len; i++) slow = Crc32.Append(slow, data.AsSpan(i, 1));
            Assert.AreEqual(slow, Crc32.Append(0, data.AsSpan(0, len)), $"length {len}");
            Assert.AreEqual(slow, Crc32.Append(Crc32.Append(0, data.AsSpan(0, len / 3)), data.AsSpan(len / 3, len - len / 3)), $"split {len}");
        }
        Assert.AreEqual(0xCBF43926u, Crc32.Append(0, Encoding.ASCII.GetBytes("123456789")));
    }
}

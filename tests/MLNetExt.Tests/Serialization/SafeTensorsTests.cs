using System.Buffers.Binary;
using System.Text;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Serialization;

[TestClass]
public sealed class SafeTensorsTests
{
    static StateDict AllDtypes()
    {
        var sd = new StateDict();
        sd.Add("f32", Tensor.From(new[] { 1.5f, float.NaN, float.NegativeInfinity, -0f, 3f, 4f }, 2, 3));
        sd.Add("f64", Tensor.From(new[] { Math.PI, -1e300 }, 2));
        sd.Add("f16", Tensor.FromArray<Half>(new[] { (Half)0.5f, (Half)(-2f), Half.MaxValue }, new long[] { 3 }));
        sd.Add("bf16", Tensor.FromArray<BFloat16>(new[] { BFloat16.FromSingle(1.25f), BFloat16.FromSingle(-3e38f) }, new long[] { 2, 1 }));
        sd.Add("i64", Tensor.From(new[] { long.MinValue, long.MaxValue, 0 }, 3));
        sd.Add("i32", Tensor.FromArray<int>(new[] { int.MinValue, 5 }, new long[] { 2 }));
        sd.Add("i16", Tensor.FromArray<short>(new short[] { -7, 7 }, new long[] { 1, 2 }));
        sd.Add("i8", Tensor.FromArray<sbyte>(new sbyte[] { -128, 127 }, new long[] { 2 }));
        sd.Add("u8", Tensor.FromArray<byte>(new byte[] { 0, 255, 9 }, new long[] { 3 }));
        sd.Add("bool", Tensor.FromArray<bool>(new[] { true, false }, new long[] { 2 }));
        sd.Add("scalar", Tensor.Scalar(7, DType.Float32));
        sd.Add("empty", Tensor.Zeros(new long[] { 0, 4 }));
        return sd;
    }

    [TestMethod]
    public void RoundTripsEveryDtypeWithMetadata()
    {
        using var dir = new TempDir();
        var path = dir.File("all.safetensors");
        Ckpt.NoLeak(() =>
        {
            using var sd = AllDtypes();
            var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };
            SafeTensors.Save(path, sd, meta);
            using var back = SafeTensors.Load(path);
            Ckpt.AssertSame(sd, back, "round trip");
            CollectionAssert.AreEquivalent(meta.ToList(), back.Metadata.ToList());
            Assert.IsTrue(back.All(kv => kv.Value.IsContiguous));
        }, "round trip");

        // Layout: the header length is a multiple of 8 and data fills the rest exactly.
        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.AreEqual(0UL, (8 + n) % 8);
        StringAssert.StartsWith(Encoding.UTF8.GetString(bytes, 8, (int)n), "{\"__metadata__\":");
        CollectionAssert.AreEqual(Directory.GetFiles(dir.Path).Select(Path.GetFileName).ToArray(), new[] { "all.safetensors" }, "no temporary files");
    }

    [TestMethod]
    public void WritesTheValuesOfViewsNotTheirStorage()
    {
        using var dir = new TempDir();
        var path = dir.File("views.safetensors");
        using var ckpt = TorchCheckpoint.LoadStateDict(Ckpt.Path("views.pt"));
        SafeTensors.Save(path, ckpt);
        using var back = SafeTensors.Load(path);
        Ckpt.AssertSame(ckpt, back, "views");
        CollectionAssert.AreEqual(new long[] { 4, 1 }, back["transposed"].Strides);
    }

    [TestMethod]
    public void ReadsPythonWrittenFiles()
    {
        using var sd = SafeTensors.Load(Ckpt.Path("dtypes.pt.expected.safetensors"));
        Assert.AreEqual("pt", sd.Metadata["format"]);
        Assert.AreEqual("dtypes.pt", sd.Metadata["fixture"]);
        CollectionAssert.AreEqual(new[] { "f32", "f64", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool", "scalar", "empty", "param" }, sd.Names.ToList());
        CollectionAssert.AreEqual(new byte[] { 0, 200, 255 }, sd["u8"].ToArray<byte>());
    }

    [TestMethod]
    public void OverwriteIsAtomicAndFailuresLeaveNoTemporaryFile()
    {
        using var dir = new TempDir();
        var path = dir.File("w.safetensors");
        using (var a = new StateDict()) { a.Add("x", Tensor.From(1f, 2f)); SafeTensors.Save(path, a); }
        using (var b = new StateDict()) { b.Add("y", Tensor.From(3f)); SafeTensors.Save(path, b); }
        using (var back = SafeTensors.Load(path)) CollectionAssert.AreEqual(new[] { "y" }, back.Names.ToList());
        var before = File.ReadAllBytes(path);

        // A disposed tensor fails the save: the old file stays whole, nothing else is left behind.
        var dead = Tensor.From(1f);
        dead.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => SafeTensors.Save(path, new[] { new KeyValuePair<string, Tensor>("d", dead) }));
        Assert.ThrowsExactly<ArgumentException>(() => SafeTensors.Save(path, new[] { new KeyValuePair<string, Tensor>("__metadata__", Tensor.From(1f)) }));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path));

        // A failure after the data is written (the final name is a folder) removes the temporary file.
        var folder = dir.File("taken");
        Directory.CreateDirectory(folder);
        using (var c = new StateDict())
        {
            c.Add("z", Tensor.From(5f));
            Assert.ThrowsExactly<IOException>(() => SafeTensors.Save(folder, c), "renaming onto a folder");
        }
        CollectionAssert.AreEquivalent(new[] { "w.safetensors", "taken" }, Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName).ToArray());
    }

    static byte[] Build(string header, int dataBytes, ulong? lengthField = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var b = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, lengthField ?? (ulong)h.Length);
        h.CopyTo(b, 8);
        return b;
    }

    [TestMethod]
    [DataRow("empty header", "", 0, null, "not valid JSON")]
    [DataRow("length beyond file", "{}", 0, 1000UL, "header length field says 1000 bytes but only 2 follow")]
    [DataRow("bad json", "{\"a\": [", 0, null, "not valid JSON")]
    [DataRow("not an object", "[1, 2]", 0, null, "expected the header to be a JSON object")]
    [DataRow("unknown dtype", "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, null, "tensor 'a' has dtype 'C64'")]
    [DataRow("no shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, null, "tensor 'a': expected 'shape'")]
    [DataRow("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, null, "'shape' holds -1")]
    [DataRow("out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, null, "tensor 'a' has data_offsets [0, 16] outside the 8-byte data buffer")]
    [DataRow("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, null, "tensor 'a' is F32[3] (12 bytes) but its data_offsets [0, 8] span 8 bytes")]
    [DataRow("overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, null, "tensor 'b' (bytes 4..12) overlaps tensor 'a'")]
    [DataRow("hole", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, null, "expected tensor 'a' to start at byte 0")]
    [DataRow("trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, null, "cover 4 bytes of data but the file holds 8")]
    [DataRow("duplicate", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, null, "names 'a' twice")]
    [DataRow("metadata value", "{\"__metadata__\":{\"k\":1}}", 0, null, "__metadata__ entry 'k' must be a string")]
    [DataRow("huge shape", "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, null, "too large")]
    public void BadFilesAreRejected(string label, string header, int dataBytes, ulong? lengthField, string fragment)
    {
        using var dir = new TempDir();
        var path = dir.File(label.Replace(' ', '_') + ".safetensors");
        System.IO.File.WriteAllBytes(path, Build(header, dataBytes, lengthField));
        Ckpt.NoLeak(() => Ckpt.Throws(() => SafeTensors.Load(path), path, fragment), label);
    }

    [TestMethod]
    public void TruncatedFilesAreRejected()
    {
        using var dir = new TempDir();
        var good = System.IO.File.ReadAllBytes(Ckpt.Path("flat.pth.expected.safetensors"));
        var path = dir.File("cut.safetensors");
        foreach (int len in new[] { 0, 7, 8, 9, 100, good.Length / 2, good.Length - 1 })
        {
            System.IO.File.WriteAllBytes(path, good[..len]);
            Ckpt.NoLeak(() => Ckpt.Throws(() => SafeTensors.Load(path), path, len < 8 ? "expected at least 8 bytes" : "truncated"), $"length {len}");
        }
    }

    [TestMethod]
    public void EmptyFileHoldsNothing()
    {
        using var dir = new TempDir();
        var path = dir.File("none.safetensors");
        using (var sd = new StateDict()) SafeTensors.Save(path, sd);
        using var back = SafeTensors.Load(path);
        Assert.AreEqual(0, back.Count);
        Assert.AreEqual(0, back.Metadata.Count);
    }
}

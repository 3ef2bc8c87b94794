using MLNetExt.Cli;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Serialization;

/// <summary>PaddlePaddle .pdparams files (pickles of numpy arrays) read through TorchCheckpoint. The files and the
/// expected tensors were written by tests/fixtures/mixformer/make_mixformer_fixtures.py with Python pickle + numpy.</summary>
[TestClass]
public sealed class PdParamsTests
{
    static string PdPath(string name) => Fixtures.Path("mixformer/pdparams/" + name);

    [TestMethod]
    [DataRow(2)]
    [DataRow(3)]
    [DataRow(4)]
    public void EveryArrayLoadsWithItsDtypeShapeAndBytes(int protocol)
    {
        var path = PdPath($"tensors_p{protocol}.pdparams");
        Ckpt.NoLeak(() =>
        {
            using var expected = SafeTensors.Load(PdPath("tensors.expected.safetensors"));
            using var actual = TorchCheckpoint.LoadStateDict(path);
            // float32/64/16, int64/32, uint8, bool, a Fortran-ordered array, a 0-d array, an empty array, > 64 KiB
            Ckpt.AssertSame(expected, actual, $"protocol {protocol}");
            using var weights = TorchCheckpoint.LoadModelWeights(path);
            Ckpt.AssertSame(expected, weights, $"protocol {protocol}, model weights");
        }, $"protocol {protocol}");
    }

    [TestMethod]
    public void BookkeepingEntryIsKeptInRootButIsNotATensor()
    {
        var path = PdPath("tensors_p4.pdparams");
        using var c = TorchCheckpoint.Load(path);
        var root = (PyDict)c.Root!;
        var table = (PyDict)root["StructuredToParameterName@@"]!;
        Assert.AreEqual("param_0", table["fc.weight"]);
        Assert.IsInstanceOfType<Tensor>(root["fc.weight"]);
        using var sd = c.ToStateDict();
        Assert.IsFalse(sd.Names.Any(n => n.StartsWith("StructuredToParameterName", StringComparison.Ordinal)));
    }

    [TestMethod]
    public void FortranOrderedArrayIsTransposedBackToRowMajor()
    {
        using var sd = TorchCheckpoint.LoadStateDict(PdPath("tensors_p2.pdparams"));
        using var expected = SafeTensors.Load(PdPath("tensors.expected.safetensors"));
        CollectionAssert.AreEqual(new long[] { 4, 3 }, sd["fortran"].Shape);
        CollectionAssert.AreEqual(expected["fortran"].ToArray<float>(), sd["fortran"].ToArray<float>());
    }

    [TestMethod]
    public void UnsupportedDtypeIsNamedWithTheKey()
    {
        var path = PdPath("complex.pdparams");
        Ckpt.NoLeak(() => Ckpt.Throws(() => TorchCheckpoint.Load(path), path, "'z'", "numpy dtype 'c8' is not supported"), "complex");
    }

    [TestMethod]
    public void PickleWithoutArraysIsStillRejected()
    {
        var path = PdPath("no_arrays.pkl");
        Ckpt.Throws(() => TorchCheckpoint.Load(path), path, "plain Python pickle", "no numpy arrays");
    }

    [TestMethod]
    public void KeysVerbListsAPdparamsFile()
    {
        var path = Fixtures.Path("mixformer/small.weights.pdparams");
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.AreEqual(0, KeysCommand.Run(new FileInfo(path), output, error), error.ToString());
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        CollectionAssert.Contains(lines, "patch_embed.stem.1._mean\t[8]\tfloat32");
        CollectionAssert.Contains(lines, "layers.0.blocks.0.attn.proj_attn.weight\t[16, 8]\tfloat32");   // Paddle [in, out]
        CollectionAssert.Contains(lines, "layers.0.blocks.0.attn.relative_position_index\t[49, 49]\tint64");
        Assert.IsFalse(lines.Any(l => l.StartsWith("StructuredToParameterName", StringComparison.Ordinal)));
        StringAssert.StartsWith(lines[^1], "total\t");
    }
}

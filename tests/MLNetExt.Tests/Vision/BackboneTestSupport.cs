using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Vision;

/// <summary>Checks shared by the backbone families.</summary>
internal static class BackboneAssert
{
    /// <summary>The model's state_dict equals a key list dumped from the official model
    /// (<c>key TAB [d0, d1] TAB dtype</c> lines, then <c>total_params TAB N</c>): same keys, order, shapes, dtypes and
    /// trainable parameter count. The message names the first difference.</summary>
    public static void StateDictMatches(Backbone model, string keysFixture)
    {
        var lines = File.ReadAllLines(Fixtures.Path(keysFixture)).Where(l => l.Length > 0).ToArray();
        var expected = lines[..^1];
        var total = long.Parse(lines[^1].Split('\t')[1]);
        var actual = model.StateDict().Select(kv => $"{kv.Key}\t[{string.Join(", ", kv.Value.Shape)}]\t{kv.Value.DType.TorchName()}").ToArray();
        for (int i = 0; i < Math.Min(expected.Length, actual.Length); i++)
            Assert.AreEqual(expected[i], actual[i], $"{model.Variant}: state_dict entry {i} differs from the official model");
        Assert.AreEqual(expected.Length, actual.Length, $"{model.Variant}: state_dict has {actual.Length} entries, the official model {expected.Length}");
        Assert.AreEqual(total, model.Parameters().Where(p => p.RequiresGrad).Sum(p => p.NumEl), $"{model.Variant}: trainable parameter count");
    }

    /// <summary>Max abs difference within <paramref name="atol"/>, reported in the message.</summary>
    public static double MaxAbsWithin(Tensor expected, Tensor actual, double atol, string what)
    {
        CollectionAssert.AreEqual(expected.Shape, actual.Shape, $"{what}: shape");
        using var diff = expected.To(DType.Float64).Sub(actual.To(DType.Float64)).Abs().Max();
        double d = diff.ToDouble();
        Assert.IsLessThanOrEqualTo(atol, d, $"{what}: max abs difference {d:E3} exceeds {atol:E1}");
        return d;
    }
}

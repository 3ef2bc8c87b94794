using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using static MLNetExt.Tests.Export.HandBuiltGraphs;

namespace MLNetExt.Tests.Export;

/// <summary><see cref="BatchNormFolding"/> on a hand-built graph with one norm of each kind, run in ONNX Runtime
/// (without its own fusions) against the unfolded graph: r = Relu(x); n1 = BN(r) read by a 1×1 convolution and a
/// grouped 1×1 convolution (foldable forward); n2 = BN(r) read by a padded 3×3 convolution; n3 = BN(r) read by an Add;
/// c = Conv(x), n4 = BN(c) (a norm after a convolution).</summary>
[TestClass]
public sealed class BatchNormFoldingTests
{
    const int F = HandBuiltGraphs.Float;
    static readonly string[] Outputs = ["a", "b", "p", "q", "n4"];

    static ModelProto Graph()
    {
        var g = new GraphProto { Name = "norms" };
        var rnd = new Random(11);
        float Centred() => (float)(rnd.NextDouble() - 0.5);
        float Positive() => (float)(0.5 + rnd.NextDouble());
        foreach (var k in new[] { 1, 2, 3, 4 })
        {
            g.Initializer.Add(Floats($"gamma{k}", Positive, 4));
            g.Initializer.Add(Floats($"beta{k}", Centred, 4));
            g.Initializer.Add(Floats($"mean{k}", Centred, 4));
            g.Initializer.Add(Floats($"var{k}", Positive, 4));
        }
        g.Initializer.Add(Floats("wa", Centred, 3, 4, 1, 1));
        g.Initializer.Add(Floats("wb", Centred, 6, 2, 1, 1));
        g.Initializer.Add(Floats("bb", Centred, 6));
        g.Initializer.Add(Floats("wp", Centred, 4, 4, 3, 3));
        g.Initializer.Add(Floats("wc", Centred, 4, 4, 3, 3));
        NodeProto Norm(int k, string x) => GraphEdits.Node("BatchNormalization", [x, $"gamma{k}", $"beta{k}", $"mean{k}", $"var{k}"], [$"n{k}"], Attr.F("epsilon", 1e-3));
        var pads = Attr.Ints("pads", [1L, 1, 1, 1]);
        g.Node.Add(GraphEdits.Node("Relu", ["x"], ["r"]));
        g.Node.Add(Norm(1, "r"));
        g.Node.Add(GraphEdits.Node("Conv", ["n1", "wa"], ["a"]));
        g.Node.Add(GraphEdits.Node("Conv", ["n1", "wb", "bb"], ["b"], Attr.I("group", 2)));
        g.Node.Add(Norm(2, "r"));
        g.Node.Add(GraphEdits.Node("Conv", ["n2", "wp"], ["p"], pads));
        g.Node.Add(Norm(3, "r"));
        g.Node.Add(GraphEdits.Node("Add", ["n3", "x"], ["q"]));
        g.Node.Add(GraphEdits.Node("Conv", ["x", "wc"], ["c"], pads));
        g.Node.Add(Norm(4, "c"));
        g.Input.Add(GraphEdits.Value("x", F, 2, 4, 5, 5));
        foreach (var (name, c) in new[] { ("a", 3L), ("b", 6L), ("p", 4L), ("q", 4L), ("n4", 4L) }) g.Output.Add(GraphEdits.Value(name, F, 2, c, 5, 5));
        foreach (var v in new[] { "r", "n1", "n2", "n3", "c" }) g.ValueInfo.Add(GraphEdits.Value(v, F, 2, 4, 5, 5));
        return Model(g);
    }

    static float[][] Run(ModelProto m) => HandBuiltGraphs.Run(m, [2, 4, 5, 5], 5, Outputs);

    static void AssertSameResults(float[][] expected, float[][] actual, string what) => HandBuiltGraphs.AssertSameResults(expected, actual, Outputs, what);

    static string[] Norms(ModelProto m) => m.Graph.Node.Where(n => n.OpType == "BatchNormalization").Select(n => n.Output[0]).ToArray();

    [TestMethod]
    public void IntoFollowingConvolutions_FoldsOnlyNormsEveryReaderOfWhichIsAnUnpaddedConvolution()
    {
        var model = Graph();
        var expected = Run(model);
        Assert.AreEqual(1, BatchNormFolding.IntoFollowingConvolutions(model.Graph));
        CollectionAssert.AreEquivalent(new[] { "n2", "n3", "n4" }, Norms(model), "padded reader, non-convolution reader, norm after a convolution");
        Assert.IsTrue(model.Graph.Node.Where(n => n.OpType == "Conv" && n.Output[0] is "a" or "b").All(n => n.Input[0] == "r"), "both 1×1 convolutions read the norm's input");
        AssertSameResults(expected, Run(model), "folded forward");
    }

    [TestMethod]
    public void IntoPrecedingConvolutions_FoldsTheNormAfterAConvolution()
    {
        var model = Graph();
        var expected = Run(model);
        Assert.AreEqual(1, BatchNormFolding.IntoPrecedingConvolutions(model.Graph));
        CollectionAssert.AreEquivalent(new[] { "n1", "n2", "n3" }, Norms(model));
        Assert.AreEqual("n4", model.Graph.Node.Single(n => n.Input[0] == "x" && n.OpType == "Conv").Output[0], "the convolution computes the graph output itself");
        AssertSameResults(expected, Run(model), "folded backward");
    }

    [TestMethod]
    public void AsMulAdd_RewritesEveryNormAsPerChannelMulAndAdd()
    {
        var model = Graph();
        var expected = Run(model);
        Assert.AreEqual(4, BatchNormFolding.AsMulAdd(model.Graph));
        Assert.AreEqual(0, Norms(model).Length);
        var factors = model.Graph.Node.Where(n => n.OpType == "Mul").Select(n => model.Graph.Initializer.Single(t => t.Name == n.Input[1])).ToList();
        Assert.IsTrue(factors.All(t => t.Dims.SequenceEqual(new long[] { 4, 1, 1 })), "per channel, broadcast over height and width");
        AssertSameResults(expected, Run(model), "as Mul and Add");
    }
}

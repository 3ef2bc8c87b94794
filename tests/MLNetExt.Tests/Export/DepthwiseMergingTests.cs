using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using static MLNetExt.Tests.Export.HandBuiltGraphs;

namespace MLNetExt.Tests.Export;

/// <summary><see cref="DepthwiseMerging"/> on a hand-built graph, run in ONNX Runtime (without its own fusions) against
/// the unmerged graph. Three Splits of x (2, 10, 6, 7) into chunks of 4, 2, 2, 2 channels, each chunk through a
/// depthwise convolution (kernels 1×1, 3×3, 5×3 without bias, 7×7) and concatenated again: "m" in chunk order
/// (mergeable), "r" in reverse order, and "s" whose second chunk an Add reads too (both left alone).</summary>
[TestClass]
public sealed class DepthwiseMergingTests
{
    const int F = HandBuiltGraphs.Float;
    static readonly string[] Outputs = ["m", "r", "s", "extra"];
    static readonly (long Channels, long H, long W, bool Bias)[] Chunks = [(4, 1, 1, true), (2, 3, 3, true), (2, 5, 3, false), (2, 7, 7, true)];

    static ModelProto Graph()
    {
        var g = new GraphProto { Name = "chunks" };
        var rnd = new Random(7);
        float Centred() => (float)(rnd.NextDouble() - 0.5);
        var sizes = new TensorProto { Name = "sizes", DataType = (int)TensorProto.Types.DataType.Int64 };
        sizes.Dims.Add(Chunks.Length);
        sizes.Int64Data.AddRange(Chunks.Select(c => c.Channels));
        g.Initializer.Add(sizes);
        foreach (var prefix in new[] { "m", "r", "s" })
        {
            var parts = Chunks.Select((_, j) => $"{prefix}_part{j}").ToArray();
            g.Node.Add(GraphEdits.Node("Split", ["x", "sizes"], parts, Attr.I("axis", 1)));
            var convolved = new string[Chunks.Length];
            for (int j = 0; j < Chunks.Length; j++)
            {
                var (c, h, w, bias) = Chunks[j];
                g.Initializer.Add(Floats($"{prefix}_w{j}", Centred, c, 1, h, w));
                if (bias) g.Initializer.Add(Floats($"{prefix}_b{j}", Centred, c));
                convolved[j] = $"{prefix}_conv{j}";
                g.Node.Add(GraphEdits.Node("Conv", bias ? [parts[j], $"{prefix}_w{j}", $"{prefix}_b{j}"] : [parts[j], $"{prefix}_w{j}"], [convolved[j]],
                    Attr.Ints("kernel_shape", [h, w]), Attr.Ints("pads", [h / 2, w / 2, h / 2, w / 2]), Attr.I("group", c)));
            }
            g.Node.Add(GraphEdits.Node("Concat", prefix == "r" ? convolved.Reverse().ToArray() : convolved, [prefix], Attr.I("axis", 1)));
            g.Output.Add(GraphEdits.Value(prefix, F, 2, 10, 6, 7));
        }
        g.Node.Add(GraphEdits.Node("Add", ["s_part1", "s_part2"], ["extra"]));
        g.Output.Add(GraphEdits.Value("extra", F, 2, 2, 6, 7));
        g.Input.Add(GraphEdits.Value("x", F, 2, 10, 6, 7));
        return Model(g);
    }

    static float[][] Run(ModelProto m) => HandBuiltGraphs.Run(m, [2, 10, 6, 7], 3, Outputs);

    [TestMethod]
    public void SplitChunks_MergesOnlyChunksConvolvedAndConcatenatedInOrder_WithTheSameResults()
    {
        var model = Graph();
        var expected = Run(model);
        Assert.AreEqual(1, DepthwiseMerging.SplitChunks(model.Graph));
        var merged = model.Graph.Node.Single(n => n.Output[0] == "m");
        Assert.AreEqual("Conv", merged.OpType);
        Assert.AreEqual("x", merged.Input[0]);
        var weight = model.Graph.Initializer.Single(t => t.Name == merged.Input[1]);
        CollectionAssert.AreEqual(new long[] { 10, 1, 7, 7 }, weight.Dims.ToArray(), "every chunk's kernel inside the largest");
        Assert.AreEqual(10, merged.Attribute.Single(a => a.Name == "group").I);
        CollectionAssert.AreEqual(new long[] { 3, 3, 3, 3 }, merged.Attribute.Single(a => a.Name == "pads").Ints.ToArray());
        Assert.AreEqual(2, model.Graph.Node.Count(n => n.OpType == "Split"), "the reversed and the shared chunks keep their Splits");
        Assert.AreEqual(8, model.Graph.Node.Count(n => n.OpType == "Conv" && n.Output[0] != "m"));
        // the added taps are zeros; only the kernel ONNX Runtime picks (and so the order of the sums) changes
        AssertSameResults(expected, Run(model), Outputs, "merged");
    }
}

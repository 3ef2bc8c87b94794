using Google.Protobuf;
using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Tests.Export;

/// <summary>What <see cref="StaticInt8"/> makes uint8 and what it leaves float32, on a hand-built graph with a residual
/// stream: s = 0.5·x; a = Conv1(s); r = s + a; y = Conv2(r); out = y + r.</summary>
[TestClass]
public sealed class StaticInt8Tests
{
    const int F = (int)TensorProto.Types.DataType.Float;

    static ModelProto ResidualGraph()
    {
        var g = new GraphProto { Name = "residual" };
        var rnd = new Random(3);
        float Centred() => (float)(rnd.NextDouble() - 0.5);
        g.Initializer.Add(HandBuiltGraphs.Floats("half", Centred, 1));
        g.Initializer.Add(HandBuiltGraphs.Floats("w1", Centred, 4, 4, 3, 3));
        g.Initializer.Add(HandBuiltGraphs.Floats("b1", Centred, 4));
        g.Initializer.Add(HandBuiltGraphs.Floats("w2", Centred, 4, 4, 1, 1));
        g.Initializer.Add(HandBuiltGraphs.Floats("b2", Centred, 4));
        var pads = Attr.Ints("pads", [1L, 1, 1, 1]);
        g.Node.Add(GraphEdits.Node("Mul", ["x", "half"], ["s"]));
        g.Node.Add(GraphEdits.Node("Conv", ["s", "w1", "b1"], ["a"], pads));
        g.Node.Add(GraphEdits.Node("Add", ["s", "a"], ["r"]));
        g.Node.Add(GraphEdits.Node("Conv", ["r", "w2", "b2"], ["y"]));
        g.Node.Add(GraphEdits.Node("Add", ["y", "r"], ["out"]));
        g.Input.Add(GraphEdits.Value("x", F, 1, 4, 8, 8));
        g.Output.Add(GraphEdits.Value("out", F, 1, 4, 8, 8));
        foreach (var v in new[] { "s", "a", "r", "y" }) g.ValueInfo.Add(GraphEdits.Value(v, F, 1, 4, 8, 8));
        return HandBuiltGraphs.Model(g);
    }

    [TestMethod]
    public void ResidualStream_StaysFloat32_ConvolutionsReadItRounded()
    {
        var model = ResidualGraph();
        var reference = model.Clone();
        var plan = StaticInt8.Plan(model.Graph);
        CollectionAssert.AreEquivalent(new[] { "s", "a", "r", "y" }, plan.Values.ToArray(), "convolution inputs and outputs");
        CollectionAssert.AreEquivalent(new[] { "s", "r" }, plan.FloatProduced.ToArray(), "computed by float32 operators");
        var ranges = new Dictionary<string, (float, float)> { ["s"] = (-0.3f, 0.3f), ["a"] = (-2f, 2f), ["r"] = (-2.2f, 2.2f), ["y"] = (-3f, 3f) };
        Assert.AreEqual(2, StaticInt8.Apply(model, plan, ranges), "both convolutions read int8 weights");
        var nodes = model.Graph.Node;
        NodeProto Producer(string v) => nodes.Single(n => n.Output.Contains(v));
        var conv1 = nodes.First(n => n.OpType == "Conv");
        var conv2 = nodes.Last(n => n.OpType == "Conv");
        var sum = nodes.First(n => n.OpType == "Add");
        var last = nodes.Last(n => n.OpType == "Add");
        Assert.AreEqual("DequantizeLinear", Producer(conv1.Input[0]).OpType, "Conv1 reads s rounded");
        Assert.AreEqual("s", sum.Input[0], "the residual sum reads s exact");
        Assert.AreEqual("DequantizeLinear", Producer(sum.Input[1]).OpType, "and Conv1's result through its Quantize (so ONNX Runtime fuses QLinearConv)");
        Assert.AreEqual("DequantizeLinear", Producer(conv2.Input[0]).OpType, "Conv2 reads r rounded");
        Assert.AreEqual("r", last.Input[1], "the last sum reads r exact");
        Assert.AreEqual((int)TensorProto.Types.DataType.Int32, model.Graph.Initializer.Single(t => t.Name == Producer(conv1.Input[2]).Input[0]).DataType, "int32 bias");

        var x = new float[4 * 8 * 8];
        var rnd = new Random(5);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rnd.NextDouble() - 0.5);
        float[] Run(ModelProto m)
        {
            using var session = OnnxSession.FromBytes(m.ToByteArray());
            using var r = session.Run("x", OnnxTensor.FromArray(x, 1, 4, 8, 8));
            return r["out"].ToArray<float>();
        }
        var (exact, quantized) = (Run(reference), Run(model));
        double scale = exact.Max(Math.Abs), diff = exact.Zip(quantized, (u, v) => Math.Abs(u - v)).Max();
        Assert.IsGreaterThan(0, diff, "quantized arithmetic");
        Assert.IsLessThan(0.05 * scale, diff, $"close to float32 (max abs {diff:G3} of {scale:G3})");
    }
}

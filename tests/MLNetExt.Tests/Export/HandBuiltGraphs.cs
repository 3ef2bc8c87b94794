using Google.Protobuf;
using MLNetExt.Export.Onnx;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Tests.Export;

/// <summary>What the tests of the graph passes share: float32 initializers, an opset-17 model around a graph, and a run
/// in ONNX Runtime without its own fusions (so a pass is compared with the graph it rewrote, not with ORT's rewrite).</summary>
internal static class HandBuiltGraphs
{
    public const int Float = (int)TensorProto.Types.DataType.Float;

    /// <summary>A float32 initializer of the given shape, each value from <paramref name="value"/>.</summary>
    public static TensorProto Floats(string name, Func<float> value, params long[] dims)
    {
        var v = new float[dims.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < v.Length; i++) v[i] = value();
        var t = new TensorProto { Name = name, DataType = Float, RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan())) };
        t.Dims.AddRange(dims);
        return t;
    }

    public static ModelProto Model(GraphProto g)
    {
        var m = new ModelProto { IrVersion = 8, Graph = g };
        m.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return m;
    }

    /// <summary>The named outputs for the input "x" of shape <paramref name="shape"/>, uniform in [−1, 1) from
    /// <paramref name="seed"/>, with ONNX Runtime's basic optimizations only.</summary>
    public static float[][] Run(ModelProto m, long[] shape, int seed, string[] outputs)
    {
        var x = new float[shape.Aggregate(1L, (a, b) => a * b)];
        var rnd = new Random(seed);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rnd.NextDouble() * 2 - 1);
        using var session = OnnxSession.FromBytes(m.ToByteArray(), new OnnxSessionOptions { GraphOptimization = OnnxGraphOptimization.Basic });
        using var r = session.Run("x", OnnxTensor.FromArray(x, shape));
        return outputs.Select(o => r[o].ToArray<float>()).ToArray();
    }

    /// <summary>Each output within <see cref="Tolerances.Float32Abs"/> of the expected one.</summary>
    public static void AssertSameResults(float[][] expected, float[][] actual, string[] outputs, string what)
    {
        for (int k = 0; k < outputs.Length; k++)
        {
            double diff = expected[k].Zip(actual[k], (u, v) => Math.Abs(u - v)).Max();
            Assert.IsLessThanOrEqualTo(Tolerances.Float32Abs, diff, $"{what}: output {outputs[k]} (max abs {diff:G3})");
        }
    }
}

using System.Runtime.InteropServices;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Tests.OnnxRuntime;

/// <summary>The ONNX models and numpy-computed expectations of tests/fixtures/onnx (make_onnx_fixtures.py).</summary>
internal static class OnnxFixtures
{
    public static string Model(string name) => Fixtures.Path($"onnx/{name}");

    public static float[] Floats(string name) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Fixtures.Path($"onnx/{name}"))).ToArray();

    /// <summary>Classifier: image [3,3,8,8] and its numpy logits/Score [3,5].</summary>
    public static (float[] Image, float[] Logits, float[] Score) Classifier() =>
        (Floats("classifier_image_b3.bin"), Floats("classifier_logits_b3.bin"), Floats("classifier_score_b3.bin"));

    public static OnnxSession Open(string name, OnnxSessionOptions? options = null) => OnnxSession.FromFile(Model(name), options);

    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double atol, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, $"{what}: length");
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= atol))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R} (atol {atol})");
    }
}

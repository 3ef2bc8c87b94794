using System.Runtime.InteropServices;
using MLNetExt.Cli;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Tests.OnnxRuntime;

/// <summary>`run-onnx` on the fixture classifier: raw float32 in, raw float32 out, written atomically.</summary>
[TestClass]
public sealed class RunOnnxCommandTests
{
    [TestMethod]
    public void RunOnnx_WritesTheRequestedOutput()
    {
        var (image, logits, score) = OnnxFixtures.Classifier();
        var dir = Directory.CreateTempSubdirectory("mlnetext-run-onnx-");
        try
        {
            var input = Path.Combine(dir.FullName, "image.raw");
            File.WriteAllBytes(input, MemoryMarshal.AsBytes(image.AsSpan()).ToArray());
            var output = Path.Combine(dir.FullName, "out.raw");
            var model = new FileInfo(OnnxFixtures.Model("classifier.onnx"));
            var log = new StringWriter();

            Assert.AreEqual(0, RunOnnxCommand.Run(model, new FileInfo(input), "3,3,8,8", new FileInfo(output), null, 0, null, log, log));
            OnnxFixtures.Close(score, MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(output)), Tolerances.OnnxRuntimeFixture, "default output is Score");
            StringAssert.Contains(log.ToString(), "Score [3, 5] written to");

            Assert.AreEqual(0, RunOnnxCommand.Run(model, new FileInfo(input), "3,3,8,8", new FileInfo(output), "logits", 1, null, log, log));
            OnnxFixtures.Close(logits, MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(output)), Tolerances.OnnxRuntimeFixture, "--output-name logits");
            Assert.HasCount(2, dir.GetFiles(), "no temporary file left beside the output");

            var e = Assert.ThrowsExactly<ArgumentException>(() =>
                RunOnnxCommand.Run(model, new FileInfo(input), "1,3,8,8", new FileInfo(output), null, 0, null, log, log));
            StringAssert.Contains(e.Message, "has 2304 bytes; --shape 1,3,8,8 needs 768");
            // a shape the model does not take: ONNX Runtime's own message names the input, the index, what it got and expected
            var m = Assert.ThrowsExactly<Microsoft.ML.OnnxRuntime.OnnxRuntimeException>(() =>
                RunOnnxCommand.Run(model, new FileInfo(input), "3,3,16,4", new FileInfo(output), null, 0, null, log, log));
            StringAssert.Contains(m.Message, "image");
            StringAssert.Contains(m.Message, "Got: 16 Expected: 8");
            var o = Assert.ThrowsExactly<ArgumentException>(() =>
                RunOnnxCommand.Run(model, new FileInfo(input), "3,3,8,8", new FileInfo(output), "probs", 0, null, log, log));
            StringAssert.Contains(o.Message, "no output 'probs'");
            var two = Assert.ThrowsExactly<ArgumentException>(() => RunOnnxCommand.Run(new FileInfo(OnnxFixtures.Model("add_mul.onnx")),
                new FileInfo(input), "3,3,8,8", new FileInfo(output), null, 0, null, log, log));
            StringAssert.Contains(two.Message, "has 2: x, y");
            Assert.ThrowsExactly<ArgumentException>(() => RunOnnxCommand.ParseShape("1,3,0,8"));
        }
        finally { dir.Delete(recursive: true); }
    }
}

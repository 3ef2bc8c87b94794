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

            Assert.AreEqual(0, RunOnnxCommand.Run(model, new FileInfo(input), "3,3,8,8", new FileInfo(output), null, new OnnxSessionOptions(), log));
            OnnxFixtures.Close(score, MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(output)), Tolerances.OnnxRuntimeFixture, "default output is Score");
            StringAssert.Contains(log.ToString(), "Score [3, 5] written to");

            Assert.AreEqual(0, RunOnnxCommand.Run(model, new FileInfo(input), "3,3,8,8", new FileInfo(output), "logits", new OnnxSessionOptions { IntraOpThreads = 1 }, log));
            OnnxFixtures.Close(logits, MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(output)), Tolerances.OnnxRuntimeFixture, "--output-name logits");
            Assert.HasCount(2, dir.GetFiles(), "no temporary file left beside the output");

            var e = Assert.ThrowsExactly<ArgumentException>(() =>
                RunOnnxCommand.Run(model, new FileInfo(input), "1,3,8,8", new FileInfo(output), null, new OnnxSessionOptions(), log));
            StringAssert.Contains(e.Message, "has 2304 bytes; --shape 1,3,8,8 needs 768");
            var m = Assert.ThrowsExactly<OnnxInputException>(() =>
                RunOnnxCommand.Run(model, new FileInfo(input), "3,3,16,4", new FileInfo(output), null, new OnnxSessionOptions(), log));
            Assert.AreEqual("input 'image': shape [3,3,16,4] given, the model expects [N,3,8,8] (dimension 2 is 16, expected 8)", m.Message);
            m = Assert.ThrowsExactly<OnnxInputException>(() =>
                RunOnnxCommand.Run(model, new FileInfo(input), "3,3,8,8", new FileInfo(output), "probs", new OnnxSessionOptions(), log));
            StringAssert.Contains(m.Message, "no output 'probs'");
            var two = Assert.ThrowsExactly<ArgumentException>(() => RunOnnxCommand.Run(new FileInfo(OnnxFixtures.Model("add_mul.onnx")),
                new FileInfo(input), "3,3,8,8", new FileInfo(output), null, new OnnxSessionOptions(), log));
            StringAssert.Contains(two.Message, "has 2: x: float32 [N,3]; y: float32 [N,3]");
            Assert.ThrowsExactly<ArgumentException>(() => RunOnnxCommand.ParseShape("1,3,0,8"));
        }
        finally { dir.Delete(recursive: true); }
    }
}

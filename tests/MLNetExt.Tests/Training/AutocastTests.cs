using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Training;

/// <summary>The autocast region through the bridge: the same dispatcher state Python's torch.autocast sets. CUDA
/// cannot be tested here; the CPU autocast key exercises the same entry point and nesting rules.</summary>
[TestClass]
public sealed class AutocastTests
{
    [TestMethod]
    public void CpuAutocast_RunsLinearInBfloat16_AndRestoresFloat32OnExit()
    {
        using var scope = TensorScope.Begin();
        TorchRuntime.ManualSeed(3);
        var x = Tensor.Randn(new long[] { 4, 8 });
        var w = Tensor.Randn(new long[] { 5, 8 });
        Tensor inside;
        using (Autocast.Enable(DeviceType.Cpu))
        {
            Assert.IsTrue(Autocast.IsEnabled(DeviceType.Cpu));
            inside = F.Linear(x, w);
            using (Autocast.Enable(DeviceType.Cpu)) Assert.AreEqual(DType.BFloat16, F.Linear(x, w).DType, "nested region");
            Assert.AreEqual(DType.BFloat16, F.Linear(x, w).DType, "still inside the outer region");
            // Reductions such as softmax stay float32 under autocast (torch's fp32 list).
            Assert.AreEqual(DType.Float32, x.Softmax(1).DType);
        }
        Assert.IsFalse(Autocast.IsEnabled(DeviceType.Cpu));
        Assert.AreEqual(DType.BFloat16, inside.DType);
        var outside = F.Linear(x, w);
        Assert.AreEqual(DType.Float32, outside.DType);
        // bf16 keeps ~3 significant digits.
        var diff = inside.To(DType.Float32).Sub(outside).Abs().Max().ToDouble();
        Assert.IsLessThan(0.1, diff);
    }

    [TestMethod]
    public void Autocast_RejectsNonReducedTypes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Autocast.Enable(DeviceType.Cpu, DType.Float32));
        StringAssert.Contains(e.Message, "float32");
    }
}

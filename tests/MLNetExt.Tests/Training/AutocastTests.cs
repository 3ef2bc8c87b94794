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
    public void CpuAutocast_NormsTakeBfloat16Activations_AndTrainEveryFamily()
    {
        using (TensorScope.Begin())
        {
            TorchRuntime.ManualSeed(4);
            using var conv = new Conv2d(3, 8, 3);
            using var layerNorm = new LayerNorm(8);
            using var groupNorm = new GroupNorm(2, 8);
            var x = Tensor.Randn(new long[] { 2, 3, 6, 6 });
            using (Autocast.Enable(DeviceType.Cpu))
            {
                var y = conv.Call(x);
                Assert.AreEqual(DType.BFloat16, y.DType);
                // libtorch 1.13's CPU kernels refuse a bfloat16 input with float32 weights; the norms run in float32,
                // as CUDA autocast runs them, and agree with the float32 norm of the same (rounded) activation
                var ln = layerNorm.Call(y.Permute(0, 2, 3, 1));
                var gn = groupNorm.Call(y);
                Assert.AreEqual(DType.Float32, ln.DType);
                Assert.AreEqual(DType.Float32, gn.DType);
                Assert.AreEqual(0, gn.Sub(F.GroupNorm(y.To(DType.Float32), 2, groupNorm.Weight, groupNorm.Bias)).Abs().Max().ToDouble());
            }
        }
        // One bfloat16 training step of each family's smallest variant on the CPU (--bf16 on a CPU machine).
        // (TransNeXt's tables are built for its 224 px; the others take a small image)
        foreach (var (variant, size) in new[] { ("transxnet_t", 64L), ("transnext_micro", 224L), ("smt_t", 64L), ("mixformer_b0", 64L) })
        {
            using var scope = TensorScope.Begin();
            TorchRuntime.ManualSeed(5);
            using var model = MLNetExt.Vision.Backbones.Create(variant, 3);
            model.Train();
            Tensor loss;
            using (Autocast.Enable(DeviceType.Cpu))
                loss = F.CrossEntropy(model.Call(Tensor.Randn(new long[] { 2, 3, size, size })), Tensor.From(new long[] { 0, 2 }, 2));
            loss.Backward();
            Assert.IsTrue(double.IsFinite(loss.ToDouble()), variant);
        }
    }

    [TestMethod]
    public void Autocast_RejectsNonReducedTypes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Autocast.Enable(DeviceType.Cpu, DType.Float32));
        StringAssert.Contains(e.Message, "float32");
    }
}

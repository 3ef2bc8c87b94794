using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Tests.Engine;

[TestClass]
public sealed class RuntimeTests
{
    [TestMethod]
    public void ReportsVersionThreadsAndBlas()
    {
        StringAssert.StartsWith(TorchRuntime.Version, "1.13");
        Assert.IsGreaterThanOrEqualTo(1, TorchRuntime.Threads);
        int before = TorchRuntime.Threads;
        TorchRuntime.Threads = 1;
        Assert.AreEqual(1, TorchRuntime.Threads);
        TorchRuntime.Threads = before;
        StringAssert.Contains(TorchRuntime.BlasLibrary, "openblas", "libopenblas0-pthread must provide libblas.so.3");
        StringAssert.Contains(TorchRuntime.BuildConfig, "PyTorch built with");
    }

    [TestMethod]
    public void UsesTheOpenMpBuildOfOpenBlas_WhateverTheSystemAlternative()
    {
        // tools/setup.sh installs libopenblas0-openmp beside Debian's default pthread build (which stays the system's
        // libblas.so.3); the loader must hand libtorch the OpenMP one, and only that one.
        Assert.IsTrue(Directory.Exists(Native.OpenMpBlasFolder), $"{Native.OpenMpBlasFolder} is missing: run tools/setup.sh");
        var mapped = TorchRuntime.BlasLibrary;
        StringAssert.Contains(mapped, "/openblas-openmp/", $"mapped BLAS: {mapped}");
        Assert.IsFalse(mapped.Contains("/openblas-pthread/"), $"two OpenBLAS builds mapped: {mapped}");
        Assert.IsNull(TorchRuntime.BlasAdvice, "no hint when the OpenMP build is in use");
        // the hint: only for the pthread build, and not when MLNETEXT_BLAS=system asked for it
        const string pthread = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so, /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";
        StringAssert.Contains(TorchRuntime.AdviseOnBlas(pthread, null), "apt-get install libopenblas0-openmp");
        StringAssert.Contains(TorchRuntime.AdviseOnBlas(pthread, "openmp"), "apt-get install libopenblas0-openmp");
        Assert.IsNull(TorchRuntime.AdviseOnBlas(pthread, "system"));
        Assert.IsNull(TorchRuntime.AdviseOnBlas(mapped, null));
        Assert.IsNull(TorchRuntime.AdviseOnBlas("unknown", null));
        // and it computes: a product large enough for OpenBLAS to split across threads
        using var scope = TensorScope.Begin();
        var a = Tensor.Ones(new long[] { 256, 512 });
        var b = Tensor.Ones(new long[] { 512, 128 });
        var product = a.Mm(b);
        Assert.AreEqual(512f, product.Min().ToArray<float>()[0]);
        Assert.AreEqual(512f, product.Max().ToArray<float>()[0]);
    }

    [TestMethod]
    public void OperatorProfiler_CountsForwardAndBackwardOperators()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.Ones(new long[] { 64, 32 }).RequiresGrad_();
        var b = Tensor.Ones(new long[] { 32, 16 });
        OperatorProfiler.Start();
        for (int i = 0; i < 3; i++) a.Mm(b).Sum().Backward();
        var profile = OperatorProfiler.Stop().ToDictionary(t => t.Name);
        Assert.AreEqual(6L, profile["aten::mm"].Calls, "3 forward products and 3 in backward (the gradient times b^T)");
        Assert.IsTrue(profile.ContainsKey("MmBackward0"), "backward nodes are recorded: " + string.Join(", ", profile.Keys));
        foreach (var t in profile.Values)
            Assert.IsTrue(t.SelfMicroseconds >= 0 && t.TotalMicroseconds >= t.SelfMicroseconds - 1e-6, $"{t.Name}: self {t.SelfMicroseconds}, total {t.TotalMicroseconds}");
        var e = Assert.ThrowsExactly<TorchException>(() => OperatorProfiler.Stop());
        StringAssert.Contains(e.Message, "profiler_stop");
    }

    [TestMethod]
    public void CudaQueriesAnswerWithoutCuda()
    {
        // The CPU build reports no devices; on a CUDA build this only checks consistency.
        Assert.AreEqual(TorchRuntime.CudaDeviceCount > 0, TorchRuntime.CudaIsAvailable);
    }

    [TestMethod]
    [DoNotParallelize] // process-wide libtorch state
    public void CudnnBenchmark_IsLibtorchsGlobalSwitch()
    {
        bool before = TorchRuntime.CudnnBenchmark;   // off unless a CUDA training ran in this process
        try
        {
            TorchRuntime.CudnnBenchmark = true;
            Assert.IsTrue(TorchRuntime.CudnnBenchmark);
            // nothing changes on the CPU
            using var scope = TensorScope.Begin();
            TorchRuntime.ManualSeed(1);
            var x = Tensor.Randn(new long[] { 1, 2, 5, 5 });
            var w = Tensor.Randn(new long[] { 3, 2, 3, 3 });
            var on = F.Conv2d(x, w, null).ToArray<float>();
            TorchRuntime.CudnnBenchmark = false;
            Assert.IsFalse(TorchRuntime.CudnnBenchmark);
            CollectionAssert.AreEqual(on, F.Conv2d(x, w, null).ToArray<float>());
        }
        finally { TorchRuntime.CudnnBenchmark = before; }
    }

    [TestMethod]
    public void DeviceRequestsFailClearlyWithoutCuda()
    {
        using var scope = TensorScope.Begin();
        var cpu = Tensor.Zeros(new long[] { 2 });
        if (TorchRuntime.CudaIsAvailable)
        {
            Assert.AreEqual(Device.Cuda(0), cpu.To(Device.Cuda(0)).Device);
            return;
        }
        var e = Assert.ThrowsExactly<TorchException>(() => cpu.To(Device.Cuda(1)));
        StringAssert.Contains(e.Message, "aten::to.device");
        StringAssert.Contains(e.Message, "device=cuda:1");
        StringAssert.Contains(e.Message, "no CUDA support");
        Assert.DoesNotContain("registered at", e.Message, "the kernel registration dump is cut");
        var e2 = Assert.ThrowsExactly<FormatException>(() => Device.Parse("gpu"));
        StringAssert.Contains(e2.Message, "'gpu'");
    }

    [TestMethod]
    public void ManualSeedRepeatsDraws()
    {
        using var scope = TensorScope.Begin();
        TorchRuntime.ManualSeed(7);
        var a = Tensor.Randn(new long[] { 5 });
        TorchRuntime.ManualSeed(7);
        var b = Tensor.Randn(new long[] { 5 });
        TensorAssert.Equal(a, b, "same seed, same numbers");
    }

    [TestMethod]
    public void DataRoundTripsThroughManagedBuffers()
    {
        using var scope = TensorScope.Begin();
        var f = Tensor.FromArray<float>(new[] { 1f, 2f, 3f, 4f, 5f, 6f }, new long[] { 2, 3 });
        CollectionAssert.AreEqual(new long[] { 2, 3 }, f.Shape);
        CollectionAssert.AreEqual(new long[] { 3, 1 }, f.Strides);
        var t = f.Transpose(0, 1);
        Assert.IsFalse(t.IsContiguous);
        CollectionAssert.AreEqual(new[] { 1f, 4f, 2f, 5f, 3f, 6f }, t.ToArray<float>(), "non-contiguous views copy out in row-major order");
        CollectionAssert.AreEqual(new long[] { 1, 2 }, Tensor.FromArray<long>(new long[] { 1, 2 }, new long[] { 2 }).ToArray<long>());
        CollectionAssert.AreEqual(new[] { true, false }, Tensor.FromArray<bool>(new[] { true, false }, new long[] { 2 }).ToArray<bool>());
        CollectionAssert.AreEqual(new byte[] { 0, 255 }, Tensor.FromArray<byte>(new byte[] { 0, 255 }, new long[] { 2 }).ToArray<byte>());
        CollectionAssert.AreEqual(new[] { 7, -1 }, Tensor.FromArray<int>(new[] { 7, -1 }, new long[] { 2 }).ToArray<int>());
        var h = Tensor.FromArray<Half>(new[] { (Half)1.5f, (Half)(-2f) }, new long[] { 2 });
        Assert.AreEqual(DType.Float16, h.DType);
        CollectionAssert.AreEqual(new[] { 1.5f, -2f }, h.To(DType.Float32).ToArray<float>());
        var bf = f.To(DType.BFloat16);
        Assert.AreEqual(DType.BFloat16, bf.DType);
        CollectionAssert.AreEqual(new[] { 1f, 2f, 3f, 4f, 5f, 6f }, bf.ToArray<BFloat16>().Select(v => v.ToSingle()).ToArray());
        Assert.AreEqual(BFloat16.FromSingle(3.14159f).Bits, bf.Mul(0).Add(3.14159).ToArray<BFloat16>()[0].Bits, "bf16 rounding matches torch");
        Assert.AreEqual(21.0, f.Sum().ToDouble());
        Assert.AreEqual(6L, f.Argmax().ToInt64() + 1);
    }

    [TestMethod]
    public void BadBuffersAreRejectedWithSizes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Tensor.FromArray<float>(new float[5], new long[] { 2, 3 }));
        StringAssert.Contains(e.Message, "6 elements but 5");
        using var t = Tensor.Zeros(new long[] { 2 }, DType.Float64);
        var e2 = Assert.ThrowsExactly<InvalidOperationException>(() => t.ToArray<float>());
        StringAssert.Contains(e2.Message, "float64");
    }

    [TestMethod]
    public void OperatorErrorsNameTheOpAndShapes()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.Zeros(new long[] { 2, 3 });
        var b = Tensor.Zeros(new long[] { 4, 5 });
        var e = Assert.ThrowsExactly<TorchException>(() => a.Matmul(b));
        StringAssert.Contains(e.Message, "aten::matmul");
        StringAssert.Contains(e.Message, "float32[2, 3]");
        StringAssert.Contains(e.Message, "float32[4, 5]");
        var w = Tensor.Zeros(new long[] { 4, 3, 3, 3 }, DType.Float64);
        var x = Tensor.Zeros(new long[] { 1, 3, 8, 8 });
        var e2 = Assert.ThrowsExactly<TorchException>(() => F.Conv2d(x, w));
        StringAssert.Contains(e2.Message, "aten::conv2d");
        StringAssert.Contains(e2.Message, "float64[4, 3, 3, 3]");
        Assert.DoesNotContain("frame #", e2.Message, "no C++ backtrace in user-facing messages");
        var missing = new Op("aten::no_such_op");
        var e3 = Assert.ThrowsExactly<TorchException>(() => missing.Call(a));
        StringAssert.Contains(e3.Message, "no_such_op");
    }

    [TestMethod]
    public void DispatcherFillsDefaultsAndReturnsLists()
    {
        using var scope = TensorScope.Begin();
        StringAssert.StartsWith(Ops.LayerNorm.Schema, "aten::layer_norm(Tensor input, int[] normalized_shape");
        var x = Tensor.Arange(0, 10);
        var parts = x.Split(new long[] { 3, 7 });
        Assert.HasCount(2, parts);
        CollectionAssert.AreEqual(new[] { 3f, 4f, 5f, 6f, 7f, 8f, 9f }, parts[1].ToArray<float>());
        var (values, indices) = x.View(2, 5).Max(1);
        CollectionAssert.AreEqual(new[] { 4f, 9f }, values.ToArray<float>());
        CollectionAssert.AreEqual(new long[] { 4, 4 }, indices.ToArray<long>());
        var a = Tensor.From(1f, 2f);
        TensorAssert.Equal(Ops.Add.Call(a, a, 1.0), Ops.Add.Call(a, a, Arg.Default), "Arg.Default takes the schema's alpha=1");
        var ln = Ops.LayerNorm.Call(a, new long[] { 2 }, Arg.Default, Arg.None, 1e-5);
        TensorAssert.Close(Tensor.From(-1f, 1f), ln, 1e-4, 0, "optional tensors default to None");
        var e = Assert.ThrowsExactly<TorchException>(() => Ops.Cat.Call());
        StringAssert.Contains(e.Message, "missing required argument 'tensors'");
    }
}

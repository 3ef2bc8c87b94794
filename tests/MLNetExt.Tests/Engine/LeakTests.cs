using MLNetExt.Torch;

namespace MLNetExt.Tests.Engine;

/// <summary>Native memory must be released deterministically: the garbage collector does not see it.</summary>
[TestClass]
public sealed class LeakTests
{
    static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:"))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        throw new InvalidOperationException("VmRSS not found in /proc/self/status");
    }

    const int Iterations = 10_000;
    static readonly long[] FourMegabytes = { 1024, 1024 };  // float32

    static void Loop(int iterations, Action body)
    {
        for (int i = 0; i < iterations; i++) body();
    }

    static void AssertFlat(string what, Action body)
    {
        long live0 = Tensor.LiveCount;
        Loop(200, body);  // warm up allocator and JIT before the baseline
        long rss0 = RssBytes();
        Loop(Iterations, body);
        long rss1 = RssBytes();
        Assert.AreEqual(live0, Tensor.LiveCount, $"{what}: live tensor count changed over {Iterations} iterations");
        long growthMb = (rss1 - rss0) >> 20;
        // Each iteration allocates 8+ MB; a leak of one tensor per iteration would add ~40 GB.
        Assert.IsLessThan(64L, growthMb, $"{what}: RSS grew by {growthMb} MB over {Iterations} iterations of 4 MB tensors");
    }

    [TestMethod, TestCategory("Soak")]
    public void ExplicitDisposeKeepsMemoryFlat() => AssertFlat("using", () =>
    {
        using var a = Tensor.Zeros(FourMegabytes);
        using var b = a.Add(1.0);
    });

    [TestMethod, TestCategory("Soak")]
    public void ScopeKeepsMemoryFlat() => AssertFlat("TensorScope", () =>
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.Zeros(FourMegabytes).RequiresGrad_();
        var b = (a * 2.0).Sum();
        b.Backward();
        _ = a.Grad;
    });

    [TestMethod]
    public void FinalizerIsOnlyABackstop()
    {
        long live0 = Tensor.LiveCount;
        for (int i = 0; i < 100; i++) _ = Tensor.Zeros(new long[] { 16 });
        Assert.IsGreaterThanOrEqualTo(live0, Tensor.LiveCount);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.AreEqual(live0, Tensor.LiveCount, "finalizers release abandoned tensors eventually");
    }
}

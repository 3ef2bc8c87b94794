using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Engine;

/// <summary>Data loaders will create tensors on worker threads: scopes, grad mode and the live counter are
/// per thread or atomic, and concurrent ops give the same numbers as sequential ones.</summary>
[TestClass]
public sealed class ThreadingTests
{
    static double Work(int seed)
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Arange(0, 64).View(1, 1, 8, 8).Add(seed).RequiresGrad_();
        var w = Tensor.Ones(new long[] { 2, 1, 3, 3 });
        var y = F.Gelu(F.Conv2d(x, w, padding: 1)).Sum();
        y.Backward();
        return y.ToDouble() + x.Grad!.Sum().ToDouble();
    }

    [TestMethod]
    public void ConcurrentScopesAndAutogradStayIndependent()
    {
        long live0 = Tensor.LiveCount;
        var expected = Enumerable.Range(0, 16).Select(Work).ToArray();
        var actual = new double[16];
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int repeat = 0; repeat < 20; repeat++) actual[i] = Work(i);
        });
        CollectionAssert.AreEqual(expected, actual);
        Assert.AreEqual(live0, Tensor.LiveCount, "every worker's scope freed its tensors");
    }

    [TestMethod]
    public void GradModeIsPerThread()
    {
        using (Autograd.NoGrad())
        {
            bool other = false;
            var thread = new Thread(() => other = Autograd.IsGradEnabled);  // a real thread: Task.Result may inline
            thread.Start();
            thread.Join();
            Assert.IsTrue(other, "no_grad on this thread does not leak into another");
            Assert.IsFalse(Autograd.IsGradEnabled);
        }
    }
}

using MLNetExt.Torch;

namespace MLNetExt.Tests.Engine;

[TestClass]
public sealed class ScopeTests
{
    [TestMethod]
    public void ScopeFreesTemporariesAndKeepsMovedResults()
    {
        long live0 = Tensor.LiveCount;
        Tensor kept;
        using (TensorScope.Begin())
        {
            var a = Tensor.Ones(new long[] { 3 });
            var b = a * 2.0;
            kept = (b + 1.0).MoveToOuterScope();
            Assert.AreEqual(live0 + 3, Tensor.LiveCount);
        }
        Assert.AreEqual(live0 + 1, Tensor.LiveCount);
        CollectionAssert.AreEqual(new[] { 3f, 3f, 3f }, kept.ToArray<float>());
        kept.Dispose();
        Assert.AreEqual(live0, Tensor.LiveCount);
    }

    [TestMethod]
    public void NestedScopesMoveOneLevelAtATime()
    {
        long live0 = Tensor.LiveCount;
        using (var outer = TensorScope.Begin())
        {
            Tensor inner;
            using (TensorScope.Begin())
            {
                inner = Tensor.Zeros(new long[] { 2 }).MoveToOuterScope();
                _ = Tensor.Zeros(new long[] { 2 });
            }
            Assert.IsFalse(inner.IsDisposed, "moved to the outer scope");
            Assert.AreEqual(1, outer.Count);
        }
        Assert.AreEqual(live0, Tensor.LiveCount);
    }

    [TestMethod]
    public void DisposingOutOfOrderIsAnError()
    {
        var outer = TensorScope.Begin();
        var inner = TensorScope.Begin();
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => outer.Dispose());
        StringAssert.Contains(e.Message, "innermost first");
        inner.Dispose();
        outer.Dispose();
    }

    [TestMethod]
    public void DisposedTensorUseNamesTheProblem()
    {
        var t = Tensor.Zeros(new long[] { 2, 3 });
        _ = t.Shape;
        t.Dispose();
        t.Dispose();  // twice is fine
        var e = Assert.ThrowsExactly<ObjectDisposedException>(() => t.Add(1.0));
        StringAssert.Contains(e.Message, "float32[2, 3]");
        StringAssert.Contains(e.Message, "disposed");
    }

    [TestMethod]
    public void NoGradAndInferenceModeAreRestored()
    {
        Assert.IsTrue(Autograd.IsGradEnabled);
        using (Autograd.NoGrad())
        {
            Assert.IsFalse(Autograd.IsGradEnabled);
            using var x = Tensor.Ones(new long[] { 2 }).RequiresGrad_();
            using var y = x * 2.0;
            Assert.IsFalse(y.RequiresGrad, "no graph is recorded under no_grad");
            using (Autograd.EnableGrad()) Assert.IsTrue(Autograd.IsGradEnabled);
        }
        Assert.IsTrue(Autograd.IsGradEnabled);
        using (Autograd.InferenceMode())
        {
            using var x = Tensor.Ones(new long[] { 2 }).RequiresGrad_();
            using var y = x * 2.0;
            Assert.IsFalse(y.RequiresGrad);
        }
        Assert.IsTrue(Autograd.IsGradEnabled);
    }
}

using MLNetExt.Torch;

namespace MLNetExt.Tests.Engine;

[TestClass]
public sealed class AutogradTests
{
    [TestMethod]
    public void BackwardWithExplicitGradientAndSeveralOutputs()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.From(1f, 2f, 3f).RequiresGrad_();
        var y = x * x;                                   // dy/dx = 2x
        y.Backward(Tensor.From(1f, 0.5f, 0f));
        CollectionAssert.AreEqual(new[] { 2f, 2f, 0f }, x.Grad!.ToArray<float>());

        x.Grad = null;
        var a = x.Sum();
        var b = (x * 3.0).Sum();
        Autograd.Backward(new[] { a, b });
        CollectionAssert.AreEqual(new[] { 4f, 4f, 4f }, x.Grad!.ToArray<float>(), "gradients of both outputs accumulate");
    }

    [TestMethod]
    public void RetainGraphAllowsASecondBackwardAndItsAbsenceIsAClearError()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.From(2f).RequiresGrad_();
        var y = x.Exp() * x;
        y.Backward(retainGraph: true);
        y.Backward();
        Assert.AreEqual(2 * 3 * Math.Exp(2), x.Grad!.ToDouble(), 1e-4, "two backward passes accumulate");
        var e = Assert.ThrowsExactly<TorchException>(() => y.Backward());
        StringAssert.Contains(e.Message, "backward");
        StringAssert.Contains(e.Message, "second time");
    }

    [TestMethod]
    public void CreateGraphGivesSecondDerivatives()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.From(3.0f).RequiresGrad_();
        var y = x * x * x;                               // y' = 3x², y'' = 6x
        y.Backward(createGraph: true);
        var dy = x.Grad!;
        Assert.AreEqual(27.0, dy.ToDouble(), 1e-5);
        Assert.IsTrue(dy.RequiresGrad, "the gradient is itself differentiable");
        x.Grad = null;
        dy.Backward();
        Assert.AreEqual(18.0, x.Grad!.ToDouble(), 1e-5);
    }

    [TestMethod]
    public void DetachAndLeafFlags()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.From(1f, 2f).RequiresGrad_();
        var y = x * 2.0;
        Assert.IsTrue(x.IsLeaf);
        Assert.IsFalse(y.IsLeaf);
        var d = y.Detach();
        Assert.IsFalse(d.RequiresGrad);
        Assert.IsTrue(d.IsLeaf);
        var e = Assert.ThrowsExactly<TorchException>(() => d.Sum().Backward());
        StringAssert.Contains(e.Message, "does not require grad");
    }
}

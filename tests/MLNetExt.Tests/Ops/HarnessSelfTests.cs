using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>The checking machinery itself must reject wrong values and wrong gradients.</summary>
[TestClass, TestCategory("Parity")]
public sealed class HarnessSelfTests : OpsTestBase
{
    [TestMethod]
    public void Verify_rejects_a_wrong_forward()
    {
        using var scope = TensorScope.Begin();
        var c = OpCase.Load("unary_exp");
        Assert.ThrowsExactly<AssertFailedException>(() => c.Verify(c.In(0).Exp() * 1.001));
    }

    [TestMethod]
    public void Verify_rejects_a_right_forward_with_a_wrong_gradient()
    {
        using var scope = TensorScope.Begin();
        var c = OpCase.Load("unary_exp");
        var x = c.In(0);
        // exp(x) in value, but d/dx = 1
        var y = x.Detach().Exp() + (x - x.Detach());
        var e = Assert.ThrowsExactly<AssertFailedException>(() => c.Verify(y));
        StringAssert.Contains(e.Message, "unary_exp.grad0");
    }

    [TestMethod]
    public void Verify_rejects_a_wrong_output_count_and_dtype()
    {
        using var scope = TensorScope.Begin();
        var c = OpCase.Load("max_dim");
        var (values, indices) = c.In(0).Max(1);
        Assert.ThrowsExactly<AssertFailedException>(() => c.Verify(values));
        Assert.ThrowsExactly<AssertFailedException>(() => c.Verify(values, indices.To(DType.Float32)));
    }

    [TestMethod]
    public void GradCheck_rejects_a_wrong_gradient()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.From(new[] { 0.5, -1.5, 2.0 }, 3);
        GradCheck.Check("x^2", t => t[0] * t[0], [x]);
        // autograd sees x * const, i.e. half the true derivative
        Assert.ThrowsExactly<AssertFailedException>(() => GradCheck.Check("x * detach(x)", t => t[0] * t[0].Detach(), [x]));
    }
}

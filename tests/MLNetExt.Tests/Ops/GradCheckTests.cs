using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Autograd of composite functions checked against finite differences in float64.</summary>
[TestClass, TestCategory("Parity")]
public sealed class GradCheckTests : OpsTestBase
{
    /// <summary>Deterministic float64 N(0, 1) values (the generator is reseeded).</summary>
    static Tensor Randn(ulong seed, params long[] shape)
    {
        TorchRuntime.ManualSeed(seed);
        return Tensor.Randn(shape, DType.Float64);
    }

    [TestMethod]
    [DataRow(2.0, 1)]
    [DataRow(1.0, -1)]
    [DataRow(3.0, 0)]
    public void Normalize(double p, int dim)
    {
        using var scope = TensorScope.Begin();
        GradCheck.Check($"F.Normalize(p={p}, dim={dim})", x => F.Normalize(x[0], p, dim), [Randn(1, 3, 4)]);
    }

    [TestMethod]
    public void Normalize_below_eps()
    {
        using var scope = TensorScope.Begin();
        // every row norm is below eps = 0.5, so the denominator is the constant eps
        GradCheck.Check("F.Normalize(eps=0.5)", x => F.Normalize(x[0], eps: 0.5), [Randn(2, 3, 4) * 0.05]);
    }

    [TestMethod]
    [DataRow(false, 0.3)]
    [DataRow(true, 0.0)]
    public void DropPath_identity(bool training, double p)
    {
        using var scope = TensorScope.Begin();
        GradCheck.Check($"F.DropPath(p={p}, training={training})", x => F.DropPath(x[0], p, training) * x[0], [Randn(3, 4, 2, 3)]);
    }

    [TestMethod]
    public void DropPath_training_with_a_fixed_seed()
    {
        using var scope = TensorScope.Begin();
        var x = Randn(4, 8, 3);
        // the seed gives a mask with dropped and kept samples, so both kinds of gradient are checked
        TorchRuntime.ManualSeed(11);
        var kept = F.DropPath(Tensor.Ones([8, 1]), 0.5, training: true).Ne(0).Sum().ToInt64();
        Assert.IsTrue(kept is > 0 and < 8, $"{kept} of 8 samples kept");
        GradCheck.Check("F.DropPath(p=0.5, training)", t => F.DropPath(t[0], 0.5, training: true).Square(), [x],
                        beforeEachEvaluation: () => TorchRuntime.ManualSeed(11));
    }

    [TestMethod]
    public void Conv_groupnorm_gelu_pool_linear_cross_entropy_chain()
    {
        using var scope = TensorScope.Begin();
        var inputs = new[]
        {
            Randn(10, 2, 3, 5, 5), Randn(11, 4, 3, 3, 3) * 0.3, Randn(12, 4) * 0.1, Randn(13, 4) * 0.1 + 1, Randn(14, 4) * 0.1,
            Randn(15, 3, 16) * 0.3, Randn(16, 3) * 0.1, Tensor.From(new long[] { 2, 0 }, 2),
        };
        GradCheck.Check("chain", t => LossTests.Chain(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]), inputs);
    }

    [TestMethod]
    public void Softplus_layer_norm_composite()
    {
        using var scope = TensorScope.Begin();
        // x @ w spans softplus's threshold (beta * v > 3 takes the linear branch)
        var inputs = new[] { Randn(20, 4, 3) * 2, Randn(21, 3, 5), Randn(22, 5), Randn(23, 5) };
        GradCheck.Check("layer_norm(softplus(x @ w) * x @ w)", t =>
        {
            var v = t[0].Matmul(t[1]);
            var s = F.Softplus(v, beta: 2, threshold: 3);
            return F.Gelu(F.LayerNorm(s * v, [5], t[2], t[3]), tanhApproximation: true);
        }, inputs);
    }

    [TestMethod]
    public void Silu_group_norm_batch_norm_composite()
    {
        using var scope = TensorScope.Begin();
        var inputs = new[] { Randn(30, 3, 4, 2, 2), Randn(31, 4), Randn(32, 4), Randn(33, 4), Randn(34, 4) };
        GradCheck.Check("batch_norm(silu(group_norm(x)))", t =>
        {
            var h = F.Silu(F.GroupNorm(t[0], 2, t[1], t[2]));
            return F.BatchNorm(h, null, null, t[3], t[4], training: true);
        }, inputs);
    }

    [TestMethod]
    public void Cross_entropy_with_probability_targets_and_weights()
    {
        using var scope = TensorScope.Begin();
        var inputs = new[] { Randn(40, 4, 5), Randn(41, 4, 5).Softmax(1), Randn(42, 5).Abs() + 0.5 };
        GradCheck.Check("cross_entropy(probabilities, weight, label_smoothing)",
                        t => F.CrossEntropy(t[0], t[1], t[2], labelSmoothing: 0.1), inputs);
    }

    [TestMethod]
    public void Bicubic_interpolation_and_reflect_pad()
    {
        using var scope = TensorScope.Begin();
        GradCheck.Check("interpolate(pad(x, reflect), bicubic)",
                        t => F.Interpolate(F.Pad(t[0], [1, 2, 2, 1], "reflect"), 0.7, InterpolationMode.Bicubic),
                        [Randn(50, 1, 2, 4, 5)]);
    }
}

using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>layer_norm, group_norm and batch_norm (training: output and updated running statistics; eval)
/// against torch 1.13.</summary>
[TestClass, TestCategory("Parity")]
public sealed class NormalizationTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["layer_norm_affine"] = c => [F.LayerNorm(c.In(0), [3, 4], c.In(1), c.In(2))],
        ["layer_norm_plain"] = c => [F.LayerNorm(c.In(0), [5], eps: 1e-3)],
        ["layer_norm_f64"] = c => [F.LayerNorm(c.In(0), [4], c.In(1), c.In(2))],
        ["group_norm_1"] = c => [F.GroupNorm(c.In(0), 1, c.In(1), c.In(2))],
        ["group_norm_3"] = c => [F.GroupNorm(c.In(0), 3, c.In(1), c.In(2), eps: 1e-4)],
        ["group_norm_per_channel"] = c => [F.GroupNorm(c.In(0), 4)],
        // in1/in2 are the running mean and variance, updated in place: compared after the forward.
        ["batch_norm_train"] = c =>
        [
            F.BatchNorm(c.In(0), c.In(1), c.In(2), c.In(3), c.In(4), training: true, momentum: 0.2, eps: 1e-5),
            c.In(1), c.In(2),
        ],
        ["batch_norm_eval"] = c => [F.BatchNorm(c.In(0), c.In(1), c.In(2), c.In(3), c.In(4), training: false, eps: 1e-3)],
        ["batch_norm_train_nostats"] = c => [F.BatchNorm(c.In(0), null, null, training: true)],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod]
    public void Batch_norm_eval_leaves_running_statistics_alone()
    {
        using var scope = TensorScope.Begin();
        var c = OpCase.Load("batch_norm_eval");
        var (mean, runVar) = (c.In(1), c.In(2));
        F.BatchNorm(c.In(0), mean, runVar, c.In(3), c.In(4), training: false, eps: 1e-3);
        TensorAssert.Equal(c.Expected("in1"), mean, "running mean");
        TensorAssert.Equal(c.Expected("in2"), runVar, "running var");
    }
}

/// <summary>Activations, softplus's threshold branch and F.Normalize against torch 1.13.</summary>
[TestClass, TestCategory("Parity")]
public sealed class ActivationTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["gelu_exact"] = c => [F.Gelu(c.In(0))],
        ["gelu_tanh"] = c => [F.Gelu(c.In(0), tanhApproximation: true)],
        ["silu"] = c => [F.Silu(c.In(0))],
        ["sigmoid"] = c => [F.Sigmoid(c.In(0))],
        ["relu"] = c => [F.Relu(c.In(0))],
        ["hardswish"] = c => [F.Hardswish(c.In(0))],
        ["leaky_relu"] = c => [F.LeakyRelu(c.In(0), 0.2)],
        ["softplus_default"] = c => [F.Softplus(c.In(0))],
        ["softplus_beta_threshold"] = c => [F.Softplus(c.In(0), beta: 2, threshold: 5)],
        ["softplus_f64"] = c => [F.Softplus(c.In(0), beta: 0.5, threshold: 3)],
        ["normalize_p2"] = c => [F.Normalize(c.In(0))],
        ["normalize_p1_last"] = c => [F.Normalize(c.In(0), p: 1, dim: -1)],
        ["normalize_eps"] = c => [F.Normalize(c.In(0), dim: 0, eps: 0.5)],
    };

    /// <summary>The Tensor methods that duplicate F's.</summary>
    internal static readonly CaseTable TensorMethods = new()
    {
        ["sigmoid"] = c => [c.In(0).Sigmoid()],
        ["relu"] = c => [c.In(0).Relu()],
        ["softmax_dim1"] = c => [F.Softmax(c.In(0), 1)],
        ["log_softmax_last"] = c => [F.LogSoftmax(c.In(0), -1)],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;
    public static IEnumerable<object[]> TensorMethodNames => TensorMethods.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod, DynamicData(nameof(TensorMethodNames))]
    public void Alternative_spelling_matches_torch(string name) => RunCase(TensorMethods, name);

    /// <summary>F.Gelu runs a channels-last input as its contiguous (B, H, W, C) permutation (libtorch 1.13's kernel
    /// is slow on channels-last strides): same values and gradients as on the contiguous input, output channels-last.</summary>
    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void Gelu_on_a_channels_last_input_matches_the_contiguous_one_and_stays_channels_last(bool tanh)
    {
        using var scope = TensorScope.Begin();
        TorchRuntime.ManualSeed(3);
        var x = Tensor.Randn([2, 5, 3, 4]).Mul(2.0);
        var g = Tensor.Randn([2, 5, 3, 4]);
        var a = x.Clone().RequiresGrad_();
        var b = x.Clone().RequiresGrad_();
        var ya = F.Gelu(a, tanh);
        var yb = F.Gelu(b.ChannelsLast(), tanh);
        Assert.IsTrue(b.ChannelsLast().IsChannelsLast && !a.IsChannelsLast, "the layout the test relies on");
        Assert.IsTrue(yb.IsChannelsLast, "GELU of a channels-last tensor is channels-last");
        TensorAssert.Close(ya, yb, 1e-7, 1e-6, "values");
        ya.Mul(g).Sum().Backward();
        yb.Mul(g.ChannelsLast()).Sum().Backward();
        TensorAssert.Close(a.Grad!, b.Grad!, 1e-7, 1e-6, "gradients");
    }

    [TestMethod]
    public void IsChannelsLast_only_for_dense_channels_last_4d_tensors()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Zeros([2, 3, 4, 5]);
        Assert.IsFalse(x.IsChannelsLast, "contiguous");
        Assert.IsTrue(x.ChannelsLast().IsChannelsLast, "channels-last");
        Assert.IsTrue(x.Permute(0, 2, 3, 1).Contiguous().Permute(0, 3, 1, 2).IsChannelsLast, "the NHWC tensor seen as NCHW");
        Assert.IsFalse(x.ChannelsLast().Narrow(1, 0, 2).IsChannelsLast, "a channel slice is not dense");
        Assert.IsFalse(x.Transpose(2, 3).IsChannelsLast, "other strides");
        Assert.IsFalse(Tensor.Zeros([2, 1, 4, 5]).ChannelsLast().IsChannelsLast, "one channel: both layouts at once");
        Assert.IsFalse(Tensor.Zeros([3, 4, 5]).IsChannelsLast, "3-D");
    }

    [TestMethod]
    public void Softplus_takes_the_linear_branch_above_the_threshold()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.From(new[] { 2.6, 10.0, -1.0 }, 3);
        var y = F.Softplus(x, beta: 2, threshold: 5).ToArray<double>();
        Assert.AreEqual(2.6, y[0], 0, "beta*x = 5.2 > threshold: identity");
        Assert.AreEqual(10.0, y[1], 0);
        Assert.AreEqual(Math.Log(1 + Math.Exp(-2.0)) / 2, y[2], 1e-15);
    }
}

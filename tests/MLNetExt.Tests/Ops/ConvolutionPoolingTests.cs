using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Matrix products, linear, convolutions, pooling, im2col and padding against torch 1.13.</summary>
[TestClass, TestCategory("Parity")]
public sealed class ConvolutionPoolingTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["matmul_2d"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_batched"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_broadcast"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_batch_by_2d"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_vec_mat"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_mat_vec"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_dot"] = c => [c.In(0).Matmul(c.In(1))],
        ["matmul_f64"] = c => [c.In(0).Matmul(c.In(1))],
        ["bmm"] = c => [c.In(0).Bmm(c.In(1))],
        ["mm"] = c => [c.In(0).Mm(c.In(1))],
        ["linear_bias"] = c => [F.Linear(c.In(0), c.In(1), c.In(2))],
        ["linear_nobias"] = c => [F.Linear(c.In(0), c.In(1))],
        ["linear_3d"] = c => [F.Linear(c.In(0), c.In(1), c.In(2))],

        ["conv2d_plain"] = c => [F.Conv2d(c.In(0), c.In(1))],
        ["conv2d_grouped"] = c => [F.Conv2d(c.In(0), c.In(1), c.In(2), stride: 2, padding: 1, dilation: 2, groups: 2)],
        ["conv2d_grouped_s1"] = c => [F.Conv2d(c.In(0), c.In(1), c.In(2), stride: 1, padding: 2, dilation: 1, groups: 3)],
        ["conv2d_depthwise"] = c => [F.Conv2d(c.In(0), c.In(1), c.In(2), padding: 1, groups: 3)],
        ["conv2d_depthwise_mult"] = c => [F.Conv2d(c.In(0), c.In(1), c.In(2), stride: 2, padding: 2, dilation: 2, groups: 3)],
        ["conv2d_asym"] = c => [F.Conv2d(c.In(0), c.In(1), c.In(2), [1, 2], [0, 1], [2, 1], 1)],
        ["conv2d_f64"] = c => [F.Conv2d(c.In(0), c.In(1), c.In(2), padding: 1, groups: 2)],

        ["avg_pool2d_k2"] = c => [F.AvgPool2d(c.In(0), 2)],
        ["avg_pool2d_k3s2p1"] = c => [F.AvgPool2d(c.In(0), 3, 2, 1)],
        ["avg_pool2d_exclude_pad"] = c => [F.AvgPool2d(c.In(0), 3, 2, 1, countIncludePad: false)],
        ["avg_pool2d_ceil"] = c => [F.AvgPool2d(c.In(0), 2, 2, 0, ceilMode: true)],
        ["max_pool2d_k2"] = c => [F.MaxPool2d(c.In(0), 2)],
        ["max_pool2d_k3s2p1"] = c => [F.MaxPool2d(c.In(0), 3, 2, 1)],
        ["max_pool2d_dilated"] = c => [F.MaxPool2d(c.In(0), 2, 1, 0, dilation: 2)],
        ["max_pool2d_ceil"] = c => [F.MaxPool2d(c.In(0), 2, 2, 0, ceilMode: true)],
        ["adaptive_avg_7to3"] = c => [F.AdaptiveAvgPool2d(c.In(0), 3, 3)],
        ["adaptive_avg_10to4"] = c => [F.AdaptiveAvgPool2d(c.In(0), 4, 4)],
        ["adaptive_avg_7x10to3x4"] = c => [F.AdaptiveAvgPool2d(c.In(0), 3, 4)],
        ["adaptive_avg_to1"] = c => [F.AdaptiveAvgPool2d(c.In(0), 1, 1)],
        ["adaptive_avg_up"] = c => [F.AdaptiveAvgPool2d(c.In(0), 5, 3)],
        ["adaptive_max_7to3"] = c => [F.AdaptiveMaxPool2d(c.In(0), 3, 3)],
        ["adaptive_max_10to4"] = c => [F.AdaptiveMaxPool2d(c.In(0), 4, 4)],
        ["adaptive_max_7x10to3x4"] = c => [F.AdaptiveMaxPool2d(c.In(0), 3, 4)],

        ["im2col_k3p1"] = c => [F.Unfold(c.In(0), 3, padding: 1)],
        ["im2col_k2s2d1"] = c => [F.Unfold(c.In(0), 2, dilation: 1, padding: 0, stride: 2)],
        ["im2col_k2d2p1s2"] = c => [F.Unfold(c.In(0), 2, dilation: 2, padding: 1, stride: 2)],

        ["pad_constant"] = c => [F.Pad(c.In(0), [1, 2, 0, 1], 0.5)],
        ["pad_constant_negative"] = c => [F.Pad(c.In(0), [-1, 2, 1, -1])],
        ["pad_reflect"] = c => [F.Pad(c.In(0), [2, 1, 1, 3], "reflect")],
        ["pad_reflect_3d"] = c => [F.Pad(c.In(0), [3, 2], "reflect")],
        ["pad_replicate"] = c => [F.Pad(c.In(0), [2, 1, 1, 2], "replicate")],
        ["pad_circular"] = c => [F.Pad(c.In(0), [2, 1, 1, 2], "circular")],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod]
    public void Im2col_orders_kernel_positions_fastest()
    {
        // One channel, 2x2 kernel over a 2x3 image: column l holds the window at l, row k the kernel offset k.
        using var scope = TensorScope.Begin();
        var x = Tensor.Arange(0, 6).View(1, 1, 2, 3);
        var cols = F.Unfold(x, 2);
        CollectionAssert.AreEqual(new long[] { 1, 4, 2 }, cols.Shape);
        CollectionAssert.AreEqual(new float[] { 0, 1, 1, 2, 3, 4, 4, 5 }, cols.ToArray<float>());
    }

    /// <summary>The bridge operator equals a depthwise convolution run sample by sample, forward and backward, and
    /// names what is wrong with its arguments.</summary>
    [TestMethod]
    public void DepthwiseConv2dPerSample_IsAPerSampleDepthwiseConvolution()
    {
        using var scope = TensorScope.Begin();
        TorchRuntime.ManualSeed(7);
        var (x0, w0, b0, upstream) = (Tensor.Randn([3, 4, 9, 7]), Tensor.Randn([3, 4, 5, 5]), Tensor.Randn([3, 4]), Tensor.Randn([3, 4, 9, 7]));
        Tensor[] Leaves() => [x0.Detach().RequiresGrad_(), w0.Detach().RequiresGrad_(), b0.Detach().RequiresGrad_()];
        var (ours, loop) = (Leaves(), Leaves());
        var y = F.DepthwiseConv2dPerSample(ours[0], ours[1], ours[2], 2);
        var expected = Tensor.Cat(Enumerable.Range(0, 3).Select(i =>
            F.Conv2d(loop[0].Narrow(0, i, 1), loop[1].Select(0, i).Unsqueeze(1), loop[2].Select(0, i), padding: 2, groups: 4)).ToArray(), 0);
        TensorAssert.Equal(expected, y, "forward");
        y.Mul(upstream).Sum().Backward();
        expected.Mul(upstream).Sum().Backward();
        for (int k = 0; k < 3; k++) TensorAssert.Close(loop[k].Grad!, ours[k].Grad!, 1e-5, 1e-5, $"gradient {k}");

        var (x, w, b) = (x0, w0, b0);
        var e = Assert.ThrowsExactly<TorchException>(() => F.DepthwiseConv2dPerSample(x, w.Narrow(1, 0, 3), b, 2));
        StringAssert.Contains(e.Message, "weight must be (B, C, K, K) = (3, 4, K, K), got [3, 3, 5, 5]");
        e = Assert.ThrowsExactly<TorchException>(() => F.DepthwiseConv2dPerSample(x, w, b.Narrow(0, 0, 2), 2));
        StringAssert.Contains(e.Message, "bias must be (B, C) = (3, 4), got [2, 4]");
    }
}

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
}

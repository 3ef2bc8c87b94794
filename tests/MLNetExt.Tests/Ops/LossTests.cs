using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>cross_entropy (class indices and probabilities; reductions, label smoothing, ignore_index, class
/// weights), nll_loss and mse_loss against torch 1.13.</summary>
[TestClass, TestCategory("Parity")]
public sealed class LossTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["ce_index_mean"] = c => [F.CrossEntropy(c.In(0), c.In(1))],
        ["ce_index_sum"] = c => [F.CrossEntropy(c.In(0), c.In(1), reduction: Reduction.Sum)],
        ["ce_index_none"] = c => [F.CrossEntropy(c.In(0), c.In(1), reduction: Reduction.None)],
        ["ce_index_smooth"] = c => [F.CrossEntropy(c.In(0), c.In(1), labelSmoothing: 0.1)],
        ["ce_index_smooth_sum"] = c => [F.CrossEntropy(c.In(0), c.In(1), reduction: Reduction.Sum, labelSmoothing: 0.1)],
        ["ce_index_smooth_none"] = c => [F.CrossEntropy(c.In(0), c.In(1), reduction: Reduction.None, labelSmoothing: 0.1)],
        ["ce_index_ignore"] = c => [F.CrossEntropy(c.In(0), c.In(1))],
        ["ce_index_ignore_custom"] = c => [F.CrossEntropy(c.In(0), c.In(1), ignoreIndex: 2)],
        ["ce_index_weight"] = c => [F.CrossEntropy(c.In(0), c.In(1), c.In(2))],
        ["ce_index_weight_none"] = c => [F.CrossEntropy(c.In(0), c.In(1), c.In(2), Reduction.None)],
        ["ce_index_weight_smooth_ignore"] = c => [F.CrossEntropy(c.In(0), c.In(1), c.In(2), ignoreIndex: -100, labelSmoothing: 0.1)],
        ["ce_index_spatial"] = c => [F.CrossEntropy(c.In(0), c.In(1), labelSmoothing: 0.1)],
        ["ce_prob_mean"] = c => [F.CrossEntropy(c.In(0), c.In(1))],
        ["ce_prob_sum"] = c => [F.CrossEntropy(c.In(0), c.In(1), reduction: Reduction.Sum)],
        ["ce_prob_none_smooth"] = c => [F.CrossEntropy(c.In(0), c.In(1), reduction: Reduction.None, labelSmoothing: 0.1)],
        ["ce_prob_weight_smooth"] = c => [F.CrossEntropy(c.In(0), c.In(1), c.In(2), labelSmoothing: 0.1)],
        ["nll_mean"] = c => [F.NllLoss(c.In(0), c.In(1))],
        ["nll_sum"] = c => [F.NllLoss(c.In(0), c.In(1), reduction: Reduction.Sum)],
        ["nll_none_ignore"] = c => [F.NllLoss(c.In(0), c.In(1), reduction: Reduction.None)],
        ["nll_weight_ignore"] = c => [F.NllLoss(c.In(0), c.In(1), c.In(2), ignoreIndex: 2)],
        ["mse_mean"] = c => [F.MseLoss(c.In(0), c.In(1))],
        ["mse_sum"] = c => [F.MseLoss(c.In(0), c.In(1), Reduction.Sum)],
        ["mse_none"] = c => [F.MseLoss(c.In(0), c.In(1), Reduction.None)],
    };

    /// <summary>A conv → group_norm → gelu → adaptive pool → linear → cross_entropy(label_smoothing) chain.</summary>
    internal static readonly CaseTable Composite = new()
    {
        ["chain"] = c => [Chain(c.In(0), c.In(1), c.In(2), c.In(3), c.In(4), c.In(5), c.In(6), c.In(7))],
    };

    internal static Tensor Chain(Tensor x, Tensor w, Tensor b, Tensor gw, Tensor gb, Tensor lw, Tensor lb, Tensor target)
    {
        var h = F.Conv2d(x, w, b, padding: 1);
        h = F.GroupNorm(h, 2, gw, gb);
        h = F.Gelu(h);
        h = F.AdaptiveAvgPool2d(h, 2, 2).Flatten(1);
        h = F.Linear(h, lw, lb);
        return F.CrossEntropy(h, target, labelSmoothing: 0.1);
    }

    public static IEnumerable<object[]> CaseNames => Cases.Rows;
    public static IEnumerable<object[]> CompositeNames => Composite.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod, DynamicData(nameof(CompositeNames))]
    public void Composite_matches_torch(string name) => RunCase(Composite, name);

    [TestMethod]
    public void Label_smoothing_outside_0_1_is_rejected()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Zeros([2, 3]);
        var t = Tensor.From(new long[] { 0, 1 }, 2);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => F.CrossEntropy(x, t, labelSmoothing: 1.5));
    }
}

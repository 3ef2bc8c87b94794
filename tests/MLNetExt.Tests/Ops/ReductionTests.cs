using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Reductions, scans and softmax against torch 1.13, gradients included.</summary>
[TestClass, TestCategory("Parity")]
public sealed class ReductionTests : OpsTestBase
{
    static Tensor[] Pair((Tensor Values, Tensor Indices) r) => [r.Values, r.Indices];

    internal static readonly CaseTable Cases = new()
    {
        ["sum_all"] = c => [c.In(0).Sum()],
        ["sum_dims"] = c => [c.In(0).Sum([0, 2])],
        ["sum_keepdim"] = c => [c.In(0).Sum([1], keepDim: true)],
        ["sum_int"] = c => [c.In(0).Sum()],
        ["mean_all"] = c => [c.In(0).Mean()],
        ["mean_dims"] = c => [c.In(0).Mean([0, 2])],
        ["mean_keepdim"] = c => [c.In(0).Mean([-1], keepDim: true)],
        ["max_all"] = c => [c.In(0).Max()],
        ["min_all"] = c => [c.In(0).Min()],
        ["max_dim"] = c => Pair(c.In(0).Max(1)),
        ["max_dim_keepdim"] = c => Pair(c.In(0).Max(-1, keepDim: true)),
        ["min_dim"] = c => Pair(c.In(0).Min(2)),
        ["amax_ties"] = c => [c.In(0).Amax([1])],
        ["amax"] = c => [c.In(0).Amax([0, 2], keepDim: true)],
        ["amin"] = c => [c.In(0).Amin([1])],
        ["argmax"] = c => [c.In(0).Argmax(), c.In(0).Argmax(1), c.In(0).Argmax(2, keepDim: true)],
        ["argmin"] = c => [c.In(0).Argmin(), c.In(0).Argmin(0)],
        ["var_c0"] = c => [c.In(0).Var([1], correction: 0)],
        ["var_c1"] = c => [c.In(0).Var([1], correction: 1)],
        ["var_c2"] = c => [c.In(0).Var([1], correction: 2)],
        ["std_c0"] = c => [c.In(0).Std([0, 2], correction: 0, keepDim: true)],
        ["std_c1"] = c => [c.In(0).Std([0, 2], correction: 1, keepDim: true)],
        ["std_c2"] = c => [c.In(0).Std([0, 2], correction: 2, keepDim: true)],
        ["var_all"] = c => [c.In(0).Var()],
        ["std_all"] = c => [c.In(0).Std()],
        ["norm_p2_dim"] = c => [c.In(0).Norm(2, [1])],
        ["norm_p1_keepdim"] = c => [c.In(0).Norm(1, [2], keepDim: true)],
        ["norm_p3_dims"] = c => [c.In(0).Norm(3, [0, 2])],
        ["norm_all"] = c => [c.In(0).Norm()],
        ["logsumexp"] = c => [c.In(0).LogSumExp([1])],
        ["logsumexp_keepdim"] = c => [c.In(0).LogSumExp([0, 2], keepDim: true)],
        ["cumsum"] = c => [c.In(0).Cumsum(1)],
        ["prod"] = c => [c.In(0).Prod()],
        ["prod_zero"] = c => [c.In(0).Prod()],
        ["all_any"] = c => [c.In(0).All(), c.In(0).Any(), c.In(0).Gt(2).Any(), c.In(0).Gt(-5).All()],
        ["softmax_dim1"] = c => [c.In(0).Softmax(1)],
        ["softmax_last"] = c => [c.In(0).Softmax(-1)],
        ["log_softmax_dim0"] = c => [c.In(0).LogSoftmax(0)],
        ["log_softmax_last"] = c => [c.In(0).LogSoftmax(-1)],
        ["softmax_f64_from_f32"] = c => [c.In(0).Softmax(1, DType.Float64)],
    };

    /// <summary>The single-dimension overloads.</summary>
    internal static readonly CaseTable IntDim = new()
    {
        ["sum_keepdim"] = c => [c.In(0).Sum(1, keepDim: true)],
        ["mean_keepdim"] = c => [c.In(0).Mean(-1, keepDim: true)],
        ["softmax_last"] = c => [c.In(0).Softmax(2)],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;
    public static IEnumerable<object[]> IntDimNames => IntDim.Rows;

    [TestMethod, DynamicData(nameof(IntDimNames))]
    public void Single_dim_overload_matches_torch(string name) => RunCase(IntDim, name);

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod]
    public void Scalar_reductions_read_back_as_numbers()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.From(new[] { 1.5f, -2f, 4f, 0.5f }, 2, 2);
        Assert.AreEqual(4.0, a.Sum().ToDouble());
        Assert.AreEqual(4.0, a.Max().ToDouble());
        Assert.AreEqual(2L, a.Argmax().ToInt64());
        Assert.IsTrue(a.Gt(3).Any().ToBoolean());
        Assert.IsFalse(a.Gt(-3).LogicalNot().Any().ToBoolean());
    }
}

using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Views, joins, splits and indexing against torch 1.13, gradients included.</summary>
[TestClass, TestCategory("Parity")]
public sealed class ShapeTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["view"] = c => [c.In(0).View(4, -1)],
        ["reshape_noncontig"] = c => [c.In(0).Transpose(0, 2).Reshape(6, 4)],
        ["permute"] = c => [c.In(0).Permute(2, 0, 1)],
        ["transpose"] = c => [c.In(0).Transpose(0, 2)],
        ["mt"] = c => [c.In(0).MT],
        ["flatten"] = c => [c.In(0).Flatten(1)],
        ["flatten_range"] = c => [c.In(0).Flatten(0, 1)],
        ["unflatten"] = c => [c.In(0).Unflatten(2, 2, 2)],
        ["squeeze_unsqueeze"] = c => [c.In(0).Squeeze(), c.In(0).Squeeze(1), c.In(0).Unsqueeze(-1)],
        ["expand"] = c => [c.In(0).Expand(2, 3, 4)],
        ["repeat"] = c => [c.In(0).Repeat(2, 1, 3)],
        ["flip"] = c => [c.In(0).Flip(0, 2)],
        ["roll"] = c => [c.In(0).Roll([1, -2], [0, 2])],
        ["tril_triu"] = c => [c.In(0).Tril(), c.In(0).Triu(1)],
        ["cat"] = c => [Tensor.Cat([c.In(0), c.In(1), c.In(2)], 1)],
        ["stack"] = c => [Tensor.Stack([c.In(0), c.In(1)], 1)],
        ["meshgrid_ij"] = c => Tensor.Meshgrid([c.In(0), c.In(1)]),
        ["meshgrid_xy"] = c => Tensor.Meshgrid([c.In(0), c.In(1)], "xy"),
        ["split_size"] = c => c.In(0).Split(2, 1),
        ["split_sizes"] = c => c.In(0).Split(new long[] { 1, 4, 2 }, 1),
        ["chunk"] = c => c.In(0).Chunk(3, 0),
        ["narrow"] = c => [c.In(0).Narrow(1, 1, 3)],
        ["slice_step"] = c => [c.In(0).Slice(1, 1, 7, 2)],
        ["slice_open"] = c => [c.In(0).Slice(1, 3, null)],
        ["select"] = c => [c.In(0).Select(1, 2)],
        ["select_negative"] = c => [c.In(0).Select(0, -1)],
        ["index_none"] = c => [c.In(0).Index(c.In(1), null, c.In(2))],
        ["index_leading_none"] = c => [c.In(0).Index(null, c.In(1))],
        ["index_bool"] = c => [c.In(0).Index(c.In(1))],
        ["index_select"] = c => [c.In(0).IndexSelect(1, c.In(1))],
        ["gather"] = c => [c.In(0).Gather(1, c.In(1))],
        ["scatter"] = c => [c.In(0).Scatter(1, c.In(1), c.In(2))],
        ["tensor_unfold"] = c => [c.In(0).Unfold(1, 3, 2)],
        ["contiguous"] = c => [c.In(0).MT.Contiguous()],
        ["clone"] = c => [c.In(0).Clone() * 2],
        ["as_strided"] = c => [c.In(0).AsStrided([3, 3], [2, 1], 1)],
        ["expand_as"] = c => [c.In(0).ExpandAs(c.In(1))],
        ["one_hot"] = c => [F.OneHot(c.In(0)), F.OneHot(c.In(0), 7)],
        ["einsum"] = c => [Tensor.Einsum("bij,bjk->bik", c.In(0), c.In(1))],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod]
    public void Views_share_storage_and_report_strides()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.Arange(0, 12).View(3, 4);
        var t = a.MT;
        CollectionAssert.AreEqual(new long[] { 4, 3 }, t.Shape);
        CollectionAssert.AreEqual(new long[] { 1, 4 }, t.Strides);
        Assert.IsFalse(t.IsContiguous);
        Assert.IsTrue(t.Contiguous().IsContiguous);
        a.Select(0, 1).Fill_(-1);
        Assert.AreEqual(-1.0, t.Select(1, 1).Select(0, 2).ToDouble(), "a write through one view is seen by another");
    }
}

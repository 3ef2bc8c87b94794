using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Random ops after the same manual seed as Python (libtorch's CPU generator is the same, so values must
/// be identical), plus statistical sanity of dropout, drop-path and the samplers.</summary>
[TestClass, TestCategory("Parity")]
public sealed class RandomTests : OpsTestBase
{
    static void Seed(ulong s) => TorchRuntime.ManualSeed(s);

    internal static readonly CaseTable Cases = new()
    {
        ["rand"] = c => { Seed(1234); return [Tensor.Rand([3, 4])]; },
        ["rand_f64"] = c => { Seed(7); return [Tensor.Rand([2, 5], DType.Float64)]; },
        ["randn_small"] = c => { Seed(42); return [Tensor.Randn([3, 4])]; },
        ["randn_vectorized"] = c => { Seed(42); return [Tensor.Randn([5, 8])]; },
        ["randn_f64"] = c => { Seed(3); return [Tensor.Randn([20], DType.Float64)]; },
        ["randint"] = c => { Seed(99); return [Tensor.RandInt(-3, 10, [4, 5])]; },
        ["randperm"] = c => { Seed(5); return [Tensor.Randperm(20)]; },
        ["randperm_small"] = c => { Seed(11); return [Tensor.Randperm(7)]; },
        ["bernoulli_tensor"] = c => { var p = c.In(0); Seed(2024); return [F.Bernoulli(p)]; },
        ["bernoulli_scalar_"] = c => { Seed(17); return [Tensor.Zeros([40]).Bernoulli_(0.3)]; },
        ["normal_"] = c => { Seed(8); return [Tensor.Zeros([3, 7]).Normal_(2.0, 0.5)]; },
        ["uniform_"] = c => { Seed(9); return [Tensor.Zeros([3, 7]).Uniform_(-1.0, 3.0)]; },
        ["dropout"] = c => { var x = c.In(0); Seed(31); return [F.Dropout(x, 0.4, training: true)]; },
        ["rand_like_randn_like"] = c => { var x = c.In(0); Seed(77); return [x.RandLike(), x.RandnLike()]; },
        ["sequence"] = c =>
        {
            Seed(2718);
            return [Tensor.Rand([5]), Tensor.Randn([6]), Tensor.RandInt(0, 100, [5]), Tensor.Randperm(6),
                    Tensor.Zeros([8]).Bernoulli_(0.5), Tensor.Rand([3])];
        },
        // timm's drop_path with the same seed: same mask, and the gradient is the mask.
        ["drop_path_train"] = c => { var x = c.In(0); Seed(123); return [F.DropPath(x, 0.4, training: true)]; },
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch_exactly_after_the_same_seed(string name) => RunCase(Cases, name, exact: true);

    [TestMethod]
    public void Same_seed_repeats_and_another_seed_differs()
    {
        using var scope = TensorScope.Begin();
        Seed(5);
        var a = Tensor.Randn([16]);
        Seed(5);
        var b = Tensor.Randn([16]);
        Seed(6);
        var c = Tensor.Randn([16]);
        TensorAssert.Equal(a, b, "same seed");
        Assert.IsFalse(a.Eq(c).All().ToBoolean(), "another seed gave the same samples");
    }

    [TestMethod]
    [DataRow(0.1)]
    [DataRow(0.3)]
    [DataRow(0.5)]
    public void Dropout_keeps_about_1_minus_p_and_scales_by_its_inverse(double p)
    {
        using var scope = TensorScope.Begin();
        const int n = 200_000;
        Seed(1);
        var y = F.Dropout(Tensor.Ones([n]), p, training: true).ToArray<float>();
        float scale = (float)(1 / (1 - p));
        int kept = 0;
        foreach (var v in y)
        {
            if (v == 0) continue;
            kept++;
            Assert.AreEqual(scale, v, $"kept values are scaled by 1/(1-p) = {scale}");
        }
        double sigma = Math.Sqrt(p * (1 - p) / n);
        Assert.AreEqual(1 - p, kept / (double)n, 6 * sigma, "fraction kept");
    }

    [TestMethod]
    public void Dropout_is_identity_in_eval_and_at_p0_and_zero_at_p1()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([50]);
        TensorAssert.Equal(x, F.Dropout(x, 0.5, training: false), "eval");
        TensorAssert.Equal(x, F.Dropout(x, 0, training: true), "p = 0");
        TensorAssert.Equal(Tensor.Zeros([50]), F.Dropout(x, 1, training: true), "p = 1");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => F.Dropout(x, 1.5, training: true));
    }

    [TestMethod]
    public void Drop_path_drops_whole_samples_at_rate_p()
    {
        using var scope = TensorScope.Begin();
        const int batch = 20_000;
        const double p = 0.25;
        Seed(2);
        var y = F.DropPath(Tensor.Ones([batch, 3, 2]), p, training: true).Reshape(batch, 6).ToArray<float>();
        float scale = (float)(1 / (1 - p));
        int kept = 0;
        for (int s = 0; s < batch; s++)
        {
            float first = y[s * 6];
            for (int k = 1; k < 6; k++) Assert.AreEqual(first, y[s * 6 + k], $"sample {s} is not dropped as a whole");
            if (first != 0) { kept++; Assert.AreEqual(scale, first); }
        }
        Assert.AreEqual(1 - p, kept / (double)batch, 6 * Math.Sqrt(p * (1 - p) / batch), "fraction of samples kept");
    }

    [TestMethod]
    public void Drop_path_is_identity_in_eval_and_at_p0()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Randn([4, 3]);
        TensorAssert.Equal(x, F.DropPath(x, 0.5, training: false), "eval");
        TensorAssert.Equal(x, F.DropPath(x, 0, training: true), "p = 0");
        var unscaled = F.DropPath(Tensor.Ones([1000, 1]), 0.5, training: true, scaleByKeep: false);
        Assert.IsTrue(unscaled.Eq(0).LogicalOr(unscaled.Eq(1)).All().ToBoolean(), "without scaling kept values stay 1");
    }

    [TestMethod]
    public void Samplers_have_the_right_range_and_moments()
    {
        using var scope = TensorScope.Begin();
        const int n = 100_000;
        Seed(3);
        var u = Tensor.Rand([n]);
        Assert.IsTrue(u.Ge(0).All().ToBoolean() && u.Lt(1).All().ToBoolean(), "rand in [0, 1)");
        Assert.AreEqual(0.5, u.Mean().ToDouble(), 0.01);
        var z = Tensor.Randn([n]);
        Assert.AreEqual(0, z.Mean().ToDouble(), 0.02);
        Assert.AreEqual(1, z.Std().ToDouble(), 0.02);
        var nrm = Tensor.Zeros([n]).Normal_(3, 0.5);
        Assert.AreEqual(3, nrm.Mean().ToDouble(), 0.01);
        Assert.AreEqual(0.5, nrm.Std().ToDouble(), 0.01);
        var b = Tensor.Zeros([n]).Bernoulli_(0.2);
        Assert.AreEqual(0.2, b.Mean().ToDouble(), 0.01);
        var ri = Tensor.RandInt(-3, 4, [n]);
        Assert.AreEqual(DType.Int64, ri.DType);
        Assert.AreEqual(-3L, ri.Min().ToInt64());
        Assert.AreEqual(3L, ri.Max().ToInt64());
        var perm = Tensor.Randperm(50).ToArray<long>();
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 50).Select(i => (long)i).ToArray(), perm, "randperm is a permutation");
    }
}

using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>Broadcasting arithmetic, unary functions, comparisons and selection against torch 1.13.</summary>
[TestClass, TestCategory("Parity")]
public sealed class PointwiseTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["add_broadcast"] = c => [c.In(0) + c.In(1)],
        ["add_alpha"] = c => [c.In(0).Add(c.In(1), 2.5)],
        ["add_scalar"] = c => [c.In(0) + 1.5],
        ["sub_broadcast"] = c => [c.In(0) - c.In(1)],
        ["sub_alpha"] = c => [c.In(0).Sub(c.In(1), 0.5)],
        ["sub_scalar"] = c => [c.In(0) - 0.75],
        ["rsub_scalar"] = c => [2.0 - c.In(0)],
        ["mul_broadcast"] = c => [c.In(0) * c.In(1)],
        ["mul_scalar"] = c => [c.In(0) * -3.0],
        ["div_broadcast"] = c => [c.In(0) / c.In(1)],
        ["div_scalar"] = c => [c.In(0) / 4.0],
        ["neg"] = c => [-c.In(0)],
        // Python's `a + b + 3` and `a * 7` on int64 tensors stay int64.
        ["add_int"] = c => [c.In(0) + c.In(1) + 3],
        ["mul_int_scalar"] = c => [c.In(0) * 7],
        ["pow_scalar"] = c => [c.In(0).Pow(2.5)],
        ["pow_tensor"] = c => [c.In(0).Pow(c.In(1))],
        ["unary_sqrt"] = c => [c.In(0).Sqrt()],
        ["unary_rsqrt"] = c => [c.In(0).Rsqrt()],
        ["unary_exp"] = c => [c.In(0).Exp()],
        ["unary_log"] = c => [c.In(0).Log()],
        ["unary_abs"] = c => [c.In(0).Abs()],
        ["unary_tanh"] = c => [c.In(0).Tanh()],
        ["unary_erf"] = c => [c.In(0).Erf()],
        ["unary_log1p"] = c => [c.In(0).Log1p()],
        ["unary_expm1"] = c => [c.In(0).Expm1()],
        ["unary_sin"] = c => [c.In(0).Sin()],
        ["unary_cos"] = c => [c.In(0).Cos()],
        ["unary_reciprocal"] = c => [c.In(0).Reciprocal()],
        ["unary_square"] = c => [c.In(0).Square()],
        ["unary_log2"] = c => [c.In(0).Log2()],
        ["log_spaced_coords"] = c => [c.In(0).Sign() * (c.In(0).Abs() + 1.0).Log2() / Math.Log2(8)],
        ["clamp_both"] = c => [c.In(0).Clamp(-0.5, 0.8)],
        ["clamp_min_only"] = c => [c.In(0).Clamp(min: -0.3)],
        ["clamp_max_only"] = c => [c.In(0).Clamp(max: 0.2)],
        ["clamp_min"] = c => [c.In(0).ClampMin(0.1)],
        ["maximum"] = c => [c.In(0).Maximum(c.In(1))],
        ["minimum"] = c => [c.In(0).Minimum(c.In(1))],
        ["addcmul"] = c => [c.In(0).Addcmul(c.In(1), c.In(2), 0.7)],
        ["addcdiv"] = c => [c.In(0).Addcdiv(c.In(1), c.In(2), -1.3)],
        ["lerp"] = c => [c.In(0).Lerp(c.In(1), 0.3)],
        ["div_floor"] = c => [c.In(0).Div(c.In(1), "floor")],
        ["div_trunc"] = c => [c.In(0).Div(c.In(1), "trunc")],
        ["floor_round_sign"] = c => [c.In(0).Floor(), c.In(0).Round(), c.In(0).Sign()],
        ["pointwise_f64"] = c => [(c.In(0) * c.In(1)).Exp() / (1 + c.In(1) * c.In(1))],
        ["cmp_eq"] = c => [c.In(0).Eq(c.In(1))],
        ["cmp_ne"] = c => [c.In(0).Ne(c.In(1))],
        ["cmp_lt"] = c => [c.In(0).Lt(c.In(1))],
        ["cmp_le"] = c => [c.In(0).Le(c.In(1))],
        ["cmp_gt"] = c => [c.In(0).Gt(c.In(1))],
        ["cmp_ge"] = c => [c.In(0).Ge(c.In(1))],
        ["cmp_eq_scalar"] = c => [c.In(0).Eq(0.5)],
        ["cmp_ne_scalar"] = c => [c.In(0).Ne(0.5)],
        ["cmp_lt_scalar"] = c => [c.In(0).Lt(0.5)],
        ["cmp_le_scalar"] = c => [c.In(0).Le(0.5)],
        ["cmp_gt_scalar"] = c => [c.In(0).Gt(0.5)],
        ["cmp_ge_scalar"] = c => [c.In(0).Ge(0.5)],
        ["logical"] = c => [c.In(0).LogicalAnd(c.In(1)), c.In(0).LogicalOr(c.In(1)), c.In(0).LogicalNot()],
        ["isnan_isfinite"] = c => [c.In(0).IsNan(), c.In(0).IsFinite()],
        ["where"] = c => [Tensor.Where(c.In(0), c.In(1), c.In(2))],
        ["masked_fill"] = c => [c.In(0).MaskedFill(c.In(1), -2.5)],
        ["masked_fill_tensor"] = c => [c.In(0).MaskedFill(c.In(1), c.In(2))],
    };

    /// <summary>The in-place forms, applied to a clone so that autograd differentiates through them.</summary>
    internal static readonly CaseTable InPlace = new()
    {
        ["add_alpha"] = c => [c.In(0).Clone().Add_(c.In(1), 2.5)],
        ["add_scalar"] = c => [c.In(0).Clone().Add_(1.5)],
        ["sub_alpha"] = c => [c.In(0).Clone().Sub_(c.In(1), 0.5)],
        ["mul_scalar"] = c => [c.In(0).Clone().Mul_(-3.0)],
        ["div_broadcast"] = c => [c.In(0).Clone().Div_(c.In(1))],
        ["div_scalar"] = c => [c.In(0).Clone().Div_(4.0)],
        ["unary_sqrt"] = c => [c.In(0).Clone().Sqrt_()],
        ["clamp_both"] = c => [c.In(0).Clone().Clamp_(-0.5, 0.8)],
        ["addcmul"] = c => [c.In(0).Clone().Addcmul_(c.In(1), c.In(2), 0.7)],
        ["addcdiv"] = c => [c.In(0).Clone().Addcdiv_(c.In(1), c.In(2), -1.3)],
        ["lerp"] = c => [c.In(0).Clone().Lerp_(c.In(1), 0.3)],
        ["masked_fill"] = c => [c.In(0).Clone().MaskedFill_(c.In(1), -2.5)],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;
    public static IEnumerable<object[]> InPlaceNames => InPlace.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);

    [TestMethod, DynamicData(nameof(InPlaceNames))]
    public void In_place_form_matches_torch(string name) => RunCase(InPlace, name);

    [TestMethod]
    public void In_place_ops_return_and_modify_the_same_tensor()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.From(new[] { 1f, 4f, 9f }, 3);
        var r = a.Sqrt_();
        Assert.AreSame(a, r);
        TensorAssert.Equal(Tensor.From(new[] { 1f, 2f, 3f }, 3), a, "sqrt_");
        a.Zero_().Add_(2.0).Mul_(Tensor.From(new[] { 1f, 2f, 3f }, 3)).Fill_(0.5);
        TensorAssert.Equal(Tensor.Full([3], 0.5), a, "chained in-place ops");
    }
}

/// <summary>dtype conversions (exact), including rounding and overflow of float16/bfloat16 and truncation to int64.</summary>
[TestClass, TestCategory("Parity")]
public sealed class DTypeConversionTests : OpsTestBase
{
    internal static readonly CaseTable Cases = new()
    {
        ["dtype_special"] = c =>
        {
            var x = c.In(0);
            var f32 = x.To(DType.Float32);
            return [f32, f32.To(DType.Float16), f32.To(DType.BFloat16), f32.To(DType.Float16).To(DType.Float32),
                    f32.To(DType.BFloat16).To(DType.Float32), f32.To(DType.Float64)];
        },
        ["dtype_to_int64"] = c => [c.In(0).To(DType.Int64), c.In(0).To(DType.Int64).To(DType.Float32)],
        ["dtype_f32_f64"] = c => [c.In(0).To(DType.Float64) * 3],
        ["dtype_f64_f32"] = c => [c.In(0).To(DType.Float32) * 3],
        ["dtype_f32_f16"] = c => [c.In(0).To(DType.Float16).To(DType.Float32) * 3],
        ["dtype_f32_bf16"] = c => [c.In(0).To(DType.BFloat16).To(DType.Float32) * 3],
        ["dtype_bool_int"] = c => [c.In(0).Gt(0).To(DType.Int64)],
        ["dtype_int_f32"] = c => [c.In(0).To(DType.Float32) / 3],
    };

    public static IEnumerable<object[]> CaseNames => Cases.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch_exactly(string name) => RunCase(Cases, name, exact: true);

    [TestMethod]
    public void BFloat16_FromSingle_rounds_as_torch_does()
    {
        using var scope = TensorScope.Begin();
        var c = OpCase.Load("dtype_special");
        var f32 = c.Expected("out0").ToArray<float>();
        var torchBits = c.Expected("out2").ToArray<BFloat16>();
        for (int i = 0; i < f32.Length; i++)
            Assert.AreEqual(torchBits[i].Bits, BFloat16.FromSingle(f32[i]).Bits, $"bfloat16 of {f32[i]:R}");
    }

    [TestMethod]
    public void To_the_same_dtype_returns_the_same_tensor_unless_copy_is_asked()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.From(new[] { 1f, 2f }, 2);
        using var same = a.To(DType.Float32);
        same.Add_(1.0);
        TensorAssert.Equal(Tensor.From(new[] { 2f, 3f }, 2), a, "a after writing through To(Float32)");
        var copy = a.To(DType.Float32, copy: true);
        copy.Add_(1.0);
        TensorAssert.Equal(Tensor.From(new[] { 2f, 3f }, 2), a, "a after writing into a copy");
    }
}

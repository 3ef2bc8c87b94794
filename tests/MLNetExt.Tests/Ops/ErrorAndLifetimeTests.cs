using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>How libtorch errors reach C# (op name, shapes, dtypes), use after disposal, and scope lifetimes.
/// Device errors need CUDA and are not tested here.</summary>
[TestClass, TestCategory("Parity")]
public sealed class ErrorAndLifetimeTests : OpsTestBase
{
    static void AssertContains(string message, params string[] parts)
    {
        foreach (var part in parts)
            Assert.IsTrue(message.Contains(part, StringComparison.Ordinal), $"'{part}' missing from: {message}");
    }

    [TestMethod]
    public void Matmul_shape_mismatch_names_the_op_and_the_shapes()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.Zeros([2, 3]);
        var b = Tensor.Zeros([4, 5]);
        var e = Assert.ThrowsExactly<TorchException>(() => a.Matmul(b));
        AssertContains(e.Message, "aten::matmul", "[2, 3]", "[4, 5]");
    }

    [TestMethod]
    public void Conv2d_channel_mismatch_names_the_op_and_the_shapes()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Zeros([1, 3, 5, 5]);
        var w = Tensor.Zeros([4, 2, 3, 3]);
        var e = Assert.ThrowsExactly<TorchException>(() => F.Conv2d(x, w));
        AssertContains(e.Message, "aten::conv2d", "[1, 3, 5, 5]", "[4, 2, 3, 3]");
    }

    [TestMethod]
    public void Conv2d_dtype_mismatch_names_both_dtypes()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Zeros([1, 2, 5, 5]);
        var w = Tensor.Zeros([4, 2, 3, 3], DType.Float64);
        var e = Assert.ThrowsExactly<TorchException>(() => F.Conv2d(x, w));
        AssertContains(e.Message, "aten::conv2d", "float32", "float64");
    }

    [TestMethod]
    public void Broadcast_mismatch_names_the_overload()
    {
        using var scope = TensorScope.Begin();
        var e = Assert.ThrowsExactly<TorchException>(() => Tensor.Zeros([2, 3]) + Tensor.Zeros([4]));
        AssertContains(e.Message, "aten::add.Tensor", "[2, 3]", "[4]");
    }

    [TestMethod]
    public void Failed_calls_leak_nothing()
    {
        using var scope = TensorScope.Begin();
        var a = Tensor.Zeros([2, 3]);
        var b = Tensor.Zeros([4, 5]);
        long before = Tensor.LiveCount;
        for (int i = 0; i < 10; i++) Assert.ThrowsExactly<TorchException>(() => a.Matmul(b));
        Assert.AreEqual(before, Tensor.LiveCount);
    }

    [TestMethod]
    public void Using_a_disposed_tensor_throws_ObjectDisposedException()
    {
        using var scope = TensorScope.Begin();
        var t = Tensor.Zeros([2, 3]);
        _ = t.Shape; // cache the shape so the message can describe the tensor
        t.Dispose();
        Assert.IsTrue(t.IsDisposed);
        var e = Assert.ThrowsExactly<ObjectDisposedException>(() => t.Sum());
        AssertContains(e.Message, "disposed", "float32[2, 3]");
        t.Dispose(); // twice is fine
    }

    [TestMethod]
    public void Using_a_tensor_after_its_scope_ended_throws_ObjectDisposedException()
    {
        Tensor t;
        using (TensorScope.Begin()) t = Tensor.Ones([3]);
        Assert.IsTrue(t.IsDisposed);
        var e = Assert.ThrowsExactly<ObjectDisposedException>(() => t + t);
        AssertContains(e.Message, "disposed", "TensorScope");
    }

    [TestMethod]
    public void LiveCount_returns_to_its_start_when_the_scope_ends()
    {
        long start = Tensor.LiveCount;
        using (TensorScope.Begin())
        {
            var x = Tensor.Randn([4, 3]).RequiresGrad_();
            var w = Tensor.Randn([2, 3]).RequiresGrad_();
            var loss = F.CrossEntropy(F.Linear(x, w), Tensor.From(new long[] { 0, 1, 1, 0 }, 4), labelSmoothing: 0.1);
            loss.Backward();
            var (values, indices) = x.Grad!.Max(1);
            _ = x.Split(1, 0);
            Assert.IsTrue(Tensor.LiveCount > start + 5, "the scope holds the tensors it created");
        }
        Assert.AreEqual(start, Tensor.LiveCount);
    }

    [TestMethod]
    public void MoveToOuterScope_keeps_a_result_alive_until_the_outer_scope_ends()
    {
        long start = Tensor.LiveCount;
        Tensor kept, temp;
        using (TensorScope.Begin())
        {
            using (TensorScope.Begin())
            {
                temp = Tensor.Ones([3]);
                kept = (temp * 2).MoveToOuterScope();
            }
            Assert.IsTrue(temp.IsDisposed);
            Assert.IsFalse(kept.IsDisposed);
            TensorAssert.Equal(Tensor.Full([3], 2), kept, "moved result");
        }
        Assert.IsTrue(kept.IsDisposed);
        Assert.AreEqual(start, Tensor.LiveCount);
    }

    [TestMethod]
    public void MoveToOuterScope_without_an_outer_scope_hands_the_tensor_to_the_caller()
    {
        long start = Tensor.LiveCount;
        Tensor result;
        using (TensorScope.Begin()) result = (Tensor.Ones([2]) + 1).MoveToOuterScope();
        Assert.IsFalse(result.IsDisposed);
        Assert.AreEqual(start + 1, Tensor.LiveCount);
        result.Dispose();
        Assert.AreEqual(start, Tensor.LiveCount);
    }

    [TestMethod]
    public void DetachFromScope_leaves_the_tensor_to_the_caller()
    {
        long start = Tensor.LiveCount;
        Tensor t;
        using (TensorScope.Begin()) t = Tensor.Ones([2]).DetachFromScope();
        Assert.IsFalse(t.IsDisposed);
        t.Dispose();
        Assert.AreEqual(start, Tensor.LiveCount);
    }

    [TestMethod]
    public void Nested_scopes_free_innermost_first()
    {
        long start = Tensor.LiveCount;
        var outer = TensorScope.Begin();
        var a = Tensor.Ones([2]);
        var inner = TensorScope.Begin();
        var b = Tensor.Ones([2]);
        try
        {
            Assert.AreSame(inner, TensorScope.Current);
            Assert.AreEqual(1, inner.Count);
            Assert.AreEqual(1, outer.Count);
            Assert.ThrowsExactly<InvalidOperationException>(() => outer.Dispose(), "disposing the outer scope while the inner one is open");
            Assert.IsFalse(a.IsDisposed);
        }
        finally
        {
            inner.Dispose();
        }
        Assert.IsTrue(b.IsDisposed);
        Assert.IsFalse(a.IsDisposed);
        Assert.AreSame(outer, TensorScope.Current);
        outer.Dispose();
        Assert.IsTrue(a.IsDisposed);
        Assert.IsNull(TensorScope.Current);
        Assert.AreEqual(start, Tensor.LiveCount);
    }

    /// <summary>Outside any scope the caller owns exactly the tensors a wrapper returns: a temporary left to the
    /// finalizer would keep native memory until some later GC.</summary>
    [TestMethod]
    [DataRow("rsub")]
    [DataRow("normalize")]
    [DataRow("drop_path")]
    [DataRow("dropout")]
    [DataRow("adaptive_max_pool")]
    [DataRow("max_dim")]
    [DataRow("to_string")]
    [DataRow("item")]
    public void Wrappers_leave_no_temporaries_outside_a_scope(string op)
    {
        Assert.IsNull(TensorScope.Current, "this test must run outside any scope");
        using var x = Tensor.Randn([2, 3, 4, 4]);
        using var small = Tensor.Randn([2, 3]);
        using var one = Tensor.Randn([1]);
        static Tensor[] Nothing(object _) => [];
        static Tensor[] Both((Tensor Values, Tensor Indices) r) => [r.Values, r.Indices];
        long start = Tensor.LiveCount;
        Tensor[] results = [];
        try
        {
            results = op switch
            {
                "rsub" => [2.0 - x],
                "normalize" => [F.Normalize(x)],
                "drop_path" => [F.DropPath(x, 0.5, training: true)],
                "dropout" => [F.Dropout(x, 0.5, training: true)],
                "adaptive_max_pool" => [F.AdaptiveMaxPool2d(x, 2, 2)],
                "max_dim" => Both(x.Max(1)),
                "to_string" => Nothing(small.ToString()),
                "item" => Nothing(one.ToDouble()),
                _ => throw new ArgumentOutOfRangeException(nameof(op)),
            };
            Assert.AreEqual(start + results.Length, Tensor.LiveCount, $"{op}: live tensors beyond the {results.Length} returned");
        }
        finally
        {
            foreach (var r in results) r.Dispose();
        }
    }

    [TestMethod]
    public void Multi_output_ops_and_gradients_belong_to_the_scope()
    {
        long start = Tensor.LiveCount;
        using (TensorScope.Begin())
        {
            var x = Tensor.Randn([6, 4]).RequiresGrad_();
            var parts = x.Chunk(3, 0);
            Tensor.Stack(parts, 0).Sum().Backward();
            var g1 = x.Grad!;
            var g2 = x.Grad!;
            Assert.AreNotSame(g1, g2, "each read of Grad is a new handle");
            TensorAssert.Equal(Tensor.Ones([6, 4]), g1, "gradient of a sum");
        }
        Assert.AreEqual(start, Tensor.LiveCount);
    }
}

/// <summary>Every case in the fixture file is exercised by some table, and every table names a real case.</summary>
[TestClass, TestCategory("Parity")]
public sealed class FixtureCoverageTests
{
    static IEnumerable<(string Table, CaseTable Cases)> Tables() =>
        typeof(FixtureCoverageTests).Assembly.GetTypes()
            .SelectMany(t => t.GetFields(System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public)
                .Where(f => f.FieldType == typeof(CaseTable))
                .Select(f => ($"{t.Name}.{f.Name}", (CaseTable)f.GetValue(null)!)));

    [TestMethod]
    public void Every_fixture_case_is_tested_and_every_tested_case_exists()
    {
        var fixtureCases = OpCase.AllNames;
        var tested = Tables().SelectMany(t => t.Cases.Keys).ToHashSet();
        var untested = fixtureCases.Except(tested).Order().ToList();
        var unknown = Tables().SelectMany(t => t.Cases.Keys.Where(k => !fixtureCases.Contains(k)).Select(k => $"{t.Table}[{k}]")).ToList();
        Assert.IsEmpty(untested, $"fixture cases no test uses: {string.Join(", ", untested)}");
        Assert.IsEmpty(unknown, $"table entries without a fixture case: {string.Join(", ", unknown)}");
    }

    [TestMethod]
    public void Fixture_file_is_small()
    {
        var size = new FileInfo(Fixtures.Path(OpCase.FileName)).Length;
        Assert.IsLessThan(1_000_000L, size, "ops.safetensors should stay under 1 MB");
    }
}

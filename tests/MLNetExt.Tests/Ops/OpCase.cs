using MLNetExt.Torch;

// The namespace is not "MLNetExt.Tests.Ops": a namespace of that name would hide MLNetExt.Torch.Ops from every
// other test in MLNetExt.Tests.*. "OpsParity" still matches the filter FullyQualifiedName~MLNetExt.Tests.Ops.
namespace MLNetExt.Tests.OpsParity;

/// <summary>Case name → the C# expression of the op under test, returning its output(s). Every parity test class
/// keeps its cases in one such table; <see cref="FixtureCoverageTests"/> checks that the tables cover the file.</summary>
internal sealed class CaseTable : Dictionary<string, Func<OpCase, Tensor[]>>
{
    public IEnumerable<object[]> Rows => Keys.Order(StringComparer.Ordinal).Select(k => new object[] { k });
}

/// <summary>One case of tests/fixtures/ops/ops.safetensors (see make_op_fixtures.py for the key layout):
/// hands out its inputs, then checks the outputs and the gradients of sum_j (out_j * g_j).sum().</summary>
internal sealed class OpCase
{
    public const string FileName = "ops/ops.safetensors";

    readonly FixtureFile _file;
    readonly Dictionary<int, Tensor> _inputs = new();

    public string Name { get; }

    OpCase(FixtureFile file, string name)
    {
        _file = file;
        Name = name;
    }

    public static FixtureFile File => FixtureFile.Open(FileName);

    /// <summary>Names of every case in the fixture file.</summary>
    public static IReadOnlySet<string> AllNames => File.Keys.Select(k => k[..k.IndexOf('.')]).ToHashSet();

    public static OpCase Load(string name)
    {
        if (!File.Contains($"{name}.out") && !File.Contains($"{name}.out0"))
            Assert.Fail($"Fixture case '{name}' is missing; regenerate with tests/fixtures/make_op_fixtures.py.");
        return new OpCase(File, name);
    }

    public bool Has(string field) => _file.Contains($"{Name}.{field}");

    /// <summary>A stored tensor of this case, e.g. "out" or "grad0".</summary>
    public Tensor Expected(string field) => _file.Load($"{Name}.{field}");

    /// <summary>Input <paramref name="k"/>; it requires grad when the fixture holds its gradient. Asking twice
    /// returns the same tensor.</summary>
    public Tensor In(int k)
    {
        if (_inputs.TryGetValue(k, out var t)) return t;
        t = Expected($"in{k}");
        if (Has($"grad{k}")) t.RequiresGrad_();
        return _inputs[k] = t;
    }

    /// <summary>Compares the outputs with torch within the dtype's tolerances, then the input gradients.</summary>
    public void Verify(params Tensor[] outputs) => Check(outputs, exact: false);

    /// <summary>As <see cref="Verify"/>, but the forward values must be identical (random ops, dtype casts).</summary>
    public void VerifyExact(params Tensor[] outputs) => Check(outputs, exact: true);

    void Check(Tensor[] outputs, bool exact)
    {
        int expectedCount = Has("out") ? 1 : Enumerable.Range(0, 64).TakeWhile(j => Has($"out{j}")).Count();
        Assert.AreEqual(expectedCount, outputs.Length, $"{Name}: number of outputs");

        Tensor? loss = null;
        for (int j = 0; j < outputs.Length; j++)
        {
            string suffix = expectedCount == 1 ? "" : j.ToString();
            var expected = Expected("out" + suffix);
            var actual = outputs[j];
            Assert.AreEqual(expected.DType, actual.DType, $"{Name}.out{suffix}: dtype");
            var (atol, rtol) = exact ? (0.0, 0.0) : ForwardTolerance(expected.DType);
            TensorAssert.Close(expected, actual, atol, rtol, $"{Name}.out{suffix}");

            if (!Has("g" + suffix)) continue;
            var term = (actual * Expected("g" + suffix)).Sum();
            loss = loss is null ? term : loss + term;
        }

        var gradKeys = Enumerable.Range(0, 64).Where(k => Has($"grad{k}")).ToList();
        if (gradKeys.Count == 0) return;
        Assert.IsNotNull(loss, $"{Name}: the fixture holds gradients but no output takes part in the backward");
        loss.Backward();
        foreach (var k in gradKeys)
        {
            Assert.IsTrue(_inputs.TryGetValue(k, out var input), $"{Name}: the test never used input {k}, whose gradient the fixture holds");
            var grad = input.Grad;
            Assert.IsNotNull(grad, $"{Name}.grad{k}: input {k} received no gradient");
            var expected = Expected($"grad{k}");
            Assert.AreEqual(expected.DType, grad.DType, $"{Name}.grad{k}: dtype");
            var (atol, rtol) = GradTolerance(expected.DType);
            TensorAssert.Close(expected, grad, atol, rtol, $"{Name}.grad{k}");
        }
    }

    static (double Abs, double Rel) ForwardTolerance(DType t) => t switch
    {
        DType.Float64 => (Tolerances.Float64Abs, Tolerances.Float64Rel),
        DType.Float32 or DType.Float16 or DType.BFloat16 => (Tolerances.Float32Abs, Tolerances.Float32Rel),
        _ => (0, 0),
    };

    static (double Abs, double Rel) GradTolerance(DType t) => t == DType.Float64
        ? (Tolerances.Float64Abs, Tolerances.Float64Rel)
        : (Tolerances.GradAbs, Tolerances.GradRel);
}

/// <summary>Base of the Ops test classes: every test must leave <see cref="Tensor.LiveCount"/> where it found it,
/// i.e. its <c>TensorScope</c> frees everything it created, gradients included.</summary>
public abstract class OpsTestBase
{
    long _liveAtStart;

    [TestInitialize]
    public void RecordLiveTensors()
    {
        // Tensors leaked by earlier tests elsewhere must not be finalised in the middle of this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        _liveAtStart = Tensor.LiveCount;
    }

    [TestCleanup]
    public void CheckNoTensorLeaked() =>
        Assert.AreEqual(_liveAtStart, Tensor.LiveCount, "Tensor.LiveCount after the test's scope ended");

    /// <summary>Loads a case, runs the table's op inside a scope and verifies forward and backward.</summary>
    internal static void RunCase(CaseTable table, string name, bool exact = false)
    {
        using var scope = TensorScope.Begin();
        var c = OpCase.Load(name);
        var outputs = table[name](c);
        if (exact) c.VerifyExact(outputs);
        else c.Verify(outputs);
    }
}

using System.Text.Json;
using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Nn;

/// <summary>The twin of the Python <c>Block</c> in tests/fixtures/make_nn_fixtures.py.</summary>
internal sealed class Block : Module<Tensor, Tensor>
{
    public readonly Linear Head;

    public Block()
    {
        RegisterModule("conv", new Conv2d(3, 4, 3, padding: 1, bias: false));
        RegisterModule("bn", new BatchNorm2d(4));
        RegisterModule("act", new GELU());
        RegisterBuffer("table", Tensor.Arange(0, 4), persistent: false);
        RegisterParameter("scale", new Parameter(Tensor.Ones(new long[] { 4, 1, 1 })));
        var mlp = RegisterModule("mlp", new Sequential(new Linear(4, 8), new GELU(), new Dropout(0.0), Head = new Linear(8, 2)));
        RegisterModule("norms", new ModuleList<Module>(new LayerNorm(4), new GroupNorm(1, 4)));
        RegisterModule("pos", new ParameterList(new Parameter(Tensor.Zeros(new long[] { 2 })), new Parameter(Tensor.Zeros(new long[] { 3 }))));
    }

    public override Tensor Forward(Tensor input) => throw new NotSupportedException();
}

[TestClass]
public sealed class ModuleTests
{
    static StateDict Fixture(string name) => SafeTensors.Load(Fixtures.Path("nn/" + name));

    [TestMethod]
    public void StateDictKeysAndOrderMatchPyTorch()
    {
        using var fixture = Fixture("module.safetensors");
        var expectedKeys = JsonSerializer.Deserialize<string[]>(fixture.Metadata["state_dict_keys"])!;
        var expectedParams = JsonSerializer.Deserialize<string[]>(fixture.Metadata["named_parameters"])!;
        using var block = new Block();
        CollectionAssert.AreEqual(expectedKeys, block.StateDict().Select(kv => kv.Key).ToArray());
        CollectionAssert.AreEqual(expectedParams, block.NamedParameters().Select(p => p.Name).ToArray());
        CollectionAssert.Contains(block.NamedBuffers().Select(b => b.Name).ToArray(), "table", "non-persistent buffers are buffers");
    }

    [TestMethod]
    public void DuplicateAndDottedNamesAreRejected()
    {
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new Dup());
        StringAssert.Contains(e.Message, "'x'");
        Assert.ThrowsExactly<ArgumentException>(() => new Dotted());
    }

    sealed class Dup : Module
    {
        public Dup()
        {
            RegisterModule("x", new Identity());
            RegisterModule("x", new Identity());
        }
    }

    sealed class Dotted : Module
    {
        public Dotted() => RegisterModule("a.b", new Identity());
    }

    [TestMethod]
    public void StrictLoadReportsEveryProblemByNameAndChangesNothing()
    {
        using var scope = TensorScope.Begin();
        using var block = new Block();
        var before = block.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Clone());
        var source = block.StateDict().Where(kv => kv.Key != "bn.running_var" && kv.Key != "mlp.3.bias")
            .Select(kv => kv.Key == "conv.weight" ? new KeyValuePair<string, Tensor>(kv.Key, Tensor.Zeros(new long[] { 4, 3, 5, 5 })) : new(kv.Key, kv.Value.Add(1.0)))
            .Append(new("head.weight", Tensor.Zeros(new long[] { 2 })))
            .ToList();
        var e = Assert.ThrowsExactly<StateDictMismatchException>(() => block.LoadStateDict(source));
        StringAssert.Contains(e.Message, "missing keys (2): bn.running_var, mlp.3.bias");
        StringAssert.Contains(e.Message, "unexpected keys (1): head.weight");
        StringAssert.Contains(e.Message, "size mismatch for conv.weight: the module has [4, 3, 3, 3], the checkpoint has [4, 3, 5, 5]");
        foreach (var (k, t) in block.StateDict()) TensorAssert.Equal(before[k], t, $"{k} untouched by the failed load");

        // Non-strict: missing/unexpected are reported, shape mismatches still refuse.
        var ok = source.Where(kv => kv.Key != "conv.weight").ToList();
        var result = block.LoadStateDict(ok, strict: false);
        CollectionAssert.AreEqual(new[] { "conv.weight", "bn.running_var", "mlp.3.bias" }, result.MissingKeys.ToArray());
        CollectionAssert.AreEqual(new[] { "head.weight" }, result.UnexpectedKeys.ToArray());
        using var expected = before["bn.running_mean"].Add(1.0);
        TensorAssert.Equal(expected, block.StateDict().First(kv => kv.Key == "bn.running_mean").Value);
        Assert.ThrowsExactly<StateDictMismatchException>(() => block.LoadStateDict(source, strict: false));
    }

    [TestMethod]
    public void LoadCopiesValuesKeepsIdentityAndConvertsDtype()
    {
        using var scope = TensorScope.Begin();
        using var a = new Linear(3, 2);
        using var b = new Linear(3, 2);
        var weight = b.Weight;
        var source = a.StateDict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.To(DType.Float64))).ToList();
        var result = b.LoadStateDict(source);
        Assert.IsTrue(result.IsExactMatch);
        Assert.AreSame(weight, b.Weight, "parameters keep their identity (optimizers hold them)");
        Assert.AreEqual(DType.Float32, b.Weight.DType);
        TensorAssert.Equal(a.Weight, b.Weight);
        Assert.IsTrue(b.Weight.RequiresGrad && b.Weight.IsLeaf);
    }

    [TestMethod]
    public void TrainEvalPropagatesAndParametersAreCounted()
    {
        using var block = new Block();
        block.Eval();
        Assert.IsTrue(block.NamedModules().All(m => !m.Module.Training));
        block.Train();
        Assert.IsTrue(block.NamedModules().All(m => m.Module.Training));
        // conv 108 + bn 8 + scale 4 + mlp (40 + 18) + norms (8 + 8) + pos 5
        Assert.AreEqual(199L, block.ParameterCount());
    }

    sealed class WithHead : Module
    {
        public WithHead()
        {
            RegisterModule("head", new Linear(4, 10));
            RegisterBuffer("table", Tensor.Zeros(new long[] { 3 }));
        }

        public void ResetClassifier(int classes) => ReplaceModule("head", new Linear(4, classes));

        public void ResizeTable(int n) => ReplaceBuffer("table", Tensor.Ones(new long[] { n }));

        public void ReplaceMissing() => ReplaceModule("classifier", new Identity());
    }

    [TestMethod]
    public void ReplacingAChildOrBufferKeepsItsNameAndFreesTheOld()
    {
        long live0 = Tensor.LiveCount;
        using (var m = new WithHead())
        {
            m.ResetClassifier(2);
            m.ResizeTable(5);
            var sd = m.StateDict();
            CollectionAssert.AreEqual(new[] { "table", "head.weight", "head.bias" }, sd.Select(kv => kv.Key).ToArray());
            CollectionAssert.AreEqual(new long[] { 2, 4 }, sd[1].Value.Shape);
            CollectionAssert.AreEqual(new long[] { 5 }, sd[0].Value.Shape);
            Assert.AreEqual(live0 + 3, Tensor.LiveCount, "the replaced head and table were freed");
            Assert.ThrowsExactly<KeyNotFoundException>(() => m.ReplaceMissing());
        }
        Assert.AreEqual(live0, Tensor.LiveCount);
    }

    [TestMethod]
    public void DisposingAModuleFreesEverything()
    {
        long live0 = Tensor.LiveCount;
        var block = new Block();
        Assert.IsGreaterThan(live0, Tensor.LiveCount);
        block.Dispose();
        Assert.AreEqual(live0, Tensor.LiveCount);
    }

    [TestMethod]
    public void DefaultInitMatchesPyTorchUnderTheSameSeed()
    {
        using var fixture = Fixture("init.safetensors");
        TorchRuntime.ManualSeed(0);
        using var lin = new Linear(5, 3);
        using var conv = new Conv2d(4, 6, 3, groups: 2);
        TensorAssert.Equal(fixture["linear.weight"], lin.Weight, "Linear.weight");
        TensorAssert.Equal(fixture["linear.bias"], lin.Bias!, "Linear.bias");
        TensorAssert.Equal(fixture["conv.weight"], conv.Weight, "Conv2d.weight");
        TensorAssert.Equal(fixture["conv.bias"], conv.Bias!, "Conv2d.bias");
    }

    [TestMethod]
    public void InitialisersMatchPyTorchUnderTheSameSeed()
    {
        using var fixture = Fixture("init.safetensors");
        using var scope = TensorScope.Begin();
        TorchRuntime.ManualSeed(1);
        var a = Init.TruncNormal_(Tensor.Empty(new long[] { 64, 32 }), std: 0.02);
        var b = Init.KaimingNormal_(Tensor.Empty(new long[] { 16, 8, 3, 3 }), fanIn: false, nonlinearity: "relu");
        var c = Init.XavierUniform_(Tensor.Empty(new long[] { 10, 20 }), gain: 2.0);
        TensorAssert.Close(fixture["trunc_normal"], a, 1e-7, 1e-6, "trunc_normal_");
        TensorAssert.Close(fixture["kaiming_normal_fan_out_relu"], b, 1e-7, 1e-6, "kaiming_normal_");
        TensorAssert.Close(fixture["xavier_uniform_gain2"], c, 1e-7, 1e-6, "xavier_uniform_");
        Assert.AreEqual(0.5 * (1 + 0.8427007929497149), (1 + Init.Erf(1)) / 2, 1e-15);
    }

    [TestMethod]
    public void BatchNormTrainingUpdatesRunningStatsLikePyTorch()
    {
        using var f = Fixture("module.safetensors");
        using var scope = TensorScope.Begin();
        using var bn = new BatchNorm2d(4);
        TensorAssert.Close(f["bn.y1"], bn.Call(f["bn.x1"]), Tolerances.Float32Abs, Tolerances.Float32Rel, "train step 1");
        TensorAssert.Close(f["bn.y2"], bn.Call(f["bn.x2"]), Tolerances.Float32Abs, Tolerances.Float32Rel, "train step 2");
        TensorAssert.Close(f["bn.running_mean"], bn.RunningMean!, Tolerances.Float32Abs, Tolerances.Float32Rel, "running_mean");
        TensorAssert.Close(f["bn.running_var"], bn.RunningVar!, Tolerances.Float32Abs, Tolerances.Float32Rel, "running_var");
        Assert.AreEqual(2L, bn.NumBatchesTracked!.ToInt64());
        bn.Eval();
        TensorAssert.Close(f["bn.y_eval"], bn.Call(f["bn.x1"]), Tolerances.Float32Abs, Tolerances.Float32Rel, "eval");
    }

    [TestMethod]
    public void SequentialFreesIntermediatesAndIdentityAliases()
    {
        using var scope = TensorScope.Begin();
        using var seq = new Sequential(new Linear(4, 4), new GELU(), new Identity());
        var x = Tensor.Randn(new long[] { 2, 4 });
        long live = Tensor.LiveCount;
        var y = seq.Call(x);
        Assert.AreEqual(live + 1, Tensor.LiveCount, "only the result survives");
        CollectionAssert.AreEqual(new long[] { 2, 4 }, y.Shape);
    }
}

using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Optim;

/// <summary>Trajectories against torch.optim driven by the same fixed gradients (make_nn_fixtures.py).</summary>
[TestClass]
public sealed class OptimizerTests
{
    static StateDict Fixture() => SafeTensors.Load(Fixtures.Path("nn/optim.safetensors"));

    static (Parameter W, Parameter B) Params(StateDict f) => (new Parameter(f["w0"].Clone()), new Parameter(f["b0"].Clone()));

    static void Run(StateDict f, string tag, Parameter w, Parameter b, Optimizer opt)
    {
        for (int k = 0; k < 4; k++)
        {
            w.Grad = f[$"grad{k}.w"];
            b.Grad = f[$"grad{k}.b"];
            opt.Step();
            TensorAssert.Close(f[$"{tag}.step{k}.w"], w, 1e-6, 1e-6, $"{tag} weight after step {k}");
            TensorAssert.Close(f[$"{tag}.step{k}.b"], b, 1e-6, 1e-6, $"{tag} bias after step {k}");
        }
    }

    [TestMethod]
    public void AdamWWithTwoGroupsMatchesTorch()
    {
        using var f = Fixture();
        var (w, b) = Params(f);
        using var _w = w;
        using var _b = b;
        using var opt = new AdamW(new[] { new ParamGroup(new[] { w }, 1e-2, 0.05), new ParamGroup(new[] { b }, 3e-3, 0) }, 0.9, 0.99, 1e-8);
        Run(f, "adamw", w, b, opt);
        var state = opt.State(w)!;
        Assert.AreEqual(4L, state.Step);
        TensorAssert.Close(f["adamw.state.w.exp_avg"], state.Tensors["exp_avg"], 1e-7, 1e-6, "exp_avg");
        TensorAssert.Close(f["adamw.state.w.exp_avg_sq"], state.Tensors["exp_avg_sq"], 1e-7, 1e-6, "exp_avg_sq");
    }

    [TestMethod]
    [DataRow("sgd_nesterov", 0.1, 0.9, 0.0, 1e-3, true)]
    [DataRow("sgd_dampening", 0.05, 0.8, 0.3, 0.0, false)]
    [DataRow("sgd_plain", 0.05, 0.0, 0.0, 0.0, false)]
    public void SgdMatchesTorch(string tag, double lr, double momentum, double dampening, double wd, bool nesterov)
    {
        using var f = Fixture();
        var (w, b) = Params(f);
        using var _w = w;
        using var _b = b;
        using var opt = new Sgd(new[] { w, b }, lr, momentum, dampening, wd, nesterov);
        Run(f, tag, w, b, opt);
        if (momentum != 0)
            TensorAssert.Close(f[$"{tag}.state.w.momentum_buffer"], opt.State(w)!.Tensors["momentum_buffer"], 1e-7, 1e-6, "momentum_buffer");
    }

    [TestMethod]
    [DataRow("clip2", 1.0, 2.0)]
    [DataRow("clipinf", 0.5, double.PositiveInfinity)]
    [DataRow("clipbig", 100.0, 2.0)]
    public void ClipGradNormMatchesTorch(string tag, double maxNorm, double normType)
    {
        using var f = Fixture();
        using var w = new Parameter(f["w0"].Clone());
        using var b = new Parameter(f["b0"].Clone());
        w.Grad = f["grad0.w"];
        b.Grad = f["grad0.b"];
        double total = GradClip.ClipGradNorm(new[] { w, b }, maxNorm, normType);
        Assert.AreEqual(f[$"{tag}.total"].ToDouble(), total, 1e-6);
        using var gw = w.Grad!;
        using var gb = b.Grad!;
        TensorAssert.Close(f[$"{tag}.w"], gw, 1e-7, 1e-6, "clipped weight grad");
        TensorAssert.Close(f[$"{tag}.b"], gb, 1e-7, 1e-6, "clipped bias grad");
    }

    [TestMethod]
    public void StepScheduleMatchesStepLR()
    {
        using var f = Fixture();
        var expected = f["steplr"].ToArray<double>();
        var schedule = new StepSchedule(3, 0.5);
        for (int s = 0; s < expected.Length; s++) Assert.AreEqual(expected[s], schedule.At(s, 0.5), 1e-15, $"step {s}");
    }

    [TestMethod]
    public void OneCycleScheduleMatchesOneCycleLR()
    {
        using var f = Fixture();
        var expected = f["onecycle"].ToArray<double>();
        var schedule = new OneCycleSchedule(riseSteps: 5, totalSteps: 20);
        for (int s = 0; s < expected.Length; s++) Assert.AreEqual(expected[s], schedule.At(s, 0.5), 1e-12, $"step {s}");
        Assert.AreEqual(0.5, schedule.At(4, 0.5), 1e-15, "the peak");
        var named = LrSchedule.Create("one-cycle", warmupSteps: 5, totalSteps: 20, minFactor: 0.5);
        for (int s = 0; s < expected.Length; s++) Assert.AreEqual(expected[s], named.At(s, 0.5), 1e-12, $"by name, step {s}");
    }

    /// <summary>Schedules by name share the linear warm-up from 0; after it, cosine is <see cref="WarmupCosineSchedule"/>,
    /// step multiplies by 0.1 at each third of the remaining steps, constant keeps the base rate.</summary>
    [TestMethod]
    public void NamedSchedules_ShareTheWarmup()
    {
        var cosine = LrSchedule.Create("cosine", 4, 34, 0.01);
        var reference = new WarmupCosineSchedule(4, 34, 0, 0.01);
        var step = LrSchedule.Create("step", 4, 34, 0.01);
        var constant = LrSchedule.Create("constant", 4, 34, 0.01);
        for (int s = 0; s < 40; s++)
        {
            Assert.AreEqual(reference.At(s, 2.0), cosine.At(s, 2.0), 1e-15);
            if (s < 4)
            {
                Assert.AreEqual(2.0 * s / 4, step.At(s, 2.0), 1e-15, $"warm-up step {s}");
                Assert.AreEqual(2.0 * s / 4, constant.At(s, 2.0), 1e-15, $"warm-up step {s}");
                continue;
            }
            Assert.AreEqual(2.0 * Math.Pow(0.1, (s - 4) / 10), step.At(s, 2.0), 1e-15, $"step {s}");
            Assert.AreEqual(2.0, constant.At(s, 2.0));
        }
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => LrSchedule.Create("linear", 0, 10, 0)).Message, "cosine, step, one-cycle, constant");
    }

    /// <summary>What a checkpoint stores of an optimizer is whatever state it keeps (SGD's momentum buffer, AdamW's
    /// moments), restored so the next steps are identical.</summary>
    [TestMethod]
    [DataRow("sgd")]
    [DataRow("adamw")]
    public void OptimizerState_SavesAndLoadsWhateverItKeeps(string name)
    {
        using var scope = TensorScope.Begin();
        Parameter Make() => new(Tensor.FromArray(new float[] { 1, -2, 3 }, [3]));
        var (a, b) = (Make(), Make());
        var grads = new[] { new float[] { 0.5f, -1, 2 }, new float[] { -0.25f, 0.5f, 1 }, new float[] { 1, 1, -1 } };
        using var first = OptimizerChoice.Create(name, [new ParamGroup([a], 0.1, 0.01)]);
        using var second = OptimizerChoice.Create(name, [new ParamGroup([b], 0.1, 0.01)]);
        void Step(Optimizer o, Parameter p, float[] g)
        {
            p.Grad = Tensor.FromArray(g, [3]);
            o.Step();
            o.ZeroGrad();
        }
        Step(first, a, grads[0]);
        var (tensors, steps) = first.SaveState([("w", a)]);
        CollectionAssert.AreEqual(name == "sgd" ? new[] { "w.momentum_buffer" } : new[] { "w.exp_avg", "w.exp_avg_sq" }, tensors.Select(t => t.Key).ToArray());
        using (Autograd.NoGrad()) b.Copy_(a);
        second.LoadState([("w", b)], steps, tensors.ToDictionary(t => t.Key, t => t.Value), Device.Cpu);
        foreach (var g in grads.Skip(1))
        {
            Step(first, a, g);
            Step(second, b, g);
        }
        CollectionAssert.AreEqual(a.ToArray<float>(), b.ToArray<float>());
    }

    [TestMethod]
    public void WarmupCosineRisesThenDecays()
    {
        var s = new WarmupCosineSchedule(warmupSteps: 10, totalSteps: 110, warmupStartFactor: 0.1, minFactor: 0.01);
        Assert.AreEqual(0.1, s.At(0, 1.0), 1e-12);
        Assert.AreEqual(0.55, s.At(5, 1.0), 1e-12);
        Assert.AreEqual(1.0, s.At(10, 1.0), 1e-12);
        Assert.AreEqual(0.01 + 0.5 * 0.99, s.At(60, 1.0), 1e-12, "half-way down the cosine");
        Assert.AreEqual(0.01, s.At(110, 1.0), 1e-12);
        Assert.AreEqual(0.01, s.At(500, 1.0), 1e-12);
        for (long k = 11; k < 110; k++) Assert.IsLessThanOrEqualTo(s.At(k - 1, 1.0), s.At(k, 1.0));
        using var p = new Parameter(Tensor.Zeros(new long[] { 1 }));
        using var opt = new AdamW(new[] { new ParamGroup(new[] { p }, 2e-3, 0, "only") });
        s.Apply(opt, 5);
        Assert.AreEqual(2e-3 * 0.55, opt.Groups[0].LearningRate, 1e-15);
        Assert.AreEqual(2e-3, opt.Groups[0].InitialLearningRate);
    }

    [TestMethod]
    public void BadHyperParametersAreRejected()
    {
        using var p = new Parameter(Tensor.Zeros(new long[] { 1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AdamW(new[] { p }, lr: -1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AdamW(new[] { p }, beta1: 1.0));
        Assert.ThrowsExactly<ArgumentException>(() => new Sgd(new[] { p }, 0.1, nesterov: true));
        var e = Assert.ThrowsExactly<ArgumentException>(() => new AdamW(new[] { new ParamGroup(new[] { p }, 1e-3), new ParamGroup(new[] { p }, 1e-3, name: "again") }));
        StringAssert.Contains(e.Message, "more than one group");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new WarmupCosineSchedule(10, 10));
    }

    [TestMethod]
    public void ZeroGradClearsAndStepSkipsParametersWithoutGrad()
    {
        using var w = new Parameter(Tensor.Ones(new long[] { 2 }));
        using var b = new Parameter(Tensor.Ones(new long[] { 2 }));
        using var opt = new Sgd(new[] { w, b }, 0.5);
        using (var g = Tensor.Ones(new long[] { 2 })) w.Grad = g;
        opt.Step();
        CollectionAssert.AreEqual(new[] { 0.5f, 0.5f }, w.ToArray<float>());
        CollectionAssert.AreEqual(new[] { 1f, 1f }, b.ToArray<float>());
        Assert.IsNull(opt.State(b));
        opt.ZeroGrad();
        Assert.IsNull(w.Grad);
    }
}

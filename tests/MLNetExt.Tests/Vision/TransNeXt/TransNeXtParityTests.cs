using System.Text.Json.Nodes;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.TransNeXt;

namespace MLNetExt.Tests.Vision.TransNeXt;

/// <summary>Shared helpers: the fixture files of tests/fixtures/transnext and the hashed inputs of the generator.</summary>
internal static class TransNeXtFixtures
{
    public static string Path(string name) => Fixtures.Path("transnext/" + name);

    public static JsonObject Json(string name) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path(name)))!;

    /// <summary>The generator's input: element i is float32(((i + salt)·2654435761 mod 2³²) / 2³² · 4 − 2).</summary>
    public static Tensor HashedInput(long[] shape, long salt)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var data = new float[n];
        for (long i = 0; i < n; i++)
        {
            ulong v = (ulong)(i + salt) * 2654435761UL % 4294967296UL;
            data[i] = (float)(v / 4294967296.0 * 4.0 - 2.0);
        }
        return Tensor.From(data, shape);
    }

    /// <summary>Builds the small configuration of a parity fixture, optionally for another resolution, and loads
    /// its perturbed weights strictly.</summary>
    public static TransNeXtModel Build(JsonObject meta, StateDict fixture, JsonObject? runOverrides = null)
    {
        var kwargs = (JsonObject)meta["kwargs"]!.DeepClone();
        if (runOverrides is not null)
            foreach (var key in new[] { "img_size", "pretrain_size", "fixed_pool_size" })
                if (runOverrides[key] is not null) kwargs[key] = runOverrides[key]!.DeepClone();
        var model = (TransNeXtModel)Backbones.CreateCustom("transnext", kwargs);
        var weights = fixture.Where(kv => kv.Key.StartsWith("weights.", StringComparison.Ordinal))
            .Select(kv => new KeyValuePair<string, Tensor>(kv.Key["weights.".Length..], kv.Value)).ToList();
        model.LoadStateDict(weights, strict: true);
        model.Eval();
        return model;
    }
}

/// <summary>Logits, stage maps and gradients of small configurations against the official native code
/// (tests/fixtures/transnext/make_transnext_fixtures.py), with every parameter perturbed away from its init.</summary>
[TestClass]
public sealed class TransNeXtParityTests
{
    /// <summary>Config a: aggregated attention in stages 1–3 and MHSA in stage 4 (two blocks in stage 3), eps 1e-6.
    /// Config b: aggregated attention in all four stages (A-A-A-A, sr 16/8/4/2), window 5 in stage 2, no qkv bias,
    /// default eps 1e-5. Runs: 224; 256 built with pretrain 224; 288 in linear mode with a fixed 5×5 pool
    /// (uneven bins); b at 256 and at 224 with pretrain 256.</summary>
    [TestMethod]
    [DataRow("a", "r224")]
    [DataRow("a", "r256_pre224")]
    [DataRow("a", "r288_linear5")]
    [DataRow("b", "r256")]
    [DataRow("b", "r224")]
    public void LogitsMatchOfficial(string config, string run)
    {
        using var scope = TensorScope.Begin();
        var meta = TransNeXtFixtures.Json($"parity_{config}.json");
        using var fixture = SafeTensors.Load(TransNeXtFixtures.Path($"parity_{config}.safetensors"));
        var r = meta["runs"]!.AsArray().Select(n => n!.AsObject()).Single(n => (string)n["name"]! == run);
        using var model = TransNeXtFixtures.Build(meta, fixture, r);
        int img = (int)r["img_size"]!;
        using var x = TransNeXtFixtures.HashedInput(new long[] { (int)r["batch"]!, 3, img, img }, (long)r["salt"]!);
        using var logits = model.Call(x);
        using var err = (logits - fixture[$"{run}.logits"]).Abs().Max();
        Console.WriteLine($"transnext parity {config}/{run}: max abs logit error {err.ToDouble():E2}");
        TensorAssert.Close(fixture[$"{run}.logits"], logits, Tolerances.BackboneParity, 0, $"transnext parity {config}/{run} logits");
    }

    [TestMethod]
    public void StageMapsMatchOfficial()
    {
        using var scope = TensorScope.Begin();
        var meta = TransNeXtFixtures.Json("parity_a.json");
        using var fixture = SafeTensors.Load(TransNeXtFixtures.Path("parity_a.safetensors"));
        using var model = TransNeXtFixtures.Build(meta, fixture);
        using var x = TransNeXtFixtures.HashedInput(new long[] { 2, 3, 224, 224 }, 11);
        using var first = x.Narrow(0, 0, 1);
        var stages = model.ForwardStages(first);
        Assert.AreEqual(4, stages.Count);
        for (int i = 0; i < 4; i++)
        {
            using var err = (stages[i] - fixture[$"r224.stage{i + 1}"]).Abs().Max();
            Console.WriteLine($"transnext parity a/r224 stage {i + 1}: max abs error {err.ToDouble():E2}");
            TensorAssert.Close(fixture[$"r224.stage{i + 1}"], stages[i], Tolerances.BackboneParity, 0, $"stage {i + 1}");
            Assert.AreEqual(model.FeatureInfo[i].Channels, stages[i].Size(1));
            Assert.AreEqual(224 / model.FeatureInfo[i].Reduction, stages[i].Size(2));
        }
        // ForwardFeatures is the last stage map, ForwardHead(preLogits) its token mean
        using var features = model.ForwardFeatures(first);
        TensorAssert.Close(stages[3], features, 0, 0, "features = stage 4");
        using var pre = model.ForwardHead(features, preLogits: true);
        using var mean = stages[3].Mean(new long[] { 2, 3 });
        TensorAssert.Close(mean, pre, 1e-6, 0, "pre-logits = token mean");
        foreach (var s in stages) s.Dispose();
    }

    [TestMethod]
    public void GradientsMatchOfficial()
    {
        using var scope = TensorScope.Begin();
        var meta = TransNeXtFixtures.Json("parity_a.json");
        using var fixture = SafeTensors.Load(TransNeXtFixtures.Path("parity_a.safetensors"));
        using var model = TransNeXtFixtures.Build(meta, fixture);
        using var x = TransNeXtFixtures.HashedInput(new long[] { 2, 3, 224, 224 }, 11);
        var logits = model.Call(x);
        using var weights = Tensor.Linspace(-1, 1, logits.NumEl).Reshape(logits.Shape);
        var loss = (logits * weights).Sum();
        TensorAssert.Close(fixture["r224.loss"], loss.Reshape(1), 1e-4, 1e-5, "loss");
        loss.Backward();
        var named = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        var keys = meta["runs"]![0]!["grad_keys"]!.AsArray().Select(n => (string)n!).ToList();
        Assert.IsGreaterThan(5, keys.Count);
        foreach (var k in keys)
        {
            var g = named[k].Grad ?? throw new AssertFailedException($"no gradient for {k}");
            TensorAssert.Close(fixture[$"r224.grad.{k}"], g, Tolerances.GradAbs, Tolerances.GradRel, $"grad {k}");
        }
    }

    [TestMethod]
    public void BatchEntriesAreIndependent()
    {
        // the sliding window and every reshape keep the batch dynamic: one sample alone gives the same logits
        using var scope = TensorScope.Begin();
        var meta = TransNeXtFixtures.Json("parity_b.json");
        using var fixture = SafeTensors.Load(TransNeXtFixtures.Path("parity_b.safetensors"));
        using var model = TransNeXtFixtures.Build(meta, fixture);
        using var x = TransNeXtFixtures.HashedInput(new long[] { 2, 3, 256, 256 }, 5);
        using var second = x.Narrow(0, 1, 1);
        using var logits = model.Call(second);
        using var expected = fixture["r256.logits"].Narrow(0, 1, 1);
        TensorAssert.Close(expected, logits, Tolerances.BackboneParity, 0, "second sample alone");
    }
}

using System.Text.Json.Nodes;
using MLNetExt.Cli;
using MLNetExt.Imaging;
using MLNetExt.Inference;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Interpretation;

/// <summary>Grad-CAM: for a head that pools and applies one linear layer it is exactly the class activation map
/// (computed here from the features and the head's weights); on every family it covers the network's view with values in
/// [0, 1] and explains the predicted class with the probability Predict gives; the model's parameters and gradients are
/// untouched; the `explain` verb writes the pictures and refuses exports.</summary>
[TestClass]
public sealed class ClassActivationMapTests
{
    static readonly string[] Classes = ["ant", "bee", "wasp"];

    static JsonObject Kwargs(string family) => family switch
    {
        "smt" => JsonNode.Parse("""{"embed_dims": [8, 16, 32, 32], "ca_num_heads": [4, 4, 4, -1], "sa_num_heads": [-1, -1, 4, 4], "mlp_ratios": [2, 2, 2, 2], "qkv_bias": true, "depths": [1, 2, 4, 1], "head_conv": 3}""")!.AsObject(),
        "transxnet" => Export.TinyConfig.Kwargs,
        "mixformer" => Training.TrainerTests.TinyKwargs(),
        _ => new JsonObject
        {
            ["window_size"] = new JsonArray(3, 3, 3, null), ["patch_size"] = 4, ["embed_dims"] = new JsonArray(16, 24, 32, 48),
            ["num_heads"] = new JsonArray(2, 2, 4, 4), ["mlp_ratios"] = new JsonArray(4.0, 4.0, 3.0, 2.0), ["qkv_bias"] = true,
            ["depths"] = new JsonArray(1, 1, 1, 1), ["sr_ratios"] = new JsonArray(8, 4, 2, 1),
        },
    };

    /// <summary>A random-initialised model of <paramref name="family"/> for 64x64 inputs, three classes.</summary>
    static ImageClassificationModel Model(string family, int seed = 3)
    {
        using var _ = TensorScope.Begin();
        TorchRuntime.ManualSeed((ulong)seed);
        var probe = Backbones.CreateCustom(family, Kwargs(family), Classes.Length);
        var config = probe.PretrainedConfig;
        probe.Dispose();
        var descriptor = new ModelDescriptor(family, Kwargs(family), Classes, 64, config.Mean, config.Std, config.CropPct, config.Interpolation);
        return new ImageClassificationModel(descriptor.CreateBackbone(), descriptor, null);
    }

    static RgbImage Picture(int width, int height, int seed)
    {
        var path = MLNet.ExportedClassifier.WritePicture(Path.GetTempPath(), $"cam-{Guid.NewGuid():N}.png", width, height, seed);
        try { return ImageDecoder.DecodeFile(path); }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void ForAPooledLinearHead_GradCamIsTheClassActivationMap()
    {
        using var model = Model("smt");
        var image = Picture(90, 70, 1);
        var smt = model.Backbone;
        int withEvidence = 0;
        for (int c = 0; c < Classes.Length; c++)
        {
            var cam = model.Explain(image, c);
            // CAM: the head's weights of class c over the feature map, negative values cut, upsampled and scaled alike.
            using var scope = TensorScope.Begin();
            var data = new float[3 * 64 * 64];
            MLNetExt.Transforms.ImagePipeline.Eval(64, 64, model.Descriptor.Mean, model.Descriptor.Std, model.Descriptor.CropPct,
                Resampler.Parse(model.Descriptor.Interpolation)).Process(image, Rng.For(0, 0), data);
            float[] features;
            long channels, h, w;
            using (Autograd.NoGrad())
            {
                var map = smt.ForwardFeatures(Tensor.FromArray(data, [1, 3, 64, 64]));
                (channels, h, w) = (map.Size(1), map.Size(2), map.Size(3));
                features = map.ToArray<float>();
            }
            var weights = smt.NamedParameters().Single(p => p.Name == "head.weight").Parameter.ToArray<float>();
            var expected = new float[h * w];
            for (int p = 0; p < h * w; p++)
            {
                double v = 0;
                for (int k = 0; k < channels; k++) v += weights[c * channels + k] * features[k * h * w + p];
                expected[p] = (float)Math.Max(0, v);
            }
            var up = ClassActivationMap.Upsample(expected, (int)h, (int)w, 64, 64);
            Assert.AreEqual((int)h, cam.MapHeight);
            for (int i = 0; i < up.Length; i++)
                Assert.AreEqual(up[i], cam.Heat[i], 1e-4f, $"class {c}, pixel {i}");
            if (cam.Heat.Max() > 0) withEvidence++;
        }
        Assert.IsGreaterThan(0, withEvidence, "some class has evidence somewhere: the comparison is not of empty maps");
    }

    [TestMethod]
    [DataRow("transxnet")]
    [DataRow("transnext")]
    [DataRow("smt")]
    [DataRow("mixformer")]
    public void EveryFamily_ExplainsThePredictedClass_OverTheNetworksView_LeavingTheModelAsItWas(string family)
    {
        using var model = Model(family);
        var image = Picture(120, 80, 2);
        var parameters = model.Backbone.Parameters().ToList();
        var before = parameters.Select(p => p.ToArray<float>()).ToList();
        var prediction = model.Predict(image);
        var cam = model.Explain(image);

        Assert.AreEqual(prediction.Index, cam.ClassIndex, "the predicted class by default");
        Assert.AreEqual(prediction.Label, cam.Label);
        Assert.AreEqual(prediction.Score, cam.Probability, 1e-5f);
        Assert.AreEqual(64, cam.Image.Width);
        Assert.AreEqual(64, cam.Image.Height);
        Assert.HasCount(64 * 64, cam.Heat);
        Assert.IsTrue(cam.Heat.All(v => v >= 0 && v <= 1), "heat in [0, 1]");
        Assert.IsTrue(cam.Heat.Max() is 0f or 1f, "scaled so the strongest place is 1 (or no evidence at all)");
        Assert.AreEqual(2, cam.MapHeight, "64 / 32");
        var overlay = cam.Overlay();
        Assert.AreEqual(cam.Image.Width, overlay.Width);
        CollectionAssert.AreEqual(cam.Image.Pixels, cam.Overlay(0).Pixels, "opacity 0 leaves the image");

        var other = model.Explain(image, (cam.ClassIndex + 1) % Classes.Length);
        Assert.AreEqual((cam.ClassIndex + 1) % Classes.Length, other.ClassIndex);
        for (int i = 0; i < parameters.Count; i++)
        {
            Assert.IsTrue(parameters[i].RequiresGrad, "requires_grad restored");
            Assert.IsNull(parameters[i].Grad, "no gradient left on a parameter");
            CollectionAssert.AreEqual(before[i], parameters[i].ToArray<float>());
        }
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Explain(image, Classes.Length));
    }

    [TestMethod]
    public void ExplainCommand_WritesTheViewBesideItsHeat_AndRefusesExports()
    {
        var dir = Directory.CreateTempSubdirectory("mlnx-explain-").FullName;
        try
        {
            var weights = Path.Combine(dir, "model.safetensors");
            using (var model = Model("mixformer")) model.Save(weights);
            var photos = Path.Combine(dir, "photos");
            Directory.CreateDirectory(Path.Combine(photos, "more"));
            MLNet.ExportedClassifier.WritePicture(photos, "a.png", 100, 60, 4);
            MLNet.ExportedClassifier.WritePicture(Path.Combine(photos, "more"), "a.png", 50, 90, 5);
            File.WriteAllText(Path.Combine(photos, "broken.jpg"), "<html>");
            var output = Path.Combine(dir, "out");
            var log = new StringWriter();
            Assert.AreEqual(0, ExplainCommand.Run(new FileInfo(weights), [photos], output, "bee", log));
            var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.HasCount(3, lines, log.ToString());
            StringAssert.Contains(log.ToString(), "broken.jpg\terror: ");
            foreach (var name in new[] { "a.cam.png", "a-2.cam.png" })
            {
                var picture = ImageDecoder.DecodeFile(Path.Combine(output, name));
                Assert.AreEqual(64 + 8 + 64, picture.Width, "the view, a gap, the view with its heat");
                Assert.AreEqual(64, picture.Height);
            }
            Assert.IsTrue(lines.Where(l => !l.Contains("error")).All(l => l.Split('\t')[1].StartsWith("bee ", StringComparison.Ordinal)), "the class asked for");

            var onnx = Path.Combine(dir, "model.onnx");
            File.WriteAllText(onnx, "not used");
            var e = Assert.ThrowsExactly<ArgumentException>(() => ExplainCommand.Run(new FileInfo(onnx), [photos], output, null, new StringWriter()));
            StringAssert.Contains(e.Message, "model.safetensors");
            var unknown = Assert.ThrowsExactly<ArgumentException>(() => ExplainCommand.Run(new FileInfo(weights), [photos], output, "moth", new StringWriter()));
            StringAssert.Contains(unknown.Message, "'ant', 'bee', 'wasp'");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

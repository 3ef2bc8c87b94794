using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Inference;
using MLNetExt.OnnxRuntime;
using MLNetExt.Tests.MLNet;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Training;

/// <summary>Test-time augmentation by the mirror image: the logits are the mean of the network's logits on the image and
/// on its left-right mirror (the mirror made here by hand, not by the code under test), in the libtorch model, its ONNX
/// export (dynamic batch), its ML.NET model.zip and after training; the choice travels with the model file.</summary>
[TestClass]
public sealed class TestTimeAugmentationTests
{
    static readonly string[] Classes = ["red", "green", "blue"];

    /// <summary>[N,3,H,W] row-major images mirrored left-right.</summary>
    static float[] Mirrored(float[] x, int n, int h, int w)
    {
        var m = new float[x.Length];
        for (int p = 0; p < n * 3 * h; p++)
            for (int j = 0; j < w; j++)
                m[p * w + j] = x[p * w + (w - 1 - j)];
        return m;
    }

    static float[] Call(Func<Tensor, Tensor> f, float[] x, long[] shape)
    {
        using var scope = TensorScope.Begin();
        using var _ = Autograd.NoGrad();
        return f(Tensor.FromArray(x, shape)).ToArray<float>();
    }

    static float[] Mean(float[] a, float[] b) => a.Zip(b, (u, v) => (u + v) / 2).ToArray();

    static float[] Softmax(float[] z, int classes) => ScoreCalibrationTests.Softmax(z.Select(v => (double)v).ToArray(), classes, 1);

    static void Close(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.HasCount(expected.Length, actual, what);
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], actual[i], tolerance, $"{what} [{i}]");
    }

    /// <summary>The tiny MixFormer of the trainer tests at 32 px with 3 classes and fresh weights.</summary>
    internal static ImageClassificationModel TinyModel(TestTimeAugmentation tta = TestTimeAugmentation.None)
    {
        TorchRuntime.ManualSeed(3);
        var descriptor = new ModelDescriptor("mixformer", TrainerTests.TinyKwargs(), Classes, 32, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225],
            0.875, "bicubic", TestTimeAugmentation: tta);
        return new ImageClassificationModel(descriptor.CreateBackbone(), descriptor, null);
    }

    /// <summary>The tiny TransXNet of the export fixtures (112 px, 10 classes) with its perturbed weights.</summary>
    static Backbone TinyTransXNet()
    {
        var backbone = Backbones.CreateCustom("transxnet", MLNetExt.Tests.Export.TinyConfig.Kwargs);
        backbone.LoadStateDict(MLNetExt.Tests.Export.TinyConfig.Weights);
        return backbone;
    }

    /// <summary>The exported graph (normalised input, batch 3 and 1) outputs the mean logits and features of each image and
    /// its mirror, and Score = softmax of those logits; the metadata names the views; a feature export refuses them.</summary>
    [TestMethod]
    public void Export_AveragesTheLogitsAndFeaturesOfTheImageAndItsMirror()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-tta-export-");
        try
        {
            using var scope = TensorScope.Begin();
            using var backbone = TinyTransXNet();
            backbone.Eval();
            var onnx = Path.Combine(dir.FullName, "flip.onnx");
            OnnxExporter.Export(backbone, onnx, new OnnxExportOptions
            {
                ImageSize = (112, 112), Preprocess = OnnxPreprocess.None, IncludeFeatures = true, TestTimeAugmentation = TestTimeAugmentation.Flip,
            });

            var random = new Random(9);
            var x = Enumerable.Range(0, 3 * 3 * 112 * 112).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            var mirror = Mirrored(x, 3, 112, 112);
            long[] shape = [3, 3, 112, 112];
            var (plain, mirrored) = (Call(backbone.Call, x, shape), Call(backbone.Call, mirror, shape));
            Func<Tensor, Tensor> features = t => backbone.ForwardHead(backbone.ForwardFeatures(t), preLogits: true);
            var expectedFeatures = Mean(Call(features, x, shape), Call(features, mirror, shape));
            Assert.IsGreaterThan(1e-3, plain.Zip(mirrored, (a, b) => Math.Abs(a - b)).Max(), "the mirror changes the logits: the test can tell the views apart");

            using var session = OnnxSession.FromFile(onnx, new OnnxSessionOptions { IntraOpThreads = 1 });
            Assert.AreEqual(TestTimeAugmentation.Flip, ExportedModelInfo.From(session, onnx).TestTimeAugmentation);
            using (var run = session.Run(OnnxExporter.NormalizedInput, OnnxTensor.FromArray(x, 3, 3, 112, 112)))
            {
                var logits = run["logits"].ToArray<float>();
                Close(Mean(plain, mirrored), logits, Tolerances.OnnxExportParity, "logits");
                Close(Softmax(logits, 10), run["Score"].ToArray<float>(), Tolerances.OnnxExportParity, "Score");
                Close(expectedFeatures, run["features"].ToArray<float>(), Tolerances.OnnxExportParity, "features");
            }
            // the batch stays dynamic: one image alone gets its own row
            using (var one = session.Run(OnnxExporter.NormalizedInput, OnnxTensor.FromArray(x[..(3 * 112 * 112)], 1, 3, 112, 112)))
                Close(Mean(plain[..10], mirrored[..10]), one["logits"].ToArray<float>(), Tolerances.OnnxExportParity, "batch 1 logits");

            var e = Assert.ThrowsExactly<ArgumentException>(() => OnnxExporter.Export(backbone, Path.Combine(dir.FullName, "f.onnx"),
                new OnnxExportOptions { ImageSize = (112, 112), Head = OnnxHead.PreLogits, TestTimeAugmentation = TestTimeAugmentation.Flip }));
            StringAssert.Contains(e.Message, "test-time augmentation is for classifier exports");
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>The mirror-averaging graph in every precision: INT8 (dynamic, and static calibrated on images) and FP16
    /// exports with views stay as close to the float32 export with views as the precisions promise.</summary>
    [TestMethod]
    public void Export_WithFlip_InEveryPrecision_StaysCloseToFloat32()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-tta-precision-");
        try
        {
            using var scope = TensorScope.Begin();
            using var backbone = TinyTransXNet();
            var images = Enumerable.Range(0, 4).Select(i => ExportedClassifier.WritePicture(dir.FullName, $"c{i}.png", 140, 120, i)).ToList();
            var random = new Random(2);
            var crop = EvalCrop.For(112, 112, backbone.PretrainedConfig.CropPct);
            int n = 2, size = 3 * crop.ResizeHeight * crop.ResizeWidth;
            var x = Enumerable.Range(0, n * size).Select(_ => (float)(random.NextDouble() * 255)).ToArray();
            float[] Logits(OnnxExportOptions options, string name)
            {
                var file = Path.Combine(dir.FullName, name);
                OnnxExporter.Export(backbone, file, options with { ImageSize = (112, 112), TestTimeAugmentation = TestTimeAugmentation.Flip });
                using var session = OnnxSession.FromFile(file, new OnnxSessionOptions { IntraOpThreads = 1 });
                using var run = session.Run(OnnxExporter.ImageInput, OnnxTensor.FromArray(x, n, 3, crop.ResizeHeight, crop.ResizeWidth));
                return run["logits"].ToArray<float>();
            }
            static double Cosine(float[] u, float[] v) =>
                u.Zip(v, (a, b) => (double)a * b).Sum() / Math.Sqrt(u.Sum(a => (double)a * a) * v.Sum(b => (double)b * b));
            var fp32 = Logits(new OnnxExportOptions(), "fp32.onnx");
            var dynamic = Logits(new OnnxExportOptions { Precision = OnnxPrecision.Int8, Int8MinSide = 1 }, "int8.onnx");
            var calibrated = Logits(new OnnxExportOptions { Precision = OnnxPrecision.Int8, Int8MinSide = 1, CalibrationImages = images }, "static.onnx");
            var half = Logits(new OnnxExportOptions { Precision = OnnxPrecision.Float16 }, "fp16.onnx");
            Assert.IsGreaterThanOrEqualTo(Tolerances.Int8LogitsCosine, Cosine(fp32, dynamic), "dynamic INT8 with views");
            Assert.IsGreaterThanOrEqualTo(Tolerances.Int8LogitsCosine, Cosine(fp32, calibrated), "static INT8 with views");
            double largest = fp32.Max(v => Math.Abs(v));
            Assert.IsLessThanOrEqualTo(Tolerances.Float16Relative * largest, fp32.Zip(half, (a, b) => Math.Abs(a - b)).Max(), "FP16 with views");
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>The libtorch model scores softmax(mean logits) of both views, its evaluation reports the image alone too
    /// (equal to the model without views), and the choice survives Save/Load and reaches its ONNX export and the ML.NET
    /// model.zip (same scores on image files); descriptors without the key read as none, a wrong value is named.</summary>
    [TestMethod]
    public void Model_ScoresBothViews_EvaluatesBothWays_AndCarriesTheChoiceIntoItsFileAndExports()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-tta-model-");
        try
        {
            using var model = TinyModel(TestTimeAugmentation.Flip);
            var random = new Random(4);
            var x = Enumerable.Range(0, 2 * 3 * 32 * 32).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            long[] shape = [2, 3, 32, 32];
            var (plain, mirrored) = (Call(model.Backbone.Call, x, shape), Call(model.Backbone.Call, Mirrored(x, 2, 32, 32), shape));
            Assert.IsGreaterThan(1e-4, plain.Zip(mirrored, (a, b) => Math.Abs(a - b)).Max(), "the mirror changes the logits");
            float[] probabilities;
            using (var scope = TensorScope.Begin())
                probabilities = model.Probabilities(Tensor.FromArray(x, shape));
            Close(Softmax(Mean(plain, mirrored), 3), probabilities, Tolerances.Float32Abs, "probabilities");

            // evaluation: the averaged scores, and the image alone from the same pass equal to a model without views
            var data = TrainerTests.ColorData(4, 6, "val");
            var both = model.EvaluateDetailed(data, batchSize: 5);
            model.TestTimeAugmentation = TestTimeAugmentation.None;
            var alone = model.EvaluateDetailed(data, batchSize: 5);
            Assert.IsNull(alone.SingleView);
            Assert.IsNotNull(both.SingleView);
            Assert.AreEqual(alone.Metrics.LogLoss, both.SingleView.LogLoss, 1e-5);
            Assert.AreNotEqual(alone.Metrics.LogLoss, both.Metrics.LogLoss, "the views change the scores");
            model.TestTimeAugmentation = TestTimeAugmentation.Flip;
            Assert.AreEqual(both.Metrics.LogLoss, model.Evaluate(data).LogLoss, 1e-5, "batch size does not matter");

            var file = Path.Combine(dir.FullName, "model.safetensors");
            model.Save(file);
            using var loaded = ImageClassificationModel.Load(file);
            Assert.AreEqual(TestTimeAugmentation.Flip, loaded.TestTimeAugmentation);
            StringAssert.EndsWith(loaded.Descriptor.Describe(), "scored with its mirror image");

            // pictures at the graph's input size, so that ML.NET's resize (Skia) leaves them as they are
            var input = EvalCrop.For(32, 32, 0.875);
            var images = Enumerable.Range(0, 3).Select(i => ExportedClassifier.WritePicture(dir.FullName, $"p{i}.png", input.ResizeWidth, input.ResizeHeight, i)).ToList();
            var ours = loaded.Predict(images, topK: 3);
            var onnx = Path.Combine(dir.FullName, "model.onnx");
            loaded.ExportOnnx(onnx);
            using (var scorer = new OnnxImageScorer(onnx))
            {
                var scores = scorer.ScoreFiles(images);
                for (int i = 0; i < images.Count; i++)
                    foreach (var top in ours[i].Top)
                        Assert.AreEqual(top.Probability, scores[i].Scores![Array.IndexOf(Classes, top.Label)], 2e-5f, $"ONNX image {i}, {top.Label}");
                var mlScores = ExportedClassifier.MLNetScores(onnx, images);
                for (int i = 0; i < images.Count; i++)
                    for (int k = 0; k < Classes.Length; k++)
                        Assert.AreEqual(scores[i].Scores![k], mlScores[i][k], (float)Tolerances.OnnxExportParity, $"ML.NET image {i}, class {k}");
            }

            // the descriptor's JSON: older files have no key (none); a value this version does not know is named
            var json = JsonNode.Parse(model.Descriptor.ToJson())!.AsObject();
            Assert.AreEqual("flip", json["test_time_augmentation"]!.GetValue<string>());
            json.Remove("test_time_augmentation");
            Assert.AreEqual(TestTimeAugmentation.None, ModelDescriptor.Parse(json.ToJsonString(), "old.safetensors").TestTimeAugmentation);
            json["test_time_augmentation"] = "sideways";
            var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelDescriptor.Parse(json.ToJsonString(), "new.safetensors"));
            StringAssert.Contains(e.Message, "test_time_augmentation must be none or flip; found 'sideways'");
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>A run with --tta flip validates the kept model both ways and says so; the recorded validation is the
    /// averaged one and the saved model scores it (with a temperature fitted on the averaged scores, and for a linear
    /// probe trained on cached features too, whose views come from the images).</summary>
    [TestMethod, TestCategory("Slow")]
    public void Training_WithFlip_ValidatesBothWays_AndTheKeptModelScoresAsRecorded()
    {
        var train = TrainerTests.ColorData(12, 1);
        var val = TrainerTests.ColorData(6, 2, "val");
        foreach (var mode in new[] { TrainingMode.FineTune, TrainingMode.LinearProbe })
        {
            var messages = new List<string>();
            var options = TrainerTests.Tiny() with
            {
                Epochs = 2, Mode = mode, TestTimeAugmentation = TestTimeAugmentation.Flip, CalibrateScores = mode == TrainingMode.FineTune,
                Progress = p => { if (p.Message is { } m) messages.Add(m); },
            };
            var outcome = Trainer.Run(options, train, val, CancellationToken.None);
            using var model = new ImageClassificationModel(outcome.Model, outcome.Descriptor, outcome.History);
            Assert.AreEqual(TestTimeAugmentation.Flip, outcome.Descriptor.TestTimeAugmentation, mode.ToString());
            var note = messages.Single(m => m.Contains("mirror image"));
            StringAssert.Contains(note, $"on the {val.Count} validation images top-1 ");
            var result = model.EvaluateDetailed(val);
            Assert.AreEqual(outcome.History.Final!.LogLoss, result.Metrics.LogLoss, 1e-5, $"{mode}: the recorded validation is what the model scores");
            Assert.AreEqual(outcome.History.Final.Top1, result.Metrics.Top1, 1e-9);
            StringAssert.Contains(note, $"-> {result.Metrics.Top1.ToString("P2")}", "the note ends at the recorded top-1");
            Assert.AreEqual("flip", outcome.History.Settings["test_time_augmentation"]);
            if (options.CalibrateScores)
            {
                Assert.AreNotEqual(1.0, outcome.Descriptor.ScoreTemperature, "fitted after the views");
                Assert.IsLessThan(messages.FindIndex(m => m.Contains("scores calibrated")), messages.IndexOf(note), "views first, then the temperature");
            }
        }
    }

    /// <summary>The command line: train's --tta, and --tta of predict and evaluate for a .safetensors model (instead of its
    /// own views); an exported model is refused with the way to export it with views; an unknown value is named.</summary>
    [TestMethod]
    public void Cli_TtaOptions()
    {
        string[] required = ["--data", "d", "--variant", "smt_t", "--output", "o"];
        Assert.AreEqual(TestTimeAugmentation.Flip, TrainCommand.OptionsOf([.. required, "--tta", "flip"]).TestTimeAugmentation);
        Assert.AreEqual(TestTimeAugmentation.None, TrainCommand.OptionsOf(required).TestTimeAugmentation);
        var bad = Assert.ThrowsExactly<ArgumentException>(() => TrainCommand.OptionsOf([.. required, "--tta", "sideways"]));
        StringAssert.Contains(bad.Message, "--tta must be none or flip, got 'sideways'");

        var dir = Directory.CreateTempSubdirectory("mlnetext-tta-cli-");
        try
        {
            var data = Path.Combine(dir.FullName, "data");
            foreach (var (c, i) in Classes.Select((c, i) => (c, i)))
            {
                Directory.CreateDirectory(Path.Combine(data, c));
                for (int k = 0; k < 2; k++) ExportedClassifier.WritePicture(Path.Combine(data, c), $"{k}.png", 40, 36, 10 * i + k);
            }
            var file = new FileInfo(Path.Combine(dir.FullName, "model.safetensors"));
            using (var model = TinyModel())
                model.Save(file.FullName);

            var (plain, flip, own) = (new StringWriter(), new StringWriter(), new StringWriter());
            Assert.AreEqual(0, PredictCommand.Run(file, [data], 3, json: true, plain));
            Assert.AreEqual(0, PredictCommand.Run(file, [data], 3, json: true, flip, tta: "flip"));
            using (var model = TinyModel(TestTimeAugmentation.Flip))
            {
                var expected = model.Predict(ImageDataset.FindImages(data), topK: 3);
                var rows = flip.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
                Assert.HasCount(expected.Count, rows);
                for (int i = 0; i < rows.Count; i++)
                    Assert.AreEqual(expected[i].Score, rows[i].GetProperty("top")[0].GetProperty("probability").GetDouble(), 1e-5, $"image {i}");
            }
            Assert.AreNotEqual(plain.ToString(), flip.ToString());

            var evaluated = new StringWriter();
            var report = Path.Combine(dir.FullName, "eval");
            Assert.AreEqual(0, EvaluateCommand.Run(file, data, report, 4, evaluated, tta: "flip"));
            StringAssert.Contains(evaluated.ToString(), "each image averaged with its mirror image (--tta flip); the image alone: top-1 ");
            using (var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(report, "metrics.json"))))
                Assert.AreEqual("flip", metrics.RootElement.GetProperty("settings").GetProperty("test_time_augmentation").GetString(), "the report says its numbers are the views'");
            var notFlipped = new StringWriter();
            Assert.AreEqual(0, EvaluateCommand.Run(file, data, null, 4, notFlipped));
            Assert.DoesNotContain("mirror", notFlipped.ToString());

            var onnx = new FileInfo(Path.Combine(dir.FullName, "model.onnx"));
            Assert.AreEqual(0, ExportCommand.RunTrained(file, ExportCommand.Settings.Parse(tta: "flip"), onnx, TextWriter.Null));
            using (var session = OnnxSession.FromFile(onnx.FullName, new OnnxSessionOptions { IntraOpThreads = 1 }))
                Assert.AreEqual(TestTimeAugmentation.Flip, ExportedModelInfo.From(session, onnx.FullName).TestTimeAugmentation);
            Assert.AreEqual(0, PredictCommand.Run(onnx, [data], 3, json: true, own));
            static List<double> TopScores(StringWriter w) => w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("top")[0].GetProperty("probability").GetDouble()).ToList();
            var (exported, libtorch) = (TopScores(own), TopScores(flip));
            for (int i = 0; i < libtorch.Count; i++) Assert.AreEqual(libtorch[i], exported[i], 1e-4, $"the export scores with the mirror: image {i}");
            var refused = Assert.ThrowsExactly<ArgumentException>(() => PredictCommand.Run(onnx, [data], 3, json: true, TextWriter.Null, tta: "none"));
            StringAssert.Contains(refused.Message, "--tta applies to .safetensors models");
            StringAssert.Contains(refused.Message, "export --model out/model.safetensors --tta flip");
            Assert.ThrowsExactly<ArgumentException>(() => EvaluateCommand.Run(onnx, data, null, 4, TextWriter.Null, tta: "flip"));
            var unknown = Assert.ThrowsExactly<ArgumentException>(() => PredictCommand.Run(file, [data], 3, json: true, TextWriter.Null, tta: "rotate"));
            StringAssert.Contains(unknown.Message, "--tta must be none or flip, got 'rotate'");
        }
        finally { dir.Delete(recursive: true); }
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Export;
using MLNetExt.Inference;
using MLNetExt.MLNet;
using MLNetExt.OnnxRuntime;
using MLNetExt.Tests.MLNet;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Training;

/// <summary>Temperature scaling: the fit recovers the temperature the labels were drawn at; a trained model with
/// calibrated scores keeps its predictions, lowers its validation log-loss and carries the temperature into its file,
/// its scorers, its ONNX export (Score = softmax(logits / T), logits unchanged) and the ML.NET chain.</summary>
[TestClass]
public sealed class ScoreCalibrationTests
{
    /// <summary>Row-wise softmax(z / t) of row-major [rows, classes] values, in float64.</summary>
    internal static float[] Softmax(double[] z, int classes, double t)
    {
        var p = new float[z.Length];
        for (int r = 0; r < z.Length / classes; r++)
        {
            double max = Enumerable.Range(0, classes).Max(j => z[r * classes + j] / t);
            double sum = Enumerable.Range(0, classes).Sum(j => Math.Exp(z[r * classes + j] / t - max));
            for (int j = 0; j < classes; j++) p[r * classes + j] = (float)(Math.Exp(z[r * classes + j] / t - max) / sum);
        }
        return p;
    }

    /// <summary>4000 rows of 5 classes: the model says softmax(z), the labels are drawn from softmax(z / 2) — a model
    /// twice too sure. The fitted temperature is 2, and applying it gives softmax(z / T).</summary>
    [TestMethod]
    public void FitTemperature_RecoversTheTemperatureTheLabelsWereDrawnAt()
    {
        const int n = 4000, classes = 5;
        var random = new Random(3);
        var z = Enumerable.Range(0, n * classes).Select(_ => 3 * (random.NextDouble() * 2 - 1) * 2).ToArray();
        var truth = Softmax(z, classes, 2.0);
        var labels = new int[n];
        for (int r = 0; r < n; r++)
        {
            double u = random.NextDouble(), c = 0;
            labels[r] = classes - 1;
            for (int j = 0; j < classes; j++)
                if ((c += truth[r * classes + j]) > u) { labels[r] = j; break; }
        }
        var model = Softmax(z, classes, 1.0);
        double t = ScoreCalibration.FitTemperature(model, labels, classes);
        Assert.AreEqual(2.0, t, 0.15, "the temperature the labels were drawn at");
        var applied = ScoreCalibration.Apply(model, classes, t);
        var expected = Softmax(z, classes, t);
        for (int i = 0; i < applied.Length; i++) Assert.AreEqual(expected[i], applied[i], 2e-6f);

        var before = ClassificationMetrics.Compute(model, labels, ["a", "b", "c", "d", "e"]);
        var after = ClassificationMetrics.Compute(applied, labels, ["a", "b", "c", "d", "e"]);
        Assert.IsLessThan(before.LogLoss, after.LogLoss);
        Assert.IsLessThan(before.ExpectedCalibrationError!.Value / 2, after.ExpectedCalibrationError!.Value);
        CollectionAssert.AreEqual(before.Confusion.SelectMany(r => r).ToArray(), after.Confusion.SelectMany(r => r).ToArray(), "the same predictions");

        // Every answer right and sure: the temperature stops at its lower bound; nothing to fit: 1.
        Assert.AreEqual(ScoreCalibration.MinTemperature, ScoreCalibration.FitTemperature([0.9f, 0.1f, 0.2f, 0.8f], [0, 1], 2), 1e-6);
        Assert.AreEqual(1.0, ScoreCalibration.FitTemperature([], [], 2));
    }

    /// <summary>The same run with and without calibration: the same predictions, a lower log-loss, the temperature in
    /// the saved model; the libtorch model, its ONNX export and its ML.NET model.zip all score softmax(logits / T).</summary>
    [TestMethod, TestCategory("Slow")]
    public void CalibratedTraining_KeepsThePredictions_AndEveryScorerAppliesTheTemperature()
    {
        var train = TrainerTests.ColorData(24, 1);
        var val = TrainerTests.ColorData(16, 2, "val");
        var options = TrainerTests.Tiny() with { Epochs = 2 };
        var plain = Trainer.Run(options, train, val, CancellationToken.None);
        var calibrated = Trainer.Run(options with { CalibrateScores = true }, train, val, CancellationToken.None);
        using var plainModel = new ImageClassificationModel(plain.Model, plain.Descriptor, plain.History);
        using var model = new ImageClassificationModel(calibrated.Model, calibrated.Descriptor, calibrated.History);

        Assert.AreEqual(1.0, plain.Descriptor.ScoreTemperature);
        double t = calibrated.Descriptor.ScoreTemperature;
        Assert.AreNotEqual(1.0, t);
        var (p, c) = (plain.History.Final!, calibrated.History.Final!);
        CollectionAssert.AreEqual(p.Confusion.SelectMany(r => r).ToArray(), c.Confusion.SelectMany(r => r).ToArray(), "the same predictions");
        Assert.IsLessThanOrEqualTo(p.LogLoss + 1e-9, c.LogLoss, "the log-loss the temperature was fitted to lower");
        Assert.AreEqual(c.LogLoss, model.Evaluate(val).LogLoss, 1e-5, "the model's own evaluation applies the temperature");

        var dir = Directory.CreateTempSubdirectory("mlnetext-calibrated-");
        try
        {
            var file = Path.Combine(dir.FullName, "model.safetensors");
            model.Save(file);
            using var loaded = ImageClassificationModel.Load(file);
            Assert.AreEqual(t, loaded.Descriptor.ScoreTemperature, "saved with the model");

            var onnx = Path.Combine(dir.FullName, "model.onnx");
            model.ExportOnnx(onnx);
            var images = Enumerable.Range(0, 3).Select(i => ExportedClassifier.WritePicture(dir.FullName, $"p{i}.png", 37, 37, i)).ToList();
            using var scorer = new OnnxImageScorer(onnx);
            var onnxScores = scorer.ScoreFiles(images);
            var ours = model.Predict(images, topK: 3);
            using var session = OnnxSession.FromFile(onnx, new OnnxSessionOptions { IntraOpThreads = 1 });
            Assert.AreEqual(t, ExportedModelInfo.From(session, onnx).ScoreTemperature, 1e-12, "recorded in the ONNX metadata");
            for (int i = 0; i < images.Count; i++)
                foreach (var top in ours[i].Top)
                    Assert.AreEqual(top.Probability, onnxScores[i].Scores![model.Classes.ToList().IndexOf(top.Label)], 2e-5f, $"image {i}, {top.Label}");

            var mlScores = ExportedClassifier.MLNetScores(onnx, images);
            for (int i = 0; i < images.Count; i++)
                for (int k = 0; k < model.Classes.Count; k++)
                    Assert.AreEqual(onnxScores[i].Scores![k], mlScores[i][k], 2e-3f, $"ML.NET image {i}, class {k} (Skia resizes 37 px to the input)");
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>An export at T = 0.5: Score is softmax(2 · logits) of the graph's own logits output.</summary>
    [TestMethod]
    public void Export_ScoreIsTheSoftmaxOfTheLogitsOverTheTemperature()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-temperature-");
        try
        {
            using var scope = TensorScope.Begin();
            using var backbone = Backbones.CreateCustom("transxnet", Export.TinyConfig.Kwargs);
            backbone.LoadStateDict(Export.TinyConfig.Weights);
            var onnx = Path.Combine(dir.FullName, "t.onnx");
            OnnxExporter.Export(backbone, onnx, new OnnxExportOptions { ImageSize = (112, 112), Preprocess = OnnxPreprocess.None, ScoreTemperature = 0.5 });
            using var session = OnnxSession.FromFile(onnx, new OnnxSessionOptions { IntraOpThreads = 1 });
            var random = new Random(5);
            var input = Enumerable.Range(0, 2 * 3 * 112 * 112).Select(_ => (float)random.NextDouble()).ToArray();
            using var run = session.Run(OnnxExporter.NormalizedInput, OnnxTensor.FromArray(input, 2, 3, 112, 112));
            var logits = run["logits"].ToArray<float>();
            var score = run["Score"].ToArray<float>();
            int classes = logits.Length / 2;
            var expected = Softmax(logits.Select(v => (double)v).ToArray(), classes, 0.5);
            for (int i = 0; i < score.Length; i++) Assert.AreEqual(expected[i], score[i], 1e-5f);
            Assert.IsTrue(score.Zip(Softmax(logits.Select(v => (double)v).ToArray(), classes, 1), (a, b) => Math.Abs(a - b)).Max() > 1e-3, "not the plain softmax");
        }
        finally { dir.Delete(recursive: true); }
    }
}

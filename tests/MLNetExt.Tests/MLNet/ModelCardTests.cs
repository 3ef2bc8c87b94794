using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Tests.Training;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Tests.MLNet;

/// <summary>The README.md model card of an output folder: the model, its validation scores as recorded, the files that
/// are there (and only those), the class names escaped for Markdown.</summary>
[TestClass]
public sealed class ModelCardTests
{
    [TestMethod]
    public void ModelFolder_WritesACard_OfTheModelAndTheFilesItWrote()
    {
        string[] classes = ["red_one", "green|two", "<blue>"];
        var data = TrainerTests.ColorData(6, 1);
        var renamed = ImageDataset.FromList(classes, data.Items, "colours");
        var val = ImageDataset.FromList(classes, TrainerTests.ColorData(3, 2).Items, "val");
        using var scope = TensorScope.Begin();
        using var model = new ImageClassificationEstimator(TrainerTests.Tiny() with { Epochs = 1 }).Fit(renamed, val);
        var dir = Directory.CreateTempSubdirectory("mlnetext-card-");
        try
        {
            Assert.IsEmpty(ModelFolder.Write(model, dir.FullName, export: false));
            var card = File.ReadAllText(Path.Combine(dir.FullName, "README.md"));
            StringAssert.Contains(card, @"3 classes — red\_one, green\|two, \<blue\>.");
            var f = model.History!.Final!;
            StringAssert.Contains(card, $"top-1 {(f.Top1 * 100).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)} %");
            StringAssert.Contains(card, $"on {f.Count} images (epoch 1 of 1)");
            StringAssert.Contains(card, "`Score = softmax(logits)`");
            StringAssert.Contains(card, "`model.safetensors`");
            // the minimum-score guidance, from the validation scores: shown where a minimum of 0.8 or 0.9 leaves answers
            var history = model.History!;
            var kept = history.Final;
            float[] sure = [.. Enumerable.Range(0, 3).SelectMany(i => new[] { i == 0 ? 0.95f : 0.025f, i == 1 ? 0.95f : 0.025f, i == 2 ? 0.95f : 0.025f })];
            history.Final = ClassificationMetrics.Compute(sure, [0, 1, 2], classes);
            StringAssert.Contains(ModelCard.Markdown(model, false, MLNetExt.Export.OnnxPrecision.Float32),
                "on the validation images: ≥ 0.8: 100 % answered, 100.0 % right; ≥ 0.9: 100 % answered, 100.0 % right (every minimum in `report.html`)");
            history.Final = ClassificationMetrics.Compute([.. sure.Select(_ => 1 / 3f)], [0, 1, 2], classes);
            Assert.DoesNotContain("To answer only when sure", ModelCard.Markdown(model, false, MLNetExt.Export.OnnxPrecision.Float32), "no minimum of 0.8 leaves answers");
            history.Final = kept;
            Assert.DoesNotContain("`model.onnx`", card, "not exported, not listed");
            Assert.DoesNotContain("WebApi", card);

            Assert.IsEmpty(ModelFolder.Write(model, dir.FullName));
            card = File.ReadAllText(Path.Combine(dir.FullName, "README.md"));
            foreach (var file in new[] { "model.onnx", "model.zip", "ModelConsumption.cs", "ConsoleApp/", "WebApi/", "report.html", "metrics.json" })
            {
                StringAssert.Contains(card, $"`{file}`");
                Assert.IsTrue(File.Exists(Path.Combine(dir.FullName, file)) || Directory.Exists(Path.Combine(dir.FullName, file)), file);
            }
            StringAssert.Contains(card, "input `image`, float32 [N, 3, 36, 36]");
        }
        finally { dir.Delete(recursive: true); }
    }
}

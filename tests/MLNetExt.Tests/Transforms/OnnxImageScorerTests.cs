using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Inference;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Transforms;

/// <summary>The scoring transform: an exported model in ONNX Runtime on decoded images gives the probabilities the
/// libtorch model gives on the same evaluation pipeline, in both export modes, batched.</summary>
[TestClass]
public sealed class OnnxImageScorerTests
{
    static Backbone TinyTransXNet()
    {
        using var fixture = SafeTensors.Load(Fixtures.Path("transxnet/tiny.safetensors"));
        var model = Backbones.CreateCustom("transxnet", BackboneConfig.ParseObject(fixture.Metadata["kwargs"], "kwargs"));
        model.LoadStateDict(fixture.Where(kv => kv.Key.StartsWith("weights.")).Select(kv => new KeyValuePair<string, Tensor>(kv.Key["weights.".Length..], kv.Value)));
        model.Eval();
        return model;
    }

    static RgbImage Pattern(int w, int h, int seed)
    {
        var img = new RgbImage(w, h);
        var rng = new Random(seed);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    img.Pixels[(y * w + x) * 3 + c] = (byte)((x * (c + 1) + y * (3 - c) + rng.Next(40)) & 255);
        return img;
    }

    [TestMethod]
    [DataRow(OnnxPreprocess.MLNet)]
    [DataRow(OnnxPreprocess.None)]
    public void ScoresDecodedImagesLikeTheEngine(OnnxPreprocess preprocess)
    {
        using var scope = TensorScope.Begin();
        using var model = TinyTransXNet();
        var path = Path.Combine(Path.GetTempPath(), $"scorer-{Guid.NewGuid():N}.onnx");
        var labels = Enumerable.Range(0, 10).Select(i => $"class{i}").ToArray();
        try
        {
            OnnxExporter.Export(model, path, new OnnxExportOptions { ImageSize = (112, 112), Preprocess = preprocess, Labels = labels });
            using var scorer = new OnnxImageScorer(path, batchSize: 2);
            CollectionAssert.AreEqual(labels, scorer.Labels.ToArray());
            var images = new[] { Pattern(300, 200, 1), Pattern(180, 260, 2), Pattern(112, 112, 3) };
            var scores = scorer.Score(images);   // batches of 2 and 1

            var eval = ImagePipeline.Eval(112, 112, model.PretrainedConfig.Mean, model.PretrainedConfig.Std,
                model.PretrainedConfig.CropPct, Resampler.Parse(model.PretrainedConfig.Interpolation));
            var batch = new float[images.Length * eval.SampleLength];
            for (int i = 0; i < images.Length; i++) eval.Process(images[i], new Rng(0), batch.AsSpan(i * eval.SampleLength, eval.SampleLength));
            Tensor expected;
            using (Autograd.NoGrad()) expected = model.Call(Tensor.FromArray<float>(batch, new long[] { images.Length, 3, 112, 112 })).Softmax(-1);
            using var actual = Tensor.FromArray<float>(scores.SelectMany(s => s).ToArray(), new long[] { images.Length, 10 });
            TensorAssert.Close(expected, actual, Tolerances.OnnxExportParity, 0, $"ONNX Runtime scores ({preprocess}) vs libtorch");
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void ScoreFiles_ReportsUnreadableFilesAndScoresTheRest()
    {
        using var scope = TensorScope.Begin();
        using var model = TinyTransXNet();
        var dir = Directory.CreateTempSubdirectory("scorer-files-");
        try
        {
            var onnx = Path.Combine(dir.FullName, "m.onnx");
            OnnxExporter.Export(model, onnx, new OnnxExportOptions { ImageSize = (112, 112) });
            var bad = Path.Combine(dir.FullName, "bad.jpg");
            File.WriteAllBytes(bad, new byte[] { 0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3 });
            using var scorer = new OnnxImageScorer(onnx);
            var results = scorer.ScoreFiles(new[] { Fixtures.Path("data/transform_source.png"), bad });
            Assert.IsNotNull(results[0].Scores);
            Assert.AreEqual(1.0, results[0].Scores!.Sum(), 1e-5, "probabilities");
            Assert.IsNull(results[1].Scores);
            Assert.IsFalse(string.IsNullOrEmpty(results[1].Error), "the reason is given");
            Assert.HasCount(3, results[0].Top(3, scorer.Labels));
            var e = Assert.ThrowsExactly<ArgumentException>(() => scorer.ScoreBatch(new float[5], 1));
            Assert.AreEqual(EvalCrop.For(112, 112, model.PretrainedConfig.CropPct).ResizeHeight, scorer.Height, "the graph input is the resize size");
            StringAssert.Contains(e.Message, $"need {3 * scorer.Height * scorer.Width} floats, found 5");
        }
        finally { dir.Delete(recursive: true); }
    }
}

using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.OnnxRuntime;
using MLNetExt.Tests.Export;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Inference;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.MLNet;

/// <summary>A classifier exported by MLNetExt (the tiny TransXNet fixture, 10 classes, network 112 with crop 0.9, so the
/// graph takes 124x124) and its ML.NET model.zip, made once for the tests that read them.</summary>
internal sealed class ExportedClassifier : IDisposable
{
    public static readonly string[] Labels = ["ant", "bee", "wasp", "moth", "fly", "gnat", "tick", "mite", "flea", "louse"];
    public DirectoryInfo Dir { get; } = Directory.CreateTempSubdirectory("mlnetext-mlnet-");
    public string Onnx => Path.Combine(Dir.FullName, "model.onnx");
    public string Zip => Path.Combine(Dir.FullName, "model.zip");
    public EvalCrop Crop { get; }

    public ExportedClassifier()
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.CreateCustom("transxnet", TinyConfig.Kwargs);
        model.LoadStateDict(TinyConfig.Weights);
        OnnxExporter.Export(model, Onnx, new OnnxExportOptions { ImageSize = (112, 112), Labels = Labels });
        Crop = EvalCrop.For(112, 112, model.PretrainedConfig.CropPct);
        MLNetModelFile.Save(Onnx, Zip);
    }

    /// <summary>Writes a PNG of a smooth, non-uniform picture (so crops and resampling matter).</summary>
    public string Picture(string name, int width, int height, int seed) => WritePicture(Dir.FullName, name, width, height, seed);

    /// <summary>Writes the picture of <see cref="Picture"/> into <paramref name="dir"/>.</summary>
    public static string WritePicture(string dir, string name, int width, int height, int seed)
    {
        var img = new RgbImage(width, height);
        var rng = new Random(seed);
        double fx = 0.02 + rng.NextDouble() * 0.05, fy = 0.02 + rng.NextDouble() * 0.05;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                    img.Pixels[(y * width + x) * 3 + c] = (byte)(127.5 + 120 * Math.Sin(fx * x * (c + 1) + fy * y * (3 - c) + seed));
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, PngEncoder.Encode(img));
        return path;
    }

    /// <summary>The Score column of image files through the ML.NET model.zip made from <paramref name="onnx"/> (written
    /// beside it): what an application with only the Microsoft.ML packages gets.</summary>
    public static float[][] MLNetScores(string onnx, IEnumerable<string> images)
    {
        var zip = Path.ChangeExtension(onnx, ".zip");
        MLNetModelFile.Save(onnx, zip);
        var ml = new MLContext();
        return MLNetModelFile.Load(ml, zip, out _).Transform(ml.Data.LoadFromEnumerable(images.Select(i => new ImageRow { ImagePath = i }).ToList()))
            .GetColumn<float[]>("Score").ToArray();
    }

    public void Dispose() => Dir.Delete(recursive: true);
}

public sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
}

public sealed class LabelledRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

public sealed class IntPathRow
{
    public int ImagePath { get; set; }
}

public sealed class ScoredRow
{
    public float[] Score { get; set; } = [];
    public string PredictedLabel { get; set; } = "";
}

/// <summary>The saved ML.NET model with the real Microsoft.ML 6.0.0 packages: its contract (columns, types, slot names,
/// scalar key), parity with ONNX Runtime and MLNetExt's own evaluation, Evaluate, errors, GPU fallback.</summary>
[TestClass]
public sealed class MLNetModelFileTests
{
    static ExportedClassifier model = null!;

    [ClassInitialize]
    public static void Init(TestContext _) => model = new ExportedClassifier();

    [ClassCleanup]
    public static void Cleanup() => model.Dispose();

    static IDataView Rows(MLContext ml, params string[] paths) => ml.Data.LoadFromEnumerable(paths.Select(p => new ImageRow { ImagePath = p }).ToList());

    [TestMethod]
    public void SavedModel_HasTheContract_ScoreWithSlotNames_AndAScalarKeyPredictedLabel()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out var inputSchema);
        Assert.AreEqual(MLNetModelFile.ImagePathColumn, inputSchema.Single().Name);
        Assert.AreEqual(TextDataViewType.Instance, inputSchema.Single().Type);
        var scored = loaded.Transform(Rows(ml, model.Picture("a.png", 150, 100, 1)));

        var score = scored.Schema["Score"];
        Assert.IsInstanceOfType<VectorDataViewType>(score.Type);
        Assert.AreEqual(10, ((VectorDataViewType)score.Type).Size);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.GetSlotNames(ref slots);
        CollectionAssert.AreEqual(ExportedClassifier.Labels, slots.DenseValues().Select(s => s.ToString()).ToArray());

        var predicted = scored.Schema["PredictedLabel"];
        Assert.IsInstanceOfType<KeyDataViewType>(predicted.Type, "a scalar key, as ML.NET's own trainers give");
        Assert.AreEqual(10UL, ((KeyDataViewType)predicted.Type).Count);
        VBuffer<ReadOnlyMemory<char>> keys = default;
        predicted.GetKeyValues(ref keys);
        CollectionAssert.AreEqual(ExportedClassifier.Labels, keys.DenseValues().Select(s => s.ToString()).ToArray());

        // MapKeyToValue gives the class names; the key is the argmax of Score.
        var named = ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(scored).Transform(scored);
        var row = ml.Data.CreateEnumerable<ScoredRow>(named, reuseRowObject: false).Single();
        Assert.AreEqual(1.0, row.Score.Sum(), 1e-5);
        Assert.AreEqual(ExportedClassifier.Labels[Array.IndexOf(row.Score, row.Score.Max())], row.PredictedLabel);
    }

    /// <summary>What README's "Serving in ML.NET" says of the standard chain's decoding, pinned on ML.NET 6.0's own
    /// LoadImages (the model.zip's first transform): a photo stored rotated (EXIF orientation 6) is read as stored — not
    /// upright as training and MLNetExt's scorers read it (which `dataset` warns of) — and transparent pixels are
    /// premultiplied (a fully transparent pixel reads black), where PIL and MLNetExt keep the stored colour. Opaque
    /// images of every format decode identically (JPEG, PNG, WebP, GIF and BMP fixtures).</summary>
    [TestMethod]
    public void MLNetLoadImages_ReadsRotatedPhotosAsStored_AndPremultipliesAlpha()
    {
        var ml = new MLContext(seed: 1);
        // what LoadImages gives for one file, read while its cursor still holds the image
        (int Width, int Height, byte[] Rgb) Load(string fixture)
        {
            var path = MLNetExt.Tests.Data.DataFixtures.Image(fixture);
            var rows = Rows(ml, Path.GetFileName(path));
            var view = ml.Transforms.LoadImages("Image", Path.GetDirectoryName(path)!, "ImagePath").Fit(rows).Transform(rows);
            using var cursor = view.GetRowCursor([view.Schema["Image"]]);
            var get = cursor.GetGetter<MLImage>(view.Schema["Image"]);
            Assert.IsTrue(cursor.MoveNext());
            MLImage image = null!;
            get(ref image);
            Assert.AreEqual(MLPixelFormat.Bgra32, image.PixelFormat);
            var px = image.Pixels;
            var rgb = new byte[image.Width * image.Height * 3];
            for (int i = 0; i < image.Width * image.Height; i++)
                for (int c = 0; c < 3; c++) rgb[3 * i + c] = px[4 * i + 2 - c];
            return (image.Width, image.Height, rgb);
        }
        static int MaxDiff(byte[] theirs, RgbImage ours) => theirs.Zip(ours.Pixels, (a, b) => Math.Abs(a - b)).Max();

        var exif6 = File.ReadAllBytes(MLNetExt.Tests.Data.DataFixtures.Image("exif6.jpg"));
        var stored = Load("exif6.jpg");
        Assert.AreEqual((64, 48), (stored.Width, stored.Height), "ML.NET: as stored");
        var upright = ImageDecoder.Decode(exif6);
        Assert.AreEqual((48, 64), (upright.Width, upright.Height), "MLNetExt: upright");
        Assert.AreEqual(0, MaxDiff(stored.Rgb, ImageDecoder.Decode(exif6, applyExif: false)), "the same pixels, not turned");

        var alpha = Load("rgba.png").Rgb;
        Assert.IsGreaterThan(200, MaxDiff(alpha, ImageDecoder.DecodeFile(MLNetExt.Tests.Data.DataFixtures.Image("rgba.png"))), "premultiplied against the stored colour");
        CollectionAssert.AreEqual(new byte[3], alpha[..3], "the first pixel has alpha 0: black in ML.NET");

        foreach (var opaque in new[] { "rgb.jpg", "progressive.jpg", "rgb.png", "palette.png", "lossless.webp", "still.gif", "bmp_rgb24.bmp", "bmp_palette8.bmp" })
            Assert.AreEqual(0, MaxDiff(Load(opaque).Rgb, ImageDecoder.DecodeFile(MLNetExt.Tests.Data.DataFixtures.Image(opaque))), opaque);
    }

    /// <summary>ML.NET's Score equals ONNX Runtime's Score on the pixels ML.NET extracted (the scorer is softmax of the
    /// logits), and on an image already at the input size (no resampling anywhere) it equals MLNetExt's own evaluation:
    /// the crop the graph takes is the training pipeline's.</summary>
    [TestMethod]
    public void Scores_MatchOnnxRuntime_AndMLNetExtEvaluation_WhenNoResamplingIsInvolved()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        int r = model.Crop.ResizeHeight;
        Assert.AreEqual(124, r, "floor(112 / 0.9)");
        var exact = model.Picture("exact.png", r, r, 2);
        var wide = model.Picture("wide.png", 300, 170, 3);
        var scored = loaded.Transform(Rows(ml, exact, wide));
        var pixels = Pixels(loaded).Transform(Rows(ml, exact, wide)).GetColumn<float[]>("image").ToArray();
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        using var session = OnnxSession.FromFile(model.Onnx);
        for (int i = 0; i < 2; i++)
        {
            using var run = session.Run("image", OnnxTensor.FromArray(pixels[i], 1, 3, r, r), ["Score"]);
            OnnxAssert(run[0].AsSpan<float>(), scores[i], 1e-6, $"ML.NET Score vs ONNX Runtime Score, image {i}");
        }
        using var scorer = new OnnxImageScorer(model.Onnx);
        var ours = scorer.ScoreFiles([exact, wide]);
        OnnxAssert(ours[0].Scores!, scores[0], 1e-5, "ML.NET vs MLNetExt on an image at the input size");
        // With resampling the two differ by the resampler only: same best class here, close probabilities.
        Assert.AreEqual(Array.IndexOf(ours[1].Scores!, ours[1].Scores!.Max()), Array.IndexOf(scores[1], scores[1].Max()));
    }

    /// <summary>The chain up to ExtractPixels: the pixel column the ONNX model reads (dropped from the model's output).</summary>
    static ITransformer Pixels(ITransformer loaded)
    {
        static IEnumerable<ITransformer> Flatten(ITransformer t) => t is IEnumerable<ITransformer> chain ? chain.SelectMany(Flatten) : [t];
        var steps = Flatten(loaded).ToList();
        int extract = steps.FindIndex(t => t is Microsoft.ML.Transforms.Image.ImagePixelExtractingTransformer);
        Assert.IsGreaterThan(0, extract, string.Join(", ", steps.Select(t => t.GetType().Name)));
        return new TransformerChain<ITransformer>(steps.Take(extract + 1).ToArray());
    }

    /// <summary>The framing ML.NET gives the network equals training evaluation's up to the resampler: the centre crop of
    /// ML.NET's pixels against MLNetExt's evaluation crop on a real photo differs by a few levels (about 32 levels with
    /// ML.NET's resize straight to the network size, as before the crop moved into the graph).</summary>
    [TestMethod]
    public void MLNetFraming_MatchesTrainingEvaluation_UpToTheResampler()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var photo = Fixtures.Path("data/transform_source.png");
        var mlnet = Pixels(loaded).Transform(Rows(ml, photo)).GetColumn<float[]>("image").Single();
        using var scorer = new OnnxImageScorer(model.Onnx);
        var ours = new float[3 * scorer.Height * scorer.Width];
        scorer.Prepare(ImageDecoder.DecodeFile(photo), ours);
        var c = model.Crop;
        double sum = 0;
        int n = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int y = c.Top; y < c.Top + c.Height; y++)
                for (int x = c.Left; x < c.Left + c.Width; x++)
                {
                    int i = (ch * c.ResizeHeight + y) * c.ResizeWidth + x;
                    sum += Math.Abs(mlnet[i] - ours[i]);
                    n++;
                }
        double mean = sum / n;
        Console.WriteLine($"mean absolute pixel difference, ML.NET vs MLNetExt evaluation crop: {mean:F2} levels");
        Assert.IsLessThan(8.0, mean, $"mean absolute difference {mean:F2} levels");
    }

    [TestMethod]
    public void Evaluate_WorksWithALabelKeyBuiltFromTheClassList()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var files = Enumerable.Range(0, 6).Select(i => model.Picture($"e{i}.png", 90 + 20 * i, 120, 10 + i)).ToArray();
        var labels = files.Select((_, i) => ExportedClassifier.Labels[i % 3]).ToArray();
        var data = ml.Data.LoadFromEnumerable(files.Zip(labels, (f, l) => new LabelledRow { ImagePath = f, Label = l }).ToList());
        var classes = ml.Data.LoadFromEnumerable(ExportedClassifier.Labels.Select(l => new LabelledRow { Label = l }).ToList());
        var withKey = ml.Transforms.Conversion.MapValueToKey("Label", keyData: ml.Transforms.SelectColumns("Label").Fit(classes).Transform(classes));
        var scored = loaded.Transform(data);
        var labelled = withKey.Fit(scored).Transform(scored);
        var metrics = ml.MulticlassClassification.Evaluate(labelled, "Label", "Score", "PredictedLabel");
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        double right = scores.Select((s, i) => ExportedClassifier.Labels[Array.IndexOf(s, s.Max())] == labels[i] ? 1.0 : 0).Sum();
        Assert.AreEqual(right / files.Length, metrics.MicroAccuracy, 1e-9);
        double logLoss = -scores.Select((s, i) => Math.Log(Math.Max(s[Array.IndexOf(ExportedClassifier.Labels, labels[i])], 1e-15))).Average();
        Assert.AreEqual(logLoss, metrics.LogLoss, 1e-4);
    }

    [TestMethod]
    public void PredictionEngine_AndBatchTransform_Agree()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var withNames = loaded.Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(loaded.Transform(Rows(ml))));
        var files = Enumerable.Range(0, 3).Select(i => model.Picture($"p{i}.png", 100 + 30 * i, 140, 20 + i)).ToArray();
        var batch = ml.Data.CreateEnumerable<ScoredRow>(withNames.Transform(Rows(ml, files)), reuseRowObject: false).ToArray();
        var engine = ml.Model.CreatePredictionEngine<ImageRow, ScoredRow>(withNames);
        for (int i = 0; i < files.Length; i++)
        {
            var one = engine.Predict(new ImageRow { ImagePath = files[i] });
            Assert.AreEqual(batch[i].PredictedLabel, one.PredictedLabel);
            CollectionAssert.AreEqual(batch[i].Score, one.Score);
        }
    }

    [TestMethod]
    public void SchemaErrors_NameTheColumn_TheExpectedAndTheFoundType()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var wrongType = ml.Data.LoadFromEnumerable(new List<IntPathRow> { new() { ImagePath = 3 } });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => loaded.Transform(wrongType));
        StringAssert.Contains(e.Message, "'ImagePath'");
        StringAssert.Contains(e.Message, "expected String, got Int32");
        var missing = ml.Data.LoadFromEnumerable(new List<ScoredRow> { new() });
        e = Assert.Throws<ArgumentOutOfRangeException>(() => loaded.Transform(missing));
        StringAssert.Contains(e.Message, "Could not find input column 'ImagePath'");
    }

    [TestMethod]
    public void BadImagePaths_AreNamedByMLNet()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var nowhere = Path.Combine(model.Dir.FullName, "nowhere.jpg");
        var e = Assert.Throws<Exception>(() => loaded.Transform(Rows(ml, nowhere)).GetColumn<float[]>("Score").ToArray());
        StringAssert.Contains(e.ToString(), "nowhere.jpg");
        var text = Path.Combine(model.Dir.FullName, "notes.jpg");
        File.WriteAllText(text, "not an image");
        // ML.NET's own error for a file that is not an image does not name the file; MLNetExt's scorer does.
        var f = Assert.Throws<Exception>(() => loaded.Transform(Rows(ml, text)).GetColumn<float[]>("Score").ToArray());
        StringAssert.Contains(f.ToString(), "Invalid input stream contents");
        using var scorer = new OnnxImageScorer(model.Onnx);
        var ours = scorer.ScoreFiles([text, model.Picture("fine.png", 50, 60, 4)]);
        Assert.IsNull(ours[0].Scores);
        Assert.AreEqual(text, ours[0].Source);
        Assert.IsNotNull(ours[1].Scores, "the rest of the batch is scored");
    }

    /// <summary>MLNetExt's ML.NET scorer: a file that is no image is reported by its header, one that looks like a JPEG
    /// but is not decodable fails ML.NET's batch and is then pinned to its file; the other images are scored, equal
    /// to a batch without the bad files.</summary>
    [TestMethod]
    public void MLNetImageScorer_ReportsBadFiles_AndScoresTheRest()
    {
        var dir = model.Dir.FullName;
        var text = Path.Combine(dir, "readme.jpg");
        File.WriteAllText(text, "not an image");
        var broken = Path.Combine(dir, "broken.jpg");
        var bytes = new byte[400];
        new Random(3).NextBytes(bytes);
        new byte[] { 0xFF, 0xD8, 0xFF, 0xE0 }.CopyTo(bytes, 0);
        File.WriteAllBytes(broken, bytes);
        var good = new[] { model.Picture("s1.png", 70, 90, 11), model.Picture("s2.png", 130, 60, 12) };
        using var scorer = new MLNetImageScorer(model.Zip);
        CollectionAssert.AreEqual(ExportedClassifier.Labels, scorer.Labels.ToArray());
        var results = scorer.ScoreFiles([good[0], text, broken, good[1]], batchSize: 8);
        Assert.IsNull(results[1].Scores);
        Assert.IsNull(results[2].Scores);
        StringAssert.Contains(results[2].Error!, "ML.NET could not score it");
        var clean = scorer.ScoreFiles(good);
        CollectionAssert.AreEqual(clean[0].Scores, results[0].Scores);
        CollectionAssert.AreEqual(clean[1].Scores, results[3].Scores);
        CollectionAssert.AreEqual(clean[1].Scores, scorer.ScoreFile(good[1]).Scores, "PredictionEngine and batch Transform agree");
    }

    [TestMethod]
    public void BadModelFiles_AreRejectedNamingWhatIsWrong()
    {
        var ml = new MLContext(seed: 1);
        var dir = model.Dir.FullName;
        var e = Assert.Throws<FileNotFoundException>(() => MLNetModelFile.Load(ml, Path.Combine(dir, "none.zip"), out _));
        StringAssert.Contains(e.Message, "none.zip");

        var text = Path.Combine(dir, "text.zip");
        File.WriteAllText(text, "hello");
        var d = Assert.Throws<InvalidDataException>(() => MLNetModelFile.Load(ml, text, out _));
        StringAssert.Contains(d.Message, "is not an ML.NET model: expected a zip archive");

        var other = Path.Combine(dir, "other-tool.zip");
        using (var z = ZipFile.Open(other, ZipArchiveMode.Create)) using (var w = new StreamWriter(z.CreateEntry("weights/model.bin").Open())) w.Write("x");
        d = Assert.Throws<InvalidDataException>(() => MLNetModelFile.Load(ml, other, out _));
        StringAssert.Contains(d.Message, "is a zip archive but not an ML.NET model");
        StringAssert.Contains(d.Message, "weights/model.bin");

        // A genuine ML.NET model without an ONNX model inside.
        var noOnnx = Path.Combine(dir, "no-onnx.zip");
        var rows = Rows(ml);
        ml.Model.Save(ml.Transforms.CopyColumns("Copy", "ImagePath").Fit(rows), rows.Schema, noOnnx);
        d = Assert.Throws<InvalidDataException>(() => MLNetModelFile.Load(ml, noOnnx, out _));
        StringAssert.Contains(d.Message, "without an ONNX model inside");

        // An ML.NET model whose ONNX stream is damaged: ML.NET's failure, named with the file.
        var damaged = Path.Combine(dir, "damaged.zip");
        File.Copy(model.Zip, damaged, overwrite: true);
        using (var z = ZipFile.Open(damaged, ZipArchiveMode.Update))
        {
            var entry = z.Entries.Single(x => x.FullName.EndsWith("/OnnxModel"));
            var name = entry.FullName;
            entry.Delete();
            using var w = z.CreateEntry(name).Open();
            w.Write(new byte[] { 9, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 });
        }
        d = Assert.Throws<InvalidDataException>(() => MLNetModelFile.Load(ml, damaged, out _));
        StringAssert.Contains(d.Message, "ML.NET could not load the model");
        StringAssert.Contains(d.Message, "damaged.zip");
    }

    [TestMethod]
    public void Save_RefusesModelsItCannotServe()
    {
        using var scope = TensorScope.Begin();
        using var m = Backbones.CreateCustom("transxnet", TinyConfig.Kwargs);
        var dir = model.Dir.FullName;
        var bare = Path.Combine(dir, "bare.onnx");
        OnnxExporter.Export(m, bare, new OnnxExportOptions { ImageSize = (64, 64), Preprocess = OnnxPreprocess.None, Labels = ExportedClassifier.Labels });
        var e = Assert.Throws<InvalidDataException>(() => MLNetModelFile.Save(bare, Path.Combine(dir, "bare.zip")));
        StringAssert.Contains(e.Message, "preprocess none");
        var unnamed = Path.Combine(dir, "unnamed.onnx");
        OnnxExporter.Export(m, unnamed, new OnnxExportOptions { ImageSize = (64, 64) });
        e = Assert.Throws<InvalidDataException>(() => MLNetModelFile.Save(unnamed, Path.Combine(dir, "unnamed.zip")));
        StringAssert.Contains(e.Message, "stores no class names");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "unnamed.zip")), "nothing written");
        Assert.IsEmpty(Directory.GetFiles(dir, "*.tmp"), "no temporary file left");
    }

    /// <summary>On this CPU-only runtime a GPU request falls back with one warning when allowed, else fails clearly;
    /// the caller's context is left as it was.</summary>
    [TestMethod]
    public void GpuRequest_OnTheCpuPackage_FallsBackOrFailsClearly()
    {
        if (OnnxRuntimeEnvironment.AvailableProviders.Contains("CUDAExecutionProvider")) Assert.Inconclusive("CUDA provider present");
        var warnings = new List<string>();
        var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _, warnings.Add);
        Assert.HasCount(1, warnings);
        StringAssert.Contains(warnings[0], "MLContext.GpuDeviceId is 0");
        StringAssert.Contains(warnings[0], "Microsoft.ML.OnnxRuntime.Gpu");
        StringAssert.EndsWith(warnings[0], "Running on CPU instead.");
        Assert.AreEqual(0, ml.GpuDeviceId, "the context is restored");
        Assert.AreEqual(10, loaded.Transform(Rows(ml, model.Picture("g.png", 64, 64, 5))).GetColumn<float[]>("Score").Single().Length);

        var strict = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
        var e = Assert.Throws<InvalidOperationException>(() => MLNetModelFile.Load(strict, model.Zip, out _, warnings.Add));
        StringAssert.Contains(e.Message, "MLContext.FallbackToCpu is false");
        Assert.HasCount(1, warnings);
    }

    /// <summary>ML.NET's OnnxTransformer and MLNetExt's sessions share one native ONNX Runtime.</summary>
    [TestMethod]
    public void OneOnnxRuntime_InAProcessThatUsesBoth()
    {
        var ml = new MLContext(seed: 1);
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        _ = loaded.Transform(Rows(ml, model.Picture("o.png", 80, 80, 6))).GetColumn<float[]>("Score").Single();
        using (var scorer = new OnnxImageScorer(model.Onnx)) { }
        var mapped = File.ReadAllLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[5]).StartsWith("libonnxruntime.so", StringComparison.Ordinal))
            .Select(f => f[5]).Distinct().ToList();
        Assert.HasCount(1, mapped, string.Join(", ", mapped));
    }

    /// <summary>The scalar-key scorer is built through ML.NET 6.0.0's internal constructors; an upgrade that changes
    /// them fails here first.</summary>
    [TestMethod]
    public void ScorerConstructors_ArePinnedToMicrosoftML600()
    {
        var version = typeof(MLContext).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        StringAssert.StartsWith(version, "6.0.0");
        const System.Reflection.BindingFlags flags = System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.NonPublic;
        Assert.IsNotNull(typeof(Microsoft.ML.Trainers.MaximumEntropyModelParameters).GetConstructor(flags, null, MLNetScorerFactory.ModelConstructor, null));
        Assert.IsNotNull(typeof(MulticlassPredictionTransformer<Microsoft.ML.Trainers.MaximumEntropyModelParameters>).GetConstructor(flags, null, MLNetScorerFactory.TransformerConstructor, null));
    }

    static void OnnxAssert(ReadOnlySpan<float> expected, float[] actual, double atol, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        for (int i = 0; i < actual.Length; i++)
            Assert.AreEqual(expected[i], actual[i], atol, $"{what}: element {i}");
    }
}

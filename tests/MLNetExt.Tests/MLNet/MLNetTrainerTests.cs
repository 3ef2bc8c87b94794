using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Tests.Training;
using MLNetExt.Training;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.MLNet;

/// <summary>The colour images of the trainer tests written as PNG files (class = the brighter channel), with rows for
/// ML.NET: a training folder and a validation folder.</summary>
internal sealed class ColourFiles : IDisposable
{
    public DirectoryInfo Dir { get; } = Directory.CreateTempSubdirectory("mlnetext-mlnet-train-");
    public List<LabelledRow> Train { get; } = [];
    public List<LabelledRow> Val { get; } = [];

    public ColourFiles(int trainPerClass = 16, int valPerClass = 6)
    {
        Write(TrainerTests.ColorData(trainPerClass, 1), "train", Train);
        Write(TrainerTests.ColorData(valPerClass, 2, "val"), "val", Val);
    }

    void Write(ImageDataset data, string part, List<LabelledRow> rows)
    {
        foreach (var item in data.Items)
        {
            var path = Path.Combine(Dir.FullName, part, data.Classes[item.Label], item.Name + ".png");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, PngEncoder.Encode(item.Image!));
            rows.Add(new LabelledRow { ImagePath = path, Label = data.Classes[item.Label] });
        }
    }

    public void Dispose() => Dir.Delete(recursive: true);
}

public sealed class BytesRow
{
    public byte[] Image { get; set; } = [];
    public string Label { get; set; } = "";
}

public sealed class PredictionRow
{
    public float[] Score { get; set; } = [];
    public string PredictedLabel { get; set; } = "";
}

public sealed class ClassNameRow
{
    public string Label { get; set; } = "";
}

/// <summary>The trainer as an ML.NET component with the real Microsoft.ML 6.0.0 packages, in ML.NET's workout style:
/// Fit/Transform/Evaluate, the schema contract, save and load, each image column kind, the MLContext's settings, and
/// bad input. The network is the tiny MixFormer of the trainer tests at 32 px.</summary>
[TestClass]
public sealed class MLNetTrainerTests
{
    static ColourFiles files = null!;
    static MLContext fittedContext = null!;
    static ITransformer fitted = null!;
    static ImageClassificationTransformer trained = null!;
    static readonly List<string> log = [];

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        files = new ColourFiles();
        fittedContext = new MLContext(seed: 1);
        fittedContext.Log += (_, e) => { if (e.Source.StartsWith("MLNetExt", StringComparison.Ordinal)) lock (log) log.Add(e.Kind + " " + e.Message); };
        var ml = fittedContext;
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 4 }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var chain = pipeline.Fit(ml.Data.LoadFromEnumerable(files.Train));
        fitted = chain;
        trained = (ImageClassificationTransformer)((IEnumerable<ITransformer>)chain).ElementAt(1);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        trained?.Dispose();
        files?.Dispose();
    }

    /// <summary>The trainer tests' tiny network, seed left to the MLContext.</summary>
    static ImageClassificationOptions Tiny() => TrainerTests.Tiny() with { Seed = null, ValidationFraction = 0.2 };

    [TestMethod]
    public void FitTransformEvaluate_BeatsChance_WithMLNetsOwnEvaluator()
    {
        var ml = new MLContext();
        var scored = fitted.Transform(ml.Data.LoadFromEnumerable(files.Val));
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsGreaterThan(0.7, metrics.MicroAccuracy, $"3 colour classes, chance 1/3: {metrics.MicroAccuracy}");
        var rows = ml.Data.CreateEnumerable<PredictionRow>(scored, reuseRowObject: false).ToList();
        Assert.HasCount(files.Val.Count, rows);
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.AreEqual(1.0, rows[i].Score.Sum(), 1e-4, "Score is a probability vector");
            Assert.AreEqual(TrainerTests.Colors[Array.IndexOf(rows[i].Score, rows[i].Score.Max())], rows[i].PredictedLabel, "PredictedLabel is the argmax of Score");
        }
        // the libtorch model, history and metrics are on the transformer
        CollectionAssert.AreEqual(TrainerTests.Colors, trained.Classes.ToArray());
        Assert.HasCount(4, trained.History.Epochs);
        Assert.IsNotNull(trained.Metrics);
        Assert.IsEmpty(trained.Skipped);
    }

    [TestMethod]
    public void OutputSchema_ScoreHasClassSlotNames_PredictedLabelIsTheLabelKey_NoIntermediateColumns()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(files.Val);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var schema = trained.GetOutputSchema(keyed.Schema);
        var score = schema["Score"];
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3), score.Type);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        score.GetSlotNames(ref slots);
        CollectionAssert.AreEqual(TrainerTests.Colors, slots.DenseValues().Select(s => s.ToString()).ToArray());
        var predicted = schema["PredictedLabel"];
        Assert.AreEqual(keyed.Schema["Label"].Type, predicted.Type, "PredictedLabel has the label's key type");
        VBuffer<ReadOnlyMemory<char>> keys = default;
        predicted.GetKeyValues(ref keys);
        CollectionAssert.AreEqual(TrainerTests.Colors, keys.DenseValues().Select(s => s.ToString()).ToArray());
        var visible = string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name));
        Assert.AreEqual("ImagePath, Label, PredictedLabel, Score", visible, "the intermediate image, pixel and logit columns are dropped");

        // the estimator's shape says the same before any training
        var estimator = new MLContext().MulticlassClassification.Trainers.BackboneImageClassification("mixformer_b0");
        var shape = estimator.GetOutputSchema(ShapeOf(keyed.Schema));
        Assert.IsTrue(shape.Any(c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Vector && c.ItemType == NumberDataViewType.Single));
        Assert.IsTrue(shape.Any(c => c.Name == "PredictedLabel" && c.IsKey && c.Kind == SchemaShape.Column.VectorKind.Scalar));
    }

    /// <summary>ML.NET's SchemaShape.Create is internal; tests reach it as ML.NET's own tests do.</summary>
    static SchemaShape ShapeOf(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public, [typeof(DataViewSchema)])!.Invoke(null, [schema])!;

    [TestMethod]
    public void SaveLoad_RoundTrip_GivesTheSameScores_AsStandardMLNetTransformers()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(files.Val);
        var before = fitted.Transform(data).GetColumn<float[]>("Score").ToArray();
        var zip = Path.Combine(files.Dir.FullName, "roundtrip.zip");
        fittedContext.Model.Save(fitted, data.Schema, zip);
        var loaded = new MLContext().Model.Load(zip, out var inputSchema);
        Assert.IsNotNull(inputSchema.GetColumnOrNull("ImagePath"));
        var types = Flatten(loaded).Select(t => t.GetType().Assembly.GetName().Name).Distinct().ToList();
        Assert.IsFalse(types.Contains("MLNetExt"), $"only ML.NET's transformers were saved: {string.Join(", ", types)}");
        var after = loaded.Transform(data).GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < before.Length; i++)
            for (int c = 0; c < 3; c++) Assert.AreEqual(before[i][c], after[i][c], 1e-6f, $"row {i} class {c}");
        var predicted = loaded.Transform(data).GetColumn<string>("PredictedLabel").ToArray();
        Assert.AreEqual(files.Val.Count, predicted.Length);
        // the PredictionEngine agrees with the batch transform
        var engine = ml.Model.CreatePredictionEngine<LabelledRow, PredictionRow>(loaded);
        var one = engine.Predict(files.Val[0]);
        Assert.AreEqual(before[0][0], one.Score[0], 1e-6f);
    }

    /// <summary>The ONNX model inside an ML.NET model.zip (ApplyOnnxModel's stream: the byte count as int32, then the model).</summary>
    internal static MLNetExt.Export.Onnx.ModelProto OnnxInside(string zip)
    {
        using var archive = System.IO.Compression.ZipFile.OpenRead(zip);
        using var stream = new MemoryStream();
        archive.Entries.Single(e => e.FullName.EndsWith("/OnnxModel", StringComparison.Ordinal)).Open().CopyTo(stream);
        var bytes = stream.ToArray();
        return MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(bytes, 4, BitConverter.ToInt32(bytes, 0));
    }

    static IEnumerable<ITransformer> Flatten(ITransformer t) =>
        t is IEnumerable<ITransformer> chain ? chain.SelectMany(Flatten) : [t];

    [TestMethod]
    public void ImageColumn_MLImage_FromLoadImages_TrainsAndSavesWithoutMLNetExt()
    {
        var ml = new MLContext(seed: 2);
        var options = Tiny() with { Epochs = 2, ImageColumnName = "Image" };
        var pipeline = ml.Transforms.LoadImages("Image", "", "ImagePath")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(options));
        var data = ml.Data.LoadFromEnumerable(files.Train);
        var model = pipeline.Fit(data);
        try
        {
            var scored = model.Transform(ml.Data.LoadFromEnumerable(files.Val));
            var metrics = ml.MulticlassClassification.Evaluate(scored);
            Assert.IsGreaterThan(0.5, metrics.MicroAccuracy);
            var zip = Path.Combine(files.Dir.FullName, "mlimage.zip");
            ml.Model.Save(model, data.Schema, zip);
            var loaded = new MLContext().Model.Load(zip, out _);
            Assert.IsFalse(Flatten(loaded).Any(t => t.GetType().Assembly == typeof(MLNetExtCatalog).Assembly));
            CollectionAssert.AreEqual(scored.GetColumn<float[]>("Score").First(), loaded.Transform(ml.Data.LoadFromEnumerable(files.Val)).GetColumn<float[]>("Score").First());
        }
        finally { Flatten(model).OfType<IDisposable>().ToList().ForEach(d => d.Dispose()); }
    }

    [TestMethod]
    public void ImageColumn_EncodedBytes_Trains_AndLoadsWhereMLNetExtIsRegistered()
    {
        var ml = new MLContext(seed: 3);
        var rows = files.Train.Select(r => new BytesRow { Image = File.ReadAllBytes(r.ImagePath), Label = r.Label }).ToList();
        var val = files.Val.Select(r => new BytesRow { Image = File.ReadAllBytes(r.ImagePath), Label = r.Label }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Byte), data.Schema["Image"].Type, "what LoadRawImageBytes gives");
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 3, ImageColumnName = "Image" }))
            .Fit(data);
        try
        {
            var valData = ml.Data.LoadFromEnumerable(val);
            var scored = model.Transform(valData);
            Assert.IsGreaterThan(0.5, ml.MulticlassClassification.Evaluate(scored).MicroAccuracy);
            // the bytes are decoded by MLNetExt's decoder, as in training: scores equal the libtorch model's on the same pixels
            var zip = Path.Combine(files.Dir.FullName, "bytes.zip");
            ml.Model.Save(model, data.Schema, zip);
            var other = new MLContext();
            other.ComponentCatalog.RegisterMLNetExt();
            var loaded = other.Model.Load(zip, out _);
            CollectionAssert.AreEqual(scored.GetColumn<float[]>("Score").First(), loaded.Transform(valData).GetColumn<float[]>("Score").First());
        }
        finally { Flatten(model).OfType<IDisposable>().ToList().ForEach(d => d.Dispose()); }
    }

    /// <summary><c>ScoringPrecision = Int8</c>: the fitted chain scores with a static INT8 model calibrated on training
    /// images — of an MLImage column too, whose images are no files — and <c>mlContext.Model.Save</c> writes it.</summary>
    [TestMethod]
    public void ScoringPrecision_Int8_ScoresWithAStaticInt8ModelAndSavesIt()
    {
        var ml = new MLContext(seed: 4);
        var options = Tiny() with { Epochs = 3, ImageColumnName = "Image", ScoringPrecision = MLNetExt.Export.OnnxPrecision.Int8 };
        var data = ml.Data.LoadFromEnumerable(files.Train);
        var model = ml.Transforms.LoadImages("Image", "", "ImagePath")
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(options))
            .Fit(data);
        try
        {
            var val = ml.Data.LoadFromEnumerable(files.Val);
            var scores = model.Transform(val).GetColumn<float[]>("Score").ToArray();
            var torch = Flatten(model).OfType<ImageClassificationTransformer>().Single().Model.Predict(files.Val.Select(r => r.ImagePath).ToList());
            int agree = 0;
            for (int i = 0; i < scores.Length; i++)
            {
                Assert.AreEqual(1.0, scores[i].Sum(), 2e-3, "a probability vector");
                if (Array.IndexOf(scores[i], scores[i].Max()) == torch[i].Index) agree++;
            }
            Assert.IsGreaterThanOrEqualTo(scores.Length - 2, agree, $"INT8 agrees with the libtorch model on {agree} of {scores.Length} images");

            var zip = Path.Combine(files.Dir.FullName, "int8.zip");
            ml.Model.Save(model, data.Schema, zip);
            var onnx = OnnxInside(zip);
            Assert.AreEqual("int8", onnx.MetadataProps.Single(p => p.Key == "mlnetext.precision").Value);
            Assert.AreEqual($"static, calibrated on {files.Train.Count} images", onnx.MetadataProps.Single(p => p.Key == "mlnetext.int8").Value);
            Assert.IsTrue(onnx.Graph.Node.Any(n => n.OpType == "QuantizeLinear"), "convolutions in INT8");
            var loaded = new MLContext().Model.Load(zip, out _);
            CollectionAssert.AreEqual(scores[0], loaded.Transform(val).GetColumn<float[]>("Score").First(), "the saved model scores as the fitted one");
        }
        finally { Flatten(model).OfType<IDisposable>().ToList().ForEach(d => d.Dispose()); }
    }

    [TestMethod]
    public void LabelColumn_NotAKey_IsRefused_NamingColumnExpectedAndFound()
    {
        var ml = new MLContext();
        var trainer = ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny());
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(ml.Data.LoadFromEnumerable(files.Train)));
        StringAssert.Contains(e.Message, "label column 'Label'");
        StringAssert.Contains(e.Message, "String");
        StringAssert.Contains(e.Message, "expected a key type");
        StringAssert.Contains(e.Message, "MapValueToKey(\"Label\")");
        var shape = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(ShapeOf(ml.Data.LoadFromEnumerable(files.Train).Schema)));
        StringAssert.Contains(shape.Message, "expected a key type");
    }

    [TestMethod]
    public void MissingColumns_AndImageColumnOfAnotherType_AreRefused()
    {
        var ml = new MLContext();
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(files.Train)).Transform(ml.Data.LoadFromEnumerable(files.Train));
        var noImage = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { ImageColumnName = "Photo" }).Fit(keyed));
        StringAssert.Contains(noImage.Message, "image column 'Photo' is not in the data");
        StringAssert.Contains(noImage.Message, "'ImagePath'");
        var noLabel = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { LabelColumnName = "Class" }).Fit(keyed));
        StringAssert.Contains(noLabel.Message, "label column 'Class' is not in the data");

        var ints = ml.Data.LoadFromEnumerable(new[] { new IntPathRow { ImagePath = 3 }, new IntPathRow { ImagePath = 4 } });
        var withLabel = ml.Transforms.Conversion.MapValueToKey("Label", "ImagePath").Fit(ints).Transform(ints);
        var wrongType = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny()).Fit(withLabel));
        StringAssert.Contains(wrongType.Message, "image column 'ImagePath' has type Int32");
        StringAssert.Contains(wrongType.Message, "LoadRawImageBytes");
    }

    [TestMethod]
    public void EmptyData_AndASingleClass_AreClearErrors()
    {
        var ml = new MLContext();
        var trainer = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny()));
        var classes = ml.Data.LoadFromEnumerable(TrainerTests.Colors.Select(c => new ClassNameRow { Label = c }));
        var keyedEmpty = ml.Transforms.Conversion.MapValueToKey("Label", keyData: classes).Fit(ml.Data.LoadFromEnumerable(new List<LabelledRow>()));
        var empty = Assert.ThrowsExactly<DatasetException>(() =>
            ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny()).Fit(keyedEmpty.Transform(ml.Data.LoadFromEnumerable(new List<LabelledRow>()))));
        StringAssert.Contains(empty.Message, "training data is empty");
        var one = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(ml.Data.LoadFromEnumerable(files.Train.Where(r => r.Label == "red"))));
        StringAssert.Contains(one.Message, "key of 1 value");
        StringAssert.Contains(one.Message, "at least two", StringComparison.OrdinalIgnoreCase);
    }

    [TestMethod]
    public void UnreadableImages_AreReportedWithRowAndPath_AndTrainingGoesOn()
    {
        var ml = new MLContext(seed: 4);
        var messages = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) lock (messages) messages.Add(e.Message); };
        var bad = Path.Combine(files.Dir.FullName, "not-an-image.png");
        File.WriteAllText(bad, "hello");
        var rows = files.Train.ToList();
        rows.Insert(3, new LabelledRow { ImagePath = bad, Label = "red" });
        rows.Insert(5, new LabelledRow { ImagePath = Path.Combine(files.Dir.FullName, "missing.png"), Label = "blue" });
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1 }))
            .Fit(ml.Data.LoadFromEnumerable(rows));
        var transformer = model.LastTransformer;
        try
        {
            Assert.HasCount(2, transformer.Skipped);
            StringAssert.Contains(transformer.Skipped[0].ToString(), "row 3");
            StringAssert.Contains(transformer.Skipped[0].ToString(), "not-an-image.png");
            StringAssert.Contains(transformer.Skipped[1].ToString(), "row 5");
            StringAssert.Contains(transformer.Skipped[1].ToString(), "does not exist");
            Assert.IsTrue(messages.Any(m => m.Contains("row 3") && m.Contains("not-an-image.png")), string.Join("\n", messages));
        }
        finally { transformer.Dispose(); }

        // an MLImage column: ML.NET's LoadImages fails in the getter; the row is reported, not thrown
        var withImages = ml.Transforms.LoadImages("Image", "", "ImagePath").Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1, ImageColumnName = "Image" }))
            .Fit(ml.Data.LoadFromEnumerable(rows));
        try
        {
            var skipped = withImages.LastTransformer.Skipped;
            Assert.HasCount(2, skipped, string.Join("\n", skipped));
            StringAssert.Contains(skipped[0].ToString(), "row 3");
            StringAssert.Contains(skipped[1].ToString(), "row 5");
        }
        finally { withImages.LastTransformer.Dispose(); }
    }

    /// <summary>ML.NET's own cross-validation and train/test split drive the trainer like any multiclass trainer: each
    /// fold fits on its training rows and is scored by ML.NET's evaluator on the rows it held out.</summary>
    [TestMethod]
    public void MLNetCrossValidate_AndTrainTestSplit_RunTheTrainerPerFold()
    {
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(files.Train.Concat(files.Val));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 3, ValidationFraction = 0 }));
        var folds = ml.MulticlassClassification.CrossValidate(data, pipeline, numberOfFolds: 3);
        try
        {
            Assert.HasCount(3, folds);
            Assert.AreEqual(files.Train.Count + files.Val.Count, folds.Sum(f => f.ScoredHoldOutSet.GetColumn<string>("ImagePath").Count()), "every row held out once");
            foreach (var f in folds)
            {
                var trained = (ImageClassificationTransformer)((IEnumerable<ITransformer>)f.Model).Last();
                Assert.AreEqual(files.Train.Count + files.Val.Count - f.ScoredHoldOutSet.GetColumn<string>("ImagePath").Count(), trained.History.TrainCount,
                    "the fold trained on the other rows");
                Assert.IsGreaterThan(0.6, f.Metrics.MicroAccuracy, $"fold {f.Fold}: 3 colour classes, chance 1/3");
            }
        }
        finally
        {
            foreach (var f in folds) ((IEnumerable<ITransformer>)f.Model).OfType<IDisposable>().ToList().ForEach(d => d.Dispose());
        }
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.25, seed: 1);
        using var model = (ImageClassificationTransformer)((IEnumerable<ITransformer>)pipeline.Fit(split.TrainSet)).Last();
        Assert.AreEqual(split.TrainSet.GetColumn<string>("ImagePath").Count(), model.History.TrainCount);
    }

    [TestMethod]
    public void LabelsUnseenInTraining_ScoreWithoutCrashing()
    {
        var ml = new MLContext();
        var rows = files.Val.Take(4).Select(r => new LabelledRow { ImagePath = r.ImagePath, Label = "purple" }).Concat(files.Val).ToList();
        var scored = fitted.Transform(ml.Data.LoadFromEnumerable(rows));
        var predicted = scored.GetColumn<string>("PredictedLabel").ToArray();
        Assert.IsTrue(predicted.All(p => TrainerTests.Colors.Contains(p)), "every row gets one of the trained classes");
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.IsGreaterThan(0.0, metrics.MicroAccuracy, "rows whose label the key does not know count as missing labels");
    }

    [TestMethod]
    public void MLContext_Seed_MakesFitReproducible_AndLogReceivesProgress()
    {
        float[] Scores(int seed)
        {
            var ml = new MLContext(seed: seed);
            var model = ml.Transforms.Conversion.MapValueToKey("Label")
                .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1 }))
                .Fit(ml.Data.LoadFromEnumerable(files.Train));
            try { return model.Transform(ml.Data.LoadFromEnumerable(files.Val)).GetColumn<float[]>("Score").First(); }
            finally { model.LastTransformer.Dispose(); }
        }
        CollectionAssert.AreEqual(Scores(11), Scores(11), "same MLContext seed, same model");
        CollectionAssert.AreNotEqual(Scores(11), Scores(12), "another seed, another initialisation");
        lock (log) Assert.IsTrue(log.Any(l => l.StartsWith("Info", StringComparison.Ordinal) && l.Contains("Epoch 4/4: train loss")), string.Join("\n", log));
    }

    [TestMethod]
    public void MLContext_GpuDeviceId_WithoutCuda_FailsClearly_OrFallsBackWithAWarning()
    {
        if (Torch.TorchRuntime.CudaIsAvailable) Assert.Inconclusive("CUDA is available here");
        var strict = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
        var trainer = strict.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1 });
        var keyed = Keyed(strict, files.Train);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => trainer.Fit(keyed));
        StringAssert.Contains(e.Message, "GpuDeviceId is 0");
        StringAssert.Contains(e.Message, "FallbackToCpu");

        var lenient = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
        var warnings = new List<string>();
        lenient.Log += (_, a) => { if (a.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(a.Message); };
        using var model = lenient.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1 }).Fit(Keyed(lenient, files.Train));
        Assert.IsTrue(warnings.Any(w => w.Contains("Training on the CPU")), string.Join("\n", warnings));
        Assert.AreEqual("cpu", model.History.Settings["device"]);
    }

    static IDataView Keyed(MLContext ml, IEnumerable<LabelledRow> rows)
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
    }

    [TestMethod]
    public void ValidationSet_IsUsed_AndCancellationStopsAsBefore()
    {
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(files.Train);
        var key = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data);
        var val = key.Transform(ml.Data.LoadFromEnumerable(files.Val));
        using (var model = ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1, ValidationSet = val }).Fit(key.Transform(data)))
        {
            Assert.AreEqual(files.Val.Count, model.History.ValCount);
            Assert.AreEqual(files.Train.Count, model.History.TrainCount, "nothing held out of the training data");
        }
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        Assert.ThrowsExactly<TrainingInterruptedException>(() =>
            ml.MulticlassClassification.Trainers.BackboneImageClassification(Tiny() with { Epochs = 1, Cancellation = cancel.Token }).Fit(key.Transform(data)));
    }

    /// <summary>ML.NET internals the catalog reaches by reflection, pinned: if an ML.NET update moves them, this fails first.</summary>
    [TestMethod]
    public void MLNetInternals_TheCatalogReads_ArePresent()
    {
        var env = MLNetEnvironment.Of(new MLContext(seed: 9) { GpuDeviceId = 3, FallbackToCpu = true }.MulticlassClassification.Trainers);
        Assert.AreEqual(9, env.Seed);
        Assert.AreEqual(3, env.GpuDeviceId);
        Assert.IsTrue(env.FallbackToCpu);
        Assert.IsNotNull(typeof(SchemaShape.Column).GetConstructor(BindingFlags.Instance | BindingFlags.NonPublic, null, MLNetSchemas.ColumnConstructor, null));
    }
}

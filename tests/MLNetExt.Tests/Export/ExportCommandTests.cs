using MLNetExt.Cli;
using MLNetExt.Export;
using MLNetExt.Export.Onnx;
using MLNetExt.MLNet;

namespace MLNetExt.Tests.Export;

/// <summary>The `export` CLI verb.</summary>
[TestClass]
public sealed class ExportCommandTests
{
    static ModelOptions.Choice Tiny(int? classes = null) => new("transxnet", TinyConfig.Kwargs, classes);

    static ExportCommand.Settings Settings(string precision = "fp32", DirectoryInfo? calibrate = null, int opset = 17, string preprocess = "mlnet") =>
        ExportCommand.Settings.Parse(precision, calibrate, opset, preprocess);

    [TestMethod]
    public void ExportsWithLabelsSizeAndOpset()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-export-");
        try
        {
            var output = new FileInfo(Path.Combine(dir.FullName, "m.onnx"));
            var log = new StringWriter();
            int rc = ExportCommand.Run(Tiny(), null, "x,y,z", "64,96", Settings(opset: 18, preprocess: "none"), output, log);
            Assert.AreEqual(0, rc, log.ToString());
            StringAssert.Contains(log.ToString(), "outputs logits, Score");
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output.FullName));
            Assert.AreEqual(18, model.OpsetImport.Single(o => o.Domain == "").Version);
            Assert.AreEqual("input", model.Graph.Input[0].Name);
            CollectionAssert.AreEqual(new long[] { 0, 3, 64, 96 }, model.Graph.Input[0].Type.TensorType.Shape.Dim.Select(d => d.DimValue).ToArray());
            Assert.AreEqual(3, model.Graph.Output[0].Type.TensorType.Shape.Dim[1].DimValue, "--labels sets the class count");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void MLNetOption_WritesAModelZipThatMLNetLoads()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-export-mlnet-");
        try
        {
            var output = new FileInfo(Path.Combine(dir.FullName, "m.onnx"));
            var zip = new FileInfo(Path.Combine(dir.FullName, "m.zip"));
            var labels = string.Join(",", Enumerable.Range(0, 10).Select(i => $"c{i}"));
            var log = new StringWriter();
            Assert.AreEqual(0, ExportCommand.Run(Tiny(), null, labels, "64", Settings(), output, log, zip), log.ToString());
            StringAssert.Contains(log.ToString(), "ML.NET model");
            using var scorer = new MLNetExt.MLNet.MLNetImageScorer(zip.FullName);
            CollectionAssert.AreEqual(labels.Split(','), scorer.Labels.ToArray());

            var e = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(Tiny(), null, null, "64", Settings(), output, TextWriter.Null, zip));
            StringAssert.Contains(e.Message, "--mlnet needs --labels");
            e = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(Tiny(), null, labels, "64", Settings(preprocess: "none"), output, TextWriter.Null, zip));
            StringAssert.Contains(e.Message, "--mlnet needs --preprocess mlnet");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    [DataRow("int8", "MatMulInteger")]
    [DataRow("fp16", "Conv")]
    public void Precision_ChangesTheArithmetic_AndTheModelZipCarriesIt(string precision, string witness)
    {
        var dir = Directory.CreateTempSubdirectory($"mlnetext-cli-export-{precision}-");
        try
        {
            var output = new FileInfo(Path.Combine(dir.FullName, "m.onnx"));
            var zip = new FileInfo(Path.Combine(dir.FullName, "m.zip"));
            var log = new StringWriter();
            var mixformer = new ModelOptions.Choice("mixformer", MLNetExt.Tests.Training.TrainerTests.TinyKwargs(), null);
            Assert.AreEqual(0, ExportCommand.Run(mixformer, null, "a,b,c", "32", Settings(precision.ToUpperInvariant()), output, log, zip), log.ToString());
            StringAssert.Contains(log.ToString(), $"opset 17, {precision},");
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output.FullName));
            var types = MLNetExt.Export.Graph.Float16.InferTypes(model.Graph);
            var expected = precision == "int8" ? TensorProto.Types.DataType.Uint8 : TensorProto.Types.DataType.Float16;
            Assert.IsTrue(model.Graph.Node.Any(n => n.OpType == witness && types[n.Input[0]] == (int)expected), $"{witness} on {expected}");
            Assert.AreEqual(precision, model.MetadataProps.Single(p => p.Key == "mlnetext.precision").Value);
            Assert.AreEqual(TensorProto.Types.DataType.Float, (TensorProto.Types.DataType)model.Graph.Input[0].Type.TensorType.ElemType, "float32 at the boundary");
            using var scorer = new MLNetExt.MLNet.MLNetImageScorer(zip.FullName);
            var picture = MLNetExt.Tests.MLNet.ExportedClassifier.WritePicture(dir.FullName, "p.png", 36, 36, 3);
            var scores = scorer.ScoreFiles([picture]).Single().Scores!;
            Assert.AreEqual(1.0, scores.Sum(), 2e-3, $"ML.NET scores the {precision} model");
            var e = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(mixformer, null, null, "32", Settings("fp8"), output, TextWriter.Null));
            StringAssert.Contains(e.Message, "--precision must be 'fp32', 'fp16' or 'int8', got 'fp8'");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void Calibrate_MakesAStaticInt8Model_ThatMLNetRuns()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-export-static-");
        try
        {
            var output = new FileInfo(Path.Combine(dir.FullName, "m.onnx"));
            var zip = new FileInfo(Path.Combine(dir.FullName, "m.zip"));
            var images = new DirectoryInfo(MLNetExt.Data.SyntheticShapes.WriteFolder(Path.Combine(dir.FullName, "calibration"), 3, 40, 1, ["circle", "star"]));
            var mixformer = new ModelOptions.Choice("mixformer", MLNetExt.Tests.Training.TrainerTests.TinyKwargs(), null);
            var log = new StringWriter();
            Assert.AreEqual(0, ExportCommand.Run(mixformer, null, "a,b,c", "32", Settings("int8", images), output, log, zip), log.ToString());
            StringAssert.Contains(log.ToString(), "int8 static, calibrated on 6 images");
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(output.FullName));
            Assert.AreEqual("static, calibrated on 6 images", model.MetadataProps.Single(p => p.Key == "mlnetext.int8").Value);
            Assert.IsTrue(model.Graph.Node.Any(n => n.OpType == "QuantizeLinear"));
            using var scorer = new MLNetExt.MLNet.MLNetImageScorer(zip.FullName);
            var picture = MLNetExt.Tests.MLNet.ExportedClassifier.WritePicture(dir.FullName, "p.png", 36, 36, 3);
            Assert.AreEqual(1.0, scorer.ScoreFiles([picture]).Single().Scores!.Sum(), 2e-3, "ML.NET scores the static INT8 model");

            var never = new FileInfo(Path.Combine(dir.FullName, "never.onnx"));
            var e = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(mixformer, null, null, "32", Settings("fp32", images), never, TextWriter.Null));
            StringAssert.Contains(e.Message, "--calibrate is for --precision int8 (static INT8); the precision is fp32");
            var missing = new DirectoryInfo(Path.Combine(dir.FullName, "nowhere"));
            var e2 = Assert.ThrowsExactly<DirectoryNotFoundException>(() => ExportCommand.Run(mixformer, null, null, "32", Settings("int8", missing), never, TextWriter.Null));
            StringAssert.Contains(e2.Message, $"--calibrate: folder '{missing.FullName}' does not exist");
            var empty = Directory.CreateDirectory(Path.Combine(dir.FullName, "empty"));
            e = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(mixformer, null, null, "32", Settings("int8", empty), never, TextWriter.Null));
            StringAssert.Contains(e.Message, $"--calibrate: no readable images");
            Assert.IsFalse(never.Exists);
        }
        finally { dir.Delete(true); }
    }

    /// <summary>`export --model out/model.safetensors`: a trained model again at another precision, with its own classes
    /// and input framing; the same file given as --weights is refused with the way to do it, as is --model together
    /// with options the model file decides.</summary>
    [TestMethod]
    [DoNotParallelize] // redirects Console.Error
    public void TrainedModel_ExportsWithItsClassesAndFraming()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-export-trained-");
        try
        {
            var file = new FileInfo(Path.Combine(dir.FullName, "model.safetensors"));
            var options = MLNetExt.Tests.Training.TrainerTests.Tiny() with { Epochs = 1, ValidationFraction = 0 };
            ExportedFraming reference;
            using (var trained = new MLNetExt.MLNet.ImageClassificationEstimator(options).Fit(MLNetExt.Tests.Training.TrainerTests.ColorData(4, 1)))
            {
                trained.Save(file.FullName);
                var fp32 = Path.Combine(dir.FullName, "fp32.onnx");
                trained.ExportOnnx(fp32);
                reference = ExportedFraming.Of(fp32);
                // the library's way to the same: an ML.NET model.zip at another precision
                var fp16 = Path.Combine(dir.FullName, "fp16.zip");
                trained.SaveMLNet(fp16, new OnnxExportOptions { Precision = OnnxPrecision.Float16 });
                Assert.AreEqual("fp16", MLNetExt.Tests.MLNet.MLNetTrainerTests.OnnxInside(fp16).MetadataProps.Single(p => p.Key == "mlnetext.precision").Value);
                using var scorer = new MLNetExt.MLNet.MLNetImageScorer(fp16);
                CollectionAssert.AreEqual(MLNetExt.Tests.Training.TrainerTests.Colors, scorer.Labels.ToArray());
            }

            var output = new FileInfo(Path.Combine(dir.FullName, "int8.onnx"));
            var zip = new FileInfo(Path.Combine(dir.FullName, "int8.zip"));
            var log = new StringWriter();
            Assert.AreEqual(0, ExportCommand.RunTrained(file, Settings("int8"), output, log, zip), log.ToString());
            StringAssert.Contains(log.ToString(), "3 classes (red, green, blue), 32 px");
            var int8 = ExportedFraming.Of(output.FullName);
            Assert.AreEqual(reference with { Precision = "int8" }, int8, "same input, crop and labels as the model's own export");
            using (var scorer = new MLNetExt.MLNet.MLNetImageScorer(zip.FullName))
                CollectionAssert.AreEqual(MLNetExt.Tests.Training.TrainerTests.Colors, scorer.Labels.ToArray());

            var never = new FileInfo(Path.Combine(dir.FullName, "never.onnx"));
            var e = Assert.ThrowsExactly<ArgumentException>(() =>
                ExportCommand.Run(new ModelOptions.Choice("mixformer", MLNetExt.Tests.Training.TrainerTests.TinyKwargs(), null), file, null, null, Settings(), never, TextWriter.Null));
            StringAssert.Contains(e.Message, $"--model {file.FullName}");
            StringAssert.Contains(e.Message, "3 classes (red, green, blue), 32 px");

            var saved = Console.Error;
            var err = new StringWriter();
            Console.SetError(err);
            try
            {
                int rc = ExportCommand.Create().Parse(["--model", file.FullName, "--variant", "mixformer_b0", "--labels", "a,b,c", "--output", never.FullName]).Invoke();
                Assert.AreEqual(2, rc);
            }
            finally { Console.SetError(saved); }
            StringAssert.Contains(err.ToString(), "drop --variant, --labels");
            Assert.IsFalse(never.Exists);
        }
        finally { dir.Delete(true); }
    }

    /// <summary>What a user of an exported classifier depends on: input name and shape, crop, labels, precision.</summary>
    sealed record ExportedFraming(string Input, string Shape, string Crop, string Labels, string Precision)
    {
        public static ExportedFraming Of(string path)
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
            string Meta(string key) => model.MetadataProps.SingleOrDefault(p => p.Key == key)?.Value ?? "";
            var input = model.Graph.Input[0];
            return new ExportedFraming(input.Name, string.Join("x", input.Type.TensorType.Shape.Dim.Select(d => d.DimValue)),
                string.Join(";", model.MetadataProps.Where(p => p.Key.Contains("crop")).Select(p => $"{p.Key}={p.Value}")),
                Meta("mlnetext.labels"), Meta("mlnetext.precision"));
        }
    }

    [TestMethod]
    public void BadArgumentsAreNamed()
    {
        var output = new FileInfo(Path.Combine(Path.GetTempPath(), "never-written.onnx"));
        var e1 = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(Tiny(), null, null, null, Settings(preprocess: "tf"), output, TextWriter.Null));
        StringAssert.Contains(e1.Message, "--preprocess");
        var e2 = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(Tiny(), null, null, "0,5", Settings(), output, TextWriter.Null));
        StringAssert.Contains(e2.Message, "--image-size");
        var e3 = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(Tiny(), null, null, null, Settings(opset: 12), output, TextWriter.Null));
        StringAssert.Contains(e3.Message, "--opset");
        var e4 = Assert.ThrowsExactly<ArgumentException>(() => ExportCommand.Run(Tiny(5), null, "a,b", null, Settings(), output, TextWriter.Null));
        StringAssert.Contains(e4.Message, "--labels");
        Assert.IsFalse(output.Exists);
    }
}

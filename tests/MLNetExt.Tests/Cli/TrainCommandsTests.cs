using System.Text.Json;
using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Tests.Training;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Tests.Cli;

/// <summary>`train`, `evaluate` and `predict` end to end on generated shape folders with the tiny MixFormer of
/// <see cref="TrainerTests"/> at 32×32: the output folder is complete and the three ways of scoring (libtorch model,
/// ONNX Runtime, predict) agree.</summary>
[TestClass]
public sealed class TrainCommandsTests
{
    /// <summary>--bf16 and the processor's flag, the two inputs of the trainer's bfloat16 note
    /// (<see cref="TrainerTests.Bfloat16Note_WarnsOfEmulation_HintsWhereNative_AndTheRunGoesOn"/>).</summary>
    [TestMethod]
    public void Bf16Option_ParsesToMixedPrecision_AndTheProcessorFlagIsRead()
    {
        // --bf16 false parses to MixedPrecision = false (how a user silences the note)
        string[] required = ["--data", "d", "--variant", "smt_t", "--output", "o"];
        Assert.IsFalse(TrainCommand.OptionsOf([.. required, "--bf16", "false"]).MixedPrecision);
        Assert.IsTrue(TrainCommand.OptionsOf([.. required, "--bf16"]).MixedPrecision);
        Assert.IsNull(TrainCommand.OptionsOf(required).MixedPrecision);
        // the processor's flag: this machine's answer agrees with its /proc/cpuinfo
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags")).Split(' ');
        Assert.AreEqual(flags.Contains("amx_bf16") || flags.Contains("avx512_bf16"), TorchRuntime.NativeBfloat16Flag is not null);
        Assert.AreEqual("amx_bf16", TorchRuntime.Bfloat16Flag(["processor\t: 0", "flags\t\t: fpu avx2 avx512_bf16 amx_bf16 amx_tile"]));
        Assert.AreEqual("avx512_bf16", TorchRuntime.Bfloat16Flag(["flags\t\t: fpu avx2 avx512f avx512_bf16"]));
        Assert.IsNull(TorchRuntime.Bfloat16Flag(["flags\t\t: fpu avx2 avx512f avx512_vnni", "flags : avx512_bf16"]), "the first processor's line decides");
        Assert.IsNull(TorchRuntime.Bfloat16Flag(["processor : 0"]), "no flags line");
    }

    [TestMethod]
    public void Train_WritesTheOutputFolder_AndEvaluatePredictAgreeAcrossRuntimes()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-train-");
        try
        {
            var classes = new[] { "circle", "square", "triangle" };
            var (train, val) = SyntheticShapes.WriteSplit(Path.Combine(dir.FullName, "data"), 6, 3, 48, seed: 1, classes);
            var config = Path.Combine(dir.FullName, "tiny.json");
            File.WriteAllText(config, TrainerTests.TinyKwargs().ToJsonString());
            var output = Path.Combine(dir.FullName, "out");
            int code = TrainCommand.Create().Parse([
                "--data", Path.Combine(dir.FullName, "data"), "--arch", "mixformer", "--config", config, "--image-size", "32",
                "--epochs", "2", "--batch-size", "6", "--workers", "2", "--output", output, "--plain"]).Invoke();
            Assert.AreEqual(0, code);
            foreach (var f in new[] { "model.safetensors", "checkpoint-last.safetensors", "checkpoint-best.safetensors", "metrics.json", "report.html", "model.onnx",
                         ModelFolder.MLNetFileName, ModelFolder.ConsumptionCodeFileName, "ConsoleApp/ConsoleApp.csproj", "ConsoleApp/Program.cs", "ConsoleApp/Directory.Build.props",
                         "WebApi/WebApi.csproj", "WebApi/Program.cs", "WebApi/Directory.Build.props" })
                Assert.IsTrue(File.Exists(Path.Combine(output, f)), f);
            Assert.AreEqual(0, Directory.GetFiles(output, "*.tmp").Length, "no temporary files");
            using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))))
                Assert.AreEqual(2, json.RootElement.GetProperty("epochs").GetArrayLength());

            // evaluate: the libtorch model and its ONNX export give the same metrics on the validation folder.
            var a = new StringWriter();
            var b = new StringWriter();
            Assert.AreEqual(0, EvaluateCommand.Run(new FileInfo(Path.Combine(output, "model.safetensors")), val, Path.Combine(dir.FullName, "eval"), 4, a));
            Assert.AreEqual(0, EvaluateCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), val, null, 4, b));
            Assert.AreEqual(a.ToString().Split('\n')[0], b.ToString().Split('\n')[0], "top-1/top-5/macro-F1/log-loss line");
            Assert.IsTrue(File.Exists(Path.Combine(dir.FullName, "eval", "report.html")));
            // the same through the public API a C# user has: an exported model's evaluation equals the libtorch model's
            var images = ImageDataset.FromFolder(val, classes);
            Assert.HasCount(9, ImageDataset.FindImages(val));
            using (var scorer = new Inference.OnnxImageScorer(Path.Combine(output, "model.onnx")))
            using (var trained = Inference.ImageClassificationModel.Load(Path.Combine(output, "model.safetensors")))
            {
                var (r1, r2) = (Inference.ImageFileScorerExtensions.Evaluate(scorer, images), trained.EvaluateDetailed(images, 4));
                Assert.AreEqual((r2.Metrics.Top1, r2.Metrics.Count, r2.Misclassified.Count), (r1.Metrics.Top1, r1.Metrics.Count, r1.Misclassified.Count));
                Assert.AreEqual(r2.Metrics.LogLoss, r1.Metrics.LogLoss, 1e-4);
                var mismatch = Assert.ThrowsExactly<DatasetException>(() => Inference.ImageFileScorerExtensions.Evaluate(scorer, ImageDataset.FromFolder(val, classes.Reverse().ToArray())));
                StringAssert.Contains(mismatch.Message, "are not the model's [circle, square, triangle]");
                var predicted = Inference.ImageFileScorerExtensions.Predict(scorer, ImageDataset.FindImages(val), 2);
                Assert.IsTrue(predicted.All(p => p.Error is null && p.Top.Count == 2));
            }

            // predict: a folder, both runtimes, same top class per image.
            var p1 = new StringWriter();
            var p2 = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, "model.safetensors")), [val], 2, json: true, p1));
            Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [val], 2, json: true, p2));
            var top1 = p1.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("top")[0].GetProperty("label").GetString()).ToList();
            var top2 = p2.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("top")[0].GetProperty("label").GetString()).ToList();
            Assert.HasCount(9, top1);
            CollectionAssert.AreEqual(top1, top2);

            // The ML.NET model.zip through ML.NET: every image scored with the class names, and evaluate runs on it.
            var p3 = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, "model.zip")), [val], 3, json: true, p3));
            var rows = p3.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            Assert.HasCount(9, rows);
            foreach (var row in rows)
            {
                var top = row.GetProperty("top").EnumerateArray().ToList();
                Assert.HasCount(3, top);
                CollectionAssert.AreEquivalent(classes, top.Select(t => t.GetProperty("label").GetString()).ToArray());
                Assert.AreEqual(1.0, top.Sum(t => t.GetProperty("probability").GetDouble()), 1e-4);
            }
            // a folder with a photo, an empty download named .jpg and a text file: the photo is scored, the .jpg gets its
            // reason (not silently left out), the text file is not an image and is not listed
            var mixed = Directory.CreateDirectory(Path.Combine(dir.FullName, "mixed")).FullName;
            File.Copy(ImageDataset.FindImages(val)[0], Path.Combine(mixed, "photo.png"));
            File.WriteAllBytes(Path.Combine(mixed, "broken.jpg"), []);
            File.WriteAllText(Path.Combine(mixed, "notes.txt"), "taken in June");
            var p4 = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [mixed], 1, json: false, p4));
            var lines = p4.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.HasCount(2, lines, p4.ToString());
            StringAssert.StartsWith(lines[0], Path.Combine(mixed, "broken.jpg") + "\terror: ");
            StringAssert.Contains(lines[0], "empty file");
            StringAssert.StartsWith(lines[1], Path.Combine(mixed, "photo.png") + "\t");
            // --min-score: below it an image is marked not sure (its scores still shown); an impossible minimum is refused
            var top1Score = JsonDocument.Parse(p2.ToString().Split('\n')[0]).RootElement.GetProperty("top")[0].GetProperty("probability").GetDouble();
            var first = ImageDataset.FindImages(val)[0];
            var sure = new StringWriter();
            PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [first], 2, json: false, sure, minScore: 0);
            var unsure = new StringWriter();
            PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [first], 2, json: false, unsure, minScore: 1);
            Assert.DoesNotContain("not sure", sure.ToString());
            StringAssert.StartsWith(unsure.ToString(), first + "\tnot sure (top score under 1): ");
            StringAssert.EndsWith(unsure.ToString().TrimEnd(), sure.ToString().TrimEnd().Split('\t')[1], "the scores still shown");
            var unsureJson = new StringWriter();
            PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [first], 2, json: true, unsureJson, minScore: 1);
            Assert.IsFalse(JsonDocument.Parse(unsureJson.ToString()).RootElement.GetProperty("sure").GetBoolean());
            Assert.IsFalse(JsonDocument.Parse(p2.ToString().Split('\n')[0]).RootElement.TryGetProperty("sure", out _), "no \"sure\" without --min-score");
            Assert.ThrowsExactly<ArgumentException>(() => PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [first], 2, json: false, sure, minScore: 1.5));
            Assert.IsGreaterThan(0.0, top1Score);

            var c = new StringWriter();
            Assert.AreEqual(0, EvaluateCommand.Run(new FileInfo(Path.Combine(output, "model.zip")), val, null, 4, c));
            StringAssert.Contains(c.ToString(), "top-1");

            // --device cuda on this CPU-only machine: both exported runtimes fall back with a warning and give the same answers.
            foreach (var file in new[] { "model.onnx", "model.zip" })
            {
                var onCpu = new StringWriter();
                var onCuda = new StringWriter();
                Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, file)), [val], 2, json: true, onCpu));
                Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, file)), [val], 2, json: true, onCuda, "cuda:0"), file);
                Assert.AreEqual(onCpu.ToString(), onCuda.ToString(), file);
            }
            var bad = Assert.ThrowsExactly<ArgumentException>(() => PredictCommand.Run(new FileInfo(Path.Combine(output, "model.onnx")), [val], 2, false, TextWriter.Null, "tpu"));
            StringAssert.Contains(bad.Message, "--device");
            StringAssert.Contains(bad.Message, "'tpu'");
            bad = Assert.ThrowsExactly<ArgumentException>(() => PredictCommand.Run(new FileInfo(Path.Combine(output, "model.safetensors")), [val], 2, false, TextWriter.Null, "cuda"));
            StringAssert.Contains(bad.Message, "applies to exported models");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>`train --precision int8`: model.onnx and model.zip are static INT8, calibrated on training images, and
    /// serve as the float32 ones do; the choice is in the settings record.</summary>
    [TestMethod]
    [DoNotParallelize] // redirects Console.Error
    public void Train_PrecisionInt8_WritesACalibratedInt8ModelThatServes()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-train-int8-");
        try
        {
            var classes = new[] { "circle", "square" };
            var (_, val) = SyntheticShapes.WriteSplit(Path.Combine(dir.FullName, "data"), 6, 3, 48, seed: 2, classes);
            var config = Path.Combine(dir.FullName, "tiny.json");
            File.WriteAllText(config, TrainerTests.TinyKwargs().ToJsonString());
            var output = Path.Combine(dir.FullName, "out");
            string[] Args(string precision) => ["--data", Path.Combine(dir.FullName, "data"), "--arch", "mixformer", "--config", config, "--image-size", "32",
                "--epochs", "1", "--batch-size", "6", "--workers", "2", "--output", output, "--plain", "--precision", precision];
            Assert.AreEqual(0, TrainCommand.Create().Parse(Args("int8")).Invoke());
            var onnx = MLNetExt.Export.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(output, "model.onnx")));
            string Meta(string key) => onnx.MetadataProps.Single(p => p.Key == key).Value;
            Assert.AreEqual("int8", Meta("mlnetext.precision"));
            Assert.AreEqual("static, calibrated on 12 images", Meta("mlnetext.int8"), "the training images (6 per class)");
            using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json"))))
                Assert.AreEqual("int8", json.RootElement.GetProperty("settings").GetProperty("precision").GetString());
            var predicted = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(new FileInfo(Path.Combine(output, ModelFolder.MLNetFileName)), [val], 2, json: true, predicted));
            Assert.HasCount(6, predicted.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), "ML.NET scores every validation image");

            var saved = Console.Error;
            var err = new StringWriter();
            Console.SetError(err);
            try { Assert.AreEqual(2, TrainCommand.Create().Parse(Args("int4")).Invoke()); }
            finally { Console.SetError(saved); }
            StringAssert.Contains(err.ToString(), "--precision");
            StringAssert.Contains(err.ToString(), "int4");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void Train_BadInput_IsNamed()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-cli-bad-");
        try
        {
            // One class folder only.
            SyntheticShapes.WriteFolder(Path.Combine(dir.FullName, "one", "circle"), 2, 32, 0, ["circle", "square"]);
            Directory.Delete(Path.Combine(dir.FullName, "one", "circle", "square"), true);
            var e = Assert.ThrowsExactly<DatasetException>(() => TrainCommand.LoadData(Path.Combine(dir.FullName, "one", "circle"), null));
            StringAssert.Contains(e.Message, "only one class");
            // Not a dataset at all.
            var file = Path.Combine(dir.FullName, "notes.txt");
            File.WriteAllText(file, "hello");
            StringAssert.Contains(Assert.ThrowsExactly<DatasetException>(() => TrainCommand.LoadData(file, null)).Message, "not a .csv/.tsv list");
            StringAssert.Contains(Assert.ThrowsExactly<DatasetException>(() => TrainCommand.LoadData(Path.Combine(dir.FullName, "missing"), null)).Message, "does not exist");
            // Modes.
            var frozen = MLNetExt.Training.TrainingKnobs.WithMode(new MLNetExt.Training.ImageClassificationOptions(), "freeze:2");
            Assert.AreEqual((MLNetExt.Training.TrainingMode.FreezeStages, 2), (frozen.Mode, frozen.FrozenStages));
            StringAssert.Contains(Assert.ThrowsExactly<MLNetExt.Training.TrainingOptionException>(() =>
                MLNetExt.Training.TrainingKnobs.WithMode(new MLNetExt.Training.ImageClassificationOptions(), "freeze:x")).Message, "freeze:K");
        }
        finally { dir.Delete(true); }
    }
}

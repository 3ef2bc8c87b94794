using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Tests.MLNet;
using MLNetExt.Tests.Training;
using MLNetExt.MLNet;

namespace MLNetExt.Tests.Samples;

/// <summary>The ML.NET samples with their documented command lines, run as their own processes from the build output:
/// each writes a model.zip that samples/MLNetConsume (which references only the Microsoft.ML packages) loads and
/// scores, agreeing with ML.NET in this process.</summary>
[TestClass]
public sealed class MLNetSamplesTests
{
    static ColourFiles files = null!;

    [ClassInitialize]
    public static void Init(TestContext _) => files = new ColourFiles(trainPerClass: 8, valPerClass: 3);

    [ClassCleanup]
    public static void Cleanup() => files?.Dispose();

    internal static string Built(string project)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var dll = Path.Combine(d.FullName, "artifacts", "bin", project, "release", project + ".dll");
            if (File.Exists(dll)) return dll;
        }
        throw new AssertFailedException($"{project}.dll is not built (dotnet build MLNetExt.sln -c Release builds the samples).");
    }

    static (int Code, string Output) Run(string project, string arguments) =>
        ChildProcess.Run("dotnet", $"\"{Built(project)}\" {arguments}", files.Dir.FullName, 300);

    /// <summary>MLNetConsume's per-image lines (path, label, predicted, top score) equal ML.NET's in this process.</summary>
    static void ConsumeAndCompare(string zip)
    {
        var val = Path.Combine(files.Dir.FullName, "val");
        var run = Run("MLNetConsume", $"--model \"{zip}\" --data \"{val}\"");
        Assert.AreEqual(0, run.Code, run.Output);
        StringAssert.Contains(run.Output, "metrics: micro-accuracy");
        var lines = run.Output.Split('\n').Select(l => l.Split('\t')).Where(f => f.Length == 4).ToList();
        Assert.HasCount(files.Val.Count, lines, run.Output);
        Assert.IsFalse(File.ReadAllText(Path.ChangeExtension(Built("MLNetConsume"), ".deps.json")).Contains("MLNetExt", StringComparison.Ordinal),
            "MLNetConsume references only the Microsoft.ML packages");

        var ml = new MLContext();
        var model = ml.Model.Load(zip, out _);
        var rows = lines.Select(f => new LabelledRow { ImagePath = f[0], Label = f[1] }).ToList();
        var scored = model.Transform(ml.Data.LoadFromEnumerable(rows));
        var predicted = scored.GetColumn<string>("PredictedLabel").ToArray();
        var scores = scored.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.AreEqual(predicted[i], lines[i][2], $"row {i}");
            Assert.AreEqual(scores[i].Max(), double.Parse(lines[i][3], CultureInfo.InvariantCulture), 1e-6, $"row {i}");
        }
    }

    [TestMethod, TestCategory("Slow")]
    public void MLNetPipeline_FineTunes_SavesModelZip_ThatMLNetAloneLoads()
    {
        var output = Path.Combine(files.Dir.FullName, "pipeline-out");
        var run = Run("MLNetPipeline", $"--data \"{Path.Combine(files.Dir.FullName, "train")}\" --val \"{Path.Combine(files.Dir.FullName, "val")}\" " +
                                       $"--variant mixformer_b0 --epochs 1 --image-size 32 --output \"{output}\"");
        Assert.AreEqual(0, run.Code, run.Output);
        StringAssert.Contains(run.Output, "validation folder: micro-accuracy");
        StringAssert.Contains(run.Output, "Epoch 1/1: train loss", "training progress reaches MLContext.Log");
        ConsumeAndCompare(Path.Combine(output, "model.zip"));
    }

    [TestMethod, TestCategory("Slow")]
    public void MLNetFeatures_FeaturizesAndTrains_SavesModelZip_ThatMLNetAloneLoads()
    {
        var weights = Path.Combine(files.Dir.FullName, "tiny.safetensors");
        using (var model = new ImageClassificationEstimator(TrainerTests.Tiny() with { Epochs = 1, ValidationFraction = 0 }).Fit(TrainerTests.ColorData(4, 3)))
            model.Save(weights);
        var output = Path.Combine(files.Dir.FullName, "features-out");
        var run = Run("MLNetFeatures", $"--data \"{Path.Combine(files.Dir.FullName, "train")}\" --val \"{Path.Combine(files.Dir.FullName, "val")}\" " +
                                       $"--variant mixformer --weights \"{weights}\" --features stages --trainer lbfgs --output \"{output}\"");
        Assert.AreEqual(0, run.Code, run.Output);
        StringAssert.Contains(run.Output, "validation folder: micro-accuracy");
        ConsumeAndCompare(Path.Combine(output, "model.zip"));
    }

    /// <summary>samples/EngineBasics: the module's PyTorch names, a falling loss, the state_dict saved and reloaded.</summary>
    [TestMethod]
    public void EngineBasics_TrainsSavesAndReloads()
    {
        var run = Run("EngineBasics", "");
        Assert.AreEqual(0, run.Code, run.Output);
        StringAssert.Contains(run.Output, "fc1.weight");
        var losses = run.Output.Split('\n').Where(l => l.StartsWith("step ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)).ToList();
        Assert.HasCount(4, losses);
        Assert.IsLessThan(losses[0] / 5, losses[^1], "the loss falls");
        StringAssert.Contains(run.Output, "reloaded 4 tensors");
    }

    [TestMethod]
    public void Samples_RejectBadCommandLines_WithOneLine()
    {
        var missing = Run("MLNetPipeline", "--data x");
        Assert.AreEqual(2, missing.Code, missing.Output);
        StringAssert.StartsWith(missing.Output, "error: --variant is required.");
        var folder = Run("MLNetFeatures", "--data /nonexistent --variant smt_t --output out");
        Assert.AreEqual(1, folder.Code, folder.Output);
        StringAssert.StartsWith(folder.Output, "error: '/nonexistent' is not a folder");
        var trainer = Run("MLNetFeatures", "--data x --variant smt_t --output out --trainer forest");
        Assert.AreEqual(2, trainer.Code, trainer.Output);
        StringAssert.Contains(trainer.Output, "--trainer expects lbfgs, sdca or lightgbm, got 'forest'");
    }
}

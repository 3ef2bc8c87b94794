using System.Diagnostics;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.Tests.MLNet;
using MLNetExt.Transforms;
using MLNetExt.Inference;

namespace MLNetExt.Tests.Export;

/// <summary>The generated consumption code compiles against the real Microsoft.ML packages (Roslyn, in process), and the
/// generated console project builds and runs as its own process — referencing only the four ML.NET/ONNX Runtime
/// packages, not MLNetExt — predicting what MLNetExt predicts.</summary>
[TestClass]
public sealed class ConsumptionCodeTests
{
    // Labels that break naive code generation: quotes, backslashes, a line break, a tab, braces (interpolation),
    // comment and XML markers, non-ASCII (accents, CJK, an emoji outside the BMP), a C# keyword.
    static readonly string[] AwkwardLabels =
    {
        "say \"cheese\"", @"C:\path\n", "line\nbreak", "tab\there", "{braces} {0}", "*/ // <b>&amp;</b>", "naïve café",
        "猫", "🐝 bee", "class",
    };

    static ConsumptionCodeOptions Options(IReadOnlyList<string> labels, string ns = "Acme.Vision.Models", string cls = "BeeClassifier") => new()
    {
        ModelFileName = "my \"model\".zip",
        Labels = labels,
        InputHeight = 112,
        InputWidth = 112,
        CropPct = 0.9,
        Namespace = ns,
        ClassName = cls,
        LibraryVersion = "9.9.9-test\n// not a comment break",
    };

    /// <summary>Every assembly of the running framework plus Microsoft.ML's (not MLNetExt: the code must not need it).</summary>
    static List<MetadataReference> References()
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.Length > 0 && !Path.GetFileName(p).StartsWith("MLNetExt", StringComparison.Ordinal)).ToList();
        foreach (var t in new[] { typeof(MLContext), typeof(Microsoft.ML.Data.VBuffer<>), typeof(Microsoft.ML.IDataView) })
            if (!paths.Contains(t.Assembly.Location)) paths.Add(t.Assembly.Location);
        return paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    static (byte[]? Image, List<Diagnostic> Problems) Compile(string source)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create($"Generated{Guid.NewGuid():N}", [CSharpSyntaxTree.ParseText(source, parse)], References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        using var ms = new MemoryStream();
        var result = compilation.Emit(ms);
        var problems = result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        return (result.Success ? ms.ToArray() : null, problems);
    }

    static string Describe(IEnumerable<Diagnostic> problems, string source) =>
        string.Join("\n", problems.Select(d => $"{d}  [line: {source.Split('\n')[d.Location.GetLineSpan().StartLinePosition.Line].Trim()}]"));

    [TestMethod]
    public void GeneratedCode_CompilesAgainstMicrosoftML_WithoutWarnings_WithAwkwardLabelsAndNames()
    {
        var source = ConsumptionCode.Generate(Options(AwkwardLabels));
        var (image, problems) = Compile(source);
        Assert.IsNotNull(image, Describe(problems, source));
        Assert.HasCount(0, problems, Describe(problems, source));
        Assert.IsTrue(source.All(c => c < 128), "the file is pure ASCII (non-ASCII labels are \\u escapes)");
        Assert.IsFalse(source.Contains("using MLNetExt", StringComparison.Ordinal), "no MLNetExt dependency");

        // The labels survive exactly: read them back from the compiled class.
        var asm = AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(image!));
        var type = asm.GetType("Acme.Vision.Models.BeeClassifier", throwOnError: true)!;
        var labels = (IReadOnlyList<string>)type.GetField("Labels")!.GetValue(null)!;
        CollectionAssert.AreEqual(AwkwardLabels, labels.ToArray());
        StringAssert.EndsWith((string)type.GetProperty("MLNetModelPath")!.GetValue(null)!, "my \"model\".zip");
        foreach (var member in new[] { "Predict", "PredictAllLabels", "GetSortedScoresWithLabels", "LoadModel" })
            Assert.IsNotNull(type.GetMethod(member), member);
        Assert.IsNotNull(type.GetField("PredictEngine"), "a lazily created PredictionEngine, as in Model Builder's code");
        StringAssert.Contains(source, "ResizeImages(IsoCrop, Center) to 124x124");
        StringAssert.Contains(source, "Microsoft.ML.OnnxRuntime 1.32.0");
    }

    [TestMethod]
    [DataRow("Namespace", "My-Models", "dot-separated C# identifiers")]
    [DataRow("Namespace", "A..B", "dot-separated C# identifiers")]
    [DataRow("ClassName", "class", "a C# identifier")]
    [DataRow("ClassName", "1Model", "a C# identifier")]
    public void InvalidNames_AreRejectedWithTheOptionNamed(string option, string value, string expected)
    {
        var o = option == "Namespace" ? Options(new[] { "a" }, ns: value) : Options(new[] { "a" }, cls: value);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ConsumptionCode.Generate(o));
        StringAssert.Contains(e.Message, option);
        StringAssert.Contains(e.Message, expected);
        StringAssert.Contains(e.Message, value);
    }

    [TestMethod]
    public void NoLabels_IsAnError()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => ConsumptionCode.Generate(Options(Array.Empty<string>())));
        StringAssert.Contains(e.Message, "Labels");
    }

    /// <summary>Train-side artefacts end to end: the exported model's model.zip, the generated file and console
    /// project; the project is built with the real packages and run as its own process on three images and a missing
    /// file. Its predictions equal ML.NET in this process, and MLNetExt's own scorer on the image that needs no
    /// resampling.</summary>
    [TestMethod, TestCategory("Slow")]
    public void GeneratedProject_BuildsAndRuns_AgainstTheRealPackages_AndAgreesWithMLNetExt()
    {
        using var model = new ExportedClassifier();
        var dir = model.Dir.FullName;
        var options = ConsumptionCodeOptions.FromOnnxModel(model.Onnx);
        Assert.AreEqual(112, options.InputHeight);
        Assert.AreEqual(0.9, options.CropPct, "transxnet's evaluation crop comes from the model's metadata");
        CollectionAssert.AreEqual(ExportedClassifier.Labels, options.Labels.ToArray());
        ConsumptionCode.Write(options, Path.Combine(dir, "ModelConsumption.cs"));
        var project = Path.Combine(dir, ConsumptionCode.ProjectFolder);
        ConsumptionCode.WriteProject(options, project);

        var build = ChildProcess.Run("dotnet", $"build \"{project}\" -c Release -nologo -v q -o \"{Path.Combine(dir, "bin")}\"", dir, 600);
        Assert.AreEqual(0, build.Code, build.Output);
        var images = new[] { model.Picture("exact.png", 124, 124, 7), model.Picture("wide.png", 260, 150, 8), model.Picture("tall.png", 90, 200, 9) };
        var missing = Path.Combine(dir, "missing.jpg");
        var run = ChildProcess.Run("dotnet", $"\"{Path.Combine(dir, "bin", "ConsoleApp.dll")}\" {string.Join(" ", images.Select(i => $"\"{i}\""))} \"{missing}\"", dir, 300);
        Assert.AreEqual(1, run.Code, "one file is missing: " + run.Output);
        StringAssert.Contains(run.Output, "missing.jpg: no such file");
        var lines = run.Output.Split('\n').Where(l => l.Split('\t').Length == 5).Select(l => l.Split('\t')).ToList();
        Assert.HasCount(3, lines, run.Output);
        var deps = File.ReadAllText(Path.Combine(dir, "bin", "ConsoleApp.deps.json"));
        Assert.IsFalse(deps.Contains("MLNetExt", StringComparison.Ordinal), "the console project does not reference MLNetExt");

        // The same model in this process through ML.NET, and MLNetExt's own scorer.
        var ml = new MLContext();
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var scores = loaded.Transform(ml.Data.LoadFromEnumerable(images.Select(i => new ImageRow { ImagePath = i }).ToList()))
            .GetColumn<float[]>("Score").ToArray();
        using var scorer = new OnnxImageScorer(model.Onnx);
        var ours = scorer.ScoreFiles(images);
        for (int i = 0; i < images.Length; i++)
        {
            Assert.AreEqual(images[i], lines[i][0]);
            int best = Array.IndexOf(scores[i], scores[i].Max());
            Assert.AreEqual(ExportedClassifier.Labels[best], lines[i][1], $"image {i}: the generated program and ML.NET agree");
            var topScore = double.Parse(lines[i][2].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            Assert.AreEqual(scores[i][best], topScore, 1e-6, $"image {i}: top probability");
        }
        var oursBest = Array.IndexOf(ours[0].Scores!, ours[0].Scores!.Max());
        Assert.AreEqual(ExportedClassifier.Labels[oursBest], lines[0][1], "no resampling: MLNetExt and the generated program agree");
        Assert.AreEqual(ours[0].Scores![oursBest], double.Parse(lines[0][2].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), 1e-5);
    }
}

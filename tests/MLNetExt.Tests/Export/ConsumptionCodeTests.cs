using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using MLNetExt.Export;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Export;

/// <summary>The generated consumption code compiles (Roslyn, in process) and, run for real on an exported model,
/// predicts what <see cref="OnnxImageScorer"/> predicts.</summary>
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
        ModelFileName = "my \"model\".onnx",
        Labels = labels,
        InputHeight = 112,
        InputWidth = 112,
        CropPct = 0.9,
        Namespace = ns,
        ClassName = cls,
        LibraryVersion = "9.9.9-test\n// not a comment break",
    };

    /// <summary>Every assembly of the running framework plus MLNetExt.</summary>
    static List<MetadataReference> References()
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator).ToList();
        var mlnetext = typeof(OnnxImageScorer).Assembly.Location;
        if (!paths.Any(p => Path.GetFileName(p) == Path.GetFileName(mlnetext))) paths.Add(mlnetext);
        return paths.Where(p => p.Length > 0).Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    static (byte[]? Image, List<Diagnostic> Problems) Compile(string source, string[] defines, params string[] extraSources)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest, preprocessorSymbols: defines);
        var trees = new[] { source }.Concat(extraSources).Select(s => CSharpSyntaxTree.ParseText(s, parse)).ToArray();
        var compilation = CSharpCompilation.Create($"Generated{Guid.NewGuid():N}", trees, References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        using var ms = new MemoryStream();
        var result = compilation.Emit(ms);
        var problems = result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        return (result.Success ? ms.ToArray() : null, problems);
    }

    static string Describe(IEnumerable<Diagnostic> problems, string source) =>
        string.Join("\n", problems.Select(d => $"{d}  [line: {source.Split('\n')[d.Location.GetLineSpan().StartLinePosition.Line].Trim()}]"));

    [TestMethod]
    public void GeneratedCode_CompilesWithoutWarnings_WithAwkwardLabelsAndNames()
    {
        var source = ConsumptionCode.Generate(Options(AwkwardLabels));
        var (image, problems) = Compile(source, Array.Empty<string>());
        Assert.IsNotNull(image, Describe(problems, source));
        Assert.HasCount(0, problems, Describe(problems, source));
        Assert.IsTrue(source.All(c => c < 128), "the file is pure ASCII (non-ASCII labels are \\u escapes)");

        // The labels survive exactly: read them back from the compiled class.
        var asm = AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(image!));
        var type = asm.GetType("Acme.Vision.Models.BeeClassifier", throwOnError: true)!;
        var labels = (IReadOnlyList<string>)type.GetField("Labels")!.GetValue(null)!;
        CollectionAssert.AreEqual(AwkwardLabels, labels.ToArray());
        Assert.AreEqual(112, type.GetField("ImageHeight")!.GetValue(null));
        StringAssert.EndsWith((string)type.GetProperty("ModelPath")!.GetValue(null)!, "my \"model\".onnx");
        Assert.IsNull(type.GetMethod("PredictWithMLNet"), "the ML.NET part is compiled only with MLNET defined");
    }

    [TestMethod]
    public void MLNetPart_CompilesAgainstTheDocumentedApiSurface()
    {
        var source = ConsumptionCode.Generate(Options(AwkwardLabels));
        StringAssert.Contains(source, "#if MLNET");
        var (image, problems) = Compile(source, new[] { "MLNET" }, MLNetApiSurface);
        Assert.IsNotNull(image, Describe(problems, source));
        Assert.HasCount(0, problems, Describe(problems, source));
        // What the pipeline must ask of ML.NET for the model's input contract.
        StringAssert.Contains(source, "interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true");
        StringAssert.Contains(source, "resizing: ImageResizingEstimator.ResizingKind.IsoCrop");
        StringAssert.Contains(source, "inputColumnNames: new[] { \"image\" }");
        StringAssert.Contains(source, "outputColumnNames: new[] { \"Score\" }");
        StringAssert.Contains(source, "Microsoft.ML.ImageAnalytics");
        StringAssert.Contains(source, "crop fraction 0.9");
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

    [TestMethod]
    public void GeneratedCode_RunsOnAnExportedModel_AndAgreesWithOnnxImageScorer()
    {
        using var scope = TensorScope.Begin();
        var dir = Directory.CreateTempSubdirectory("mlnetext-consume-");
        try
        {
            // 10 classes, as the tiny fixture model has; no line break (the model's metadata keeps labels one per line)
            var labels = AwkwardLabels.Select(l => l.Replace('\n', ' ')).ToArray();
            using (var model = Backbones.CreateCustom("transxnet", TinyConfig.Kwargs))
            {
                model.LoadStateDict(TinyConfig.Weights);
                Assert.AreEqual(labels.Length, model.NumClasses);
                OnnxExporter.Export(model, Path.Combine(dir.FullName, "model.onnx"), new OnnxExportOptions { ImageSize = (112, 112), Labels = labels });
            }
            var modelPath = Path.Combine(dir.FullName, "model.onnx");
            var options = ConsumptionCodeOptions.FromOnnxModel(modelPath);
            Assert.AreEqual(112, options.InputHeight);
            Assert.AreEqual(0.9, options.CropPct, "transxnet's evaluation crop comes from the model's metadata");
            CollectionAssert.AreEqual(labels, options.Labels.ToArray());

            var codePath = Path.Combine(dir.FullName, "Consume.cs");
            ConsumptionCode.Write(options, codePath);
            var source = File.ReadAllText(codePath);
            var (image, problems) = Compile(source, Array.Empty<string>());
            Assert.IsNotNull(image, Describe(problems, source));

            var asm = AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(image!));
            var type = asm.GetType("MLNetExtModel.ImageClassifier", throwOnError: true)!;
            type.GetProperty("ModelPath")!.SetValue(null, modelPath);
            var photo = Fixtures.Path("data/transform_source.png");
            var (label, score) = ((string, float))Invoke(type, "Predict", photo);
            var top3 = (IReadOnlyList<(string Label, float Score)>)Invoke(type, "PredictTop", photo, 3);

            using var scorer = new OnnxImageScorer(modelPath, batchSize: 1);
            var expected = scorer.ScoreFiles(new[] { photo })[0];
            Assert.IsNotNull(expected.Scores, expected.Error);
            var best = expected.Top(3, labels);
            Assert.AreEqual(best[0].Label, label);
            Assert.AreEqual(best[0].Probability, score, "same runtime, same preprocessing: bit-identical");
            CollectionAssert.AreEqual(best.Select(b => (b.Label, b.Probability)).ToArray(), top3.ToArray());

            var missing = Path.Combine(dir.FullName, "missing.jpg");
            var e = Assert.ThrowsExactly<TargetInvocationException>(() => Invoke(type, "Predict", missing));
            Assert.IsInstanceOfType<InvalidDataException>(e.InnerException);
            StringAssert.Contains(e.InnerException!.Message, "missing.jpg");
        }
        finally { dir.Delete(recursive: true); }
    }

    static object Invoke(Type type, string method, params object[] args) =>
        type.GetMethods().Single(m => m.Name == method && m.GetParameters().Length == args.Length).Invoke(null, args)!;

    /// <summary>
    /// The part of ML.NET's public API the generated code calls, with the signatures as documented on learn.microsoft.com
    /// (Microsoft.ML 3.x/4.x API reference), for a compile-only check (ML.NET is not obtainable here): the bodies throw.
    /// ImageEstimatorsCatalog.LoadImages(this TransformsCatalog, string outputColumnName, string imageFolder, string
    /// inputColumnName = null) → Microsoft.ML.Data.ImageLoadingEstimator; ImageEstimatorsCatalog.ResizeImages(this
    /// TransformsCatalog, string outputColumnName, int imageWidth, int imageHeight, string inputColumnName = null,
    /// ImageResizingEstimator.ResizingKind resizing = IsoCrop, ImageResizingEstimator.Anchor cropAnchor = Center);
    /// ImageEstimatorsCatalog.ExtractPixels(this TransformsCatalog, string outputColumnName, string inputColumnName = null,
    /// ColorBits colorsToExtract = Rgb, ColorsOrder orderOfExtraction = ARGB, bool interleavePixelColors = false, float
    /// offsetImage = 0, float scaleImage = 1, bool outputAsFloatArray = true); OnnxCatalog.ApplyOnnxModel(this
    /// TransformsCatalog, string[] outputColumnNames, string[] inputColumnNames, string modelFile, int? gpuDeviceId = null,
    /// bool fallbackToCpu = false) → Microsoft.ML.Transforms.Onnx.OnnxScoringEstimator;
    /// LearningPipelineExtensions.Append&lt;TTrans&gt;(this IEstimator&lt;ITransformer&gt;, IEstimator&lt;TTrans&gt;,
    /// TransformerScope = Everything) and EstimatorChain&lt;T&gt;.Append&lt;TNew&gt;(IEstimator&lt;TNew&gt;, TransformerScope);
    /// DataOperationsCatalog.LoadFromEnumerable&lt;TRow&gt;(IEnumerable&lt;TRow&gt;, SchemaDefinition = null);
    /// ModelOperationsCatalog.CreatePredictionEngine&lt;TSrc, TDst&gt;(ITransformer, bool ignoreMissingColumns = true,
    /// SchemaDefinition = null, SchemaDefinition = null) where TDst : class, new(); PredictionEngine&lt;TSrc,
    /// TDst&gt;.Predict(TSrc); Microsoft.ML.Data.ColumnNameAttribute(string).
    /// </summary>
    const string MLNetApiSurface = """
        #nullable disable
        using System;
        using System.Collections.Generic;
        namespace Microsoft.ML
        {
            public interface IDataView { }
            public interface ITransformer { }
            public interface IEstimator<out TTransformer> where TTransformer : ITransformer { TTransformer Fit(IDataView input); }
            public sealed class TransformsCatalog { }
            public sealed class DataOperationsCatalog
            {
                public IDataView LoadFromEnumerable<TRow>(IEnumerable<TRow> data, Microsoft.ML.Data.SchemaDefinition schemaDefinition = null) where TRow : class => throw new NotSupportedException();
            }
            public sealed class ModelOperationsCatalog
            {
                public PredictionEngine<TSrc, TDst> CreatePredictionEngine<TSrc, TDst>(ITransformer transformer, bool ignoreMissingColumns = true,
                    Microsoft.ML.Data.SchemaDefinition inputSchemaDefinition = null, Microsoft.ML.Data.SchemaDefinition outputSchemaDefinition = null)
                    where TSrc : class where TDst : class, new() => throw new NotSupportedException();
            }
            public sealed class MLContext
            {
                public MLContext(int? seed = null) { }
                public TransformsCatalog Transforms => throw new NotSupportedException();
                public DataOperationsCatalog Data => throw new NotSupportedException();
                public ModelOperationsCatalog Model => throw new NotSupportedException();
            }
            public sealed class PredictionEngine<TSrc, TDst> where TSrc : class where TDst : class, new()
            {
                public TDst Predict(TSrc example) => throw new NotSupportedException();
            }
            public static class LearningPipelineExtensions
            {
                public static Microsoft.ML.Data.EstimatorChain<TTrans> Append<TTrans>(this IEstimator<ITransformer> start, IEstimator<TTrans> estimator,
                    Microsoft.ML.Data.TransformerScope scope = Microsoft.ML.Data.TransformerScope.Everything) where TTrans : class, ITransformer => throw new NotSupportedException();
            }
            public static class ImageEstimatorsCatalog
            {
                public static Microsoft.ML.Data.ImageLoadingEstimator LoadImages(this TransformsCatalog catalog, string outputColumnName, string imageFolder, string inputColumnName = null) => throw new NotSupportedException();
                public static Microsoft.ML.Transforms.Image.ImageResizingEstimator ResizeImages(this TransformsCatalog catalog, string outputColumnName, int imageWidth, int imageHeight,
                    string inputColumnName = null, Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind resizing = Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.IsoCrop,
                    Microsoft.ML.Transforms.Image.ImageResizingEstimator.Anchor cropAnchor = Microsoft.ML.Transforms.Image.ImageResizingEstimator.Anchor.Center) => throw new NotSupportedException();
                public static Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator ExtractPixels(this TransformsCatalog catalog, string outputColumnName, string inputColumnName = null,
                    Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits colorsToExtract = Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb,
                    Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorsOrder orderOfExtraction = Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                    bool interleavePixelColors = false, float offsetImage = 0, float scaleImage = 1, bool outputAsFloatArray = true) => throw new NotSupportedException();
            }
            public static class OnnxCatalog
            {
                public static Microsoft.ML.Transforms.Onnx.OnnxScoringEstimator ApplyOnnxModel(this TransformsCatalog catalog, string[] outputColumnNames, string[] inputColumnNames,
                    string modelFile, int? gpuDeviceId = null, bool fallbackToCpu = false) => throw new NotSupportedException();
            }
        }
        namespace Microsoft.ML.Data
        {
            public sealed class SchemaDefinition { }
            public enum TransformerScope { None = 0, Training = 1, Testing = 2, Scoring = 4, TrainTest = 3, Everything = 7 }
            [AttributeUsage(AttributeTargets.Field | AttributeTargets.Property)]
            public sealed class ColumnNameAttribute : Attribute { public ColumnNameAttribute(string name) { } }
            public sealed class TransformerChain<TLastTransformer> : ITransformer where TLastTransformer : class, ITransformer { }
            public sealed class EstimatorChain<TLastTransformer> : IEstimator<TransformerChain<TLastTransformer>> where TLastTransformer : class, ITransformer
            {
                public EstimatorChain<TNewTrans> Append<TNewTrans>(IEstimator<TNewTrans> estimator, TransformerScope scope = TransformerScope.Everything)
                    where TNewTrans : class, ITransformer => throw new NotSupportedException();
                public TransformerChain<TLastTransformer> Fit(IDataView input) => throw new NotSupportedException();
            }
            public sealed class ImageLoadingTransformer : ITransformer { }
            public sealed class ImageLoadingEstimator : IEstimator<ImageLoadingTransformer> { public ImageLoadingTransformer Fit(IDataView input) => throw new NotSupportedException(); }
        }
        namespace Microsoft.ML.Transforms.Image
        {
            public sealed class ImageResizingTransformer : ITransformer { }
            public sealed class ImageResizingEstimator : IEstimator<ImageResizingTransformer>
            {
                public enum ResizingKind : byte { Fill = 0, IsoPad = 1, IsoCrop = 2 }
                public enum Anchor : byte { Right = 0, Left = 1, Top = 2, Bottom = 3, Center = 4 }
                public ImageResizingTransformer Fit(IDataView input) => throw new NotSupportedException();
            }
            public sealed class ImagePixelExtractingTransformer : ITransformer { }
            public sealed class ImagePixelExtractingEstimator : IEstimator<ImagePixelExtractingTransformer>
            {
                [Flags] public enum ColorBits : byte { Alpha = 1, Red = 2, Green = 4, Blue = 8, Rgb = Red | Green | Blue, All = Alpha | Rgb }
                public enum ColorsOrder : byte { ARGB = 1, ARBG = 2, ABRG = 3, ABGR = 4, AGRB = 5, AGBR = 6 }
                public ImagePixelExtractingTransformer Fit(IDataView input) => throw new NotSupportedException();
            }
        }
        namespace Microsoft.ML.Transforms.Onnx
        {
            public sealed class OnnxTransformer : ITransformer { }
            public sealed class OnnxScoringEstimator : IEstimator<OnnxTransformer> { public OnnxTransformer Fit(IDataView input) => throw new NotSupportedException(); }
        }
        """;
}

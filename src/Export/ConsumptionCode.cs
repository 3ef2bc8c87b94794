using System.Globalization;
using System.Text;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Export;

/// <summary>What <see cref="ConsumptionCode.Generate"/> needs to know about an exported model.</summary>
public sealed record ConsumptionCodeOptions
{
    /// <summary>File name of the ONNX model next to the consuming program (default <c>model.onnx</c>); the generated
    /// code looks for it in the program's output folder unless <c>ModelPath</c> is set at run time.</summary>
    public string ModelFileName { get; init; } = "model.onnx";

    /// <summary>Class names in the model's output order (any text; they are written as escaped C# literals).</summary>
    public required IReadOnlyList<string> Labels { get; init; }

    /// <summary>Input height the model was exported at.</summary>
    public required int InputHeight { get; init; }

    /// <summary>Input width the model was exported at.</summary>
    public required int InputWidth { get; init; }

    /// <summary>Evaluation crop fraction of the training pipeline (resize the shorter side to size/crop, centre crop);
    /// used for the comment that explains what ML.NET's resize does differently.</summary>
    public double CropPct { get; init; } = 0.875;

    /// <summary>Resize interpolation of the training pipeline (for the same comment).</summary>
    public string Interpolation { get; init; } = "bicubic";

    /// <summary>Namespace of the generated class (dotted C# identifiers).</summary>
    public string Namespace { get; init; } = "MLNetExtModel";

    /// <summary>Name of the generated static class (a C# identifier).</summary>
    public string ClassName { get; init; } = "ImageClassifier";

    /// <summary>Name of the model's image input (ML.NET column that ExtractPixels writes): <c>image</c>.</summary>
    public string InputColumnName { get; init; } = OnnxExporter.ImageInput;

    /// <summary>Name of the model's probability output: <c>Score</c>.</summary>
    public string ScoreColumnName { get; init; } = "Score";

    /// <summary>Library version written into the header.</summary>
    public string LibraryVersion { get; init; } = OnnxExporter.LibraryVersion;

    /// <summary>Reads labels, input size, crop, interpolation and input name from the metadata of a model exported by
    /// <see cref="OnnxExporter"/> (preprocess <c>mlnet</c>).</summary>
    /// <exception cref="InvalidOperationException">The model was not exported by MLNetExt with ML.NET-layout input.</exception>
    public static ConsumptionCodeOptions FromOnnxModel(string modelPath)
    {
        using var session = OnnxSession.FromFile(modelPath);
        var meta = session.Metadata.Custom;
        string Need(string key) => meta.TryGetValue(key, out var v) ? v
            : throw new InvalidOperationException($"'{modelPath}' has no '{key}' metadata: it was not exported by MLNetExt (found keys: {string.Join(", ", meta.Keys)}).");
        if (Need("mlnetext.preprocess") != "mlnet")
            throw new InvalidOperationException($"'{modelPath}' was exported with preprocess '{meta["mlnetext.preprocess"]}'; consumption code needs the ML.NET layout (preprocess mlnet: input 'image', 0-255 RGB planar).");
        var size = Need("mlnetext.input_size").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        int classes = int.Parse(Need("mlnetext.num_classes"), CultureInfo.InvariantCulture);
        var labels = meta.TryGetValue("mlnetext.labels", out var l) ? l.Split('\n')
            : Enumerable.Range(0, classes).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        return new ConsumptionCodeOptions
        {
            ModelFileName = Path.GetFileName(modelPath),
            Labels = labels,
            InputHeight = size[1],
            InputWidth = size[2],
            CropPct = double.Parse(Need("mlnetext.crop_pct"), CultureInfo.InvariantCulture),
            Interpolation = Need("mlnetext.interpolation"),
            InputColumnName = Need("mlnetext.input_name"),
        };
    }
}

/// <summary>
/// Writes the C# file a training run leaves next to <c>model.onnx</c>: a static class with <c>Predict(imagePath)</c>
/// (label and probability) and <c>PredictTop(imagePath, k)</c> through MLNetExt's own runtime
/// (<see cref="Transforms.OnnxImageScorer"/>: the training pipeline's exact evaluation resize and crop), and the same
/// through an ML.NET pipeline (<c>LoadImages → ResizeImages → ExtractPixels → ApplyOnnxModel</c> and a prediction
/// engine) inside <c>#if MLNET</c>, so the file compiles without ML.NET packages.
/// </summary>
public static class ConsumptionCode
{
    /// <summary>The generated C# source.</summary>
    /// <exception cref="ArgumentException">An option is out of range: names that are not C# identifiers, no labels,
    /// a non-positive size, a crop outside (0, 1], empty column or file names.</exception>
    public static string Generate(ConsumptionCodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var o = options;
        string cls = o.ClassName;
        int h = o.InputHeight, w = o.InputWidth;
        // the evaluation geometry of ImagePipeline.Eval: shorter side to floor(size / crop) for square inputs, both sides otherwise
        string resize = h == w ? $"shorter side resized to {(int)Math.Floor(h / o.CropPct)}"
            : $"resized to {(int)Math.Floor(w / o.CropPct)}x{(int)Math.Floor(h / o.CropPct)} (width x height)";
        string version = OneLine(o.LibraryVersion);
        var labels = string.Join(",\n", o.Labels.Select(label => "            " + Literal(label)));
        string crop = o.CropPct.ToString("0.###", CultureInfo.InvariantCulture);
        string interp = OneLine(o.Interpolation);

        var s = new StringBuilder();
        s.Append($$"""
// <auto-generated>
// Generated by MLNetExt {{version}} for the image classifier {{OneLine(o.ModelFileName)}} ({{o.Labels.Count}} classes, input {{h}}x{{w}}).
// </auto-generated>
//
// Usage: add this file and {{OneLine(o.ModelFileName)}} to your project (model file with CopyToOutputDirectory = PreserveNewest), then
//
//     var (label, score) = {{cls}}.Predict("photo.jpg");             // MLNetExt runtime (package MLNetExt)
//     var top5 = {{cls}}.PredictTop("photo.jpg", 5);                  // best five, most probable first
//     var (label2, score2) = {{cls}}.PredictWithMLNet("photo.jpg");   // ML.NET pipeline (see below)
//
// Set {{cls}}.ModelPath before the first prediction to load the model from elsewhere. Both paths are thread-safe.
//
// The ML.NET part is compiled only when the symbol MLNET is defined. To use it, add the packages Microsoft.ML,
// Microsoft.ML.ImageAnalytics, Microsoft.ML.OnnxTransformer and Microsoft.ML.OnnxRuntime (or Microsoft.ML.OnnxRuntime.Gpu)
// and put <DefineConstants>$(DefineConstants);MLNET</DefineConstants> in your project file.
//
// The two paths do not prepare images identically, so their scores can differ slightly:
// - MLNetExt (as in training's evaluation): {{resize}} with PIL-exact {{interp}} resampling
//   (antialiased), then the centre {{h}}x{{w}} crop (crop fraction {{crop}}); EXIF orientation applied; libjpeg-turbo decoding.
// - ML.NET: ResizeImages(IsoCrop, Center) scales the shorter side straight to {{Math.Min(h, w)}} with Skia's high-quality (cubic) filter and
//   centre-crops the longer side, i.e. crop fraction 1.0: ImageAnalytics has no crop-only transform, so the {{crop}} crop
//   cannot be reproduced and the model sees a slightly wider field of view than in training. Skia decodes the file
//   and does not apply EXIF orientation. Pixels then go to the model exactly as it expects (RGB planar, 0-255,
//   normalisation inside the graph), so the remaining differences are the resampler, the crop and the orientation.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using MLNetExt.Transforms;
#if MLNET
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
#endif

namespace {{o.Namespace}}
{
    /// <summary>Predicts the class of an image with {{EscapeXml(OneLine(o.ModelFileName))}}.</summary>
    public static partial class {{cls}}
    {
        /// <summary>Class names in the model's output order.</summary>
        public static readonly IReadOnlyList<string> Labels = new string[]
        {
{{labels}}
        };

        /// <summary>Input size the model was exported at.</summary>
        public const int ImageHeight = {{h}}, ImageWidth = {{w}};

        /// <summary>Where the model is loaded from (default: next to the program). Set before the first prediction.</summary>
        public static string ModelPath { get; set; } = Path.Combine(AppContext.BaseDirectory, {{Literal(o.ModelFileName)}});

        static readonly object s_gate = new object();
        static OnnxImageScorer? s_scorer;

        /// <summary>The most probable class of the image file and its probability (MLNetExt runtime).</summary>
        public static (string Label, float Score) Predict(string imagePath) => PredictTop(imagePath, 1)[0];

        /// <summary>The <paramref name="k"/> most probable classes of the image file, best first (MLNetExt runtime).</summary>
        public static IReadOnlyList<(string Label, float Score)> PredictTop(string imagePath, int k = 5)
        {
            if (imagePath is null) throw new ArgumentNullException(nameof(imagePath));
            ImageScore result;
            lock (s_gate)
            {
                s_scorer ??= new OnnxImageScorer(ModelPath, batchSize: 1);
                result = s_scorer.ScoreFiles(new[] { imagePath })[0];
            }
            if (result.Scores is null) throw new InvalidDataException($"Cannot read the image '{imagePath}': {result.Error}");
            return Top(result.Scores, k);
        }

        /// <summary>The <paramref name="k"/> best entries of a probability vector in the model's class order, with their labels.</summary>
        public static IReadOnlyList<(string Label, float Score)> Top(float[] scores, int k)
        {
            if (scores is null) throw new ArgumentNullException(nameof(scores));
            if (scores.Length != Labels.Count)
                throw new InvalidOperationException($"The model at '{ModelPath}' gives {scores.Length} scores but this file lists {Labels.Count} labels: was it re-exported with other classes? Regenerate this file.");
            if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1.");
            return scores.Select((p, i) => (Label: Labels[i], Score: p))
                         .OrderByDescending(t => t.Score)
                         .Take(k)
                         .ToArray();
        }

""");
        s.AppendLine();
        s.Append($$"""
#if MLNET
        /// <summary>ML.NET input row: the path of an image file.</summary>
        public sealed class ModelInput
        {
            [ColumnName("ImagePath")]
            public string ImagePath { get; set; } = "";
        }

        /// <summary>ML.NET output row: the model's class probabilities ({{o.Labels.Count}} values, in the order of <see cref="Labels"/>).</summary>
        public sealed class ModelOutput
        {
            [ColumnName({{Literal(o.ScoreColumnName)}})]
            public float[] Score { get; set; } = Array.Empty<float>();
        }

        static PredictionEngine<ModelInput, ModelOutput>? s_engine;

        /// <summary>Builds the ML.NET pipeline: decode the file, resize and centre-crop to {{w}}x{{h}}, extract planar RGB
        /// 0-255 floats (what the model's input {{EscapeXml(OneLine(o.InputColumnName))}} wants: no offset, no scale; the
        /// normalisation is inside the graph), run the ONNX model.</summary>
        public static ITransformer BuildMLNetPipeline(MLContext mlContext)
        {
            var pipeline = mlContext.Transforms.LoadImages(outputColumnName: "ImageObject", imageFolder: "", inputColumnName: "ImagePath")
                .Append(mlContext.Transforms.ResizeImages(outputColumnName: "ImageResized", imageWidth: ImageWidth, imageHeight: ImageHeight,
                    inputColumnName: "ImageObject", resizing: ImageResizingEstimator.ResizingKind.IsoCrop,
                    cropAnchor: ImageResizingEstimator.Anchor.Center))
                .Append(mlContext.Transforms.ExtractPixels(outputColumnName: {{Literal(o.InputColumnName)}}, inputColumnName: "ImageResized",
                    colorsToExtract: ImagePixelExtractingEstimator.ColorBits.Rgb,
                    orderOfExtraction: ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                    interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true))
                .Append(mlContext.Transforms.ApplyOnnxModel(outputColumnNames: new[] { {{Literal(o.ScoreColumnName)}} },
                    inputColumnNames: new[] { {{Literal(o.InputColumnName)}} }, modelFile: ModelPath));
            // The pipeline learns nothing: fitting on an empty view only fixes the schema.
            return pipeline.Fit(mlContext.Data.LoadFromEnumerable(new List<ModelInput>()));
        }

        /// <summary>The most probable class of the image file and its probability (ML.NET pipeline).</summary>
        public static (string Label, float Score) PredictWithMLNet(string imagePath) => PredictTopWithMLNet(imagePath, 1)[0];

        /// <summary>The <paramref name="k"/> most probable classes of the image file, best first (ML.NET pipeline).</summary>
        public static IReadOnlyList<(string Label, float Score)> PredictTopWithMLNet(string imagePath, int k = 5)
        {
            if (imagePath is null) throw new ArgumentNullException(nameof(imagePath));
            ModelOutput output;
            lock (s_gate) // a PredictionEngine is not thread-safe
            {
                if (s_engine is null)
                {
                    var mlContext = new MLContext();
                    s_engine = mlContext.Model.CreatePredictionEngine<ModelInput, ModelOutput>(BuildMLNetPipeline(mlContext));
                }
                output = s_engine.Predict(new ModelInput { ImagePath = imagePath });
            }
            return Top(output.Score, k);
        }
#endif
    }
}

""");
        return s.ToString();
    }

    /// <summary>Writes <see cref="Generate"/>'s source to <paramref name="path"/> atomically (temporary file, then rename).</summary>
    public static void Write(ConsumptionCodeOptions options, string path)
    {
        var text = Generate(options);
        var full = Path.GetFullPath(path);
        var temp = $"{full}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        File.Move(temp, full, overwrite: true);
    }

    /// <summary>A C# regular string literal for any text: quotes, backslashes, control and non-ASCII characters escaped
    /// (non-ASCII as <c>\uXXXX</c>, so the file is ASCII and any encoding reads it the same).</summary>
    internal static string Literal(string text)
    {
        var b = new StringBuilder(text.Length + 2).Append('"');
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': b.Append("\\\""); break;
                case '\\': b.Append("\\\\"); break;
                case '\n': b.Append("\\n"); break;
                case '\r': b.Append("\\r"); break;
                case '\t': b.Append("\\t"); break;
                case '\0': b.Append("\\0"); break;
                default:
                    if (c < 0x20 || c > 0x7e) b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else b.Append(c);
                    break;
            }
        }
        return b.Append('"').ToString();
    }

    /// <summary>Text safe inside a <c>//</c> comment: control characters (line breaks included) become spaces.</summary>
    static string OneLine(string text) => new(text.Select(c => char.IsControl(c) || c is '\u2028' or '\u2029' or '\u0085' ? ' ' : c).ToArray());

    static string EscapeXml(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal);

    static void Validate(ConsumptionCodeOptions o)
    {
        static ArgumentException Bad(string what, string expected, string found) =>
            new($"ConsumptionCodeOptions.{what} must be {expected}; found {found}.", what);
        if (o.Labels is null || o.Labels.Count == 0) throw Bad(nameof(o.Labels), "at least one class name", "none");
        if (o.Labels.Any(l => l is null)) throw Bad(nameof(o.Labels), "non-null class names", "a null entry");
        if (o.InputHeight < 1) throw Bad(nameof(o.InputHeight), "positive", o.InputHeight.ToString(CultureInfo.InvariantCulture));
        if (o.InputWidth < 1) throw Bad(nameof(o.InputWidth), "positive", o.InputWidth.ToString(CultureInfo.InvariantCulture));
        if (!(o.CropPct > 0 && o.CropPct <= 1)) throw Bad(nameof(o.CropPct), "in (0, 1]", o.CropPct.ToString(CultureInfo.InvariantCulture));
        if (string.IsNullOrWhiteSpace(o.ModelFileName)) throw Bad(nameof(o.ModelFileName), "a file name", "an empty string");
        if (string.IsNullOrEmpty(o.InputColumnName)) throw Bad(nameof(o.InputColumnName), "the model's input name", "an empty string");
        if (string.IsNullOrEmpty(o.ScoreColumnName)) throw Bad(nameof(o.ScoreColumnName), "the model's output name", "an empty string");
        if (!IsIdentifier(o.ClassName)) throw Bad(nameof(o.ClassName), "a C# identifier (letters, digits, '_', not starting with a digit, not a keyword)", $"'{o.ClassName}'");
        if (o.Namespace is null || !o.Namespace.Split('.').All(IsIdentifier))
            throw Bad(nameof(o.Namespace), "dot-separated C# identifiers", $"'{o.Namespace}'");
    }

    static bool IsIdentifier(string? s)
    {
        if (string.IsNullOrEmpty(s) || Keywords.Contains(s)) return false;
        if (!(char.IsLetter(s[0]) || s[0] == '_')) return false;
        return s.All(c => char.IsLetterOrDigit(c) || c == '_');
    }

    static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const", "continue",
        "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern", "false", "finally",
        "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface", "internal", "is", "lock",
        "long", "namespace", "new", "null", "object", "operator", "out", "override", "params", "private", "protected",
        "public", "readonly", "ref", "return", "sbyte", "sealed", "short", "sizeof", "stackalloc", "static", "string",
        "struct", "switch", "this", "throw", "true", "try", "typeof", "uint", "ulong", "unchecked", "unsafe", "ushort",
        "using", "virtual", "void", "volatile", "while",
    };
}

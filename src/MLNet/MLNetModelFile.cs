using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetExt.Export;
using MLNetExt.OnnxRuntime;
using MLNetExt.Inference;

namespace MLNetExt.MLNet;

/// <summary>
/// The ML.NET model (<c>model.zip</c>) of a classifier exported by MLNetExt: a chain of standard ML.NET transformers
/// that a process referencing only Microsoft.ML, Microsoft.ML.ImageAnalytics, Microsoft.ML.OnnxTransformer (6.0.0) and
/// Microsoft.ML.OnnxRuntime (1.32.0) loads with <c>mlContext.Model.Load</c>:
/// <code>
/// ImagePath (string, a file path)
///   -> LoadImages -> ResizeImages(IsoCrop, Center) to the evaluation resize size (Fill for non-square networks)
///   -> ExtractPixels (RGB planar 0-255) -> ApplyOnnxModel (the ONNX bytes travel inside the zip; it slices the centre
///      crop and normalises, so the framing is training evaluation's) -> logits
///   -> multiclass scorer: Score = softmax(logits) (slot names = class names), PredictedLabel (key, key values = class names)
/// </code>
/// The scorer is ML.NET's own <c>MulticlassPredictionTransformer&lt;MaximumEntropyModelParameters&gt;</c> with identity
/// weights and zero bias, so <c>MapKeyToValue("PredictedLabel")</c> and <c>mlContext.MulticlassClassification.Evaluate</c>
/// work exactly as with ML.NET's own trainers (see <see cref="MLNetScorerFactory"/>).
/// </summary>
public static class MLNetModelFile
{
    /// <summary>Input column: the path of an image file.</summary>
    public const string ImagePathColumn = "ImagePath";
    /// <summary>Output column: class probabilities in class order.</summary>
    public const string ScoreColumn = "Score";
    /// <summary>Output column: the most probable class as a key (<c>MapKeyToValue</c> gives its name).</summary>
    public const string PredictedLabelColumn = "PredictedLabel";
    /// <summary>The label column name the scorer was built for (a key column with the class names as key values).</summary>
    public const string LabelColumn = "Label";
    /// <summary>The ONNX output the scorer reads (dropped from the chain's output).</summary>
    internal const string LogitsColumn = "logits";

    sealed class ImageInput
    {
        public string ImagePath { get; set; } = "";
    }

    sealed class LabelledImageInput
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    sealed class ClassName
    {
        public string Value { get; set; } = "";
    }

    /// <summary>The schema of the chain's input: one string column <see cref="ImagePathColumn"/>.</summary>
    public static DataViewSchema InputSchema(MLContext mlContext) =>
        mlContext.Data.LoadFromEnumerable(new List<ImageInput>()).Schema;

    /// <summary>Builds the scoring chain for the ONNX model at <paramref name="onnxPath"/> (exported by MLNetExt with
    /// ML.NET-layout input). The ONNX bytes are held in the chain.</summary>
    public static ITransformer Build(MLContext mlContext, string onnxPath)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        if (!File.Exists(onnxPath)) throw new FileNotFoundException($"ONNX model '{Path.GetFullPath(onnxPath)}' does not exist.", onnxPath);
        ExportedModelInfo info;
        using (var session = OnnxSession.FromFile(onnxPath, new OnnxSessionOptions { IntraOpThreads = 1 }))
            info = ExportedModelInfo.From(session, $"'{onnxPath}'");
        if (!info.Pixels0To255 || !info.CropInGraph)
            throw new InvalidDataException($"The ONNX model '{onnxPath}' takes {(info.Pixels0To255 ? "pixels without the evaluation crop in the graph (exported before crops moved into the graph)" : "normalised input (preprocess none)")}; " +
                "an ML.NET model needs an export with preprocess mlnet (input 'image': 0-255 RGB planar at the resize size). Export it again.");
        if (!info.HasLabels)
            throw new InvalidDataException($"The ONNX model '{onnxPath}' stores no class names; export it with labels (--labels or a trained model) so PredictedLabel can name classes.");
        var duplicate = info.Labels.GroupBy(l => l, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidDataException($"The ONNX model '{onnxPath}' names class '{duplicate.Key}' more than once; class names must be unique.");

        // the scorer takes its key values (class order) from a key-typed label column of the training schema
        var ml = mlContext;
        var empty = ml.Data.LoadFromEnumerable(new List<LabelledImageInput>());
        var classes = ml.Data.LoadFromEnumerable(info.Labels.Select(l => new ClassName { Value = l }).ToList());
        var source = ml.Transforms.Conversion.MapValueToKey(LabelColumn, LabelColumn, keyData: classes).Fit(empty).Transform(empty);
        return ClassifierChain.Build(ml, source, new ImageColumn(ImagePathColumn, ImageColumnKind.Path, null), LabelColumn, File.ReadAllBytes(onnxPath), info,
            LogitsColumn, ScoreColumn, PredictedLabelColumn, gpuDeviceId: null);
    }

    /// <summary>Builds the chain for <paramref name="onnxPath"/> and saves it with <c>mlContext.Model.Save</c> to
    /// <paramref name="zipPath"/> (written to a temporary name, then renamed: never a half-written model).</summary>
    public static void Save(string onnxPath, string zipPath, MLContext? mlContext = null)
    {
        var ml = mlContext ?? new MLContext(seed: 0);
        var model = Build(ml, onnxPath);
        var full = Path.GetFullPath(zipPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = Serialization.AtomicFile.TempPath(full);
        try
        {
            ml.Model.Save(model, InputSchema(ml), temp);
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
            (model as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// Loads a model.zip with <c>mlContext.Model.Load</c> after checking that it is one: a zip archive of an ML.NET
    /// transformer chain with an ONNX model inside. When the context asks for a GPU (<c>GpuDeviceId</c>) and the
    /// deployed ONNX Runtime has no CUDA provider, loads on CPU with one warning if <c>FallbackToCpu</c> is set, and
    /// throws a clear error otherwise (ML.NET itself fails with EntryPointNotFoundException on the CPU package). The
    /// context's GpuDeviceId is restored afterwards: do not load with one context on two threads at once.
    /// </summary>
    public static ITransformer Load(MLContext mlContext, string zipPath, out DataViewSchema inputSchema, Action<string>? warning = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        Check(zipPath);
        int? gpu = mlContext.GpuDeviceId;
        // the ONNX transformer reads the device from the loading context
        mlContext.GpuDeviceId = MLNetEnvironment.OnnxGpu(gpu, mlContext.FallbackToCpu, warning ?? (w => Console.Error.WriteLine("warning: " + w)));
        try { return mlContext.Model.Load(zipPath, out inputSchema); }
        catch (Exception e) when (e is not (OutOfMemoryException or StackOverflowException))
        {
            throw new InvalidDataException($"ML.NET could not load the model '{zipPath}': {Innermost(e).Message}", e);
        }
        finally { mlContext.GpuDeviceId = gpu; }
    }

    /// <summary>Checks that <paramref name="zipPath"/> is an ML.NET model archive holding an ONNX model, naming what is wrong.</summary>
    internal static void Check(string zipPath)
    {
        if (!File.Exists(zipPath)) throw new FileNotFoundException($"ML.NET model '{Path.GetFullPath(zipPath)}' does not exist.", zipPath);
        List<string> entries;
        try
        {
            using var zip = ZipFile.OpenRead(zipPath);
            entries = zip.Entries.Select(e => e.FullName).ToList();
        }
        catch (InvalidDataException)
        {
            throw new InvalidDataException($"'{zipPath}' is not an ML.NET model: expected a zip archive written by mlContext.Model.Save, found {Describe(zipPath)}.");
        }
        if (!entries.Any(e => e.StartsWith("TransformerChain/", StringComparison.Ordinal) || e.StartsWith("Model/", StringComparison.Ordinal)))
            throw new InvalidDataException($"'{zipPath}' is a zip archive but not an ML.NET model: expected entries under TransformerChain/ (mlContext.Model.Save), " +
                $"found {(entries.Count == 0 ? "no entries" : string.Join(", ", entries.Take(5)) + (entries.Count > 5 ? ", ..." : ""))}.");
        if (!entries.Any(e => e.EndsWith("/OnnxModel", StringComparison.Ordinal)))
            throw new InvalidDataException($"'{zipPath}' is an ML.NET model without an ONNX model inside (no .../OnnxModel stream): it was not written by MLNetExt " +
                "or ApplyOnnxModel, and cannot score images here.");
    }

    static string Describe(string path)
    {
        var head = new byte[8];
        int n;
        using (var f = File.OpenRead(path)) n = f.Read(head);
        return n == 0 ? "an empty file" : $"a file starting with bytes {Convert.ToHexString(head, 0, n)}";
    }

    static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    /// <summary>Writes <paramref name="model"/> as an ML.NET model (<c>model.zip</c>) that a process with only the
    /// Microsoft.ML packages loads with <c>mlContext.Model.Load</c>: input <c>ImagePath</c>, outputs <c>Score</c> and
    /// <c>PredictedLabel</c>; the ONNX export travels inside the zip. <paramref name="onnx"/> sets its precision (e.g.
    /// <c>new OnnxExportOptions { Precision = OnnxPrecision.Int8, CalibrationImages = files }</c>); the classes and the
    /// framing always come from the model.</summary>
    public static void SaveMLNet(this ImageClassificationModel model, string zipPath, OnnxExportOptions? onnx = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(zipPath);
        var temp = Directory.CreateTempSubdirectory("mlnetext-mlnet-");
        try
        {
            var exported = Path.Combine(temp.FullName, "model.onnx");
            model.ExportOnnx(exported, onnx);
            Save(exported, zipPath);
        }
        finally { temp.Delete(recursive: true); }
    }
}

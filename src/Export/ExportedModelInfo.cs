using System.Globalization;
using MLNetExt.OnnxRuntime;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Export;

/// <summary>
/// What an ONNX model exported by MLNetExt says about itself in its metadata (<c>mlnetext.*</c> keys): how images are
/// prepared for it, its classes and its input. The one reader of that metadata (scorer, consumption code, ML.NET model
/// writer); every value is checked and a bad one is named with what was expected and what was found.
/// </summary>
public sealed record ExportedModelInfo
{
    /// <summary>Graph input name: <c>image</c> (ML.NET layout) or <c>input</c> (normalised).</summary>
    public required string InputName { get; init; }
    /// <summary>True for the ML.NET layout: RGB planar 0-255, crop and normalisation inside the graph.</summary>
    public required bool Pixels0To255 { get; init; }
    /// <summary>The size the graph input takes (the resize size when the crop is in the graph).</summary>
    public required int InputHeight { get; init; }
    /// <inheritdoc cref="InputHeight"/>
    public required int InputWidth { get; init; }
    /// <summary>The network's own input size (the crop size).</summary>
    public required int CropHeight { get; init; }
    /// <inheritdoc cref="CropHeight"/>
    public required int CropWidth { get; init; }
    /// <summary>Evaluation crop fraction of the training pipeline.</summary>
    public required double CropPct { get; init; }
    /// <summary>Whether the graph slices the centre crop from its input.</summary>
    public required bool CropInGraph { get; init; }
    /// <summary><see cref="EvalCrop.ShorterSide"/> (square networks) or <see cref="EvalCrop.Stretch"/>.</summary>
    public required string ResizeMode { get; init; }
    /// <summary>Per-channel mean of 0–1 RGB values the graph subtracts.</summary>
    public required IReadOnlyList<double> Mean { get; init; }
    /// <summary>Per-channel standard deviation the graph divides by.</summary>
    public required IReadOnlyList<double> Std { get; init; }
    /// <summary>The resize filter the model was trained with ("bilinear" or "bicubic").</summary>
    public required string Interpolation { get; init; }
    /// <summary>Width of the Score output.</summary>
    public required int NumClasses { get; init; }
    /// <summary>Class names in output order (their indices as text when the model was exported without labels).</summary>
    public required IReadOnlyList<string> Labels { get; init; }
    /// <summary>Whether the model stores class names.</summary>
    public required bool HasLabels { get; init; }
    /// <summary>Backbone family, when the model says.</summary>
    public string Backbone { get; init; } = "";
    /// <summary>Variant name (or "custom"), when the model says.</summary>
    public string Variant { get; init; } = "";
    /// <summary>The temperature of the graph's <c>Score = softmax(logits / T)</c> (1 for models exported before it was recorded).</summary>
    public double ScoreTemperature { get; init; } = 1;
    /// <summary>The views the graph averages for each image (none for models exported before it was recorded).</summary>
    public TestTimeAugmentation TestTimeAugmentation { get; init; }

    /// <summary>The training evaluation pipeline at the network size.</summary>
    internal ImagePipeline EvalPipeline() =>
        ImagePipeline.Eval(CropHeight, CropWidth, Mean, Std, CropPct, Resampler.Parse(Interpolation));

    /// <summary>Fills <paramref name="dst"/> (3·H·W floats of the graph input, planar) for one decoded image with
    /// <paramref name="pipeline"/> (<see cref="EvalPipeline"/>, which callers keep): the training evaluation's resize and
    /// centre crop exactly. When the graph takes the crop itself, the crop is placed where the graph slices it from (the
    /// border it discards stays zero).</summary>
    internal void FillInput(ImagePipeline pipeline, RgbImage image, Span<float> dst)
    {
        var rng = new Rng(0); // evaluation geometry is deterministic; the generator is never drawn from
        if (!Pixels0To255)
        {
            pipeline.Process(image, rng, dst);
            return;
        }
        var cropped = pipeline.ProcessToImage(image, rng);
        var crop = EvalCrop.For(CropHeight, CropWidth, CropPct);
        var (top, left) = CropInGraph ? (crop.Top, crop.Left) : (0, 0);
        int plane = InputHeight * InputWidth, ch = CropHeight, cw = CropWidth;
        if (CropInGraph) dst.Clear();
        var px = cropped.Pixels;
        for (int y = 0; y < ch; y++)
            for (int x = 0; x < cw; x++)
            {
                int i = y * cw + x, o = (top + y) * InputWidth + left + x;
                dst[o] = px[3 * i];
                dst[plane + o] = px[3 * i + 1];
                dst[2 * plane + o] = px[3 * i + 2];
            }
    }

    /// <summary>Reads the metadata of an open session.</summary>
    internal static ExportedModelInfo From(OnnxSession session, string source) => Parse(session.Metadata.Custom, session.Inputs, source);

    /// <summary>Reads MLNetExt's metadata keys and checks them against the model's inputs.</summary>
    /// <exception cref="InvalidDataException">A key is missing or its value is not what MLNetExt writes (named).</exception>
    internal static ExportedModelInfo Parse(IReadOnlyDictionary<string, string> meta, IReadOnlyList<OnnxNodeInfo> inputs, string source)
    {
        if (!meta.ContainsKey("mlnetext.input_name"))
            throw new InvalidDataException($"The ONNX model {source} was not exported by MLNetExt: it has no 'mlnetext.input_name' metadata " +
                $"(found keys: {(meta.Count == 0 ? "none" : string.Join(", ", meta.Keys))}).");
        string Need(string key) => meta.TryGetValue(key, out var v) ? v
            : throw new InvalidDataException($"The ONNX model {source} lacks the '{key}' metadata that MLNetExt writes (found keys: {string.Join(", ", meta.Keys)}).");
        InvalidDataException Bad(string key, string expected) =>
            new($"The ONNX model {source} has metadata '{key}' = '{meta[key]}'; expected {expected}.");
        int[] Ints(string key, int count)
        {
            var parts = Need(key).Split(',');
            var values = new int[parts.Length];
            if (parts.Length != count || !parts.Select((p, i) => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out values[i]) && values[i] > 0).All(ok => ok))
                throw Bad(key, $"{count} positive integers separated by commas");
            return values;
        }
        double[] Doubles(string key, int count)
        {
            var parts = Need(key).Split(',');
            var values = new double[parts.Length];
            if (parts.Length != count || !parts.Select((p, i) => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) && double.IsFinite(values[i])).All(ok => ok))
                throw Bad(key, $"{count} finite numbers separated by commas");
            return values;
        }
        var input = Need("mlnetext.input_name");
        var preprocess = Need("mlnetext.preprocess");
        if (preprocess is not ("mlnet" or "none")) throw Bad("mlnetext.preprocess", "'mlnet' or 'none'");
        var size = Ints("mlnetext.input_size", 3);
        double crop = Doubles("mlnetext.crop_pct", 1)[0];
        if (!(crop > 0 && crop <= 1)) throw Bad("mlnetext.crop_pct", "a number in (0, 1]");
        bool inGraph = meta.TryGetValue("mlnetext.crop_in_graph", out var g) && g == "true"; // models before the key: no crop in the graph
        var cropSize = inGraph ? Ints("mlnetext.crop_size", 2) : new[] { size[1], size[2] };
        if (inGraph)
        {
            var expected = EvalCrop.For(cropSize[0], cropSize[1], crop);
            if (expected.ResizeHeight != size[1] || expected.ResizeWidth != size[2])
                throw Bad("mlnetext.input_size", $"3,{expected.ResizeHeight},{expected.ResizeWidth} for crop size {cropSize[0]}x{cropSize[1]} at crop fraction {crop}");
        }
        int classes = Ints("mlnetext.num_classes", 1)[0];
        var interpolation = Need("mlnetext.interpolation");
        try { Resampler.Parse(interpolation); }
        catch (ArgumentException) { throw Bad("mlnetext.interpolation", "bilinear or bicubic"); }
        bool hasLabels = meta.TryGetValue("mlnetext.labels", out var labelText);
        var labels = hasLabels ? labelText!.Split('\n') : Enumerable.Range(0, classes).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        if (labels.Length != classes) throw Bad("mlnetext.labels", $"{classes} class names (mlnetext.num_classes), one per line; found {labels.Length}");
        var mode = meta.TryGetValue("mlnetext.resize_mode", out var m) ? m : cropSize[0] == cropSize[1] ? EvalCrop.ShorterSide : EvalCrop.Stretch;
        if (mode is not (EvalCrop.ShorterSide or EvalCrop.Stretch)) throw Bad("mlnetext.resize_mode", $"'{EvalCrop.ShorterSide}' or '{EvalCrop.Stretch}'");
        var info = new ExportedModelInfo
        {
            InputName = input, Pixels0To255 = preprocess == "mlnet", InputHeight = size[1], InputWidth = size[2],
            CropHeight = cropSize[0], CropWidth = cropSize[1], CropPct = crop, CropInGraph = inGraph, ResizeMode = mode,
            Mean = Doubles("mlnetext.mean", 3), Std = Doubles("mlnetext.std", 3), Interpolation = interpolation,
            NumClasses = classes, Labels = labels, HasLabels = hasLabels,
            Backbone = meta.GetValueOrDefault("mlnetext.backbone", ""), Variant = meta.GetValueOrDefault("mlnetext.variant", ""),
            ScoreTemperature = meta.ContainsKey("mlnetext.score_temperature") ? Doubles("mlnetext.score_temperature", 1)[0] : 1,
            TestTimeAugmentation = meta.TryGetValue("mlnetext.test_time_augmentation", out var tta)
                ? TestTimeViews.FromName(tta) ?? throw Bad("mlnetext.test_time_augmentation", "'none' or 'flip'")
                : TestTimeAugmentation.None,
        };
        if (!(info.ScoreTemperature > 0)) throw Bad("mlnetext.score_temperature", "a positive number");
        var node = inputs.FirstOrDefault(i => i.Name == input)
            ?? throw new InvalidDataException($"The ONNX model {source} names its input '{input}' in the metadata, but its inputs are: {string.Join("; ", inputs)}.");
        if (node.Dimensions.Count != 4 || node.Dimensions[1] != 3 || node.Dimensions[2] != info.InputHeight || node.Dimensions[3] != info.InputWidth)
            throw new InvalidDataException($"The ONNX model {source} has input {node}, but its metadata says [N,3,{info.InputHeight},{info.InputWidth}].");
        return info;
    }
}

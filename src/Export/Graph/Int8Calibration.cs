using Google.Protobuf;
using MLNetExt.Data;
using MLNetExt.Export.Onnx;
using MLNetExt.Imaging;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Measures the range of intermediate values of a float32 graph over calibration images, for
/// <see cref="StaticInt8"/>: a copy of the graph with those values as extra outputs runs in ONNX Runtime on each
/// image, framed exactly as the model's own scorer frames images (<see cref="ExportedModelInfo.FillInput"/>).
/// </summary>
internal static class Int8Calibration
{
    /// <summary>The minimum and maximum of each of <paramref name="values"/> over the readable images among
    /// <paramref name="images"/>. Throws when none can be read.</summary>
    public static Dictionary<string, (float Min, float Max)> Measure(ModelProto model, IEnumerable<string> values, IReadOnlyList<ImageItem> images)
    {
        var measured = values.Distinct().ToList();
        var copy = model.Clone();
        var existing = copy.Graph.Output.Select(o => o.Name).ToHashSet();
        foreach (var v in measured.Where(v => !existing.Contains(v)))
            copy.Graph.Output.Add(new ValueInfoProto
            {
                Name = v,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
        using var session = OnnxSession.FromBytes(copy.ToByteArray(), new OnnxSessionOptions());
        var info = ExportedModelInfo.From(session, "being calibrated");
        var pipeline = info.EvalPipeline();
        var ranges = measured.ToDictionary(v => v, _ => (Min: float.PositiveInfinity, Max: float.NegativeInfinity));
        var pixels = new float[3 * info.InputHeight * info.InputWidth];
        int readable = 0;
        var firstProblem = (string?)null;
        // One image per run: every measured value is an output held until the run ends (up to 0.3 GB per image for
        // transxnet_t at 224 px), and a larger batch saves little next to the network's own time.
        foreach (var item in images)
        {
            RgbImage image;
            try { image = item.Image ?? ImageDecoder.Decode(item.ReadBytes()); }
            catch (Exception e) when (ImageDecodeException.IsImageProblem(e))
            {
                firstProblem ??= $"{item.Source}: {e.Message}";
                continue;
            }
            info.FillInput(pipeline, image, pixels);
            readable++;
            using var run = session.Run(info.InputName, OnnxTensor.FromArray(pixels, 1, 3, info.InputHeight, info.InputWidth), measured);
            foreach (var v in measured)
            {
                var r = ranges[v];
                foreach (var x in run[v].AsSpan<float>())
                {
                    if (x < r.Min) r.Min = x;
                    if (x > r.Max) r.Max = x;
                }
                ranges[v] = r;
            }
        }
        if (readable == 0)
            throw new ArgumentException(images.Count == 0
                ? "Static INT8 needs calibration images; the list is empty."
                : $"None of the {images.Count} calibration images could be read (first: {firstProblem}).");
        return ranges;
    }
}

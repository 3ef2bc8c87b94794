using System.Globalization;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.OnnxRuntime;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Inference;

/// <summary>Something that scores image files: an exported model in ONNX Runtime or an ML.NET model.</summary>
public interface IImageFileScorer
{
    /// <summary>Class names in score order (empty or indices when the model has none).</summary>
    IReadOnlyList<string> Labels { get; }

    /// <summary>Scores image files in order; a file that cannot be scored gets its reason instead of scores.</summary>
    IReadOnlyList<ImageScore> ScoreFiles(IReadOnlyList<string> paths);
}

/// <summary>One image's result: class probabilities (the model's <c>Score</c>), or why the image could not be scored.</summary>
public sealed record ImageScore(string Source, float[]? Scores, string? Error)
{
    /// <summary>The k most probable classes, best first, with their labels when the model stores them.</summary>
    public IReadOnlyList<(int Index, string Label, float Probability)> Top(int k, IReadOnlyList<string> labels) =>
        Scores is null ? Array.Empty<(int, string, float)>()
        : Scores.Select((p, i) => (Index: i, Label: i < labels.Count ? labels[i] : i.ToString(CultureInfo.InvariantCulture), Probability: p))
                .OrderByDescending(t => t.Probability).Take(k).ToArray();
}

/// <summary>
/// Runs a model exported by MLNetExt in ONNX Runtime on decoded images or ready tensors, in batches. The model's
/// metadata (<see cref="ExportedModelInfo"/>) says how to prepare images: input size, evaluation crop fraction and
/// interpolation, whether the graph takes the centre crop itself, and whether it takes ML.NET-layout pixels
/// (<c>image</c>: RGB planar 0-255, normalised inside) or normalised input (<c>input</c>).
/// Images get the same resize and centre crop as evaluation in training (<see cref="ImagePipeline.Eval(int, int, IReadOnlyList{double}, IReadOnlyList{double}, double, Interpolation)"/>).
/// </summary>
public sealed class OnnxImageScorer : IImageFileScorer, IDisposable
{
    readonly OnnxSession _session;
    readonly ImagePipeline _pipeline;
    readonly bool _ownsSession;

    /// <summary>Opens <paramref name="modelPath"/> with <paramref name="options"/> (threads, CUDA device, ...).</summary>
    public OnnxImageScorer(string modelPath, OnnxSessionOptions? options = null, int batchSize = 16)
        : this(OnnxSession.FromFile(modelPath, options), batchSize, ownsSession: true, $"'{modelPath}'") { }

    /// <summary>Scores with an open session (not disposed by this scorer).</summary>
    internal OnnxImageScorer(OnnxSession session, int batchSize = 16) : this(session, batchSize, ownsSession: false, "in this session") { }

    OnnxImageScorer(OnnxSession session, int batchSize, bool ownsSession, string source)
    {
        try
        {
            if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
            _session = session;
            _ownsSession = ownsSession;
            BatchSize = batchSize;
            Info = ExportedModelInfo.From(session, source);
            _pipeline = Info.EvalPipeline();
            if (!session.Outputs.Any(o => o.Name == "Score"))
                throw new InvalidDataException($"The ONNX model {source} has no 'Score' output (outputs: {string.Join(", ", session.Outputs.Select(o => o.Name))}).");
        }
        catch
        {
            if (ownsSession) session.Dispose();
            throw;
        }
    }

    /// <summary>What the model's metadata says: input, framing, normalisation, classes.</summary>
    public ExportedModelInfo Info { get; }

    /// <summary>Name of the graph input (<c>image</c> or <c>input</c>).</summary>
    public string InputName => Info.InputName;

    /// <summary>Height and width of the graph input (the evaluation resize size when the model crops inside the graph).</summary>
    public int Height => Info.InputHeight;

    /// <inheritdoc cref="Height"/>
    public int Width => Info.InputWidth;

    /// <summary>Images per ONNX Runtime call.</summary>
    public int BatchSize { get; }

    /// <summary>Class names stored in the model (empty when it was exported without labels).</summary>
    public IReadOnlyList<string> Labels => Info.HasLabels ? Info.Labels : Array.Empty<string>();

    /// <summary>Fills <paramref name="dst"/> (3·H·W floats of the graph input, planar) for one decoded image: the
    /// training evaluation's resize and centre crop exactly. When the graph takes the crop itself, the crop is placed
    /// where the graph slices it from (the border it discards stays zero).</summary>
    public void Prepare(RgbImage image, Span<float> dst) => Info.FillInput(_pipeline, image, dst);

    /// <summary>Class probabilities of decoded images, in order.</summary>
    public float[][] Score(IReadOnlyList<RgbImage> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        return ScoreEach(images.Count, i => images[i])!;
    }

    /// <summary>Decodes and scores image files; a file that cannot be decoded gets its reason instead of scores.</summary>
    public IReadOnlyList<ImageScore> ScoreFiles(IReadOnlyList<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var reasons = new string?[paths.Count];
        var scores = ScoreEach(paths.Count, i => ImageDecoder.TryDecodeFile(paths[i], out reasons[i]));
        return scores.Select((s, i) => new ImageScore(paths[i], s, s is null ? reasons[i] ?? "unreadable" : null)).ToArray();
    }

    /// <summary>Scores images <c>0..count-1</c> in batches; a null image gets null scores. Each image is prepared as soon
    /// as <paramref name="imageAt"/> gives it, so at most one decoded image is held at a time.</summary>
    float[]?[] ScoreEach(int count, Func<int, RgbImage?> imageAt)
    {
        var result = new float[]?[count];
        int sample = 3 * Height * Width;
        var batch = new float[BatchSize * sample];
        var index = new List<int>(BatchSize);
        void Flush()
        {
            if (index.Count == 0) return;
            var scores = ScoreBatch(index.Count == BatchSize ? batch : batch[..(index.Count * sample)], index.Count);
            for (int j = 0; j < index.Count; j++) result[index[j]] = scores[j];
            index.Clear();
        }
        for (int i = 0; i < count; i++)
        {
            if (imageAt(i) is not { } image) continue;
            Prepare(image, batch.AsSpan(index.Count * sample, sample));
            index.Add(i);
            if (index.Count == BatchSize) Flush();
        }
        Flush();
        return result;
    }

    /// <summary>Scores a ready batch: <paramref name="input"/> holds <paramref name="count"/> planar samples in the
    /// model's input layout (see <see cref="InputName"/>). Returns one probability vector per sample.</summary>
    public float[][] ScoreBatch(float[] input, int count)
    {
        if (count < 1 || input.Length != count * 3 * Height * Width)
            throw new ArgumentException($"ScoreBatch: {count} samples of 3x{Height}x{Width} need {count * 3 * Height * Width} floats, found {input.Length}.", nameof(input));
        var tensor = OnnxTensor.FromArray(input, count, 3, Height, Width);
        using var run = _session.Run(InputName, tensor, new[] { "Score" });
        var flat = run["Score"].AsSpan<float>();
        int classes = flat.Length / count;
        var result = new float[count][];
        for (int i = 0; i < count; i++) result[i] = flat.Slice(i * classes, classes).ToArray();
        return result;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsSession) _session.Dispose();
    }
}

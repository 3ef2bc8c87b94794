using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Data;
using MLNetExt.Transforms;
using MLNetExt.Inference;

namespace MLNetExt.MLNet;

/// <summary>
/// Scores image files with an ML.NET model.zip (MLNetExt's, or any chain with an <c>ImagePath</c> input and a
/// <c>Score</c> output) through ML.NET itself: a batch <c>Transform</c> for many files, a <c>PredictionEngine</c> for one.
/// Files that are not readable images are reported with their reason and never stop the rest: they are screened by
/// header first, and a batch that ML.NET fails on is retried file by file so the failure is pinned to its file.
/// </summary>
public sealed class MLNetImageScorer : IImageFileScorer, IDisposable
{
    sealed class Input
    {
        public string ImagePath { get; set; } = "";
    }

    sealed class Output
    {
        public float[] Score { get; set; } = [];
    }

    readonly MLContext _ml;
    readonly ITransformer _model;
    readonly Lazy<PredictionEngine<Input, Output>> _engine;

    /// <summary>Loads <paramref name="zipPath"/> (see <see cref="MLNetModelFile.Load"/> for checks and GPU fallback).</summary>
    public MLNetImageScorer(string zipPath, MLContext? mlContext = null, Action<string>? warning = null)
    {
        _ml = mlContext ?? new MLContext();
        _model = MLNetModelFile.Load(_ml, zipPath, out _, warning);
        try
        {
            var schema = _model.GetOutputSchema(_ml.Data.LoadFromEnumerable(new List<Input>()).Schema);
            var score = schema.GetColumnOrNull(MLNetModelFile.ScoreColumn);
            if (score is not { Type: VectorDataViewType { ItemType: NumberDataViewType, Size: > 0 } vector } || vector.ItemType != NumberDataViewType.Single)
                throw new InvalidDataException($"The ML.NET model '{zipPath}' has no '{MLNetModelFile.ScoreColumn}' column of float vectors " +
                    $"(found {(score is null ? "none" : score.Value.Type.ToString())}): it is not an image classifier.");
            VBuffer<ReadOnlyMemory<char>> slots = default;
            if (score.Value.HasSlotNames()) score.Value.GetSlotNames(ref slots);
            var names = slots.DenseValues().Select(s => s.ToString()).ToArray();
            Labels = names.Length == vector.Size ? names : Enumerable.Range(0, vector.Size).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        }
        catch
        {
            (_model as IDisposable)?.Dispose();
            throw;
        }
        _engine = new(() => _ml.Model.CreatePredictionEngine<Input, Output>(_model), isThreadSafe: true);
    }

    /// <summary>Class names in score order (the Score column's slot names).</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>The loaded chain.</summary>
    public ITransformer Model => _model;

    /// <summary>Scores files with batch <c>Transform</c> calls of <paramref name="batchSize"/> files.</summary>
    public IReadOnlyList<ImageScore> ScoreFiles(IReadOnlyList<string> paths, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var results = new ImageScore[paths.Count];
        var readable = new List<int>();
        for (int i = 0; i < paths.Count; i++)
        {
            var problem = ImageDataset.HeaderProblem(paths[i]);
            if (problem is null) readable.Add(i);
            else results[i] = new ImageScore(paths[i], null, problem);
        }
        foreach (var chunk in readable.Chunk(batchSize))
        {
            float[][] scores;
            try { scores = Transform(chunk.Select(i => paths[i])); }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                foreach (var i in chunk) results[i] = ScoreFile(paths[i]);
                continue;
            }
            for (int k = 0; k < chunk.Length; k++) results[chunk[k]] = new ImageScore(paths[chunk[k]], scores[k], null);
        }
        return results;
    }

    /// <inheritdoc/>
    public IReadOnlyList<ImageScore> ScoreFiles(IReadOnlyList<string> paths) => ScoreFiles(paths, 64);

    /// <summary>Scores one file with the prediction engine; a failure becomes the result's error, naming the file's problem.</summary>
    public ImageScore ScoreFile(string path)
    {
        var problem = ImageDataset.HeaderProblem(path);
        if (problem is not null) return new ImageScore(path, null, problem);
        try
        {
            var engine = _engine.Value;
            Output output;
            lock (engine) output = engine.Predict(new Input { ImagePath = path });
            return new ImageScore(path, output.Score, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var inner = e;
            while (inner.InnerException is not null) inner = inner.InnerException;
            return new ImageScore(path, null, $"ML.NET could not score it: {inner.Message}");
        }
    }

    float[][] Transform(IEnumerable<string> paths)
    {
        var data = _ml.Data.LoadFromEnumerable(paths.Select(p => new Input { ImagePath = p }).ToList());
        return _model.Transform(data).GetColumn<float[]>(MLNetModelFile.ScoreColumn).ToArray();
    }

    /// <summary>Frees the ONNX session inside the model.</summary>
    public void Dispose()
    {
        if (_engine.IsValueCreated) _engine.Value.Dispose();
        (_model as IDisposable)?.Dispose();
    }
}

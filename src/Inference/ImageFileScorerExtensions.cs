using MLNetExt.Data;
using MLNetExt.Training;

namespace MLNetExt.Inference;

/// <summary>A model's results on a labelled dataset: the metrics, the misclassified images (most confident mistakes
/// first), the images that could not be read, and for a libtorch model with test-time augmentation the metrics of the
/// image alone (<see cref="SingleView"/>, to see what the extra views bring).</summary>
public sealed record EvaluationResult(ClassificationMetrics Metrics, IReadOnlyList<Misclassified> Misclassified, IReadOnlyList<DatasetIssue> Skipped,
    ClassificationMetrics? SingleView = null);

/// <summary>Predictions and evaluation for any <see cref="IImageFileScorer"/> (an exported model in ONNX Runtime or an
/// ML.NET model.zip), the same as <see cref="ImageClassificationModel"/> gives with libtorch.</summary>
public static class ImageFileScorerExtensions
{
    /// <summary>The <paramref name="topK"/> most probable classes of each image file, in order; a file that cannot be
    /// scored gets a prediction with its <see cref="ImagePrediction.Error"/>.</summary>
    public static IReadOnlyList<ImagePrediction> Predict(this IImageFileScorer scorer, IReadOnlyList<string> files, int topK = 5)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(topK), topK, "topK must be at least 1.");
        return scorer.ScoreFiles(files).Select(s => s.Scores is null
            ? new ImagePrediction(s.Source, null, -1, 0, [], s.Error)
            : ImagePrediction.FromScores(s.Source, s.Scores, scorer.Labels, topK)).ToList();
    }

    /// <summary>Metrics on a labelled dataset stored as files whose classes are the model's labels (same names, same
    /// order). Images that cannot be read are skipped and listed; none readable is a <see cref="DatasetException"/>.</summary>
    public static EvaluationResult Evaluate(this IImageFileScorer scorer, ImageDataset data)
    {
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(data);
        data.RequireClasses(scorer.Labels);
        var paths = data.Items.Select(i => i.Path ?? throw new DatasetException($"Item {i.Name} of '{data.Source}' has no file path.")).ToList();
        var scores = scorer.ScoreFiles(paths);
        var evaluator = new Evaluator();
        for (int i = 0; i < scores.Count; i++)
            if (scores[i].Scores is { } p) evaluator.Add(p, data.Items[i].Label, scores[i].Source);
        var skipped = scores.Where(s => s.Scores is null).Select(s => new DatasetIssue(s.Source, s.Error ?? "unreadable")).ToList();
        if (evaluator.Count == 0) throw new DatasetException($"No image of '{data.Source}' could be scored.");
        var r = evaluator.Result($"'{data.Source}'");
        return new EvaluationResult(r.Metrics(data.Classes), r.Misclassified(), skipped);
    }
}

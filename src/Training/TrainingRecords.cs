namespace MLNetExt.Training;

/// <summary>One optimizer step as the curves of the report show it.</summary>
public sealed record StepRecord(long Step, int Epoch, double Loss, double LearningRate);

/// <summary>The summary of one finished epoch: mean training loss, the learning rate at its end, throughput and,
/// when a validation set exists, its loss and metrics.</summary>
public sealed record EpochSummary(int Epoch, double TrainLoss, double LearningRate, double ImagesPerSecond, double Seconds,
    double? ValLoss, ClassificationMetrics? Validation);

/// <summary>A validation image the model got wrong: its source (path or name), true and predicted class indices, the
/// probability of the predicted class and of the true class. "Hardest" = lowest probability of the true class.</summary>
public sealed record Misclassified(string Source, int TrueLabel, int PredictedLabel, float Confidence, float TrueProbability)
{
    /// <summary>The misclassified samples of row-major <paramref name="probabilities"/> [labels.Count, classes], hardest
    /// first (lowest probability of the true class, then by source); the prediction is the argmax (first on ties).</summary>
    internal static List<Misclassified> Rank(ReadOnlySpan<float> probabilities, IReadOnlyList<int> labels, IReadOnlyList<string> sources)
    {
        int n = labels.Count, c = probabilities.Length / Math.Max(1, n);
        var wrong = new List<Misclassified>();
        for (int i = 0; i < n; i++)
        {
            var row = probabilities.Slice(i * c, c);
            int arg = 0;
            for (int j = 1; j < c; j++) if (row[j] > row[arg]) arg = j;
            if (arg != labels[i]) wrong.Add(new Misclassified(sources[i], labels[i], arg, row[arg], row[labels[i]]));
        }
        return wrong.OrderBy(m => m.TrueProbability).ThenBy(m => m.Source, StringComparer.Ordinal).ToList();
    }
}

/// <summary>Where training stands, reported through <c>Progress</c> callbacks: after every optimizer step
/// (<see cref="TrainingPhase.Training"/>), during feature caching and validation, and once per finished epoch
/// (<see cref="EpochEnd"/> set).</summary>
public sealed record TrainingProgress(
    TrainingPhase Phase,
    int Epoch, int Epochs,
    int Step, int StepsPerEpoch,
    long GlobalStep, long TotalSteps,
    double Loss, double LearningRate, double ImagesPerSecond,
    TimeSpan Elapsed, TimeSpan? Eta,
    EpochSummary? EpochEnd = null,
    string? Message = null)
{
    /// <summary>A message outside the training loop (before it starts: data problems, downloads).</summary>
    internal static TrainingProgress Note(string message, int epochs = 0) =>
        new(TrainingPhase.Info, 0, epochs, 0, 0, 0, 0, double.NaN, 0, 0, TimeSpan.Zero, null, Message: message);
}

/// <summary>What a progress report is about.</summary>
public enum TrainingPhase
{
    /// <summary>Linear probe: computing the frozen backbone's features once (Step/StepsPerEpoch count batches).</summary>
    Caching,
    /// <summary>An optimizer step finished.</summary>
    Training,
    /// <summary>Scoring the validation set (Step/StepsPerEpoch count batches).</summary>
    Validating,
    /// <summary>An epoch finished; <see cref="TrainingProgress.EpochEnd"/> holds its summary.</summary>
    EpochEnd,
    /// <summary>A message (checkpoint written, early stop, resume...).</summary>
    Info,
}

/// <summary>The record of a training run, written as <c>metrics.json</c> and rendered as <c>report.html</c>.</summary>
public sealed class TrainingHistory
{
    /// <summary>Backbone variant (or family for a custom size).</summary>
    public required string Model { get; init; }
    /// <summary>Class names in label order.</summary>
    public required IReadOnlyList<string> Classes { get; init; }
    /// <summary>The settings of the run as name → printable value (mode, epochs, lr, batch size, image size...).</summary>
    public required IReadOnlyDictionary<string, string> Settings { get; init; }
    /// <summary>Training and validation image counts.</summary>
    public int TrainCount { get; init; }
    /// <summary>Validation image count (0 without validation).</summary>
    public int ValCount { get; init; }
    /// <summary>Every optimizer step: loss and learning rate.</summary>
    public IReadOnlyList<StepRecord> Steps => StepList;
    /// <summary>Every finished epoch's summary.</summary>
    public IReadOnlyList<EpochSummary> Epochs => EpochList;
    internal List<StepRecord> StepList { get; } = new();
    internal List<EpochSummary> EpochList { get; } = new();
    /// <summary>The metric that picks the best epoch and drives early stopping (e.g. "top1").</summary>
    public string Monitor { get; init; } = "top1";
    /// <summary>1-based epoch with the best monitored metric, or null when no validation ran.</summary>
    public int? BestEpoch { get; set; }
    /// <summary>Validation metrics of the model that was kept (the best epoch's, or the last one's without validation).</summary>
    public ClassificationMetrics? Final { get; set; }
    /// <summary>Misclassified validation images of the kept model, hardest first (a few dozen at most).</summary>
    public IReadOnlyList<Misclassified> Hardest => HardestList;
    internal List<Misclassified> HardestList { get; } = new();

    /// <summary>How many misclassified images a record keeps.</summary>
    internal const int MaxHardest = 32;
    /// <summary>Why training ended: "completed", "early stop at epoch 7 (...)", "interrupted", "non-finite loss at step 123".</summary>
    public string StopReason { get; set; } = "completed";
    /// <summary>Total wall-clock training time.</summary>
    public TimeSpan Duration { get; set; }
}

namespace MLNetExt.Training;

/// <summary>Precision, recall and F1 of one class (one-vs-rest), and its number of true samples.</summary>
public sealed record ClassMetrics(string Class, double Precision, double Recall, double F1, int Support);

/// <summary>One confidence bin of a reliability diagram: the predictions whose top-1 probability lies in
/// (<see cref="Lower"/>, <see cref="Upper"/>] (the first bin includes 0), how sure they were on average and how often
/// they were right.</summary>
public sealed record CalibrationBin(double Lower, double Upper, int Count, double MeanConfidence, double Accuracy);

/// <summary>What a minimum score does to a set of predictions: answering only when the top probability is at least
/// <see cref="MinScore"/>, the model answers <see cref="Answered"/> of the images and is right on
/// <see cref="Accuracy"/> of those (NaN when it answers none).</summary>
public sealed record SelectivePoint(double MinScore, double Answered, double Accuracy)
{
    /// <summary>"≥ 0.8: 85 % answered, 98.0 % right" (invariant culture).</summary>
    public override string ToString() =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"≥ {MinScore:0.##}: {Answered:P0} answered, {Accuracy:P1} right");
}

/// <summary>Classification metrics from predicted probabilities: top-1 and top-k accuracy, macro-F1, log-loss
/// (mean −ln p(true), probabilities clipped to [1e-15, 1 − 1e-15], scikit-learn's rule before 1.3), per-class
/// precision/recall/F1, the confusion matrix (rows: true class, columns: predicted class) and calibration (the
/// expected calibration error over <see cref="CalibrationBins"/> equal-width bins of top-1 confidence, Guo et al. 2017)
/// and what answering only above a minimum score gives (<see cref="Selective"/>).
/// A class never predicted has precision 0; a class without samples has recall 0 (scikit-learn's zero_division=0).
/// Ties in the top-1 prediction go to the lower class index (as argmax).</summary>
public sealed class ClassificationMetrics
{
    /// <summary>Class names in label order.</summary>
    public IReadOnlyList<string> Classes { get; }
    /// <summary>Number of samples scored.</summary>
    public int Count { get; }
    /// <summary>Fraction whose highest-probability class is the true one.</summary>
    public double Top1 { get; }
    /// <summary>Fraction whose true class is among the <see cref="TopK"/> most probable.</summary>
    public double Top5 { get; }
    /// <summary>The k of <see cref="Top5"/>: min(5, classes).</summary>
    public int TopK { get; }
    /// <summary>Unweighted mean of the per-class F1.</summary>
    public double MacroF1 { get; }
    /// <summary>Mean negative log-probability of the true class.</summary>
    public double LogLoss { get; }
    /// <summary>Precision, recall, F1 and support of each class, in class order.</summary>
    public IReadOnlyList<ClassMetrics> PerClass { get; }
    /// <summary>[true][predicted] counts.</summary>
    public int[][] Confusion { get; }
    /// <summary>The reliability diagram: <see cref="CalibrationBins"/> bins of top-1 confidence (null for metrics restored
    /// from a record that did not keep them).</summary>
    public IReadOnlyList<CalibrationBin>? Calibration { get; }
    /// <summary>Expected calibration error: the gap between confidence and accuracy, averaged over the bins weighted by
    /// their share of the samples (0 = a model whose 80 % means 80 %); null when <see cref="Calibration"/> is.</summary>
    public double? ExpectedCalibrationError =>
        Calibration is null || Count == 0 ? null : Calibration.Sum(b => (double)b.Count / Count * Math.Abs(b.Accuracy - b.MeanConfidence));

    /// <summary>The mean top-1 confidence (what the model's probabilities promise, to set against <see cref="Top1"/>);
    /// null when <see cref="Calibration"/> is.</summary>
    public double? MeanConfidence => Calibration is null || Count == 0 ? null : Calibration.Sum(b => b.Count * b.MeanConfidence) / Count;

    /// <summary>Bins of the reliability diagram (equal widths over [0, 1]; 15 as in Guo et al.).</summary>
    public const int CalibrationBins = 15;

    /// <summary>The minimum scores <see cref="Selective"/> is given for.</summary>
    public static readonly IReadOnlyList<double> MinScores = [0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

    /// <summary>For each of <see cref="MinScores"/>, how many images the model would answer if it answered only that
    /// sure, and how often it would be right: the way to choose a threshold on <c>Score</c> (an answer below it read
    /// as "not sure", or "none of these classes"; <c>predict --min-score</c>). Null for metrics restored from a record
    /// that did not keep each image's score.</summary>
    public IReadOnlyList<SelectivePoint>? Selective { get; private set; }

    ClassificationMetrics(IReadOnlyList<string> classes, int count, double top1, double top5, int topK, double macroF1, double logLoss,
        IReadOnlyList<ClassMetrics> perClass, int[][] confusion, IReadOnlyList<CalibrationBin>? calibration)
    {
        Calibration = calibration;
        Classes = classes;
        Count = count;
        Top1 = top1;
        Top5 = top5;
        TopK = topK;
        MacroF1 = macroF1;
        LogLoss = logLoss;
        PerClass = perClass;
        Confusion = confusion;
    }

    /// <summary>Computes the metrics of <paramref name="probabilities"/> (row-major [labels.Length, classes.Count]).</summary>
    public static ClassificationMetrics Compute(ReadOnlySpan<float> probabilities, IReadOnlyList<int> labels, IReadOnlyList<string> classes)
    {
        int n = labels.Count, c = classes.Count;
        if (c < 1) throw new ArgumentException("Metrics need at least one class.", nameof(classes));
        if (probabilities.Length != (long)n * c)
            throw new ArgumentException($"Expected {n}×{c} = {(long)n * c} probabilities for {n} samples of {c} classes, found {probabilities.Length}.", nameof(probabilities));
        int k = Math.Min(5, c);
        var confusion = Enumerable.Range(0, c).Select(_ => new int[c]).ToArray();
        var binCount = new int[CalibrationBins];
        var binConfidence = new double[CalibrationBins];
        var binCorrect = new int[CalibrationBins];
        long topk = 0;
        double logLoss = 0;
        var top = new (float Score, bool Right)[n];
        for (int i = 0; i < n; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)c) throw new ArgumentOutOfRangeException(nameof(labels), y, $"Label of sample {i} lies outside 0..{c - 1}.");
            var row = probabilities.Slice(i * c, c);
            int arg = 0, higher = 0;
            for (int j = 0; j < c; j++)
            {
                if (row[j] > row[arg]) arg = j;
                // rank of the true class: classes strictly more probable, and equal ones with a lower index
                if (row[j] > row[y] || (row[j] == row[y] && j < y)) higher++;
            }
            confusion[y][arg]++;
            if (higher < k) topk++;
            int bin = Bin(row[arg]);
            binCount[bin]++;
            binConfidence[bin] += row[arg];
            if (arg == y) binCorrect[bin]++;
            top[i] = (row[arg], arg == y);
            double p = Math.Clamp((double)row[y], 1e-15, 1 - 1e-15);
            logLoss -= Math.Log(p);
        }
        var metrics = FromConfusion(classes, confusion, n == 0 ? 0 : (double)topk / n, k, n == 0 ? 0 : logLoss / n,
            Enumerable.Range(0, CalibrationBins).Select(b => (binCount[b], binCount[b] == 0 ? 0 : binConfidence[b] / binCount[b], binCorrect[b])).ToList());
        metrics.Selective = MinScores.Select(t =>
        {
            int answered = top.Count(a => a.Score >= t), right = top.Count(a => a.Score >= t && a.Right);
            return new SelectivePoint(t, n == 0 ? 0 : (double)answered / n, answered == 0 ? double.NaN : (double)right / answered);
        }).ToList();
        return metrics;
    }

    /// <summary>The bin of a top-1 confidence: (b/B, (b+1)/B], with 0 in the first.</summary>
    static int Bin(float confidence) => Math.Clamp((int)Math.Ceiling(confidence * CalibrationBins) - 1, 0, CalibrationBins - 1);

    /// <summary>Rebuilds metrics from a confusion matrix and what it cannot give (top-k accuracy, log-loss, and per
    /// calibration bin the count, the mean confidence and the correct count); per-class values, top-1 and macro-F1
    /// follow from the matrix. Used to restore a run's history.</summary>
    internal static ClassificationMetrics FromConfusion(IReadOnlyList<string> classes, int[][] confusion, double topKAccuracy, int topK, double logLoss,
        IReadOnlyList<(int Count, double MeanConfidence, int Correct)>? calibration)
    {
        int c = classes.Count;
        if (confusion.Length != c || confusion.Any(r => r.Length != c))
            throw new ArgumentException($"A confusion matrix of {c} classes must be {c}×{c}.", nameof(confusion));
        int n = confusion.Sum(r => r.Sum()), top1 = 0;
        for (int j = 0; j < c; j++) top1 += confusion[j][j];
        var perClass = new ClassMetrics[c];
        for (int j = 0; j < c; j++)
        {
            int tp = confusion[j][j], support = confusion[j].Sum(), predicted = 0;
            for (int r = 0; r < c; r++) predicted += confusion[r][j];
            double precision = predicted == 0 ? 0 : (double)tp / predicted;
            double recall = support == 0 ? 0 : (double)tp / support;
            double f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            perClass[j] = new ClassMetrics(classes[j], precision, recall, f1, support);
        }
        if (calibration is not null && calibration.Count != CalibrationBins)
            throw new ArgumentException($"Calibration needs {CalibrationBins} bins, found {calibration.Count}.", nameof(calibration));
        var bins = calibration?.Select((b, i) => new CalibrationBin((double)i / CalibrationBins, (double)(i + 1) / CalibrationBins, b.Count,
            b.MeanConfidence, b.Count == 0 ? 0 : (double)b.Correct / b.Count)).ToList();
        return new ClassificationMetrics(classes, n, n == 0 ? 0 : (double)top1 / n, topKAccuracy, topK,
            perClass.Average(m => m.F1), logLoss, perClass, confusion, bins);
    }

    /// <summary>The value of a monitorable metric by name: top1, top5, macro_f1 (higher is better) or log_loss (lower).</summary>
    public double Get(string metric) => metric switch
    {
        "top1" => Top1,
        "top5" => Top5,
        "macro_f1" => MacroF1,
        "log_loss" => LogLoss,
        _ => throw new ArgumentException($"Unknown metric '{metric}'; expected one of {string.Join(", ", MetricNames)}.", nameof(metric)),
    };

    /// <summary>The metrics <see cref="Get"/> knows.</summary>
    public static readonly IReadOnlyList<string> MetricNames = ["top1", "top5", "macro_f1", "log_loss"];

    /// <summary>Whether a larger value of <paramref name="metric"/> is better.</summary>
    public static bool HigherIsBetter(string metric) => metric != "log_loss";
}

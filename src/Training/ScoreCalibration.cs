namespace MLNetExt.Training;

/// <summary>
/// Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): one number T that divides
/// the logits before the softmax, fitted to minimise the log-loss of held-out predictions. The predicted class never
/// changes; the probabilities move towards what the model's accuracy supports. Fitted from probabilities: their logarithm
/// is the logits up to a per-row constant, which the softmax ignores.
/// </summary>
internal static class ScoreCalibration
{
    /// <summary>The range a fitted temperature is kept in: a validation set the model gets all right would otherwise
    /// push T towards 0 (every probability 1), one it gets all wrong towards infinity.</summary>
    public const double MinTemperature = 0.05, MaxTemperature = 20;

    /// <summary>The temperature in [<see cref="MinTemperature"/>, <see cref="MaxTemperature"/>] with the lowest
    /// log-loss on <paramref name="probabilities"/> (row-major [labels.Count, classes]) — the negative log-likelihood is
    /// convex in 1/T, so a golden-section search over log T finds its minimum.</summary>
    public static double FitTemperature(ReadOnlySpan<float> probabilities, IReadOnlyList<int> labels, int classes)
    {
        if (classes < 2 || labels.Count == 0) return 1;
        var logits = LogProbabilities(probabilities);
        double lo = Math.Log(MinTemperature), hi = Math.Log(MaxTemperature);
        double phi = (Math.Sqrt(5) - 1) / 2;
        double a = hi - phi * (hi - lo), b = lo + phi * (hi - lo);
        double fa = LogLoss(logits, labels, classes, Math.Exp(a)), fb = LogLoss(logits, labels, classes, Math.Exp(b));
        for (int i = 0; i < 80; i++)
        {
            if (fa <= fb) { hi = b; b = a; fb = fa; a = hi - phi * (hi - lo); fa = LogLoss(logits, labels, classes, Math.Exp(a)); }
            else { lo = a; a = b; fa = fb; b = lo + phi * (hi - lo); fb = LogLoss(logits, labels, classes, Math.Exp(b)); }
        }
        return Math.Exp((lo + hi) / 2);
    }

    /// <summary><paramref name="probabilities"/> rescaled as if the logits had been divided by <paramref name="temperature"/>.</summary>
    public static float[] Apply(ReadOnlySpan<float> probabilities, int classes, double temperature)
    {
        var logits = LogProbabilities(probabilities);
        var result = new float[logits.Length];
        var row = new double[classes];
        for (int r = 0; r < logits.Length / classes; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < classes; j++) max = Math.Max(max, row[j] = logits[r * classes + j] / temperature);
            for (int j = 0; j < classes; j++) sum += row[j] = Math.Exp(row[j] - max);
            for (int j = 0; j < classes; j++) result[r * classes + j] = (float)(row[j] / sum);
        }
        return result;
    }

    /// <summary>Mean −log softmax(logits / T)[label].</summary>
    static double LogLoss(double[] logits, IReadOnlyList<int> labels, int classes, double temperature)
    {
        double total = 0;
        for (int r = 0; r < labels.Count; r++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int j = 0; j < classes; j++) max = Math.Max(max, logits[r * classes + j] / temperature);
            for (int j = 0; j < classes; j++) sum += Math.Exp(logits[r * classes + j] / temperature - max);
            total += max + Math.Log(sum) - logits[r * classes + labels[r]] / temperature;
        }
        return total / labels.Count;
    }

    /// <summary>log p, with a probability of 0 (float32 underflow) read as the smallest positive float.</summary>
    static double[] LogProbabilities(ReadOnlySpan<float> probabilities)
    {
        var logits = new double[probabilities.Length];
        for (int i = 0; i < logits.Length; i++) logits[i] = Math.Log(Math.Max(probabilities[i], float.Epsilon));
        return logits;
    }
}

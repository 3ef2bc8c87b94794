using MLNetExt.Training;

namespace MLNetExt.Cli;

/// <summary>Reports an out-of-range training option under the name the user typed (<c>--batch-size</c>), not the C#
/// property the library validates (<c>BatchSize</c>).</summary>
internal static class TrainingOption
{
    static readonly Dictionary<string, string> CliNames = new(StringComparer.Ordinal)
    {
        ["Epochs"] = "--epochs", ["BatchSize"] = "--batch-size", ["AccumulationSteps"] = "--accumulate", ["LearningRate"] = "--lr",
        ["WeightDecay"] = "--weight-decay", ["WarmupEpochs"] = "--warmup-epochs", ["LayerDecay"] = "--layer-decay",
        ["GradClipNorm"] = "--grad-clip", ["LabelSmoothing"] = "--label-smoothing", ["EarlyStoppingPatience"] = "--patience",
        ["Monitor"] = "--monitor", ["ValidationFraction"] = "--val-fraction", ["Augment"] = "--augment", ["RandomErasing"] = "--random-erasing",
        ["MixupAlpha/CutmixAlpha"] = "--mixup/--cutmix", ["Workers"] = "--workers", ["FrozenStages"] = "--mode freeze:K",
        ["ImageSize"] = "--image-size", ["DropPathRate"] = "--drop-path", ["EmaDecay"] = "--ema",
    };

    /// <summary>The CLI name of an options property (the property itself when the CLI has no such option).</summary>
    public static string CliName(string property) => CliNames.GetValueOrDefault(property, property);

    public static int AsCliError(Func<int> action)
    {
        try { return action(); }
        catch (TrainingOptionException e) { throw new ArgumentException($"{CliName(e.Option)} {e.Problem}.", e); }
    }
}

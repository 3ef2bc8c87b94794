namespace MLNetExt.Optim;

/// <summary>The optimizers a training run chooses by name, with the default learning rate each needs.</summary>
internal static class OptimizerChoice
{
    public static readonly IReadOnlyList<string> Names = ["adamw", "sgd"];

    /// <summary>AdamW (β 0.9/0.999, ε 1e-8, decoupled decay) or SGD (momentum 0.9, Nesterov, L2 decay) over the groups.</summary>
    public static Optimizer Create(string name, IEnumerable<ParamGroup> groups) => name switch
    {
        "adamw" => new AdamW(groups),
        "sgd" => new Sgd(groups, momentum: 0.9, nesterov: true),
        _ => throw new ArgumentException($"Unknown optimizer '{name}'; expected {string.Join(" or ", Names)}.", nameof(name)),
    };

    /// <summary>How much larger SGD's learning rate must be than AdamW's for the same recipe (a common rule of thumb:
    /// fine-tuning at 2e-4 with AdamW is about 1e-2 with SGD).</summary>
    public static double LearningRateScale(string name) => name == "sgd" ? 50 : 1;
}

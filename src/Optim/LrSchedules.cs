namespace MLNetExt.Optim;

/// <summary>A learning-rate schedule: the rate of a group at a step, from the group's initial rate.
/// <see cref="Apply"/> writes it into every group of an optimizer.</summary>
public abstract partial class LrSchedule
{
    /// <summary>The learning rate at <paramref name="step"/> (0-based) for a group whose base rate is <paramref name="baseLr"/>.</summary>
    public abstract double At(long step, double baseLr);

    /// <summary>Sets every group's learning rate for <paramref name="step"/>.</summary>
    public void Apply(Optimizer optimizer, long step)
    {
        foreach (var g in optimizer.Groups) g.LearningRate = At(step, g.InitialLearningRate);
    }
}

/// <summary>Linear warm-up from <c>warmupStartFactor·base</c> to the base rate over <c>warmupSteps</c>, then cosine
/// decay to <c>minFactor·base</c> at <c>totalSteps</c> (held there afterwards).</summary>
internal sealed class WarmupCosineSchedule : LrSchedule
{
    readonly long _warmup, _total;
    readonly double _start, _min;

    /// <summary>Creates the schedule.</summary>
    public WarmupCosineSchedule(long warmupSteps, long totalSteps, double warmupStartFactor = 0, double minFactor = 0)
    {
        if (warmupSteps < 0) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "Warm-up steps must be >= 0.");
        if (totalSteps <= warmupSteps)
            throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, $"Total steps must exceed the {warmupSteps} warm-up steps.");
        _warmup = warmupSteps;
        _total = totalSteps;
        _start = warmupStartFactor;
        _min = minFactor;
    }

    /// <inheritdoc/>
    public override double At(long step, double baseLr)
    {
        if (step < _warmup) return baseLr * (_start + (1 - _start) * step / _warmup);
        if (step >= _total) return baseLr * _min;
        double progress = (double)(step - _warmup) / (_total - _warmup);
        return baseLr * (_min + 0.5 * (1 - _min) * (1 + Math.Cos(Math.PI * progress)));
    }
}

/// <summary>PyTorch's StepLR: the rate is multiplied by <c>gamma</c> every <c>stepSize</c> steps.</summary>
internal sealed class StepSchedule : LrSchedule
{
    readonly long _stepSize;
    readonly double _gamma;

    /// <summary>Creates the schedule.</summary>
    public StepSchedule(long stepSize, double gamma = 0.1)
    {
        if (stepSize < 1) throw new ArgumentOutOfRangeException(nameof(stepSize), stepSize, "Step size must be >= 1.");
        _stepSize = stepSize;
        _gamma = gamma;
    }

    /// <inheritdoc/>
    public override double At(long step, double baseLr) => baseLr * Math.Pow(_gamma, step / _stepSize);
}

/// <summary>PyTorch's OneCycleLR (cosine annealing, two phases): from <c>base/25</c> up to the base rate over
/// <c>riseSteps</c> (the peak is reached at step <c>riseSteps − 1</c>), then down to <c>base/25/10⁴</c> at the last of
/// <c>totalSteps</c>.</summary>
internal sealed class OneCycleSchedule : LrSchedule
{
    readonly long _peak, _end;
    const double DivFactor = 25, FinalDivFactor = 1e4;

    /// <summary>Creates the schedule.</summary>
    public OneCycleSchedule(long riseSteps, long totalSteps)
    {
        if (riseSteps < 2) throw new ArgumentOutOfRangeException(nameof(riseSteps), riseSteps, "One-cycle needs at least 2 rising steps.");
        if (totalSteps <= riseSteps) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, $"Total steps must exceed the {riseSteps} rising steps.");
        _peak = riseSteps - 1;
        _end = totalSteps - 1;
    }

    static double Anneal(double start, double end, double pct) => end + (start - end) / 2 * (Math.Cos(Math.PI * pct) + 1);

    /// <inheritdoc/>
    public override double At(long step, double baseLr)
    {
        double initial = baseLr / DivFactor, min = initial / FinalDivFactor;
        if (step <= _peak) return Anneal(initial, baseLr, (double)step / _peak);
        return Anneal(baseLr, min, Math.Min(1.0, (double)(step - _peak) / (_end - _peak)));
    }
}

/// <summary>A schedule after a linear warm-up from 0 to the base rate over <c>warmupSteps</c>; the inner schedule
/// counts its steps from the end of the warm-up.</summary>
internal sealed class WarmupSchedule(LrSchedule inner, long warmupSteps) : LrSchedule
{
    public override double At(long step, double baseLr) =>
        step < warmupSteps ? baseLr * step / warmupSteps : inner.At(step - warmupSteps, baseLr);
}

/// <summary>The same rate at every step.</summary>
internal sealed class ConstantSchedule : LrSchedule
{
    public override double At(long step, double baseLr) => baseLr;
}

/// <summary>The schedules a training run chooses by name.</summary>
public abstract partial class LrSchedule
{
    /// <summary>The names <see cref="Create"/> takes.</summary>
    public static readonly IReadOnlyList<string> Names = ["cosine", "step", "one-cycle", "constant"];

    /// <summary>The schedule a run uses: <c>cosine</c> (warm-up, then cosine to <paramref name="minFactor"/>·base at the
    /// end), <c>step</c> (warm-up, then ×0.1 at each third of the remaining steps), <c>constant</c> (warm-up, then the
    /// base rate) or <c>one-cycle</c> (PyTorch's OneCycleLR; the warm-up steps, at least 2, are its rising phase).</summary>
    public static LrSchedule Create(string name, long warmupSteps, long totalSteps, double minFactor)
    {
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, "A schedule needs at least 1 step.");
        long warmup = Math.Clamp(warmupSteps, 0, totalSteps - 1);
        return name switch
        {
            "cosine" => new WarmupCosineSchedule(warmup, totalSteps, warmupStartFactor: 0, minFactor: minFactor),
            "step" => new WarmupSchedule(new StepSchedule(Math.Max(1, (totalSteps - warmup + 2) / 3), 0.1), warmup),
            "constant" => new WarmupSchedule(new ConstantSchedule(), warmup),
            "one-cycle" when totalSteps >= 3 => new OneCycleSchedule(Math.Clamp(warmup, 2, totalSteps - 1), totalSteps),
            "one-cycle" => new WarmupSchedule(new ConstantSchedule(), warmup), // too short to cycle
            _ => throw new ArgumentException($"Unknown learning-rate schedule '{name}'; expected {string.Join(", ", Names)}.", nameof(name)),
        };
    }
}

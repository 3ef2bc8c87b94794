namespace MLNetExt.Optim;

/// <summary>A learning-rate schedule: the rate of a group at a step, from the group's initial rate.
/// <see cref="Apply"/> writes it into every group of an optimizer.</summary>
public abstract class LrSchedule
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
public sealed class WarmupCosineSchedule : LrSchedule
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
public sealed class StepSchedule : LrSchedule
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

namespace MLNetExt.Training;

/// <summary>Training stopped on a problem it cannot continue from (a non-finite loss, settings that do not match the
/// checkpoint being resumed). The message says where it stopped and which checkpoint holds the last good state.</summary>
public sealed class TrainingException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The newest checkpoint that is intact, or null when none was written.</summary>
    public string? LastGoodCheckpoint { get; init; }

    /// <summary>The run's record up to the stop.</summary>
    public TrainingHistory? History { get; init; }
}

/// <summary>Training was cancelled (Ctrl-C or a cancelled token): the current step finished, a checkpoint was written
/// when a checkpoint folder is set, and the run can continue from <see cref="Checkpoint"/>.</summary>
public sealed class TrainingInterruptedException(string message, string? checkpoint, TrainingHistory history)
    : OperationCanceledException(message)
{
    /// <summary>The checkpoint to resume from, or null when none could be written.</summary>
    public string? Checkpoint { get; } = checkpoint;

    /// <summary>The run's record up to the interruption.</summary>
    public TrainingHistory History { get; } = history;
}

/// <summary>A training option out of range: <see cref="Option"/> is the <see cref="Training.ImageClassificationOptions"/>
/// property, <see cref="Problem"/> what is wrong with its value (the CLI reports it under its own option name).</summary>
public sealed class TrainingOptionException(string option, string problem) : ArgumentException($"Option {option} {problem}.")
{
    /// <summary>The options property.</summary>
    public string Option { get; } = option;
    /// <summary>What is wrong ("must be at least 1; got 0").</summary>
    public string Problem { get; } = problem;
}

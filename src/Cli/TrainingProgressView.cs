using System.Globalization;
using MLNetExt.Training;
using Spectre.Console;

namespace MLNetExt.Cli;

/// <summary>
/// Shows training progress on the terminal. Live mode (Spectre.Console): an epoch bar and a step bar whose
/// descriptions carry loss, learning rate, images/s and ETA, a bar for feature caching and one for validation, epoch
/// summaries and messages printed above the bars. Plain mode (redirected output, <c>TERM=dumb</c>, <c>NO_COLOR</c>,
/// <c>CI</c>, or <c>--plain</c>): no escape codes, a line about every 10 % of an epoch (and at least every ~10 s)
/// plus the epoch summaries, so CI logs stay readable. Progress reports may arrive from any thread.
/// </summary>
internal static class TrainingProgressView
{
    /// <summary>Runs <paramref name="work"/>, handing it the callback that displays progress, inside the live display
    /// (or directly in plain mode), and returns its result. Exceptions from the work propagate unchanged.</summary>
    /// <param name="plain">Force plain output (the <c>--plain</c> option); plain is also chosen when
    /// <see cref="PreferPlain"/> says the terminal cannot show a live display.</param>
    /// <param name="output">Where plain output goes (default: standard output); live mode always uses the terminal.</param>
    public static T Run<T>(Func<Action<TrainingProgress>, T> work, bool plain, TextWriter? output = null)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (plain || PreferPlain(Environment.GetEnvironmentVariable, Console.IsOutputRedirected))
            return RunPlain(work, output ?? Console.Out);
        return RunLive(work, AnsiConsole.Console);
    }

    /// <summary>True when output should be plain: redirected, <c>TERM=dumb</c>, or <c>NO_COLOR</c>/<c>CI</c> set (non-empty).</summary>
    internal static bool PreferPlain(Func<string, string?> env, bool outputRedirected)
        => outputRedirected
           || string.Equals(env("TERM"), "dumb", StringComparison.Ordinal)
           || !string.IsNullOrEmpty(env("NO_COLOR"))
           || !string.IsNullOrEmpty(env("CI"));

    internal static T RunPlain<T>(Func<Action<TrainingProgress>, T> work, TextWriter output)
    {
        var view = new PlainView(output);
        return work(view.Report);
    }

    /// <summary>Runs the work inside a Spectre progress display on <paramref name="console"/> (a non-interactive
    /// console gets Spectre's fallback renderer).</summary>
    internal static T RunLive<T>(Func<Action<TrainingProgress>, T> work, IAnsiConsole console)
    {
        T result = default!;
        console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var view = new LiveView(ctx, console);
                result = work(view.Report);
                view.Complete();
            });
        return result;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Text shared by both modes (invariant culture: logs must not depend on the machine's locale).

    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    internal static string FormatEpochSummary(TrainingProgress p)
    {
        var e = p.EpochEnd!;
        var s = string.Create(Inv, $"epoch {e.Epoch}/{p.Epochs}  train loss {e.TrainLoss:F4}");
        if (e.ValLoss is double vl) s += string.Create(Inv, $"  val loss {vl:F4}");
        if (e.Validation is { } m)
            s += string.Create(Inv, $"  top-1 {m.Top1 * 100:F1}%  top-{m.TopK} {m.Top5 * 100:F1}%  macro-F1 {m.MacroF1:F3}");
        s += string.Create(Inv, $"  lr {e.LearningRate:0.00e+00}  {e.ImagesPerSecond:F1} img/s  {FormatDuration(TimeSpan.FromSeconds(e.Seconds))}");
        return s;
    }

    internal static string FormatStep(TrainingProgress p)
        => string.Create(Inv, $"step {p.Step}/{p.StepsPerEpoch}  loss {p.Loss:F4}  lr {p.LearningRate:0.00e+00}  {p.ImagesPerSecond:F1} img/s  eta {(p.Eta is TimeSpan eta ? FormatDuration(eta) : "?")}");

    /// <summary>"42.0 s" below a minute, else "m:ss", "h:mm:ss".</summary>
    internal static string FormatDuration(TimeSpan t)
    {
        if (t < TimeSpan.Zero) t = TimeSpan.Zero;
        if (t.TotalSeconds < 60) return string.Create(Inv, $"{t.TotalSeconds:F1} s");
        return t.TotalHours >= 1
            ? string.Create(Inv, $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}")
            : string.Create(Inv, $"{t.Minutes}:{t.Seconds:D2}");
    }

    // ------------------------------------------------------------------------------------------------------------

    /// <summary>Line-per-milestone output: steps at each tenth of an epoch or after 10 s of silence, caching and
    /// validation when they start and end, every epoch summary and message.</summary>
    sealed class PlainView(TextWriter output)
    {
        static readonly TimeSpan MaxSilence = TimeSpan.FromSeconds(10);
        readonly object gate = new();
        TimeSpan lastLine = TimeSpan.MinValue;
        (TrainingPhase Phase, int Epoch) lastPhaseStart = (TrainingPhase.Info, -1);

        public void Report(TrainingProgress p)
        {
            ArgumentNullException.ThrowIfNull(p);
            lock (gate)
            {
                string? line = p.Phase switch
                {
                    TrainingPhase.Info => p.Message,
                    TrainingPhase.EpochEnd when p.EpochEnd is not null => FormatEpochSummary(p),
                    TrainingPhase.EpochEnd => string.Create(Inv, $"epoch {p.Epoch}/{p.Epochs} finished  loss {p.Loss:F4}"),
                    TrainingPhase.Training => ShouldPrintStep(p) ? string.Create(Inv, $"epoch {p.Epoch}/{p.Epochs}  ") + FormatStep(p) : null,
                    TrainingPhase.Caching => PhaseLine(p, "caching features"),
                    TrainingPhase.Validating => PhaseLine(p, "validating"),
                    _ => null,
                };
                if (line is null) return;
                output.WriteLine(line);
                output.Flush();
                lastLine = p.Elapsed;
            }
        }

        bool ShouldPrintStep(TrainingProgress p)
        {
            if (p.StepsPerEpoch <= 0) return p.Elapsed - lastLine >= MaxSilence;
            if (p.Step >= p.StepsPerEpoch) return false; // the epoch summary follows at once
            if (p.GlobalStep <= 1) return true;           // first sign of life, with the first throughput
            int every = Math.Max(1, (int)Math.Ceiling(p.StepsPerEpoch / 10.0));
            return p.Step % every == 0 || p.Elapsed - lastLine >= MaxSilence;
        }

        /// <summary>A line when the phase starts in an epoch, when it ends, and after 10 s of silence in between.</summary>
        string? PhaseLine(TrainingProgress p, string what)
        {
            var key = (p.Phase, p.Epoch);
            bool first = lastPhaseStart != key;
            lastPhaseStart = key;
            bool done = p.StepsPerEpoch > 0 && p.Step >= p.StepsPerEpoch;
            if (!first && !done && p.Elapsed - lastLine < MaxSilence) return null;
            string where = p.Phase == TrainingPhase.Caching ? "" : string.Create(Inv, $"epoch {p.Epoch}/{p.Epochs}  ");
            return string.Create(Inv, $"{where}{what} {p.Step}/{p.StepsPerEpoch} batches{(done ? " done" : "")}");
        }
    }

    /// <summary>The Spectre display. Spectre's tasks and console writes are guarded by one lock here, since reports
    /// come from the training thread while Spectre refreshes from its own.</summary>
    sealed class LiveView(ProgressContext ctx, IAnsiConsole console)
    {
        readonly object gate = new();
        ProgressTask? epochs, steps, caching, validating;
        int validatingEpoch = -1;
        long lastGlobalStep;

        public void Report(TrainingProgress p)
        {
            ArgumentNullException.ThrowIfNull(p);
            lock (gate)
            {
                switch (p.Phase)
                {
                    case TrainingPhase.Info:
                        if (p.Message is not null) console.WriteLine(p.Message);
                        break;
                    case TrainingPhase.Caching:
                        caching ??= ctx.AddTask("caching features", maxValue: Math.Max(1, p.StepsPerEpoch));
                        Advance(caching, p.Step, p.StepsPerEpoch, string.Create(Inv, $"caching features {p.Step}/{p.StepsPerEpoch}"));
                        break;
                    case TrainingPhase.Training:
                        // another run reports through this view (the next fold of a cross-validation): its bars start
                        // fresh under the finished ones
                        if (p.GlobalStep < lastGlobalStep) NewRun();
                        lastGlobalStep = p.GlobalStep;
                        EnsureTrainingBars(p);
                        epochs!.Value = Math.Max(0, p.Epoch - 1) + (p.StepsPerEpoch > 0 ? (double)p.Step / p.StepsPerEpoch : 0);
                        epochs.Description = Markup.Escape(string.Create(Inv, $"epoch {p.Epoch}/{p.Epochs}  eta {(p.Eta is TimeSpan eta ? FormatDuration(eta) : "?")}"));
                        Advance(steps!, p.Step, p.StepsPerEpoch, FormatStep(p));
                        break;
                    case TrainingPhase.Validating:
                        if (validating is null || validatingEpoch != p.Epoch)
                        {
                            validating ??= ctx.AddTask("validating", maxValue: Math.Max(1, p.StepsPerEpoch));
                            validatingEpoch = p.Epoch;
                            validating.Value = 0;
                        }
                        Advance(validating, p.Step, p.StepsPerEpoch, string.Create(Inv, $"validating {p.Step}/{p.StepsPerEpoch}"));
                        break;
                    case TrainingPhase.EpochEnd:
                        EnsureTrainingBars(p);
                        epochs!.Value = p.Epoch;
                        console.WriteLine(p.EpochEnd is not null ? FormatEpochSummary(p) : string.Create(Inv, $"epoch {p.Epoch}/{p.Epochs} finished  loss {p.Loss:F4}"));
                        break;
                }
            }
        }

        void EnsureTrainingBars(TrainingProgress p)
        {
            if (caching is { IsFinished: false }) { caching.Value = caching.MaxValue; caching.StopTask(); }
            epochs ??= ctx.AddTask("epoch", maxValue: Math.Max(1, p.Epochs));
            steps ??= ctx.AddTask("step", maxValue: Math.Max(1, p.StepsPerEpoch));
        }

        static void Advance(ProgressTask task, int step, int of, string description)
        {
            if (of > 0 && task.MaxValue != of) task.MaxValue = of;
            task.Value = Math.Clamp(step, 0, task.MaxValue);
            task.Description = Markup.Escape(description);
        }

        /// <summary>Stops every bar where it stands (an early stop leaves the epoch bar short, as it should).</summary>
        public void Complete()
        {
            lock (gate) StopAll();
        }

        void StopAll()
        {
            foreach (var t in new[] { caching, epochs, steps, validating })
                if (t is { IsFinished: false }) t.StopTask();
        }

        void NewRun()
        {
            StopAll();
            caching = epochs = steps = validating = null;
            validatingEpoch = -1;
        }
    }
}

using MLNetExt.Cli;
using MLNetExt.Training;
using Spectre.Console;

namespace MLNetExt.Tests.Cli;

[TestClass]
public sealed class TrainingProgressViewTests
{
    static readonly string[] Classes = ["a", "b", "c"];

    /// <summary>A scripted run: caching, 2 epochs of 20 steps (1 s per step), validation, summaries, messages.</summary>
    static List<TrainingProgress> Script()
    {
        var list = new List<TrainingProgress>();
        const int epochs = 2, steps = 20;
        long global = 0;
        list.Add(new TrainingProgress(TrainingPhase.Info, 0, epochs, 0, 0, 0, epochs * steps, 0, 0, 0, TimeSpan.Zero, null, Message: "model transxnet_t [x] 3 classes"));
        for (int b = 1; b <= 4; b++)
            list.Add(new TrainingProgress(TrainingPhase.Caching, 0, epochs, b, 4, 0, epochs * steps, 0, 0, 0, TimeSpan.FromSeconds(b * 0.1), null));
        double t = 1;
        for (int e = 1; e <= epochs; e++)
        {
            for (int s = 1; s <= steps; s++)
            {
                global++;
                t += 1;
                list.Add(new TrainingProgress(TrainingPhase.Training, e, epochs, s, steps, global, epochs * steps, 1.5 / global, 1e-3, 16,
                    TimeSpan.FromSeconds(t), TimeSpan.FromSeconds(epochs * steps - global)));
            }
            for (int b = 1; b <= 3; b++)
                list.Add(new TrainingProgress(TrainingPhase.Validating, e, epochs, b, 3, global, epochs * steps, 0, 1e-3, 0, TimeSpan.FromSeconds(t + b * 0.1), null));
            // Probabilities of six validation images: epoch 1 gets 3 right, epoch 2 all six.
            int[] labels = [0, 1, 2, 0, 1, 2];
            var probs = new float[18];
            for (int i = 0; i < 6; i++)
            {
                int pred = e == 2 || i < 3 ? labels[i] : (labels[i] + 1) % 3;
                for (int c = 0; c < 3; c++) probs[i * 3 + c] = c == pred ? 0.8f : 0.1f;
            }
            var metrics = ClassificationMetrics.Compute(probs, labels, Classes);
            var summary = new EpochSummary(e, 1.0 / e, 1e-3 / e, 16.0, 20.0, 0.5 / e, metrics);
            list.Add(new TrainingProgress(TrainingPhase.EpochEnd, e, epochs, steps, steps, global, epochs * steps, 1.0 / e, 1e-3 / e, 16,
                TimeSpan.FromSeconds(t + 1), TimeSpan.FromSeconds(epochs * steps - global), summary));
        }
        list.Add(new TrainingProgress(TrainingPhase.Info, epochs, epochs, 0, 0, global, global, 0, 0, 0, TimeSpan.FromSeconds(t + 2), null, Message: "checkpoint written to best.ckpt"));
        return list;
    }

    [TestMethod]
    public void PlainModePrintsMilestonesAndSummariesWithoutEscapeCodes()
    {
        var output = new StringWriter();
        int result = TrainingProgressView.Run(report =>
        {
            foreach (var p in Script()) report(p);
            return 42;
        }, plain: true, output);
        Assert.AreEqual(42, result);
        var text = output.ToString();
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
        Assert.IsFalse(text.Contains('\u001b'), "plain output must not contain escape codes:\n" + text);

        Assert.AreEqual("model transxnet_t [x] 3 classes", lines[0]);
        // Epoch summaries with the metrics computed from the scripted probabilities (3/6 right, then 6/6).
        var summaries = lines.Where(l => l.Contains("train loss")).ToList();
        Assert.HasCount(2, summaries, text);
        StringAssert.StartsWith(summaries[0], "epoch 1/2  train loss 1.0000  val loss 0.5000  top-1 50.0%  top-3 100.0%  macro-F1 ");
        StringAssert.StartsWith(summaries[1], "epoch 2/2  train loss 0.5000  val loss 0.2500  top-1 100.0%  top-3 100.0%  macro-F1 1.000");
        StringAssert.Contains(summaries[0], "20.0 s");
        // Steps every 2 (a tenth of 20) except the last of an epoch, plus the very first step: 1 + 9 + 9 lines.
        var stepLines = lines.Where(l => l.Contains(" step ")).ToList();
        Assert.HasCount(19, stepLines, text);
        StringAssert.StartsWith(stepLines[0], "epoch 1/2  step 1/20  loss 1.5000  lr 1.00e-03  16.0 img/s  eta 39.0 s");
        StringAssert.StartsWith(stepLines[1], "epoch 1/2  step 2/20");
        // Caching and validation: a line when they start and when they end.
        Assert.HasCount(2, lines.Where(l => l.StartsWith("caching features", StringComparison.Ordinal)).ToList(), text);
        Assert.HasCount(4, lines.Where(l => l.Contains("validating")).ToList(), text);
        Assert.AreEqual("checkpoint written to best.ckpt", lines[^1]);
    }

    [TestMethod]
    public void PlainModePrintsAtLeastEveryTenSecondsOnSlowSteps()
    {
        var output = new StringWriter();
        TrainingProgressView.RunPlain(report =>
        {
            // 100 steps of 3 s: the 10 % rule alone would print every 10 steps (30 s apart).
            for (int s = 1; s <= 100; s++)
                report(new TrainingProgress(TrainingPhase.Training, 1, 1, s, 100, s, 100, 1, 1e-3, 1, TimeSpan.FromSeconds(3 * s), null));
            return 0;
        }, output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // Printed at step 1, then whenever 10 s passed (every 4th step) or a tenth was reached.
        Assert.IsGreaterThanOrEqualTo(24, lines.Length, output.ToString());
        Assert.IsLessThanOrEqualTo(40, lines.Length, output.ToString());
        StringAssert.Contains(lines[^1], "eta ?");
    }

    [TestMethod]
    public void PlainIsChosenForRedirectedDumbNoColorOrCi()
    {
        static Func<string, string?> Env(params (string, string)[] vars) => n => vars.FirstOrDefault(v => v.Item1 == n).Item2;
        Assert.IsFalse(TrainingProgressView.PreferPlain(Env(("TERM", "xterm-256color")), outputRedirected: false));
        Assert.IsTrue(TrainingProgressView.PreferPlain(Env(("TERM", "xterm")), outputRedirected: true));
        Assert.IsTrue(TrainingProgressView.PreferPlain(Env(("TERM", "dumb")), outputRedirected: false));
        Assert.IsTrue(TrainingProgressView.PreferPlain(Env(("NO_COLOR", "1")), outputRedirected: false));
        Assert.IsTrue(TrainingProgressView.PreferPlain(Env(("CI", "true")), outputRedirected: false));
        Assert.IsFalse(TrainingProgressView.PreferPlain(Env(("NO_COLOR", "")), outputRedirected: false));
    }

    /// <summary>Live mode on consoles Spectre cannot animate (fallback renderer) and can (ANSI, interactive), with
    /// reports coming from another thread as a trainer sends them.</summary>
    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void LiveModeRunsAndPrintsSummaries(bool interactive)
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = interactive ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Standard : ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 160;
        string result = TrainingProgressView.RunLive(report =>
        {
            var worker = new Thread(() => { foreach (var p in Script()) report(p); });
            worker.Start();
            worker.Join();
            return "done";
        }, console);
        Assert.AreEqual("done", result);
        var text = output.ToString();
        StringAssert.Contains(text, "epoch 1/2  train loss 1.0000  val loss 0.5000  top-1 50.0%");
        StringAssert.Contains(text, "epoch 2/2  train loss 0.5000  val loss 0.2500  top-1 100.0%");
        StringAssert.Contains(text, "model transxnet_t [x] 3 classes"); // brackets are not taken as markup
        StringAssert.Contains(text, "checkpoint written to best.ckpt");
        if (!interactive) Assert.IsFalse(text.Contains('\u001b'), "a non-ANSI console must not receive escape codes");
    }

    /// <summary>Two runs through one view, as cross-validation's folds report: the second run's steps start again at 1
    /// and get fresh bars under the finished ones (the final frame holds both runs' epoch bars).</summary>
    [TestMethod]
    public void LiveMode_ASecondRun_GetsItsOwnBars()
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.Yes, Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 160;
        TrainingProgressView.RunLive(report =>
        {
            foreach (var p in Script().Concat(Script())) report(p);
            return 0;
        }, console);
        var text = output.ToString();
        Assert.AreEqual(2, text.Split("epoch 2/2  train loss 0.5000").Length - 1, "both runs' summaries");
        var lastFrame = text[text.LastIndexOf("checkpoint written to best.ckpt", StringComparison.Ordinal)..];
        Assert.AreEqual(2, lastFrame.Split("step 20/20").Length - 1, $"each run keeps its own step bar:\n{lastFrame}");
    }

    [TestMethod]
    public void LiveModePassesExceptionsThrough()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(new StringWriter()),
        });
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => TrainingProgressView.RunLive<int>(_ => throw new InvalidOperationException("boom"), console));
        Assert.AreEqual("boom", e.Message);
    }
}

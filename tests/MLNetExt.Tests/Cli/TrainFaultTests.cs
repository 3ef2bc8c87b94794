using System.Diagnostics;
using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.Serialization;
using MLNetExt.Tests.Training;

namespace MLNetExt.Tests.Cli;

/// <summary>Faults around a training run: temporary files left by a killed writer, SIGTERM, an output that cannot be
/// written at the end.</summary>
[TestClass]
public sealed class TrainFaultTests
{
    static string[] TinyTrainArgs(string data, string config, string output, int epochs) =>
        ["train", "--data", data, "--arch", "mixformer", "--config", config, "--image-size", "32", "--epochs", $"{epochs}",
         "--batch-size", "4", "--workers", "2", "--output", output, "--plain"];

    static (string Data, string Config) TinySetup(DirectoryInfo dir, int perClass)
    {
        SyntheticShapes.WriteSplit(Path.Combine(dir.FullName, "data"), perClass, 3, 40, seed: 1, ["circle", "square", "triangle"]);
        var config = Path.Combine(dir.FullName, "tiny.json");
        File.WriteAllText(config, TrainerTests.TinyKwargs().ToJsonString());
        return (Path.Combine(dir.FullName, "data"), config);
    }

    [TestMethod]
    public void StaleTemporaryFiles_OfDeadWriters_AreRemoved()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-stale-");
        try
        {
            string F(string name) { var p = Path.Combine(dir.FullName, name); File.WriteAllText(p, "x"); return p; }
            var hex = Guid.NewGuid().ToString("N");
            var dead = F($".checkpoint-last.safetensors.999999999-{hex}.mlnetext.tmp");
            var live = F($".model.onnx.{Environment.ProcessId}-{hex}.mlnetext.tmp");
            var oldLegacy = F($".checkpoint-best.safetensors.{hex}.tmp");
            File.SetLastWriteTimeUtc(oldLegacy, DateTime.UtcNow.AddHours(-2));
            var newLegacy = F($".report.html.{hex}.tmp");
            var other = F(".notes.tmp");
            var removed = AtomicFile.RemoveStale(dir.FullName);
            CollectionAssert.AreEquivalent(new[] { Path.GetFileName(dead), Path.GetFileName(oldLegacy) }, removed.ToArray());
            Assert.IsTrue(File.Exists(live) && File.Exists(newLegacy) && File.Exists(other));
            Assert.IsTrue(Path.GetFileName(AtomicFile.TempPath(Path.Combine(dir.FullName, "m.onnx"))).StartsWith($".m.onnx.{Environment.ProcessId}-"));
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void FinalOutputThatCannotBeWritten_IsNamed_WithWhereTheWeightsAre()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-final-");
        try
        {
            var (data, config) = TinySetup(dir, 4);
            var output = Path.Combine(dir.FullName, "out");
            Directory.CreateDirectory(Path.Combine(output, "model.safetensors")); // the rename over it fails, as on a full disk
            var log = new StringWriter();
            var options = TrainCommand.Create().Parse(TinyTrainArgs(data, config, output, 1)[1..].Append("--no-export").ToArray());
            var saved = Console.Out;
            Console.SetOut(log);
            int code;
            try { code = options.Invoke(); }
            finally { Console.SetOut(saved); }
            Assert.AreEqual(1, code, log.ToString());
            StringAssert.Contains(log.ToString(), "error: training finished, but model.safetensors (");
            StringAssert.Contains(log.ToString(), Path.Combine(output, "checkpoint-best.safetensors"));
            Assert.IsTrue(File.Exists(Path.Combine(output, "metrics.json")), "the small outputs were written first");
            Assert.IsEmpty(Directory.GetFiles(output, "*.tmp"), "no temporary file left");
        }
        finally { dir.Delete(true); }
    }

    /// <summary>SIGTERM to the real CLI process: it finishes the step, saves, prints the resume command and exits 130.</summary>
    [TestMethod]
    public void Sigterm_SavesAndExitsWithTheResumeCommand()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-sigterm-");
        try
        {
            var (data, config) = TinySetup(dir, 12);
            var output = Path.Combine(dir.FullName, "out");
            var cli = Path.Combine(AppContext.BaseDirectory, "MLNetExt.Cli.dll");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add(cli);
            foreach (var a in TinyTrainArgs(data, config, output, 200)) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
            var started = new ManualResetEventSlim();
            p.OutputDataReceived += (_, e) => { if (e.Data is null) return; lines.Enqueue(e.Data); if (e.Data.StartsWith("epoch 2/")) started.Set(); };
            p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            Assert.IsTrue(started.Wait(TimeSpan.FromSeconds(120)), "training reached epoch 2: " + string.Join("\n", lines));
            using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) kill.WaitForExit();
            Assert.IsTrue(p.WaitForExit(60_000), "exits after SIGTERM");
            p.WaitForExit();
            var text = string.Join("\n", lines);
            Assert.AreEqual(130, p.ExitCode, text);
            StringAssert.Contains(text, $"resume with: ./mlnetext train <same options> --resume {output}");
            Assert.IsTrue(File.Exists(Path.Combine(output, "checkpoint-last.safetensors")));
        }
        finally { dir.Delete(true); }
    }
}

using System.Diagnostics;
using MLNetExt.Data;
using MLNetExt.Tests.Training;

namespace MLNetExt.Tests.Cli;

/// <summary>`train --nproc 2` through the real CLI: worker processes on loopback, rank 0 writes, a killed worker ends the
/// job with its rank named and leaves no worker behind.</summary>
[TestClass]
[TestCategory("Slow")]
public sealed class DistributedTrainTests
{
    static (string Data, string Config) Setup(DirectoryInfo dir)
    {
        SyntheticShapes.WriteSplit(Path.Combine(dir.FullName, "data"), 12, 3, 40, seed: 1, ["circle", "square", "triangle"]);
        var config = Path.Combine(dir.FullName, "tiny.json");
        File.WriteAllText(config, TrainerTests.TinyKwargs().ToJsonString());
        return (Path.Combine(dir.FullName, "data"), config);
    }

    static Process Start(string data, string config, string output, int epochs, System.Collections.Concurrent.ConcurrentQueue<string> lines, Action<string>? onLine = null,
        int timeoutSeconds = 30)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MLNetExt.Cli.dll"));
        foreach (var a in new[] { "train", "--data", data, "--arch", "mixformer", "--config", config, "--image-size", "32", "--epochs", $"{epochs}",
                     "--batch-size", "8", "--workers", "1", "--output", output, "--plain", "--no-export", "--nproc", "2", "--dist-timeout", $"{timeoutSeconds}" })
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("WORLD_SIZE");
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) => { if (e.Data is null) return; lines.Enqueue(e.Data); onLine?.Invoke(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>The worker processes the launcher started (its children), by pid.</summary>
    static List<int> Workers(int launcher) =>
        Directory.GetDirectories($"/proc/{launcher}/task").SelectMany(t => File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse).ToList();

    /// <summary>Whether a process is gone (or a zombie) within a few seconds (a killed process with many threads takes a
    /// moment to be torn down).</summary>
    static bool Ended(int pid)
    {
        for (var clock = Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(10); Thread.Sleep(100))
        {
            string? stat = null;
            try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
            catch (IOException) { }
            if (stat is null || stat.Contains(") Z ", StringComparison.Ordinal)) return true;
        }
        return false;
    }

    static int RankOf(int pid) =>
        int.Parse(File.ReadAllText($"/proc/{pid}/environ").Split('\0').First(v => v.StartsWith("RANK=", StringComparison.Ordinal))[5..]);

    /// <summary>A long two-worker run in <paramref name="dir"/> that has reached epoch 3, with its workers and rank 1's pid.</summary>
    static (Process Launcher, System.Collections.Concurrent.ConcurrentQueue<string> Lines, string Output, List<int> Workers, int Rank1)
        RunningJob(DirectoryInfo dir, int timeoutSeconds = 30)
    {
        var (data, config) = Setup(dir);
        var output = Path.Combine(dir.FullName, "out");
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var epoch3 = new ManualResetEventSlim();
        var p = Start(data, config, output, 500, lines, l => { if (l.StartsWith("epoch 3/", StringComparison.Ordinal)) epoch3.Set(); }, timeoutSeconds);
        Assert.IsTrue(epoch3.Wait(TimeSpan.FromSeconds(180)), "reached epoch 3: " + string.Join("\n", lines));
        var workers = Workers(p.Id);
        Assert.HasCount(2, workers);
        return (p, lines, output, workers, workers.Single(w => RankOf(w) == 1));
    }

    [TestMethod]
    public void Nproc2_TrainsWithTwoWorkers_AndRankZeroWritesTheOutputs()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-nproc-");
        try
        {
            var (data, config) = Setup(dir);
            var output = Path.Combine(dir.FullName, "out");
            var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
            using var p = Start(data, config, output, 2, lines);
            Assert.IsTrue(p.WaitForExit(180_000), "finished");
            p.WaitForExit();
            var text = string.Join("\n", lines);
            Assert.AreEqual(0, p.ExitCode, text);
            StringAssert.Contains(text, "distributed: 2 worker processes, rendezvous 127.0.0.1:");
            StringAssert.Contains(text, "distributed: rank 0 of 2");
            Assert.AreEqual(1, lines.Count(l => l.StartsWith("model: ", StringComparison.Ordinal)), "one rank writes the model: " + text);
            using var metrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")));
            Assert.AreEqual("2", metrics.RootElement.GetProperty("settings").GetProperty("world_size").GetString());
            Assert.IsEmpty(Directory.GetFiles(output, "*.tmp"));
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void AHungWorker_EndsTheJobAfterTheCollectiveTimeout()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-nproc-hang-");
        try
        {
            var (p, lines, _, workers, hung) = RunningJob(dir, timeoutSeconds: 5);
            using var launcher = p;
            using (var stop = Process.Start("kill", ["-STOP", hung.ToString()])) stop.WaitForExit();   // alive but not answering
            var clock = Stopwatch.StartNew();
            Assert.IsTrue(p.WaitForExit(120_000), "the job ends: " + string.Join("\n", lines));
            p.WaitForExit();
            var text = string.Join("\n", lines);
            Assert.AreNotEqual(0, p.ExitCode, text);
            StringAssert.Contains(text, "rank 0 of 2, timeout 5");
            StringAssert.Contains(text, "error: worker rank 0 exited with code 1");
            Assert.IsLessThan(60.0, clock.Elapsed.TotalSeconds, "bounded by the 5 s collective timeout and the launcher's grace");
            foreach (var w in workers) Assert.IsTrue(Ended(w), $"worker {w} was left running");
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void AKilledWorker_EndsTheJobNamingItsRank_AndLeavesTheCheckpointValid()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-nproc-kill-");
        try
        {
            var (p, lines, output, workers, victim) = RunningJob(dir);
            using var launcher = p;
            var clock = Stopwatch.StartNew();
            Process.GetProcessById(victim).Kill();
            Assert.IsTrue(p.WaitForExit(90_000), "the job ends within the collective timeout: " + string.Join("\n", lines));
            p.WaitForExit();
            var text = string.Join("\n", lines);
            Assert.AreNotEqual(0, p.ExitCode, text);
            StringAssert.Contains(text, "error: worker rank 1 exited with code 137");
            foreach (var w in workers) Assert.IsTrue(Ended(w), $"worker {w} was left running");
            using var model = Inference.ImageClassificationModel.Load(Path.Combine(output, "checkpoint-last.safetensors"));
            Assert.AreEqual(3, model.Classes.Count, "the last checkpoint is whole");
            Assert.IsLessThan(90.0, clock.Elapsed.TotalSeconds);
        }
        finally { dir.Delete(true); }
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace MLNetExt.Cli;

/// <summary>
/// `train --nproc N`: starts N worker processes of this same command on loopback, as torchrun does: each gets RANK,
/// LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, and its share of the cores
/// (MLNETEXT_THREADS) unless --threads says otherwise. Rank 0 keeps the console (its progress and messages are the
/// run's); the other ranks' error output is shown prefixed with their rank. When a worker fails or dies, the others are
/// stopped (they also fail on their own within the collective timeout) and the exit code names that rank; no worker
/// outlives the launcher. Ctrl-C reaches every worker (same terminal), each saves and exits.
/// </summary>
internal static class WorkerLauncher
{
    /// <summary>How long the other workers get to end by themselves once one failed, before they are killed.</summary>
    static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    public static int Run(int workers, IReadOnlyList<string> args, TextWriter log, TextWriter errors)
    {
        int port = FreePort();
        bool threadsGiven = args.Any(a => a == "--threads" || a.StartsWith("--threads=", StringComparison.Ordinal));
        int threads = Math.Max(1, Environment.ProcessorCount / workers);
        var (exe, prefix) = SelfCommand();
        log.WriteLine($"distributed: {workers} worker processes, rendezvous 127.0.0.1:{port}" + (threadsGiven ? "" : $", {threads} threads each"));
        var processes = new List<Process>();
        using var exits = new System.Collections.Concurrent.BlockingCollection<int>();   // ranks in the order they ended
        ConsoleCancelEventHandler keepLauncher = (_, e) => e.Cancel = true;   // the workers save and exit; the launcher waits for them
        Console.CancelKeyPress += keepLauncher;
        try
        {
            for (int rank = 0; rank < workers; rank++)
            {
                var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = rank != 0, RedirectStandardError = rank != 0 };
                foreach (var a in prefix.Concat(args)) psi.ArgumentList.Add(a);
                psi.Environment["RANK"] = psi.Environment["LOCAL_RANK"] = $"{rank}";
                psi.Environment["WORLD_SIZE"] = psi.Environment["LOCAL_WORLD_SIZE"] = $"{workers}";
                psi.Environment["MASTER_ADDR"] = "127.0.0.1";
                psi.Environment["MASTER_PORT"] = $"{port}";
                if (!threadsGiven) psi.Environment["MLNETEXT_THREADS"] = $"{threads}";
                var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
                int exitedRank = rank;
                p.Exited += (_, _) => exits.Add(exitedRank);
                if (!p.Start()) throw new InvalidOperationException($"Could not start worker rank {rank} ({exe}).");
                processes.Add(p);
                if (rank != 0)
                {
                    int r = rank;
                    p.OutputDataReceived += (_, _) => { };
                    p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (errors) errors.WriteLine($"[rank {r}] {e.Data}"); };
                    p.BeginOutputReadLine();
                    p.BeginErrorReadLine();
                }
            }
            // the first worker to fail decides the outcome; otherwise all end and rank 0's code is the run's
            for (int ended = 0; ended < workers; ended++)
            {
                int failed = exits.Take();
                if (processes[failed].ExitCode != 0)
                {
                    int code = processes[failed].ExitCode;
                    var others = processes.Where(p => !p.HasExited).ToList();
                    if (others.Count > 0)
                    {
                        errors.WriteLine($"error: worker rank {failed} exited with code {code}; stopping the other {others.Count} worker(s).");
                        var deadline = DateTime.UtcNow + Grace;
                        foreach (var p in others) p.WaitForExit(Math.Max(0, (int)(deadline - DateTime.UtcNow).TotalMilliseconds));
                    }
                    else if (failed != 0) errors.WriteLine($"error: worker rank {failed} exited with code {code}.");
                    return code == 130 ? 130 : code is 1 or 2 ? code : 1;
                }
            }
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= keepLauncher;
            foreach (var p in processes)
            {
                try { if (!p.HasExited) p.Kill(entireProcessTree: true); }
                catch (InvalidOperationException) { }   // exited in between
                p.Dispose();
            }
        }
    }

    /// <summary>How this command was started: the apphost, or `dotnet MLNetExt.Cli.dll`.</summary>
    static (string Exe, string[] Prefix) SelfCommand()
    {
        var exe = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this process is unknown; start the workers with torchrun's variables instead of --nproc.");
        var dll = typeof(WorkerLauncher).Assembly.Location;
        return Path.GetFileNameWithoutExtension(exe) == "dotnet" ? (exe, [dll]) : (exe, []);
    }

    /// <summary>A loopback port nobody listens on now (the rendezvous of a local job).</summary>
    internal static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>The command line without <c>--nproc N</c> (the workers run the same command as single ranks).</summary>
    internal static List<string> WithoutNproc(IReadOnlyList<string> args)
    {
        var rest = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == "--nproc") { i++; continue; }
            if (args[i].StartsWith("--nproc=", StringComparison.Ordinal)) continue;
            rest.Add(args[i]);
        }
        return rest;
    }
}

using System.Diagnostics;
using System.Text.RegularExpressions;

namespace MLNetExt.Serialization;

/// <summary>
/// The one naming of MLNetExt's temporary files: every file written atomically (checkpoints, models, ONNX, reports,
/// generated code) is first written to <c>.NAME.PID-RANDOM.mlnetext.tmp</c> next to its target and then renamed over
/// it. A process killed mid-write leaves such a file behind; <see cref="RemoveStale"/> deletes those whose writer is
/// gone, and training calls it on its output folder at every start and resume.
/// </summary>
public static partial class AtomicFile
{
    /// <summary>A fresh temporary path next to <paramref name="path"/>.</summary>
    internal static string TempPath(string path)
    {
        var full = Path.GetFullPath(path);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}-{Guid.NewGuid():N}.mlnetext.tmp");
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> through a temporary file (flushed to disk),
    /// so readers see the old file or the new one, never a partial one; the temporary file is removed on failure.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var temp = TempPath(path);
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, Path.GetFullPath(path), overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Deletes a temporary file, ignoring failures (used on error paths).</summary>
    internal static void TryDelete(string temp)
    {
        try { File.Delete(temp); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Deletes the temporary files in <paramref name="folder"/> (not below it) left by writers that no longer
    /// run: ours by the process id in their name; those of earlier versions (<c>.NAME.HEX32.tmp</c>) when over an
    /// hour old. Returns the names deleted.</summary>
    public static IReadOnlyList<string> RemoveStale(string folder)
    {
        var removed = new List<string>();
        if (!Directory.Exists(folder)) return removed;
        foreach (var file in new DirectoryInfo(folder).EnumerateFiles(".*.tmp"))
        {
            bool stale;
            var ours = Ours().Match(file.Name);
            if (ours.Success) stale = !IsAlive(int.Parse(ours.Groups[1].Value));
            else stale = Legacy().IsMatch(file.Name) && DateTime.UtcNow - file.LastWriteTimeUtc > TimeSpan.FromHours(1);
            if (!stale) continue;
            try
            {
                file.Delete();
                removed.Add(file.Name);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return removed;
    }

    static bool IsAlive(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    [GeneratedRegex(@"^\..+\.(\d+)-[0-9a-f]{32}\.mlnetext\.tmp$")]
    private static partial Regex Ours();

    [GeneratedRegex(@"^\..+\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex Legacy();
}

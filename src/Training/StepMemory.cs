using System.Runtime.InteropServices;

namespace MLNetExt.Training;

/// <summary>
/// Resident memory of this process, for estimating what a training step will need before the first one runs: a
/// step that cannot fit otherwise ends in the kernel's OOM killer, with no message. Peak growth is measured through
/// /proc (VmHWM, reset by writing 5 to /proc/self/clear_refs) after returning freed heap to the system, so memory the
/// allocator keeps does not hide it.
/// </summary>
internal static partial class StepMemory
{
    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    /// <summary>MemAvailable from /proc/meminfo, in bytes; null when unknown.</summary>
    public static long? Available() => Field("/proc/meminfo", "MemAvailable:");

    /// <summary>How much the process's resident memory peaks above its level before <paramref name="action"/>; null
    /// when /proc does not allow measuring it.</summary>
    public static long? PeakGrowth(Action action)
    {
        try
        {
            MallocTrim(0);
            File.WriteAllText("/proc/self/clear_refs", "5");
            long? before = Field("/proc/self/status", "VmRSS:");
            action();
            long? peak = Field("/proc/self/status", "VmHWM:");
            MallocTrim(0);
            return before is long b && peak is long p ? Math.Max(0, p - b) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or EntryPointNotFoundException or DllNotFoundException)
        {
            return null;
        }
    }

    static long? Field(string file, string name)
    {
        try
        {
            foreach (var line in File.ReadLines(file))
                if (line.StartsWith(name, StringComparison.Ordinal))
                {
                    var parts = line[name.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0]) * 1024; // kB
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return null;
    }

    /// <summary>Bytes as "1.2 GB".</summary>
    public static string Format(double bytes) => bytes >= 1e9 ? $"{bytes / 1e9:F1} GB" : $"{bytes / 1e6:F0} MB";
}

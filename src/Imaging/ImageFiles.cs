namespace MLNetExt.Imaging;

/// <summary>
/// The one way MLNetExt lists and reads image files it did not write, safe on hostile folders:
/// <list type="bullet">
/// <item>Walks never follow directory links below the folder they start from (a link to <c>.</c> or <c>..</c> would
/// loop or pull other classes' images into this class); each one is reported. The start folder itself (a dataset root
/// or class folder) may be a link.</item>
/// <item>Only regular files are read: file links are resolved, and a FIFO, socket or device (which report no size) is
/// rejected before it is opened — opening a FIFO blocks, reading <c>/dev/zero</c> never ends.</item>
/// <item>Reads take at most the size the file had when checked, up to <see cref="MaxFileBytes"/>.</item>
/// </list>
/// </summary>
internal static class ImageFiles
{
    static readonly HashSet<string> ImageExtensions = new(StringComparer.OrdinalIgnoreCase)
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".heic", ".heif", ".avif",
    };

    /// <summary>Whether the file's name ends like an image's (formats read or not): the name only, never the bytes.</summary>
    public static bool NamedLikeImage(string path) => ImageExtensions.Contains(Path.GetExtension(path));

    /// <summary>The largest image file read (default 1 GiB).</summary>
    public static long MaxFileBytes { get; set; } = 1L << 30;

    /// <summary>Why <paramref name="path"/> cannot be read as an image file (null when it can): missing, not a regular
    /// file, empty, too large.</summary>
    public static string? FileProblem(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) return Directory.Exists(path) ? "is a folder, not a file" : "does not exist";
            if (info.LinkTarget is not null)
            {
                if (info.ResolveLinkTarget(returnFinalTarget: true) is not FileInfo target || !target.Exists)
                    return "is a link to nothing readable (a missing file or a folder)";
                info = target;
            }
            long length = info.Length;
            if (length == 0) return "is an empty file, or not a regular file (a FIFO, socket or device)";
            if (length > MaxFileBytes) return $"is {length:N0} bytes, more than the {MaxFileBytes:N0} bytes an image file may have (ImageFiles.MaxFileBytes)";
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot be read ({e.Message})";
        }
    }

    /// <summary>Reads a whole image file after <see cref="FileProblem"/>'s checks, never more than its checked size.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ImageDecodeException">It is not a usable image file (empty, not a regular file, too large); the
    /// message says which.</exception>
    public static byte[] ReadAllBytes(string path)
    {
        Check(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        long length = fs.Length;
        if (length <= 0 || length > MaxFileBytes) throw new IOException($"'{path}' changed size while being read ({length:N0} bytes).");
        var bytes = new byte[length];
        fs.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>Reads up to <paramref name="buffer"/>.Length leading bytes of a checked file; returns how many.</summary>
    public static int ReadHead(string path, Span<byte> buffer)
    {
        Check(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        return fs.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
    }

    static void Check(string path)
    {
        if (FileProblem(path) is not { } problem) return;
        if (!File.Exists(path) && !Directory.Exists(path) && new FileInfo(path).LinkTarget is null)
            throw new FileNotFoundException($"'{path}' does not exist.", path);
        throw new ImageDecodeException(problem);
    }

    /// <summary>The files below <paramref name="folder"/>, recursively, in ordinal path order, hidden names (".x")
    /// left out; directory links below it are not followed and are reported to <paramref name="skipped"/> (path, reason).</summary>
    public static List<string> Walk(string folder, Action<string, string>? skipped = null)
    {
        var files = new List<string>();
        var pending = new Stack<DirectoryInfo>();
        pending.Push(new DirectoryInfo(folder));
        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = 0 };
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            foreach (var entry in dir.EnumerateFileSystemInfos("*", options))
            {
                if (entry.Name.StartsWith('.')) continue;
                if (entry is DirectoryInfo sub)
                {
                    if (sub.LinkTarget is not null)
                        skipped?.Invoke(sub.FullName, $"directory link (to '{sub.LinkTarget}') not followed: links inside a folder of images are skipped so they cannot loop or bring in other folders' images");
                    else pending.Push(sub);
                }
                else files.Add(entry.FullName);
            }
        }
        files.Sort(StringComparer.Ordinal);
        return files;
    }
}

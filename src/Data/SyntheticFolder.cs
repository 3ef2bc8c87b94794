using MLNetExt.Imaging;
namespace MLNetExt.Data;

/// <summary>Writes a generated class-folder dataset (<c>root/&lt;class&gt;/&lt;class&gt;_NNN.png</c>) under a temporary
/// sibling name and moves it into place, so it is complete or absent; a manifest written last records the settings,
/// and a folder holding the same manifest is reused instead of regenerated.</summary>
internal static class SyntheticFolder
{
    public static void Write(string full, IReadOnlyList<string> names, int perClass, int firstIndex, string manifestName, string manifest,
        Func<string, int, RgbImage> render)
    {
        var partial = $"{full}.partial-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            foreach (var name in names) Directory.CreateDirectory(Path.Combine(partial, name));
            int digits = Math.Max(3, (firstIndex + perClass - 1).ToString(System.Globalization.CultureInfo.InvariantCulture).Length);
            Parallel.For(0, names.Count * perClass, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) }, k =>
            {
                int c = k / perClass, index = firstIndex + k % perClass;
                var name = names[c];
                PngEncoder.Save(render(name, index), Path.Combine(partial, name, $"{name}_{index.ToString("D" + digits, System.Globalization.CultureInfo.InvariantCulture)}.png"));
            });
            File.WriteAllText(Path.Combine(partial, manifestName), manifest);
            if (Directory.Exists(full)) Directory.Delete(full); // empty (checked by ReuseOrCheckEmpty)
            var parent = Path.GetDirectoryName(full);
            if (!string.IsNullOrEmpty(parent)) Directory.CreateDirectory(parent);
            Directory.Move(partial, full);
        }
        catch
        {
            try { if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>True when <paramref name="full"/> already holds this generation; false when it is absent or empty.</summary>
    public static bool ReuseOrCheckEmpty(string full, string manifestName, string manifest)
    {
        if (File.Exists(full)) throw new IOException($"Cannot generate images into '{full}': it is a file, expected a new or empty folder.");
        if (!Directory.Exists(full)) return false;
        var marker = Path.Combine(full, manifestName);
        if (File.Exists(marker) && File.ReadAllText(marker) == manifest) return true;
        if (Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException(File.Exists(marker)
                ? $"Folder '{full}' holds a generated dataset made with other settings; remove it or choose another folder."
                : $"Cannot generate images into '{full}': the folder is not empty; choose a new or empty folder.");
        return false;
    }
}

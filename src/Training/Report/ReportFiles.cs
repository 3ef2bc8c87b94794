namespace MLNetExt.Training;

/// <summary>What the metrics file and the HTML report share: the consistency check of a history and the atomic write.</summary>
internal static class ReportFiles
{
    /// <summary>Writes <paramref name="bytes"/> to a temporary file next to <paramref name="path"/> and moves it over
    /// the target, so readers see the old file or the new one, never a partial one.</summary>
    public static void WriteAtomic(string path, byte[] bytes)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Cannot write {full}: folder {dir} does not exist.");
        Serialization.AtomicFile.WriteAllBytes(full, bytes);
    }

    /// <summary>Rejects a history whose parts disagree (class indices outside the class list, metrics over a
    /// different number of classes), naming the entry, rather than writing a report that misnames classes.</summary>
    public static void Validate(TrainingHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        int c = history.Classes.Count;
        if (c == 0) throw new ArgumentException("The training history has no classes.", nameof(history));
        for (int i = 0; i < history.Hardest.Count; i++)
        {
            var m = history.Hardest[i];
            if ((uint)m.TrueLabel >= (uint)c || (uint)m.PredictedLabel >= (uint)c)
                throw new ArgumentException($"Hardest[{i}] ({m.Source}) has true label {m.TrueLabel} and predicted label {m.PredictedLabel}; " +
                    $"both must lie in 0..{c - 1} for the {c} classes.", nameof(history));
        }
        foreach (var e in history.Epochs)
            CheckMetrics(e.Validation, c, $"Epoch {e.Epoch} validation");
        CheckMetrics(history.Final, c, "Final");
    }

    static void CheckMetrics(ClassificationMetrics? m, int classes, string what)
    {
        if (m is null) return;
        if (m.Classes.Count != classes || m.Confusion.Length != classes)
            throw new ArgumentException($"{what} metrics cover {m.Classes.Count} classes ({m.Confusion.Length} confusion rows) but the history has {classes}.", "history");
    }
}

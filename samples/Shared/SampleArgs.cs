using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetExt.Samples;

/// <summary>One image and its class: the two columns the samples' IDataViews have (both strings).</summary>
public sealed class ImageRow
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}

/// <summary>What the samples share: reading a folder of class sub-folders into rows, printing ML.NET's metrics, and a
/// small "--name value" command line with clear errors.</summary>
internal static class Samples
{
    static readonly HashSet<string> ImageExtensions = new(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp" };

    /// <summary>Rows for every image file in the class sub-folders of <paramref name="folder"/> (sub-folder name = label).</summary>
    public static List<ImageRow> ReadClassFolders(string folder)
    {
        if (!Directory.Exists(folder)) throw new ArgumentException($"'{folder}' is not a folder (expected one sub-folder of images per class).");
        var rows = Directory.GetDirectories(folder).OrderBy(d => d, StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).Where(f => ImageExtensions.Contains(Path.GetExtension(f))).OrderBy(f => f, StringComparer.Ordinal)
                .Select(f => new ImageRow { ImagePath = Path.GetFullPath(f), Label = Path.GetFileName(d) }))
            .ToList();
        if (rows.Count == 0) throw new ArgumentException($"'{folder}' has no class sub-folders with images.");
        return rows;
    }

    /// <summary>The training rows (two string columns, ImagePath and Label) from --data, and the rows the metrics are
    /// computed on: --val, or 20 % of --data held out when it is not given.</summary>
    public static (IDataView Train, IDataView Test, string TestName) TrainAndTest(MLContext ml, Dictionary<string, string> args)
    {
        var all = ml.Data.LoadFromEnumerable(ReadClassFolders(args["--data"]));
        if (args.TryGetValue("--val", out var val)) return (all, ml.Data.LoadFromEnumerable(ReadClassFolders(val)), "validation folder");
        var split = ml.Data.TrainTestSplit(all, testFraction: 0.2, seed: 0);
        return (split.TrainSet, split.TestSet, "held-out 20 %");
    }

    /// <summary>Prints ML.NET's multiclass metrics.</summary>
    public static void Print(MulticlassClassificationMetrics m, string what)
    {
        Console.WriteLine($"{what}: micro-accuracy {m.MicroAccuracy:P1}, macro-accuracy {m.MacroAccuracy:P1}, log-loss {m.LogLoss:F4}");
        Console.WriteLine(m.ConfusionMatrix.GetFormattedConfusionTable());
    }

    /// <summary>Parses "--name value" pairs; every name must be in <paramref name="known"/> and those in
    /// <paramref name="required"/> present.</summary>
    public static Dictionary<string, string> ParseArgs(string[] args, string usage, string[] required, string[] known)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            if (!known.Contains(args[i])) throw new UsageException($"unknown option '{args[i]}'.\n{usage}");
            if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                throw new UsageException($"{args[i]} needs a value.\n{usage}");
            values[args[i]] = args[++i];
        }
        foreach (var r in required)
            if (!values.ContainsKey(r)) throw new UsageException($"{r} is required.\n{usage}");
        return values;
    }

    /// <summary>The integer value of <paramref name="name"/>, or null when it was not given.</summary>
    public static int? Int(Dictionary<string, string> values, string name) =>
        !values.TryGetValue(name, out var v) ? null
        : int.TryParse(v, out var n) && n > 0 ? n : throw new UsageException($"{name} expects a positive whole number, got '{v}'.");

    /// <summary>Runs <paramref name="main"/>: a usage error exits with 2, any other failure with 1, each as one line.</summary>
    public static int Run(Func<int> main)
    {
        try { return main(); }
        catch (UsageException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 2;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            while (e.InnerException is not null && e is System.Reflection.TargetInvocationException or TypeInitializationException) e = e.InnerException;
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }
    }
}

internal sealed class UsageException(string message) : Exception(message);

using System.CommandLine;
using MLNetExt.Pretrained;
using Spectre.Console;

namespace MLNetExt.Cli;

/// <summary>`--pretrained [TAG]` on every verb that takes `--weights`: official weights by name, downloaded once into
/// the cache (see <see cref="PretrainedWeights"/>) with progress lines on standard error.</summary>
internal static class PretrainedOption
{
    public static Option<string?> Create() => new("--pretrained")
    {
        Arity = ArgumentArity.ZeroOrOne,
        Description = "Official pretrained weights by name, downloaded once into the cache: a tag such as smt_t.in1k (see `mlnetext models`), " +
                      "or no value for the variant's default weights",
    };

    /// <summary>What was asked for: null when the option is absent, "default" when it has no value.</summary>
    public static string? Value(ParseResult r, Option<string?> option) => r.GetResult(option) is null ? null : r.GetValue(option) ?? "default";

    /// <summary>The checkpoint <paramref name="name"/> names for <paramref name="variant"/> ("default": its default);
    /// without a variant (keys), a tag.</summary>
    public static PretrainedCheckpoint Find(string name, string? variant) =>
        variant is not null ? PretrainedCatalog.For(variant, name)
        : string.Equals(name, "default", StringComparison.OrdinalIgnoreCase)
            ? throw new ArgumentException("--pretrained without a tag needs --variant NAME to say whose default weights.")
            : PretrainedCatalog.Find(name);

    /// <summary>The cached file of <paramref name="checkpoint"/>, downloading it first with progress on <paramref name="log"/>.</summary>
    public static FileInfo Fetch(PretrainedCheckpoint checkpoint, TextWriter log)
    {
        if (File.Exists(PretrainedWeights.CachePath(checkpoint))) return new FileInfo(PretrainedWeights.CachePath(checkpoint));
        if (ReferenceEquals(log, Console.Error) && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("CI") is null)
            return new FileInfo(FetchWithBar(checkpoint));
        var path = PretrainedWeights.Fetch(checkpoint, PretrainedWeights.EveryTenth(line => log.WriteLine("downloading " + line)), w => log.WriteLine("warning: " + w));
        return new FileInfo(path);
    }

    /// <summary>A live bar on the terminal: bytes, speed and time left.</summary>
    static string FetchWithBar(PretrainedCheckpoint checkpoint)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        string? path = null;
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(checkpoint.FileName, maxValue: checkpoint.Bytes ?? 1);
                path = PretrainedWeights.Fetch(checkpoint, p =>
                {
                    if (p.Total is long total) task.MaxValue = total;
                    task.Value = p.Received;
                }, w => console.WriteLine("warning: " + w));
                task.Value = task.MaxValue;
            });
        return path!;
    }

    /// <summary>--weights FILE or --pretrained [TAG] (not both) as the file to load, with the model choice it loads into
    /// (a custom configuration when the weights need the checkpoint's overrides, e.g. TransNeXt's 384 fine-tunes);
    /// a null file when neither was given.</summary>
    public static (ModelOptions.Choice Choice, FileInfo? Weights) Resolve(ModelOptions.Choice choice, FileInfo? weights, string? pretrained, TextWriter log)
    {
        if (pretrained is null) return (choice, weights);
        if (weights is not null) throw new ArgumentException("Give --weights FILE or --pretrained, not both.");
        var checkpoint = Find(pretrained, choice.CustomKwargs is null ? choice.VariantOrFamily : null);
        var file = Fetch(checkpoint, log);
        return (checkpoint.CustomBuild() is { } custom ? choice with { VariantOrFamily = custom.Family, CustomKwargs = custom.Kwargs } : choice, file);
    }
}

using System.CommandLine;
using MLNetExt.Training;

namespace MLNetExt.Cli;

/// <summary>The <c>train</c> command's training options, one typed option per <see cref="TrainingOptionInfo.All"/> entry
/// that has a command-line spelling (spelling, help, default and accepted values come from the library); and the CLI's
/// view of a library error, which names the option as the user typed it (<c>--batch-size</c>), not the C# property
/// (<c>BatchSize</c>).</summary>
internal sealed class TrainingKnobOptions
{
    /// <summary>An option and how its value goes into the options.</summary>
    internal sealed record Binding(Option Option, Func<ParseResult, ImageClassificationOptions, ImageClassificationOptions> Apply);

    public IReadOnlyList<Binding> Bindings { get; }

    /// <summary>Every knob with a command-line spelling, less the <paramref name="unused"/> properties (a verb that has
    /// no use for them leaves them at the library's defaults).</summary>
    public TrainingKnobOptions(params string[] unused) =>
        Bindings = TrainingOptionInfo.All.Where(k => k.CommandLineName is not null && !unused.Contains(k.Property)).Select(Bind).ToList();

    public void AddTo(Command cmd)
    {
        foreach (var b in Bindings) cmd.Add(b.Option);
    }

    /// <summary>The options with every option the command line gives (or its default) set.</summary>
    public ImageClassificationOptions Apply(ParseResult r, ImageClassificationOptions o) => Bindings.Aggregate(o, (acc, b) => b.Apply(r, acc));

    static Binding Bind(TrainingOptionInfo k)
    {
        var type = Nullable.GetUnderlyingType(k.ValueType) ?? k.ValueType;
        if (type.IsEnum)
        {
            var text = new Option<string>(k.CommandLineName!) { Description = k.Description, DefaultValueFactory = _ => k.DefaultValue?.ToString()?.ToLowerInvariant() ?? "none" };
            return new Binding(text, (r, o) => k.WithValue(o, EnumValue(type, k.CommandLineName!, r.GetValue(text)!)));
        }
        // System.CommandLine parses and describes each option by its own type
        return (Binding)typeof(TrainingKnobOptions).GetMethod(nameof(Typed), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
            .MakeGenericMethod(k.ValueType).Invoke(null, [k])!;
    }

    /// <summary>The value of <paramref name="type"/> that <paramref name="option"/> spells <paramref name="text"/>: enums
    /// are spelled in lower case (<c>--class-weights balanced</c>); another spelling is refused with the accepted ones.</summary>
    public static object EnumValue(Type type, string option, string text)
    {
        var names = Enum.GetNames(type).Select(n => n.ToLowerInvariant()).ToList();
        int i = names.IndexOf(text);
        if (i < 0) throw new ArgumentException($"{option} must be {string.Join(" or ", names)}, got '{text}'.");
        return Enum.GetValues(type).GetValue(i)!;
    }

    static Binding Typed<T>(TrainingOptionInfo k)
    {
        var option = new Option<T>(k.CommandLineName!) { Description = k.Description };
        if (k.DefaultValue is T d) option.DefaultValueFactory = _ => d;
        return new Binding(option, (r, o) => k.WithValue(o, r.GetValue(option)));
    }

    /// <summary>What a training verb's command line sets: the model (<c>--variant</c>, or <c>--arch</c> with
    /// <c>--config</c>, or none when <c>--weights</c> is a model a training run wrote, whose own it is; <c>--num-classes</c>
    /// is refused, the classes being the data's), the weights to start from (<c>--weights</c> or <c>--pretrained</c>) and
    /// every knob.</summary>
    public ImageClassificationOptions Recipe(ParseResult r, ModelOptions model, Option<FileInfo> weights, Option<string?> pretrained, string verb)
    {
        var file = r.GetValue(weights);
        if (file is not null) CliErrors.RequireFile(file, weights.Name);
        // --weights of a model a training run wrote says its own architecture when none is given
        bool unnamed = r.GetValue(model.Variant) is null && r.GetValue(model.Config) is null && r.GetValue(model.Arch) is null;
        var choice = unnamed && file is not null && ModelDescriptor.TryRead(file.FullName) is { } trained
            ? new ModelOptions.Choice(trained.Model, trained.CustomKwargs, r.GetValue(model.NumClasses))
            : model.Resolve(r);
        if (choice.NumClasses is not null) throw new ArgumentException($"--num-classes is not used by {verb}: the classes are the data's.");
        return Apply(r, new ImageClassificationOptions
        {
            Model = choice.VariantOrFamily,
            CustomKwargs = choice.CustomKwargs,
            WeightsPath = file?.FullName,
            Pretrained = PretrainedOption.Value(r, pretrained),
        });
    }

    /// <summary>The libtorch thread count of the verbs that train.</summary>
    public static Option<int?> ThreadsOption() => new("--threads") { Description = "libtorch intra-op threads (default: processor count)" };

    /// <summary>Sets libtorch's thread count from <paramref name="option"/> when given (refusing an impossible count).</summary>
    public static void ApplyThreads(ParseResult r, Option<int?> option)
    {
        if (r.GetValue(option) is not int t) return;
        if (Torch.TorchRuntime.ThreadCountProblem(t, option.Name) is { } problem) throw new ArgumentException(problem + ".");
        Torch.TorchRuntime.Threads = t;
    }

    /// <summary>Runs <paramref name="action"/>, turning a <see cref="TrainingOptionException"/> into an argument error
    /// under the CLI's spelling of the option.</summary>
    public static T AsCliError<T>(Func<T> action)
    {
        try { return action(); }
        catch (TrainingOptionException e) { throw new ArgumentException($"{TrainingOptionInfo.CommandLineNameOf(e.Option)} {e.Problem}.", e); }
    }
}

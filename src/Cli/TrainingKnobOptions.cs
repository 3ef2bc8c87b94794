using System.CommandLine;
using MLNetExt.Training;

namespace MLNetExt.Cli;

/// <summary>The <c>train</c> command's training options, one typed option per row of <see cref="TrainingKnobs.All"/>
/// (spelling, help, default and accepted values come from the row); and the CLI's view of a library error, which names
/// the option as the user typed it (<c>--batch-size</c>), not the C# property (<c>BatchSize</c>).</summary>
internal sealed class TrainingKnobOptions : ITrainingKnobVisitor<TrainingKnobOptions.Binding>
{
    /// <summary>An option and how its value goes into the options.</summary>
    internal sealed record Binding(Option Option, Func<ParseResult, ImageClassificationOptions, ImageClassificationOptions> Apply);

    public IReadOnlyList<Binding> Bindings { get; }

    public TrainingKnobOptions() => Bindings = TrainingKnobs.All.Where(k => k.Cli is not null).Select(k => k.Accept(this)).ToList();

    public void AddTo(Command cmd)
    {
        foreach (var b in Bindings) cmd.Add(b.Option);
    }

    /// <summary>The options with every knob the command line gives (or its default) set.</summary>
    public ImageClassificationOptions Apply(ParseResult r, ImageClassificationOptions o) => Bindings.Aggregate(o, (acc, b) => b.Apply(r, acc));

    Binding ITrainingKnobVisitor<Binding>.Visit<T>(TrainingKnob<T> k)
    {
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        if (type.IsEnum)
        {
            // enums are spelled in lower case: --class-weights balanced
            var names = Enum.GetNames(type).Select(n => n.ToLowerInvariant()).ToList();
            var text = new Option<string>(k.Cli!) { Description = k.Help, DefaultValueFactory = _ => TrainingKnobs.Text(k.Default) };
            return new Binding(text, (r, o) =>
            {
                var v = r.GetValue(text)!;
                int i = names.IndexOf(v);
                if (i < 0) throw new ArgumentException($"{k.Cli} must be {string.Join(" or ", names)}, got '{v}'.");
                return k.Set(o, (T)Enum.GetValues(type).GetValue(i)!);
            });
        }
        var option = new Option<T>(k.Cli!) { Description = k.Help };
        if (k.Default is { } d) option.DefaultValueFactory = _ => d;
        return new Binding(option, (r, o) => k.Set(o, k.FromCli(r.GetValue(option)!)));
    }

    /// <summary>Runs <paramref name="action"/>, turning a <see cref="TrainingOptionException"/> into an argument error
    /// under the CLI's spelling of the option.</summary>
    public static T AsCliError<T>(Func<T> action)
    {
        try { return action(); }
        catch (TrainingOptionException e) { throw new ArgumentException($"{TrainingKnobs.CliName(e.Option)} {e.Problem}.", e); }
    }
}

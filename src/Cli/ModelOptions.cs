using System.CommandLine;
using System.Text.Json.Nodes;
using MLNetExt.Vision;

namespace MLNetExt.Cli;

/// <summary>The options that pick a model on the command line: <c>--arch FAMILY</c>, <c>--variant NAME</c> or
/// <c>--config FILE.json</c> (official keyword arguments), <c>--num-classes K</c>.</summary>
internal sealed class ModelOptions
{
    public Option<string> Arch { get; } = new("--arch") { Description = "Backbone family: transxnet, transnext, smt or mixformer" };
    public Option<string> Variant { get; } = new("--variant") { Description = "Official variant name, e.g. transxnet_t" };
    public Option<FileInfo> Config { get; } = new("--config") { Description = "JSON object of the family's official constructor keyword arguments (custom size)" };
    public Option<int?> NumClasses { get; } = new("--num-classes") { Description = "Classes of the head (default: the variant's or the config's)" };

    public void AddTo(Command cmd, bool withArch = true)
    {
        if (withArch) cmd.Add(Arch);
        cmd.Add(Variant);
        cmd.Add(Config);
        cmd.Add(NumClasses);
    }

    /// <summary>What the options name: a variant, or a family with custom keyword arguments.</summary>
    public sealed record Choice(string VariantOrFamily, JsonObject? CustomKwargs, int? NumClasses)
    {
        /// <summary>Builds it, with <paramref name="overrides"/> merged over its keyword arguments.</summary>
        public Backbone Create(JsonObject? overrides = null) => CustomKwargs is null
            ? Backbones.Create(VariantOrFamily, NumClasses, overrides)
            : Backbones.CreateCustom(VariantOrFamily, CustomKwargs, NumClasses, overrides);

        /// <summary>What it needs to take inputs of <paramref name="size"/> (TransNeXt: <c>img_size</c>); null when
        /// no size is given or it takes that size as built.</summary>
        public JsonObject? SizeKwargs((int Height, int Width)? size) =>
            size is var (h, w) ? Backbones.InputSizeKwargs(VariantOrFamily, CustomKwargs, h, w) : null;
    }

    /// <summary>Validates the combination; the error names the options and what is known.</summary>
    public Choice Resolve(ParseResult r)
    {
        string? arch = r.GetValue(Arch), variant = r.GetValue(Variant);
        var config = r.GetValue(Config);
        int? classes = r.GetValue(NumClasses);
        if (classes is < 0) throw new ArgumentException($"--num-classes must be 0 or more, got {classes}.");
        if ((variant is null) == (config is null))
            throw new ArgumentException("Give exactly one of --variant NAME or --config FILE.json" +
                                        $" (variants: {string.Join(", ", Backbones.Variants.Select(v => v.Name))}).");
        if (arch is not null) Backbones.Family(arch); // unknown family -> error listing the families
        if (variant is not null)
        {
            var row = Backbones.Find(variant);
            if (arch is not null && !string.Equals(arch, row.Family, StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"--variant {row.Name} belongs to family {row.Family}, not --arch {arch}.");
            return new Choice(row.Name, null, classes);
        }
        if (arch is null) throw new ArgumentException("--config needs --arch FAMILY to say which family's keyword arguments it holds.");
        CliErrors.RequireFile(config!, "--config");
        return new Choice(arch, BackboneConfig.ParseObject(File.ReadAllText(config!.FullName), config.FullName), classes);
    }
}

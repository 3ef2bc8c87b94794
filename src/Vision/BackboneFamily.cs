using System.Text.Json.Nodes;
using MLNetExt.Torch;

namespace MLNetExt.Vision;

/// <summary>
/// One official variant: its factory name, the official constructor keyword arguments that define it (JSON), the
/// pretrained configuration of its published weights and its parameter count at 1000 classes as measured on the
/// official code, plus what the family's paper reports for it. Variants are data; a custom size is the same thing
/// with the user's keyword arguments.
/// </summary>
/// <param name="Name">Official factory name.</param>
/// <param name="Family">Family name as the CLI spells it.</param>
/// <param name="Kwargs">Official constructor keyword arguments (JSON object).</param>
/// <param name="Pretrained">Input size, normalisation and evaluation crop of the published weights.</param>
/// <param name="ParameterCount">Trainable parameters at 1000 classes, measured on the official code.</param>
/// <param name="PaperTop1">ImageNet-1K validation top-1 (percent) at the default input size as the paper reports it;
/// null where the paper has no number for this variant.</param>
/// <param name="PaperGMacs">The paper's "FLOPs" (G) at the default input size. All four papers count multiply-accumulates
/// under that name (see <see cref="MacCounter"/>); null where the paper has no number.</param>
/// <param name="PaperNote">What a reader must know to compare the paper's numbers (e.g. ImageNet-22K pre-training), or null.</param>
public sealed record BackboneVariant(string Name, string Family, string Kwargs, PretrainedConfig Pretrained, long ParameterCount,
    double? PaperTop1 = null, double? PaperGMacs = null, string? PaperNote = null)
{
    /// <summary>A fresh, mutable copy of the keyword arguments.</summary>
    public JsonObject KwargsObject() => BackboneConfig.ParseObject(Kwargs, Name);
}

/// <summary>A backbone family: its variant table and how to build a model from official keyword arguments.</summary>
public abstract class BackboneFamily
{
    /// <summary>The family name used on the command line (<c>transxnet</c>).</summary>
    public abstract string Name { get; }

    /// <summary>Every official variant, smallest first.</summary>
    public abstract IReadOnlyList<BackboneVariant> Variants { get; }

    /// <summary>The family's test row: a very small configuration (tiny widths and depths, a small input given by its
    /// pretrained configuration) that exercises every block kind of the family, for tests that iterate over the
    /// registry. Not an official variant: it is not in <see cref="Variants"/>, <see cref="Backbones.Find"/> does not
    /// know it and the CLI does not list it; build it with <see cref="Backbones.CreateTest"/>. Its parameter count is
    /// measured on this implementation.</summary>
    internal abstract BackboneVariant TestVariant { get; }

    /// <summary>The variant name of a model built from custom keyword arguments.</summary>
    protected virtual string CustomName => "custom";

    /// <summary>Builds a model from official keyword arguments. <paramref name="variant"/> is the row the arguments
    /// come from (its pretrained configuration applies), or null for a custom configuration. Implementations read
    /// every key through <paramref name="kwargs"/> and call <see cref="BackboneConfig.Finish"/> before building.</summary>
    protected internal abstract Backbone Build(BackboneConfig kwargs, BackboneVariant? variant);

    /// <summary>Adjusts keyword arguments to fit a checkpoint before building (for example a construction resolution
    /// recorded only in the shape of a position table). Default: nothing.</summary>
    protected internal virtual void InferKwargsFromCheckpoint(JsonObject kwargs, IReadOnlyList<KeyValuePair<string, Tensor>> weights) { }

    /// <summary>The keyword arguments to merge over <paramref name="kwargs"/> so that the model takes inputs of
    /// <paramref name="height"/> x <paramref name="width"/>, or null when it takes them as built (or cannot: its own
    /// <see cref="Backbone.CheckInputSize"/> says why). Default: null — the size is a property of the input alone.</summary>
    protected internal virtual JsonObject? InputSizeKwargs(JsonObject kwargs, int height, int width) => null;
}

using System.Text.Json.Nodes;
using MLNetExt.Torch;

namespace MLNetExt.Vision;

/// <summary>
/// One official variant: its factory name, the official constructor keyword arguments that define it (JSON), the
/// pretrained configuration of its published weights and its parameter count at 1000 classes as measured on the
/// official code. Variants are data; a custom size is the same thing with the user's keyword arguments.
/// </summary>
public sealed record BackboneVariant(string Name, string Family, string Kwargs, PretrainedConfig Pretrained, long ParameterCount)
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

    /// <summary>Builds a model from official keyword arguments. <paramref name="variant"/> is the row the arguments
    /// come from (its pretrained configuration applies), or null for a custom configuration. Implementations read
    /// every key through <paramref name="kwargs"/> and call <see cref="BackboneConfig.Finish"/> before building.</summary>
    protected internal abstract Backbone Build(BackboneConfig kwargs, BackboneVariant? variant);

    /// <summary>Adjusts keyword arguments to fit a checkpoint before building (for example a construction resolution
    /// recorded only in the shape of a position table). Default: nothing.</summary>
    protected internal virtual void InferKwargsFromCheckpoint(JsonObject kwargs, IReadOnlyList<KeyValuePair<string, Tensor>> weights) { }
}

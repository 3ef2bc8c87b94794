using System.Text.Json.Nodes;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Training;

/// <summary>
/// Training on from a model a training run wrote (its model.safetensors or a checkpoint), on data whose classes may have
/// changed (more photos, a new class): every backbone tensor is the file's; the classifier keeps its rows for the classes
/// the model knew, matched by name wherever they now sit, and starts fresh for new ones.
/// </summary>
internal static class ContinuedTraining
{
    /// <summary>The description of the model at <paramref name="weightsPath"/> when a training run wrote it; null for
    /// other weights (published checkpoints) and missing files (reported where they are loaded).</summary>
    public static ModelDescriptor? Read(string? weightsPath) =>
        weightsPath is not null && File.Exists(weightsPath) ? ModelDescriptor.TryRead(weightsPath) : null;

    /// <summary>The backbone for <paramref name="classes"/> started from the file of <paramref name="trained"/>
    /// (<see cref="ImageClassificationOptions.WeightsPath"/>), and the note that says what was kept.</summary>
    /// <exception cref="TrainingOptionException">The file is a model of another architecture.</exception>
    public static (Backbone Model, string Note) Build(ModelDescriptor trained, ImageClassificationOptions o, IReadOnlyList<string> classes,
        JsonObject overrides, bool sizeFromModel)
    {
        var path = o.WeightsPath!;
        string asked = o.CustomKwargs is null ? o.Model : $"{o.Model} (custom)";
        if (trained.Model != o.Model || !JsonNode.DeepEquals(trained.CustomKwargs, o.CustomKwargs))
            throw new TrainingOptionException("WeightsPath", $"is a {trained.Describe()} model, not {asked}: train on from it with the model it is " +
                (trained.CustomKwargs is null ? $"(--variant {trained.Model})" : $"(--arch {trained.Model} with the --config it was trained with)"));
        var model = o.CustomKwargs is null
            ? Backbones.Create(o.Model, classes.Count, overrides)
            : Backbones.CreateCustom(o.Model, o.CustomKwargs, classes.Count, overrides);
        try
        {
            using var file = SafeTensors.Load(path);
            var weights = TrainedModelFile.Weights(file);
            var old = trained.Classes.ToList();
            var known = classes.Select(c => old.IndexOf(c)).ToArray();   // -1: new
            using var scope = TensorScope.Begin();
            var fresh = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
            var head = model.ClassifierKeys.ToHashSet();
            // the classifier's rows by class name: the model's row where it knew the class, the fresh one where not
            var start = weights.Select(kv => !head.Contains(kv.Key) || kv.Value.Shape.Length == 0 || kv.Value.Shape[0] != trained.Classes.Count ? kv
                : new KeyValuePair<string, Tensor>(kv.Key, Tensor.Stack(known.Select((j, i) => j >= 0 ? kv.Value.Select(0, j) : fresh[kv.Key].Select(0, i)).ToArray())));
            model.LoadStateDict(start.ToList());
        }
        catch
        {
            model.Dispose();
            throw;
        }
        var kept = classes.Where(c => trained.Classes.Contains(c)).ToList();
        var added = classes.Where(c => !trained.Classes.Contains(c)).ToList();
        var dropped = trained.Classes.Where(c => !classes.Contains(c)).ToList();
        string classifier = trained.Classes.SequenceEqual(classes) ? "every tensor loaded, its classifier included"
            : kept.Count == 0 ? $"every backbone tensor loaded; the data has none of its classes ({string.Join(", ", trained.Classes)}), so the classifier starts fresh"
            : $"every backbone tensor loaded; the classifier keeps what it learned for {string.Join(", ", kept)}" +
              (added.Count > 0 ? $" and starts fresh for {string.Join(", ", added)}" : "") +
              (dropped.Count > 0 ? $"; no longer in the data: {string.Join(", ", dropped)}" : "");
        return (model, $"Continuing from {path}, a {trained.Model}{(trained.CustomKwargs is null ? "" : " (custom)")} model trained on {trained.Classes.Count} " +
                       $"classes at {trained.ImageSize} px: {classifier}" +
                       (sizeFromModel ? $"; ImageSize (--image-size) {trained.ImageSize}, the size it was trained at (give another to train at that)" : "") + ".");
    }
}

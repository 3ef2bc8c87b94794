using System.Text.Json.Nodes;
using MLNetExt.Optim;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Training;

/// <summary>
/// A run's checkpoint folder: <c>checkpoint-last</c> after every epoch (and on an interrupt), <c>checkpoint-best</c>
/// when the monitored metric improved, each written atomically with the model, the EMA, the optimizer's state
/// (whatever tensors the optimizer keeps, see <see cref="Optimizer.SaveState"/>) and the run state. A failed write is
/// reported and training goes on with the previous file intact; <see cref="LastGood"/> names the newest good one.
/// </summary>
internal sealed class CheckpointStore(string? directory, Action<string> info)
{
    public const string Last = "checkpoint-last.safetensors", Best = "checkpoint-best.safetensors";

    public string? Directory { get; } = directory;

    /// <summary>The newest intact checkpoint-last (or the resumed file), null before the first.</summary>
    public string? LastGood { get; set; }

    /// <summary>Writes <paramref name="name"/>; false when there is no folder or the write failed (reported).</summary>
    public bool Save(string name, ModelDescriptor descriptor, TrainingState state, Backbone model, WeightEma? ema,
        Optimizer optimizer, IEnumerable<(string Name, Nn.Parameter Parameter)> trained)
    {
        if (Directory is null) return false;
        var path = Path.Combine(Directory, name);
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            state.EmaUpdates = ema?.Updates ?? 0;
            var (optim, steps) = optimizer.SaveState(trained);
            state.OptimizerSteps.Clear();
            foreach (var (k, v) in steps) state.OptimizerSteps[k] = v;
            TrainingCheckpoint.Write(path, descriptor, state, model.StateDict(), ema?.State, optim);
            if (name == Last) LastGood = path;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string previous = File.Exists(path) ? $"the previous '{path}' is intact" : "no earlier checkpoint of this name exists";
            info($"Could not write checkpoint '{path}': {e.Message}. Training goes on; {previous}.");
            return false;
        }
    }

    /// <summary>The tensors under <paramref name="prefix"/> (<c>model.</c>, <c>ema.</c>, <c>optim.</c>) without it.</summary>
    public static Dictionary<string, Tensor> Section(StateDict checkpoint, string prefix) =>
        checkpoint.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    /// <summary>Restores the optimizer's state from a checkpoint onto <paramref name="device"/>.</summary>
    public static void RestoreOptimizer(Optimizer optimizer, IEnumerable<(string Name, Nn.Parameter Parameter)> trained, TrainingState state,
        StateDict checkpoint, Device device) =>
        optimizer.LoadState(trained, state.OptimizerSteps, Section(checkpoint, "optim."), device);

    /// <summary>Opens checkpoint-best when it ends <paramref name="bestEpoch"/> of the run with this fingerprint (the
    /// caller disposes it); otherwise null and what was found instead ("is missing", "holds epoch 3"...).</summary>
    public (StateDict? Checkpoint, string Found) OpenBest(int bestEpoch, JsonObject fingerprint)
    {
        var best = Path.Combine(Directory!, Best);
        if (!File.Exists(best)) return (null, "is missing");
        try
        {
            var (_, bs, bt) = TrainingCheckpoint.Read(best);
            bool sameRun = JsonNode.DeepEquals(bs.Fingerprint, fingerprint);
            if (sameRun && bs.Epoch == bestEpoch && bs.NextBatch == 0) return (bt, "");
            bt.Dispose();
            return (null, sameRun ? $"holds epoch {bs.Epoch}" : "belongs to a run with other settings");
        }
        catch (IOException e) // CheckpointException and InvalidDataException included
        {
            return (null, $"cannot be read ({e.Message})");
        }
    }
}

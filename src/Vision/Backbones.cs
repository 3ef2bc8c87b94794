using MLNetExt.Nn;
using MLNetExt.Torch;
using System.Text.Json.Nodes;
using MLNetExt.Serialization;

namespace MLNetExt.Vision;

/// <summary>
/// The registry of backbone families and their official variants, and the one way to build and load them:
/// by variant name (<c>transxnet_t</c>), or by family and official keyword arguments for a custom size.
/// </summary>
public static class Backbones
{
    /// <summary>Every family, in the order the project documents them.</summary>
    public static IReadOnlyList<BackboneFamily> Families { get; } = new BackboneFamily[]
    {
        new TransXNet.TransXNetFamily(),
        new TransNeXt.TransNeXtFamily(),
        new Smt.SmtFamily(),
        new MixFormer.MixFormerFamily(),
    };

    /// <summary>Every official variant of every family.</summary>
    public static IEnumerable<BackboneVariant> Variants => Families.SelectMany(f => f.Variants);

    /// <summary>A family by name (case-insensitive).</summary>
    public static BackboneFamily Family(string name) =>
        Families.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown backbone family '{name}'{DidYouMean(name, Families.Select(f => f.Name))}; known families: {string.Join(", ", Families.Select(f => f.Name))}.");

    /// <summary>A variant by its official factory name (case-insensitive).</summary>
    public static BackboneVariant Find(string variant) =>
        Variants.FirstOrDefault(v => string.Equals(v.Name, variant, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown backbone variant '{variant}'{DidYouMean(variant, Variants.Select(v => v.Name))}; known variants: {string.Join(", ", Variants.Select(v => v.Name))}.");

    /// <summary>" (did you mean 'x'?)" for the closest name: within a few edits, or one name a prefix of the other
    /// (smt_tiny, smt_t); "" when nothing is close.</summary>
    internal static string DidYouMean(string input, IEnumerable<string> names)
    {
        var lower = input.ToLowerInvariant();
        var best = names.Select(n => (Name: n, Distance: EditDistance(lower, n.ToLowerInvariant())))
            .Where(c => c.Distance <= Math.Max(2, lower.Length / 3) || lower.StartsWith(c.Name, StringComparison.OrdinalIgnoreCase)
                        || (lower.Length >= 3 && c.Name.StartsWith(lower, StringComparison.OrdinalIgnoreCase)))
            .OrderBy(c => c.Distance).ThenBy(c => c.Name, StringComparer.Ordinal).FirstOrDefault();
        return best.Name is null ? "" : $" (did you mean '{best.Name}'?)";
    }

    static int EditDistance(string a, string b)
    {
        var row = Enumerable.Range(0, b.Length + 1).ToArray();
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int next = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = row[j];
                row[j] = next;
            }
        }
        return row[b.Length];
    }

    /// <summary>Builds an official variant, optionally with another class count and extra keyword arguments
    /// (for example <c>{"drop_path_rate": 0.2}</c>) merged over the official ones.</summary>
    public static Backbone Create(string variant, int? numClasses = null, JsonObject? overrides = null)
    {
        var row = Find(variant);
        var kwargs = Merge(row.KwargsObject(), overrides, numClasses);
        return Family(row.Family).Build(new BackboneConfig(row.Name, kwargs), row);
    }

    /// <summary>The keyword arguments that make a variant (or a family with <paramref name="customKwargs"/>) take square
    /// or rectangular inputs of <paramref name="height"/> x <paramref name="width"/>, to pass as overrides to
    /// <see cref="Create"/> or <see cref="Load"/>; null when the model takes that size as built. Only TransNeXt needs
    /// any: it builds its position-bias and length-scale tables for one resolution (<c>img_size</c>), and the official
    /// way to fine-tune or evaluate it at another keeps <c>pretrain_size</c> at its weights' resolution, so the
    /// published weights load unchanged.</summary>
    public static JsonObject? InputSizeKwargs(string variantOrFamily, JsonObject? customKwargs, int height, int width)
    {
        var row = customKwargs is null ? Find(variantOrFamily) : null;
        var family = row is null ? Family(variantOrFamily) : Family(row.Family);
        return family.InputSizeKwargs(customKwargs ?? row!.KwargsObject(), height, width);
    }

    /// <summary>Builds a family's test row (<see cref="BackboneFamily.TestVariant"/>), optionally with another class count
    /// and extra keyword arguments; the model's pretrained configuration is the row's (its small input size).</summary>
    internal static Backbone CreateTest(BackboneFamily family, int? numClasses = null, JsonObject? overrides = null)
    {
        var row = family.TestVariant;
        var kwargs = Merge(row.KwargsObject(), overrides, numClasses);
        return family.Build(new BackboneConfig(row.Name, kwargs), row);
    }

    /// <summary>Builds a custom size of <paramref name="family"/> from official keyword arguments, optionally with
    /// extra ones (<paramref name="overrides"/>, for example a drop-path rate or <see cref="InputSizeKwargs"/>) merged
    /// over them; <paramref name="kwargs"/> itself is not changed.</summary>
    public static Backbone CreateCustom(string family, JsonObject kwargs, int? numClasses = null, JsonObject? overrides = null)
    {
        var f = Family(family);
        var merged = Merge(Merge(new JsonObject(), kwargs, null), overrides, numClasses);
        return f.Build(new BackboneConfig($"{f.Name} (custom)", merged), null);
    }

    /// <summary>
    /// Builds a model (a variant, or a family with custom keyword arguments) and loads weights from a file
    /// (torch.save checkpoint, possibly wrapped or DataParallel-prefixed, or safetensors). With another
    /// <paramref name="numClasses"/> than the checkpoint's, the head is re-initialised and reported.
    /// </summary>
    public static (Backbone Model, LoadPretrainedResult Load) Load(string variantOrFamily, string weightsPath, int? numClasses = null, JsonObject? customKwargs = null,
        JsonObject? overrides = null)
    {
        using var weights = LoadWeightsFile(weightsPath);
        BackboneVariant? row = customKwargs is null ? Find(variantOrFamily) : null;
        var family = row is null ? Family(variantOrFamily) : Family(row.Family);
        var kwargs = Merge(Merge(row?.KwargsObject() ?? new JsonObject(), customKwargs, numClasses), overrides, null);
        family.InferKwargsFromCheckpoint(kwargs, weights);
        var model = family.Build(new BackboneConfig(row?.Name ?? $"{family.Name} (custom)", kwargs), row);
        try
        {
            return (model, model.LoadPretrained(weights));
        }
        catch (StateDictMismatchException e)
        {
            string name = model.Variant;
            int own = model.StateDict().Count;
            model.Dispose();
            var r = e.Result;
            if (r.MissingKeys.Count * 2 <= own)
                throw new StateDictMismatchException($"{name} (weights '{weightsPath}'; {Resemblance(weights)})", r);
            static string First(IReadOnlyList<string> keys) => string.Join(", ", keys.Take(3)) + (keys.Count > 3 ? ", ..." : "");
            throw new StateDictMismatchException(r,
                $"The weights in '{weightsPath}' are not {name} weights: {r.MissingKeys.Count} of the model's {own} entries are missing " +
                $"({First(r.MissingKeys)}) and {r.UnexpectedKeys.Count} of the file's {weights.Count} are unknown ({First(r.UnexpectedKeys)}); " +
                $"{Resemblance(weights)}.");
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Which model a set of weights looks like, in words: the family whose key names (block numbers
    /// ignored) overlap most with the smallest variant's, and that family's variant closest in parameter count.
    /// Builds one small model per family, so it is meant for error messages only.</summary>
    public static string Resemblance(IReadOnlyList<KeyValuePair<string, Tensor>> weights)
    {
        static string Pattern(string key) => System.Text.RegularExpressions.Regex.Replace(key, "[0-9]+", "#");
        static bool IsStatistic(string key) => key.EndsWith("running_mean", StringComparison.Ordinal) ||
                                               key.EndsWith("running_var", StringComparison.Ordinal) || key.EndsWith("num_batches_tracked", StringComparison.Ordinal);
        var given = weights.Select(kv => Pattern(kv.Key.StartsWith("module.", StringComparison.Ordinal) ? kv.Key[7..] : kv.Key)).ToHashSet();
        long count = weights.Where(kv => !IsStatistic(kv.Key)).Sum(kv => kv.Value.NumEl);
        (BackboneFamily Family, double Score)? best = null;
        foreach (var f in Families)
        {
            var smallest = f.Variants.OrderBy(v => v.ParameterCount).First();
            using var probe = Create(smallest.Name);
            var own = probe.StateDict().Select(kv => Pattern(kv.Key)).ToHashSet();
            double score = (double)own.Intersect(given).Count() / own.Union(given).Count();
            if (best is null || score > best.Value.Score) best = (f, score);
        }
        if (best is null || best.Value.Score < 0.2)
            return $"the file's {weights.Count} tensors ({count:N0} parameters) resemble none of the families {string.Join(", ", Families.Select(f => f.Name))}";
        var closest = best.Value.Family.Variants.MinBy(v => Math.Abs(v.ParameterCount - count))!;
        return $"they look like {best.Value.Family.Name} weights, closest to {closest.Name} ({count:N0} parameters in the file, {closest.Name} has {closest.ParameterCount:N0} with a 1000-class head)";
    }

    /// <summary>Reads model weights from a checkpoint file: safetensors by header, else a torch.save file whose
    /// model state is found under the usual wrappers (<c>state_dict</c>, <c>model</c>, <c>module.</c> prefix).</summary>
    public static StateDict LoadWeightsFile(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        return SafeTensors.IsSafeTensorsFile(path) ? SafeTensors.Load(path) : TorchCheckpoint.LoadModelWeights(path);
    }

    static JsonObject Merge(JsonObject baseArgs, JsonObject? overrides, int? numClasses)
    {
        if (overrides is not null)
            foreach (var (k, v) in overrides) baseArgs[k] = v?.DeepClone();
        if (numClasses is int n)
        {
            if (n < 0) throw new ArgumentOutOfRangeException(nameof(numClasses), n, "The class count must be 0 (no head) or more.");
            baseArgs["num_classes"] = n;
        }
        return baseArgs;
    }
}

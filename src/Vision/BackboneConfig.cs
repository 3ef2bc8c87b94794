using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MLNetExt.Vision;

/// <summary>A backbone configuration that cannot be built; the message names the key, what was expected and what was found.</summary>
public sealed class BackboneConfigException : ArgumentException
{
    /// <summary>Creates the exception with a complete message.</summary>
    public BackboneConfigException(string message) : base(message) { }
}

/// <summary>
/// A strict reader over the official constructor keyword arguments of a family, given as a JSON object with the
/// official argument names (<c>{"embed_dims": [48, 96, 224, 448], "drop_path_rate": 0.1}</c>). Every key must be
/// consumed by a getter, <see cref="DefaultOnly"/> or <see cref="Ignore"/>; <see cref="Finish"/> rejects the rest by
/// name, listing the keys the family knows.
/// </summary>
public sealed class BackboneConfig
{
    readonly JsonObject _args;
    readonly HashSet<string> _known = new(StringComparer.Ordinal);

    /// <summary>Wraps <paramref name="args"/>; <paramref name="context"/> names the family or variant in messages.</summary>
    public BackboneConfig(string context, JsonObject args)
    {
        Context = context;
        _args = args ?? throw new ArgumentNullException(nameof(args));
    }

    /// <summary>Parses a JSON object text (a custom configuration file).</summary>
    public static JsonObject ParseObject(string json, string source)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new BackboneConfigException($"{source}: not valid JSON ({e.Message})."); }
        return node as JsonObject ?? throw new BackboneConfigException($"{source}: expected a JSON object of constructor keyword arguments, found {Describe(node)}.");
    }

    /// <summary>Family or variant named in messages.</summary>
    public string Context { get; }

    /// <summary>The raw arguments.</summary>
    public JsonObject Arguments => _args;

    /// <summary>Whether the key was given (and is not null).</summary>
    public bool Has(string key)
    {
        _known.Add(key);
        return _args[key] is not null;
    }

    /// <summary>The raw value of a key (null when absent); marks the key as consumed.</summary>
    public JsonNode? Raw(string key)
    {
        _known.Add(key);
        return _args[key];
    }

    /// <summary>An integer argument.</summary>
    public int Int(string key, int defaultValue) => Get(key, defaultValue, n => ToInt(key, n));

    /// <summary>A floating-point argument (integers accepted).</summary>
    public double Double(string key, double defaultValue) => Get(key, defaultValue, n => ToDouble(key, n));

    /// <summary>A floating-point argument that may be null (Python None).</summary>
    public double? NullableDouble(string key, double? defaultValue)
    {
        _known.Add(key);
        if (!_args.ContainsKey(key)) return defaultValue;
        var n = _args[key];
        return n is null ? null : ToDouble(key, n);
    }

    /// <summary>A boolean argument.</summary>
    public bool Bool(string key, bool defaultValue) => Get(key, defaultValue, n =>
        n is JsonValue v && v.TryGetValue(out bool b) ? b : throw Wrong(key, "true or false", n));

    /// <summary>A string argument.</summary>
    public string String(string key, string defaultValue) => Get(key, defaultValue, n =>
        n is JsonValue v && v.TryGetValue(out string? s) ? s : throw Wrong(key, "a string", n));

    /// <summary>A list of integers; <paramref name="length"/> (when given) is enforced.</summary>
    public int[] Ints(string key, int[] defaultValue, int? length = null) =>
        CheckLength(key, Get(key, defaultValue, n => ToArray(key, n, "integers", x => ToInt(key, x))), length);

    /// <summary>A list of floating-point numbers; <paramref name="length"/> (when given) is enforced.</summary>
    public double[] Doubles(string key, double[] defaultValue, int? length = null) =>
        CheckLength(key, Get(key, defaultValue, n => ToArray(key, n, "numbers", x => ToDouble(key, x))), length);

    /// <summary>A list of booleans; <paramref name="length"/> (when given) is enforced.</summary>
    public bool[] Bools(string key, bool[] defaultValue, int? length = null) =>
        CheckLength(key, Get(key, defaultValue, n => ToArray(key, n, "booleans",
            x => x is JsonValue v && v.TryGetValue(out bool b) ? b : throw Wrong(key, "booleans", n))), length);

    /// <summary>A key that only describes the default behaviour (a norm or activation equal to the default): accepted
    /// when absent or when <paramref name="isDefault"/> holds, otherwise an error saying what is supported.</summary>
    public void DefaultOnly(string key, Func<JsonNode?, bool> isDefault, string expected)
    {
        _known.Add(key);
        if (!_args.ContainsKey(key)) return;
        var n = _args[key];
        if (!isDefault(n))
            throw new BackboneConfigException($"{Context}: '{key}' = {Describe(n)} is not supported; only the default ({expected}) is implemented.");
    }

    /// <summary>A key with no effect on the computation or the weights (for example activation checkpointing).</summary>
    public void Ignore(string key, string why)
    {
        _known.Add(key);
        _ = why;
    }

    /// <summary>Throws for every key no getter consumed, naming them and listing the known keys.</summary>
    public void Finish()
    {
        var unknown = _args.Select(kv => kv.Key).Where(k => !_known.Contains(k)).ToList();
        if (unknown.Count == 0) return;
        throw new BackboneConfigException(
            $"{Context}: unknown or unsupported argument{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(k => $"'{k}'"))}; " +
            $"known arguments: {string.Join(", ", _known.OrderBy(k => k, StringComparer.Ordinal))}.");
    }

    T Get<T>(string key, T defaultValue, Func<JsonNode, T> convert)
    {
        _known.Add(key);
        var n = _args[key];
        return n is null ? defaultValue : convert(n);
    }

    T[] CheckLength<T>(string key, T[] values, int? length)
    {
        if (length is int l && values.Length != l)
            throw new BackboneConfigException($"{Context}: '{key}' must have {l} entries (one per stage), found {values.Length}: [{string.Join(", ", values)}].");
        return values;
    }

    T[] ToArray<T>(string key, JsonNode n, string what, Func<JsonNode, T> convert) =>
        n is JsonArray a ? a.Select(x => x is null ? throw Wrong(key, what, n) : convert(x)).ToArray() : throw Wrong(key, $"a list of {what}", n);

    int ToInt(string key, JsonNode n)
    {
        if (n is JsonValue v)
        {
            if (v.TryGetValue(out int i)) return i;
            if (v.TryGetValue(out long l) && l is >= int.MinValue and <= int.MaxValue) return (int)l;
            if (v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        }
        throw Wrong(key, "an integer", n);
    }

    double ToDouble(string key, JsonNode n) =>
        n is JsonValue v && v.TryGetValue(out double d) ? d : throw Wrong(key, "a number", n);

    BackboneConfigException Wrong(string key, string expected, JsonNode? found) =>
        new($"{Context}: '{key}' must be {expected}, found {Describe(found)}.");

    static string Describe(JsonNode? n) => n is null ? "null" : n.ToJsonString();
}

using System.Collections;
using System.Diagnostics.CodeAnalysis;
using MLNetExt.Torch;

namespace MLNetExt.Serialization;

/// <summary>
/// Named tensors in a fixed order: what a checkpoint or a safetensors file holds, and what a module's
/// weights are loaded from. The dict owns its tensors: <see cref="Dispose"/> frees them all, so keep a
/// tensor beyond the dict's life by cloning it.
/// </summary>
public sealed class StateDict : IReadOnlyList<KeyValuePair<string, Tensor>>, IDisposable
{
    readonly List<KeyValuePair<string, Tensor>> _items = new();
    readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

    /// <summary>An empty dict; fill it with <see cref="Add"/>.</summary>
    public StateDict() { }

    /// <summary>Number of tensors.</summary>
    public int Count => _items.Count;

    /// <summary>The names in order.</summary>
    public IReadOnlyList<string> Names => _items.Select(i => i.Key).ToArray();

    /// <summary>String metadata stored with the tensors (the safetensors <c>__metadata__</c>); empty when none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; set; } = new Dictionary<string, string>();

    /// <summary>The entry at <paramref name="index"/>.</summary>
    public KeyValuePair<string, Tensor> this[int index] => _items[index];

    /// <summary>The tensor named <paramref name="name"/>; the exception lists near names when it is absent.</summary>
    public Tensor this[string name] => TryGetValue(name, out var t) ? t : throw new KeyNotFoundException(MissingMessage(name));

    /// <summary>True when a tensor has this name.</summary>
    public bool ContainsKey(string name) => _index.ContainsKey(name);

    /// <summary>Looks a tensor up by name.</summary>
    public bool TryGetValue(string name, [MaybeNullWhen(false)] out Tensor tensor)
    {
        if (_index.TryGetValue(name, out int i)) { tensor = _items[i].Value; return true; }
        tensor = null;
        return false;
    }

    /// <summary>Appends a tensor; the dict takes ownership of it.</summary>
    /// <exception cref="ArgumentException">The name is already present.</exception>
    public void Add(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(tensor);
        if (!_index.TryAdd(name, _items.Count))
            throw new ArgumentException($"The state dict already has a tensor named '{name}'.", nameof(name));
        _items.Add(new(name, tensor));
    }

    /// <summary>Removes <paramref name="prefix"/> from the front of every name that has it, e.g. the
    /// <c>module.</c> that <c>nn.DataParallel</c> adds. Returns this dict.</summary>
    /// <exception cref="InvalidOperationException">Stripping would make two names equal.</exception>
    public StateDict StripPrefix(string prefix)
    {
        var renamed = _items.Select(i => new KeyValuePair<string, Tensor>(
            i.Key.StartsWith(prefix, StringComparison.Ordinal) ? i.Key[prefix.Length..] : i.Key, i.Value)).ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in renamed)
            if (!seen.Add(r.Key))
                throw new InvalidOperationException($"Stripping '{prefix}' would give two tensors the name '{r.Key}'.");
        _items.Clear();
        _index.Clear();
        foreach (var r in renamed) Add(r.Key, r.Value);
        return this;
    }

    /// <summary>Frees every tensor and empties the dict. Safe to call twice.</summary>
    public void Dispose()
    {
        foreach (var i in _items) i.Value.Dispose();
        _items.Clear();
        _index.Clear();
    }

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator() => _items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() => $"StateDict with {Count} tensors";

    string MissingMessage(string name)
    {
        // Suggest names sharing the last component, which catches prefix mismatches ("module.", "model.").
        string last = name[(name.LastIndexOf('.') + 1)..];
        var near = _items.Select(i => i.Key).Where(k => k.EndsWith("." + last, StringComparison.Ordinal) || k == last).Take(5).ToList();
        return $"No tensor named '{name}' among {Count}" + (near.Count > 0 ? $"; similar names: {string.Join(", ", near)}." : ".");
    }
}

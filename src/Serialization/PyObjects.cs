using System.Collections;
using System.Globalization;
using System.Numerics;

namespace MLNetExt.Serialization;

/// <summary>A Python <c>dict</c> or <c>collections.OrderedDict</c> read from a pickle: key/value pairs in
/// insertion order. Keys are usually strings, but may be longs (optimizer state), tuples or None.</summary>
internal sealed class PyDict : IReadOnlyList<KeyValuePair<object?, object?>>
{
    readonly List<KeyValuePair<object?, object?>> _items = new();
    readonly Dictionary<object, int> _index = new(PyKeyComparer.Instance);

    internal PyDict(string typeName) => TypeName = typeName;

    /// <summary><c>builtins.dict</c> or <c>collections.OrderedDict</c>.</summary>
    public string TypeName { get; }

    /// <summary>Instance attributes pickled with the dict, e.g. the <c>_metadata</c> torch attaches to a
    /// state_dict (a dict of attribute name to value), or null.</summary>
    public object? Attributes { get; internal set; }

    /// <summary>Number of entries.</summary>
    public int Count => _items.Count;

    /// <summary>The entry at <paramref name="index"/> in insertion order.</summary>
    public KeyValuePair<object?, object?> this[int index] => _items[index];

    /// <summary>The value under a string key; throws <see cref="KeyNotFoundException"/> when absent.</summary>
    public object? this[string key] => TryGetValue(key, out var v) ? v
        : throw new KeyNotFoundException($"The dict has no key '{key}'; its keys are: {string.Join(", ", _items.Take(20).Select(i => PyFormat.Repr(i.Key)))}{(Count > 20 ? ", ..." : "")}.");

    /// <summary>Looks a key up with Python's equality (1 == 1.0 == True; tuples compare by value).</summary>
    public bool TryGetValue(object? key, out object? value)
    {
        if (_index.TryGetValue(PyKeyComparer.Wrap(key), out int i)) { value = _items[i].Value; return true; }
        value = null;
        return false;
    }

    /// <summary>True when <paramref name="key"/> is present.</summary>
    public bool ContainsKey(object? key) => _index.ContainsKey(PyKeyComparer.Wrap(key));

    /// <summary>Python assignment: a new key is appended, an existing one keeps its position.</summary>
    internal void Set(object? key, object? value)
    {
        var k = PyKeyComparer.Wrap(key);
        if (_index.TryGetValue(k, out int i)) _items[i] = new(_items[i].Key, value);
        else
        {
            _index[k] = _items.Count;
            _items.Add(new(key, value));
        }
    }

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<object?, object?>> GetEnumerator() => _items.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() => $"{TypeName} with {Count} entries";
}

/// <summary>A Python tuple (lists are read as <see cref="List{T}"/> of object).</summary>
internal sealed class PyTuple : IReadOnlyList<object?>
{
    internal static readonly PyTuple Empty = new(Array.Empty<object?>());
    readonly object?[] _items;

    internal PyTuple(object?[] items) => _items = items;

    /// <summary>Number of items.</summary>
    public int Count => _items.Length;

    /// <summary>The item at <paramref name="index"/>.</summary>
    public object? this[int index] => _items[index];

    /// <inheritdoc/>
    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)_items).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => _items.GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() => PyFormat.Repr(this);
}

/// <summary>A reference to a Python class or function by name (a pickle GLOBAL that was not called),
/// e.g. <c>torch.float32</c>.</summary>
internal sealed record PyGlobal(string Module, string Name)
{
    /// <summary><c>module.name</c>.</summary>
    public string FullName => $"{Module}.{Name}";

    /// <inheritdoc/>
    public override string ToString() => FullName;
}

/// <summary>
/// Any Python object the reader does not interpret (for example <c>argparse.Namespace</c>, numpy scalars,
/// a pickled <c>nn.Module</c>, <c>torch.device</c>, sets): its class, the constructor arguments, the state
/// set by <c>__setstate__</c> (usually a <see cref="PyDict"/> of attributes) and any items appended or
/// assigned to it. Reading such objects never fails; they are kept so other entries load.
/// </summary>
internal sealed class PyObject
{
    internal PyObject(string typeName, IReadOnlyList<object?> args)
    {
        TypeName = typeName;
        Args = args;
    }

    /// <summary>Fully qualified class or function name, e.g. <c>argparse.Namespace</c>; <c>builtins.set</c> for sets.</summary>
    public string TypeName { get; }

    /// <summary>Arguments the pickle passed to the class or function.</summary>
    public IReadOnlyList<object?> Args { get; }

    /// <summary>The pickled state (the object's <c>__dict__</c> for plain classes), or null.</summary>
    public object? State { get; internal set; }

    /// <summary>Items appended to the object (the members of a set, the items of a list subclass).</summary>
    public List<object?> Items { get; } = new();

    /// <summary>Key/value pairs assigned to the object (dict subclasses such as <c>defaultdict</c>).</summary>
    public List<KeyValuePair<object?, object?>> DictItems { get; } = new();

    /// <summary>The storage behind a bare pickled storage object; null otherwise.</summary>
    internal TorchStorage? Storage { get; init; }

    /// <summary>An attribute from the pickled state (a <c>__dict__</c>, or the <c>(dict, slots)</c> pair
    /// classes with <c>__slots__</c> use); false when there is none.</summary>
    public bool TryGetAttribute(string name, out object? value)
    {
        foreach (var part in State is PyTuple t ? t : (IEnumerable<object?>)new[] { State })
            if (part is PyDict d && d.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    /// <inheritdoc/>
    public override string ToString() => PyFormat.Repr(this);
}

/// <summary>Python-like formatting for messages and names.</summary>
internal static class PyFormat
{
    /// <summary>A short description; nesting is cut off so hostile input cannot exhaust the stack.</summary>
    public static string Repr(object? v) => Repr(v, 0);

    static string Repr(object? v, int depth) => v switch
    {
        null => "None",
        string s => "'" + (s.Length > 200 ? s[..200] + "..." : s) + "'",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        BigInteger b => b.ToString(CultureInfo.InvariantCulture),
        byte[] b => $"b<{b.Length} bytes>",
        PyTuple or PyObject when depth > 3 => "...",
        PyTuple t => "(" + string.Join(", ", t.Take(8).Select(x => Repr(x, depth + 1))) + (t.Count > 8 ? ", ..." : t.Count == 1 ? "," : "") + ")",
        PyObject o => $"{o.TypeName}({string.Join(", ", o.Args.Take(8).Select(x => Repr(x, depth + 1)))}{(o.Args.Count > 8 ? ", ..." : "")})",
        List<object?> l => $"list of {l.Count}",
        PyDict d => d.ToString(),
        _ => v.ToString() ?? v.GetType().Name,
    };

    /// <summary>A dict key as it appears in a flattened name.</summary>
    public static string KeyName(object? k) => k switch
    {
        string s => s,
        PyTuple t => string.Join(".", t.Select(KeyName)),
        _ => Repr(k),
    };
}

/// <summary>Python dict-key equality: numbers compare by value across bool/int/float, strings ordinally,
/// tuples element-wise; anything else by identity.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();
    static readonly object s_none = new();

    public static object Wrap(object? key) => key switch
    {
        null => s_none,
        bool b => b ? 1L : 0L,
        int i => (long)i,
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => (long)d,
        BigInteger b when b >= long.MinValue && b <= long.MaxValue => (long)b,
        _ => key,
    };

    public new bool Equals(object? x, object? y) => Eq(x, y, 0);

    static bool Eq(object? x, object? y, int depth)
    {
        if (ReferenceEquals(x, y)) return true;
        if (x is null || y is null) return false;
        x = Wrap(x);
        y = Wrap(y);
        if (x is PyTuple a && y is PyTuple b && depth < 64)
        {
            if (a.Count != b.Count) return false;
            for (int i = 0; i < a.Count; i++) if (!Eq(a[i], b[i], depth + 1)) return false;
            return true;
        }
        return x switch
        {
            string s => y is string t && string.Equals(s, t, StringComparison.Ordinal),
            long l => y is long m && l == m,
            double d => y is double e && d.Equals(e),
            BigInteger big => y is BigInteger c && big == c,
            _ => false,
        };
    }

    public int GetHashCode(object obj) => Hash(obj, 0);

    static int Hash(object? o, int depth)
    {
        o = Wrap(o);
        switch (o)
        {
            case string s: return StringComparer.Ordinal.GetHashCode(s);
            case long or double or BigInteger: return o.GetHashCode();
            case PyTuple t:
                if (depth >= 4) return t.Count;
                var h = new HashCode();
                foreach (var item in t) h.Add(Hash(item, depth + 1));
                return h.ToHashCode();
            default: return System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(o);
        }
    }
}

using System.Collections;
using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary><c>nn.Sequential</c>: children named "0", "1", ... applied in order. Intermediate results are
/// disposed as soon as the next layer has consumed them.</summary>
public sealed class Sequential : Module<Tensor, Tensor>, IEnumerable<Module<Tensor, Tensor>>
{
    readonly List<Module<Tensor, Tensor>> _layers = new();

    /// <summary>Creates the container from layers.</summary>
    public Sequential(params Module<Tensor, Tensor>[] layers)
    {
        foreach (var l in layers) Append(l);
    }

    /// <summary>Appends a layer under the next index.</summary>
    public Sequential Append(Module<Tensor, Tensor> layer)
    {
        RegisterModule(_layers.Count.ToString(), layer);
        _layers.Add(layer);
        return this;
    }

    /// <summary>Layer <paramref name="index"/>.</summary>
    public Module<Tensor, Tensor> this[int index] => _layers[index];

    /// <summary>Number of layers.</summary>
    public int Count => _layers.Count;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (_layers.Count == 0) return input.Alias();
        var x = _layers[0].Call(input);
        for (int i = 1; i < _layers.Count; i++)
        {
            var next = _layers[i].Call(x);
            x.Dispose();
            x = next;
        }
        return x;
    }

    /// <inheritdoc/>
    public IEnumerator<Module<Tensor, Tensor>> GetEnumerator() => _layers.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary><c>nn.ModuleList</c>: children named "0", "1", ... with no forward of its own.</summary>
public sealed class ModuleList<T> : Module, IReadOnlyList<T> where T : Module
{
    readonly List<T> _items = new();

    /// <summary>Creates the list.</summary>
    public ModuleList(params T[] items)
    {
        foreach (var m in items) Add(m);
    }

    /// <summary>Appends a module under the next index.</summary>
    public void Add(T module)
    {
        RegisterModule(_items.Count.ToString(), module);
        _items.Add(module);
    }

    /// <inheritdoc/>
    public T this[int index] => _items[index];

    /// <inheritdoc/>
    public int Count => _items.Count;

    /// <inheritdoc/>
    public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary><c>nn.ParameterList</c>: parameters named "0", "1", ...</summary>
public sealed class ParameterList : Module, IReadOnlyList<Parameter>
{
    readonly List<Parameter> _items = new();

    /// <summary>Creates the list.</summary>
    public ParameterList(params Parameter[] items)
    {
        foreach (var p in items) Add(p);
    }

    /// <summary>Appends a parameter under the next index.</summary>
    public void Add(Parameter parameter)
    {
        RegisterParameter(_items.Count.ToString(), parameter);
        _items.Add(parameter);
    }

    /// <inheritdoc/>
    public Parameter this[int index] => _items[index];

    /// <inheritdoc/>
    public int Count => _items.Count;

    /// <inheritdoc/>
    public IEnumerator<Parameter> GetEnumerator() => _items.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

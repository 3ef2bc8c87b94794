using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary>A trainable tensor owned by a <see cref="Module"/>. It is never freed by a <see cref="TensorScope"/>.</summary>
public sealed class Parameter : Tensor
{
    /// <summary>Makes a leaf parameter from <paramref name="data"/>, taking ownership of it (the data object is
    /// consumed: do not use or dispose it afterwards).</summary>
    public Parameter(Tensor data, bool requiresGrad = true) : base(Detached(data))
    {
        DetachFromScope();
        if (requiresGrad) RequiresGrad = true;
    }

    static IntPtr Detached(Tensor data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var handle = data.Detach().TakeHandle();
        data.Dispose();
        return handle;
    }
}

/// <summary>How <see cref="Module.LoadStateDict"/> matched a state dict against a module.</summary>
/// <param name="MissingKeys">Module entries the source did not provide.</param>
/// <param name="UnexpectedKeys">Source entries the module does not have.</param>
/// <param name="ShapeMismatches">Entries present on both sides with different shapes (never loaded).</param>
public sealed record LoadStateDictResult(
    IReadOnlyList<string> MissingKeys,
    IReadOnlyList<string> UnexpectedKeys,
    IReadOnlyList<(string Key, long[] Expected, long[] Found)> ShapeMismatches)
{
    /// <summary>True when every key matched with the right shape.</summary>
    public bool IsExactMatch => MissingKeys.Count == 0 && UnexpectedKeys.Count == 0 && ShapeMismatches.Count == 0;

    /// <summary>A multi-line report naming every problem key.</summary>
    public string Describe()
    {
        var lines = new List<string>();
        if (MissingKeys.Count > 0) lines.Add($"missing keys ({MissingKeys.Count}): {string.Join(", ", MissingKeys)}");
        if (UnexpectedKeys.Count > 0) lines.Add($"unexpected keys ({UnexpectedKeys.Count}): {string.Join(", ", UnexpectedKeys)}");
        foreach (var (k, e, f) in ShapeMismatches)
            lines.Add($"size mismatch for {k}: the module has [{string.Join(", ", e)}], the checkpoint has [{string.Join(", ", f)}]");
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>A state dict that does not fit a module; the message lists every offending key.</summary>
public sealed class StateDictMismatchException : InvalidOperationException
{
    /// <summary>The full comparison.</summary>
    public LoadStateDictResult Result { get; }

    internal StateDictMismatchException(string module, LoadStateDictResult result)
        : base($"Error(s) in loading state_dict for {module}:{Environment.NewLine}{result.Describe()}") => Result = result;

    /// <summary>With a message of the caller's (for weights that are not this model's at all, where listing every
    /// key helps nobody).</summary>
    internal StateDictMismatchException(LoadStateDictResult result, string message) : base(message) => Result = result;
}

/// <summary>
/// Base of every layer and model. Children, parameters and buffers are registered explicitly in the
/// constructor under their PyTorch names, in upstream order, so <see cref="StateDict"/> keys and order match
/// the official implementation (never inferred from fields). A module owns what it registers and frees it in
/// <see cref="Dispose"/>.
/// </summary>
public abstract class Module : IDisposable
{
    readonly List<(string Name, Module Module)> _children = new();
    readonly List<(string Name, Parameter Value)> _parameters = new();
    readonly List<(string Name, Tensor Value, bool Persistent)> _buffers = new();
    readonly HashSet<string> _names = new();
    bool _disposed;

    /// <summary>True in training mode (dropout, drop-path and batch-norm statistics active).</summary>
    public bool Training { get; private set; } = true;

    void ClaimName(string name, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name.Contains('.')) throw new ArgumentException($"{what} name '{name}' must not contain '.'", nameof(name));
        if (!_names.Add(name)) throw new InvalidOperationException($"{GetType().Name} already has a member named '{name}'.");
    }

    /// <summary>Registers a child module under <paramref name="name"/> and returns it.</summary>
    protected T RegisterModule<T>(string name, T module) where T : Module
    {
        ArgumentNullException.ThrowIfNull(module);
        ClaimName(name, "Module");
        _children.Add((name, module));
        return module;
    }

    /// <summary>Registers a parameter under <paramref name="name"/> and returns it.</summary>
    protected Parameter RegisterParameter(string name, Parameter parameter)
    {
        ArgumentNullException.ThrowIfNull(parameter);
        ClaimName(name, "Parameter");
        _parameters.Add((name, parameter));
        return parameter;
    }

    /// <summary>Registers a buffer (state that is not trained), taking ownership of it. Non-persistent buffers
    /// are left out of <see cref="StateDict"/>, as in PyTorch.</summary>
    protected Tensor RegisterBuffer(string name, Tensor buffer, bool persistent = true)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ClaimName(name, "Buffer");
        buffer.DetachFromScope();
        _buffers.Add((name, buffer, persistent));
        return buffer;
    }

    /// <summary>Replaces a registered child (e.g. a classifier head), disposing the old one.</summary>
    protected T ReplaceModule<T>(string name, T module) where T : Module
    {
        int i = _children.FindIndex(c => c.Name == name);
        if (i < 0) throw new KeyNotFoundException($"{GetType().Name} has no child module named '{name}'.");
        _children[i].Module.Dispose();
        _children[i] = (name, module);
        return module;
    }

    /// <summary>Replaces a registered buffer's value (e.g. resolution-dependent tables), disposing the old one.</summary>
    protected Tensor ReplaceBuffer(string name, Tensor buffer)
    {
        int i = _buffers.FindIndex(b => b.Name == name);
        if (i < 0) throw new KeyNotFoundException($"{GetType().Name} has no buffer named '{name}'.");
        _buffers[i].Value.Dispose();
        buffer.DetachFromScope();
        _buffers[i] = (name, buffer, _buffers[i].Persistent);
        return buffer;
    }

    /// <summary>Direct children in registration order.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => _children;

    /// <summary>This module and all descendants, depth first, with dotted paths ("" for this one).</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (name, child) in _children)
            foreach (var m in child.NamedModules(Join(prefix, name)))
                yield return m;
    }

    /// <summary>Parameters with dotted names, in PyTorch's order (own first, then children). A parameter shared
    /// by two modules is listed once.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters()
    {
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var (prefix, m) in NamedModules())
            foreach (var (name, p) in m._parameters)
                if (seen.Add(p)) yield return (Join(prefix, name), p);
    }

    /// <summary>All parameters (see <see cref="NamedParameters"/>).</summary>
    public IEnumerable<Parameter> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>Buffers with dotted names, persistent or not.</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers()
    {
        foreach (var (prefix, m) in NamedModules())
            foreach (var (name, b, _) in m._buffers)
                yield return (Join(prefix, name), b);
    }

    /// <summary>Number of parameter elements (each shared parameter counted once).</summary>
    public long ParameterCount() => Parameters().Sum(p => p.NumEl);

    static string Join(string prefix, string name) => prefix.Length == 0 ? name : prefix + "." + name;

    /// <summary>
    /// Parameters and persistent buffers in PyTorch's <c>state_dict()</c> order: each module's own parameters,
    /// then its buffers, then its children recursively. The tensors are the module's own (not copies): do not
    /// dispose them; clone what must outlive the module.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDict()
    {
        var result = new List<KeyValuePair<string, Tensor>>();
        Collect(this, "", result);
        return result;

        static void Collect(Module m, string prefix, List<KeyValuePair<string, Tensor>> into)
        {
            foreach (var (name, p) in m._parameters) into.Add(new(Join(prefix, name), p));
            foreach (var (name, b, persistent) in m._buffers)
                if (persistent) into.Add(new(Join(prefix, name), b));
            foreach (var (name, child) in m._children) Collect(child, Join(prefix, name), into);
        }
    }

    /// <summary>Detached copies of every <see cref="StateDict"/> entry, owned by the caller (snapshots for EMA, best
    /// weights, temporary swaps).</summary>
    public List<KeyValuePair<string, Tensor>> CloneStateDict() =>
        StateDict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.Detach().Clone().DetachFromScope())).ToList();

    /// <summary>
    /// Copies matching entries of <paramref name="source"/> into this module's parameters and buffers (converting
    /// dtype and device). Shape mismatches always fail; with <paramref name="strict"/> missing and unexpected keys
    /// fail too. On failure nothing is modified and the exception lists every offending key.
    /// </summary>
    public LoadStateDictResult LoadStateDict(IEnumerable<KeyValuePair<string, Tensor>> source, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(source);
        var own = StateDict();
        var given = new Dictionary<string, Tensor>();
        var order = new List<string>();
        foreach (var (k, v) in source)
        {
            if (given.TryAdd(k, v)) order.Add(k);
        }
        var ownKeys = new HashSet<string>(own.Select(kv => kv.Key));
        var missing = own.Where(kv => !given.ContainsKey(kv.Key)).Select(kv => kv.Key).ToList();
        var unexpected = order.Where(k => !ownKeys.Contains(k)).ToList();
        var mismatched = new List<(string, long[], long[])>();
        foreach (var (k, t) in own)
        {
            if (!given.TryGetValue(k, out var src)) continue;
            var expected = t.Shape;
            var found = src.Shape;
            if (!expected.SequenceEqual(found)) mismatched.Add((k, expected, found));
        }
        var result = new LoadStateDictResult(missing, unexpected, mismatched);
        if (mismatched.Count > 0 || (strict && !result.IsExactMatch))
            throw new StateDictMismatchException(GetType().Name, result);

        using (Autograd.NoGrad())
        {
            foreach (var (k, t) in own)
                if (given.TryGetValue(k, out var src)) t.Copy_(src);
        }
        return result;
    }

    /// <summary>Sets training mode on this module and every descendant; returns this.</summary>
    public Module Train(bool on = true)
    {
        foreach (var (_, m) in NamedModules()) m.Training = on;
        return this;
    }

    /// <summary>Evaluation mode (<c>Train(false)</c>); returns this.</summary>
    public Module Eval() => Train(false);

    /// <summary>Clears the gradients of every parameter.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.Grad = null;
    }

    /// <summary>Moves every parameter and buffer to <paramref name="device"/> in place (object identity kept).</summary>
    public Module To(Device device) => ReplaceData(t => t.To(device));

    /// <summary>Converts floating-point parameters and buffers to <paramref name="dtype"/> in place.</summary>
    public Module To(DType dtype)
    {
        if (!dtype.IsFloatingPoint()) throw new ArgumentException($"Modules can only be cast to floating-point dtypes, not {dtype.TorchName()}.", nameof(dtype));
        return ReplaceData(t => t.DType.IsFloatingPoint() ? t.To(dtype) : null);
    }

    /// <summary>Swaps the data under every parameter and buffer for <paramref name="convert"/>'s result (null keeps
    /// it), so optimizers and callers holding these objects see the change.</summary>
    Module ReplaceData(Func<Tensor, Tensor?> convert)
    {
        foreach (var t in Parameters().Cast<Tensor>().Concat(NamedBuffers().Select(b => b.Buffer)))
        {
            using var replacement = convert(t);
            if (replacement is not null) t.SetData(replacement);
        }
        return this;
    }

    /// <summary>Frees every parameter, buffer and child.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (_, p) in _parameters) p.Dispose();
        foreach (var (_, b, _) in _buffers) b.Dispose();
        foreach (var (_, c) in _children) c.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>A one-line description used by <see cref="ToString"/>.</summary>
    protected virtual string ExtraRepr() => "";

    /// <inheritdoc/>
    public override string ToString() => $"{GetType().Name}({ExtraRepr()})";
}

/// <summary>A module with one input and one output.</summary>
public abstract class Module<TIn, TOut> : Module
{
    /// <summary>The computation. Callers use <see cref="Call"/>.</summary>
    public abstract TOut Forward(TIn input);

    /// <summary>Runs the module (<c>module(x)</c> in PyTorch).</summary>
    public TOut Call(TIn input) => Forward(input);
}

using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Optim;

/// <summary>A group of parameters sharing hyper-parameters (PyTorch's <c>param_groups</c> entry). Schedules
/// change <see cref="LearningRate"/> between steps; <see cref="InitialLearningRate"/> is the base they scale.</summary>
public sealed class ParamGroup
{
    /// <summary>The parameters updated with this group's settings.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Current learning rate.</summary>
    public double LearningRate { get; set; }

    /// <summary>Learning rate the group was created with (schedules scale this one).</summary>
    public double InitialLearningRate { get; }

    /// <summary>Weight decay (decoupled for AdamW, L2 for SGD).</summary>
    public double WeightDecay { get; set; }

    /// <summary>An optional label (e.g. "no_decay" or "layer_3") for reports.</summary>
    public string Name { get; }

    /// <summary>Creates a group.</summary>
    public ParamGroup(IEnumerable<Parameter> parameters, double learningRate, double weightDecay = 0, string name = "")
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(learningRate >= 0)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "Learning rate must be >= 0.");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be >= 0.");
        Parameters = parameters.ToList();
        LearningRate = InitialLearningRate = learningRate;
        WeightDecay = weightDecay;
        Name = name;
    }
}

/// <summary>Per-parameter optimizer state, inspectable and owned by the optimizer.</summary>
public sealed class ParamState : IDisposable
{
    /// <summary>Number of updates applied to this parameter.</summary>
    public long Step { get; internal set; }

    /// <summary>Named state tensors ("exp_avg", "exp_avg_sq", "momentum_buffer"), as PyTorch names them.</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors => _tensors;

    readonly Dictionary<string, Tensor> _tensors = new();

    internal Tensor Get(string name) => _tensors[name];

    internal bool TryGet(string name, out Tensor t) => _tensors.TryGetValue(name, out t!);

    internal void Set(string name, Tensor t)
    {
        t.DetachFromScope();
        if (_tensors.TryGetValue(name, out var old)) old.Dispose();
        _tensors[name] = t;
    }

    /// <summary>Frees the state tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}

/// <summary>Base of the optimizers: parameter groups, per-parameter state, zero_grad.</summary>
public abstract class Optimizer : IDisposable
{
    readonly Dictionary<Parameter, ParamState> _state = new(ReferenceEqualityComparer.Instance);

    /// <summary>The parameter groups, in the order given.</summary>
    public IReadOnlyList<ParamGroup> Groups { get; }

    /// <summary>Creates the optimizer; a parameter may belong to one group only.</summary>
    protected Optimizer(IEnumerable<ParamGroup> groups)
    {
        Groups = groups.ToList();
        if (Groups.Count == 0) throw new ArgumentException("An optimizer needs at least one parameter group.", nameof(groups));
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        for (int g = 0; g < Groups.Count; g++)
            foreach (var p in Groups[g].Parameters)
                if (!seen.Add(p))
                    throw new ArgumentException($"A parameter appears in more than one group (again in group {g} '{Groups[g].Name}').", nameof(groups));
    }

    /// <summary>The state of <paramref name="parameter"/>, or null before its first update.</summary>
    public ParamState? State(Parameter parameter) => _state.GetValueOrDefault(parameter);

    /// <summary>The state of <paramref name="parameter"/>, created on first use.</summary>
    protected ParamState StateFor(Parameter parameter)
    {
        if (!_state.TryGetValue(parameter, out var s)) _state[parameter] = s = new ParamState();
        return s;
    }

    /// <summary>Every state tensor of the named parameters as <c>NAME.KEY</c> (PyTorch's names: <c>exp_avg</c>,
    /// <c>momentum_buffer</c>...) and each parameter's update count, whatever the optimizer keeps: a checkpoint
    /// stores these without knowing the algorithm.</summary>
    internal (List<KeyValuePair<string, Tensor>> Tensors, Dictionary<string, long> Steps) SaveState(IEnumerable<(string Name, Parameter Parameter)> named)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var steps = new Dictionary<string, long>();
        foreach (var (name, p) in named)
        {
            if (State(p) is not { } st) continue;
            steps[name] = st.Step;
            foreach (var (key, t) in st.Tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal)) tensors.Add(new($"{name}.{key}", t));
        }
        return (tensors, steps);
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote: for each parameter with a saved step count, every tensor
    /// <c>NAME.KEY</c> that <paramref name="tensors"/> holds (copied onto <paramref name="device"/>).</summary>
    internal void LoadState(IEnumerable<(string Name, Parameter Parameter)> named, IReadOnlyDictionary<string, long> steps,
        IReadOnlyDictionary<string, Tensor> tensors, Device device)
    {
        var byParameter = tensors.Keys.ToLookup(k => k[..k.LastIndexOf('.')], StringComparer.Ordinal);
        foreach (var (name, p) in named)
        {
            if (!steps.TryGetValue(name, out long step)) continue;
            var st = StateFor(p);
            st.Step = step;
            foreach (var key in byParameter[name]) st.Set(key[(name.Length + 1)..], tensors[key].To(device, copy: true));
        }
    }

    /// <summary>Clears every parameter's gradient (PyTorch's <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var g in Groups)
            foreach (var p in g.Parameters) p.Grad = null;
    }

    /// <summary>Applies one update to every parameter that has a gradient.</summary>
    public void Step()
    {
        using var _ = Autograd.NoGrad();
        foreach (var group in Groups)
        {
            foreach (var p in group.Parameters)
            {
                using var grad = p.Grad;
                if (grad is null) continue;
                Update(group, p, grad, StateFor(p));
            }
        }
    }

    /// <summary>Updates one parameter in place (grad mode is off).</summary>
    protected abstract void Update(ParamGroup group, Parameter p, Tensor grad, ParamState state);

    /// <summary>Frees the optimizer state.</summary>
    public void Dispose()
    {
        foreach (var s in _state.Values) s.Dispose();
        _state.Clear();
        GC.SuppressFinalize(this);
    }
}

using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Export.Tracing;

/// <summary>
/// Records every operator call that passes through the dispatcher while one forward pass runs (eval mode, no
/// grad). Tensors are identified by their C# objects (aliases made by <c>Tensor.Alias</c> are reported by the
/// engine); parameters and buffers are known by their state_dict names; any other tensor met as an argument was
/// made outside the trace and becomes a constant. Copying a value that depends on the input to the host fails.
/// </summary>
internal sealed class Tracer : IOpRecorder
{
    readonly Trace _trace = new();
    readonly Dictionary<Tensor, int> _ids = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<Tensor, string> _stateKeys = new(ReferenceEqualityComparer.Instance);
    readonly int _targetOpset;
    string _lastModule = "";

    Tracer(int targetOpset) => _targetOpset = targetOpset;

    /// <summary>Operators that draw random numbers: a traced forward pass must not call them.</summary>
    internal static readonly HashSet<string> RandomOps = new()
    {
        "aten::bernoulli", "aten::bernoulli_", "aten::rand", "aten::randn", "aten::randint", "aten::randperm",
        "aten::rand_like", "aten::randn_like", "aten::uniform_", "aten::normal_",
    };

    /// <summary>Runs <paramref name="forward"/> on <paramref name="input"/> and returns the record. The module
    /// (if any) must already be in eval mode; its parameters and buffers are recognised by name.</summary>
    public static Trace Run(Module? module, Tensor input, Func<Tensor, Tensor[]> forward, int targetOpset)
    {
        var tracer = new Tracer(targetOpset);
        if (module is not null)
        {
            foreach (var (name, b) in module.NamedBuffers()) tracer._stateKeys[b] = name;
            foreach (var (name, p) in module.StateDict()) tracer._stateKeys[p] = name;
        }
        var t = tracer._trace;
        t.Batch = input.Size(0);
        var inputValue = tracer.NewValue(input, dynamic: true);
        inputValue.IsInput = true;
        t.InputId = inputValue.Id;

        if (OpTrace.Recorder is not null) throw new InvalidOperationException("An ONNX export trace is already running on this thread.");
        using var scope = TensorScope.Begin();
        using var noGrad = Autograd.NoGrad();
        Tensor[] outputs;
        OpTrace.Recorder = tracer;
        try { outputs = forward(input); }
        catch { t.Dispose(); throw; }
        finally { OpTrace.Recorder = null; }
        t.OutputIds = outputs.Select(o => tracer._ids.TryGetValue(o, out var id) ? id
            : throw new OnnxExportException($"Output {Array.IndexOf(outputs, o)} of the traced forward pass was not computed by a recorded operator.")).ToArray();
        return t;
    }

    TValue NewValue(Tensor tensor, bool dynamic)
    {
        var v = new TValue
        {
            Id = _trace.Values.Count,
            DType = tensor.DType,
            Shape = tensor.Shape,
            Dynamic = dynamic,
        };
        _trace.Values.Add(v);
        _ids[tensor] = v.Id;
        return v;
    }

    int ValueOf(Tensor t)
    {
        if (_ids.TryGetValue(t, out var id)) return id;
        // a tensor made outside the trace: a parameter, a buffer, or a constant
        var v = NewValue(t, dynamic: false);
        if (_stateKeys.TryGetValue(t, out var key)) v.StateKey = key;
        else v.Hint = "const";
        v.Constant = AliasNoTrace(t);
        _ids[v.Constant] = v.Id;
        return v.Id;
    }

    TArg Convert(in Arg a)
    {
        var r = new TArg { Kind = (TArgKind)(-1), I = a.I, D = a.D };
        switch (a.Kind)
        {
            case ValueKind.None: r.Kind = TArgKind.None; break;
            case ValueKind.Default: r.Kind = TArgKind.Default; break;
            case ValueKind.Tensor: r.Kind = TArgKind.Tensor; r.Ref = ValueOf((Tensor)a.Ref!); break;
            case ValueKind.TensorList:
            case ValueKind.OptionalTensorList:
                r.Kind = a.Kind == ValueKind.TensorList ? TArgKind.TensorList : TArgKind.OptionalTensorList;
                r.Ref = ((Tensor?[])a.Ref!).Select(x => x is null ? (int?)null : ValueOf(x)).ToArray();
                break;
            case ValueKind.Int: r.Kind = TArgKind.Int; break;
            case ValueKind.Double: r.Kind = TArgKind.Double; break;
            case ValueKind.Bool: r.Kind = TArgKind.Bool; break;
            case ValueKind.IntList: r.Kind = TArgKind.IntList; r.Ref = ((long[])a.Ref!).ToArray(); break;
            case ValueKind.DoubleList: r.Kind = TArgKind.DoubleList; r.Ref = ((double[])a.Ref!).ToArray(); break;
            case ValueKind.BoolList: r.Kind = TArgKind.BoolList; r.Ref = ((bool[])a.Ref!).ToArray(); break;
            case ValueKind.String: r.Kind = TArgKind.String; r.Ref = (string)a.Ref!; break;
            case ValueKind.Device: r.Kind = TArgKind.Device; break;
            default: throw new OnnxExportException($"Unsupported argument kind {a.Kind} in a traced call.");
        }
        return r;
    }

    public void OnCall(Op op, ReadOnlySpan<Arg> args, ReadOnlySpan<Tensor> results, bool inPlace)
    {
        if (RandomOps.Contains(op.Name) || (op.Name == "aten::dropout" && args.Length > 2 && args[2].I != 0))
            throw new OnnxExportException($"{op} draws random numbers during the traced forward pass (module {Where()}); " +
                "export traces the model in eval mode, where dropout and drop-path must not run.", op.ToString(), _targetOpset, Where());
        var targs = new TArg[args.Length];
        bool dynamic = false;
        for (int k = 0; k < args.Length; k++)
        {
            targs[k] = Convert(args[k]);
            dynamic |= IsDynamic(targs[k]);
            if (targs[k].Kind == TArgKind.Tensor && _trace[targs[k].ValueId].StateKey is { } key) _lastModule = ModuleOf(key);
        }
        var node = new TNode { Op = op, Args = targs, Outputs = Array.Empty<int>(), InPlace = inPlace, ModulePath = _lastModule };
        int index = _trace.Nodes.Count;
        if (inPlace)
        {
            if (args.Length == 0 || args[0].Kind != ValueKind.Tensor)
                throw new OnnxExportException($"{op} was called without a tensor to modify.", op.ToString(), _targetOpset, Where());
            var target = (Tensor)args[0].Ref!;
            var old = _trace[targs[0].ValueId];
            if (old.StateKey is not null || old.IsInput)
                throw new OnnxExportException($"{op} modifies {(old.IsInput ? "the graph input" : $"'{old.StateKey}'")} in place during the traced forward pass; " +
                    "an exported model cannot change its own weights or input.", op.ToString(), _targetOpset, Where());
            var v = NewValue(target, dynamic);
            v.Producer = index;
            if (!dynamic) v.Constant = WithoutRecording(() => target.Clone().DetachFromScope());
            node.Outputs = new[] { v.Id };
        }
        else
        {
            var outs = new int[results.Length];
            for (int k = 0; k < results.Length; k++)
            {
                var v = NewValue(results[k], dynamic);
                v.Producer = index;
                if (!dynamic) v.Constant = AliasNoTrace(results[k]);
                outs[k] = v.Id;
            }
            node.Outputs = outs;
        }
        _trace.Nodes.Add(node);
    }

    static Tensor AliasNoTrace(Tensor t) => WithoutRecording(() => t.Alias().DetachFromScope());

    static Tensor WithoutRecording(Func<Tensor> f)
    {
        var saved = OpTrace.Recorder;
        OpTrace.Recorder = null;
        try { return f(); }
        finally { OpTrace.Recorder = saved; }
    }

    bool IsDynamic(TArg a) => a.Kind switch
    {
        TArgKind.Tensor => _trace[a.ValueId].Dynamic,
        TArgKind.TensorList or TArgKind.OptionalTensorList => ((int?[])a.Ref!).Any(v => v is { } id && _trace[id].Dynamic),
        _ => false,
    };

    public void OnHostValue(Op op, ReadOnlySpan<Arg> args)
    {
        foreach (var a in args)
            if (a.Kind == ValueKind.Tensor && _ids.TryGetValue((Tensor)a.Ref!, out var id) && _trace[id].Dynamic)
                throw HostRead($"{op} reads a value computed from the input back to the host");
    }

    public void OnHostRead(Tensor tensor)
    {
        if (_ids.TryGetValue(tensor, out var id) && _trace[id].Dynamic)
            throw HostRead("a tensor computed from the input is copied to host memory");
    }

    OnnxExportException HostRead(string what) =>
        new($"Host read during tracing: {what} (module {Where()}). A traced forward pass must not use tensor values in C# " +
            "(control flow or sizes computed from data would be frozen into the graph); keep the computation in tensor operations.",
            "host read", _targetOpset, Where());

    public void OnAlias(Tensor source, Tensor alias)
    {
        if (_ids.TryGetValue(source, out var id)) _ids[alias] = id;
        else _ids[alias] = ValueOf(source);
    }

    string Where() => _lastModule.Length == 0 ? "(before any parameter was used)" : _lastModule;

    static string ModuleOf(string key)
    {
        int dot = key.LastIndexOf('.');
        return dot < 0 ? "(root)" : key[..dot];
    }
}


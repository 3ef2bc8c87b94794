using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Training;

/// <summary>Exponential moving average of a module's state (timm's ModelEmaV2 rule, with its warm-up): after each
/// optimizer step, every floating-point entry becomes <c>ema = d·ema + (1 − d)·current</c> with
/// <c>d = min(decay, (1 + t) / (10 + t))</c>, t the number of updates so far; integer entries (BN counters) are
/// copied. The shadow tensors are owned here.</summary>
internal sealed class WeightEma : IDisposable
{
    readonly List<KeyValuePair<string, Tensor>> _shadow;

    public double Decay { get; }

    /// <summary>Updates applied so far (restored on resume).</summary>
    public long Updates { get; set; }

    public WeightEma(Module source, double decay)
    {
        if (!(decay > 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must lie in (0, 1).");
        Decay = decay;
        _shadow = source.CloneStateDict();
    }

    /// <summary>The averaged state in state_dict order (owned by this object).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> State => _shadow;

    /// <summary>The decay the next update uses.</summary>
    public double CurrentDecay => Math.Min(Decay, (1.0 + Updates) / (10.0 + Updates));

    public void Update(Module source)
    {
        double d = CurrentDecay;
        using var _ = Autograd.NoGrad();
        var current = source.StateDict();
        for (int i = 0; i < _shadow.Count; i++)
        {
            var shadow = _shadow[i].Value;
            var now = current[i].Value;
            if (shadow.DType.IsFloatingPoint()) shadow.Lerp_(now, 1 - d);
            else shadow.Copy_(now);
        }
        Updates++;
    }

    /// <summary>Overwrites the shadow state (resume).</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> values)
    {
        using var _ = Autograd.NoGrad();
        foreach (var (k, t) in _shadow)
        {
            if (!values.TryGetValue(k, out var v))
                throw new InvalidDataException($"The checkpoint has no EMA value for '{k}'.");
            t.Copy_(v);
        }
    }

    public void Dispose()
    {
        foreach (var (_, t) in _shadow) t.Dispose();
        _shadow.Clear();
    }
}

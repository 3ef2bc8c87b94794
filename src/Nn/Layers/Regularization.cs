using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary><c>nn.Dropout</c>: active only in training mode.</summary>
public sealed class Dropout : Module<Tensor, Tensor>
{
    /// <summary>Drop probability.</summary>
    public double P { get; }

    /// <summary>Creates the layer.</summary>
    public Dropout(double p = 0.5)
    {
        if (p < 0 || p > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "Dropout probability must lie in [0, 1].");
        P = p;
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => P == 0 || !Training ? input.Alias() : F.Dropout(input, P, true);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"p={P}";
}

/// <summary>timm's <c>DropPath</c> (stochastic depth): drops whole samples of a residual branch in training.</summary>
public sealed class DropPath : Module<Tensor, Tensor>
{
    /// <summary>Drop probability.</summary>
    public double P { get; }

    /// <summary>Whether kept samples are rescaled by 1/(1-p).</summary>
    public bool ScaleByKeep { get; }

    /// <summary>Creates the layer.</summary>
    public DropPath(double p = 0, bool scaleByKeep = true)
    {
        if (p < 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), p, "Drop-path probability must lie in [0, 1).");
        P = p;
        ScaleByKeep = scaleByKeep;
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.DropPath(input, P, Training, ScaleByKeep);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"drop_prob={P:0.###}";
}

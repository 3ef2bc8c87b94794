using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary><c>nn.Linear</c>: <c>y = x Wᵀ + b</c>, weight (out, in). Default init as PyTorch's reset_parameters.</summary>
public sealed class Linear : Module<Tensor, Tensor>
{
    /// <summary>Weight, shape (out_features, in_features).</summary>
    public Parameter Weight { get; }

    /// <summary>Bias, shape (out_features), or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>Input and output widths.</summary>
    public long InFeatures { get; }

    /// <summary>Output width.</summary>
    public long OutFeatures { get; }

    /// <summary>Creates the layer on <paramref name="device"/> in float32.</summary>
    public Linear(long inFeatures, long outFeatures, bool bias = true, Device? device = null)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", new Parameter(Tensor.Empty(new[] { outFeatures, inFeatures }, device: device)));
        Init.KaimingUniform_(Weight, a: Math.Sqrt(5));
        if (bias)
        {
            Bias = RegisterParameter("bias", new Parameter(Tensor.Empty(new[] { outFeatures }, device: device)));
            double bound = inFeatures > 0 ? 1 / Math.Sqrt(inFeatures) : 0;
            Init.Uniform_(Bias, -bound, bound);
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Linear(input, Weight, Bias);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"in_features={InFeatures}, out_features={OutFeatures}, bias={Bias is not null}";
}

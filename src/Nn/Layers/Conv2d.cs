using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary><c>nn.Conv2d</c> with zero padding; <c>groups = in_channels</c> gives a depthwise convolution.
/// Default init as PyTorch's reset_parameters.</summary>
public sealed class Conv2d : Module<Tensor, Tensor>
{
    readonly long[] _stride, _padding, _dilation;

    /// <summary>Weight, shape (out, in / groups, kH, kW).</summary>
    public Parameter Weight { get; }

    /// <summary>Bias, shape (out), or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>Number of groups.</summary>
    public long Groups { get; }

    /// <summary>Creates a square-kernel convolution.</summary>
    public Conv2d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, long dilation = 1,
                  long groups = 1, bool bias = true, Device? device = null)
        : this(inChannels, outChannels, new[] { kernelSize, kernelSize }, new[] { stride, stride }, new[] { padding, padding },
               new[] { dilation, dilation }, groups, bias, device) { }

    /// <summary>Creates a convolution with per-axis kernel, stride, padding and dilation (each of length 2).</summary>
    public Conv2d(long inChannels, long outChannels, long[] kernelSize, long[] stride, long[] padding, long[] dilation,
                  long groups = 1, bool bias = true, Device? device = null)
    {
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"Conv2d groups={groups} must divide in_channels={inChannels} and out_channels={outChannels}.", nameof(groups));
        foreach (var (arr, what) in new[] { (kernelSize, "kernel_size"), (stride, "stride"), (padding, "padding"), (dilation, "dilation") })
            if (arr.Length != 2) throw new ArgumentException($"Conv2d {what} needs 2 values, got {arr.Length}.", what);
        _stride = stride;
        _padding = padding;
        _dilation = dilation;
        Groups = groups;
        Weight = RegisterParameter("weight", new Parameter(Tensor.Empty(new[] { outChannels, inChannels / groups, kernelSize[0], kernelSize[1] }, device: device)));
        Init.KaimingUniform_(Weight, a: Math.Sqrt(5));
        if (bias)
        {
            Bias = RegisterParameter("bias", new Parameter(Tensor.Empty(new[] { outChannels }, device: device)));
            var (fanIn, _) = Init.Fans(Weight);
            double bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
            Init.Uniform_(Bias, -bound, bound);
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Conv2d(input, Weight, Bias, _stride, _padding, _dilation, Groups);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{Weight.Size(1) * Groups}, {Weight.Size(0)}, kernel_size=({Weight.Size(2)}, {Weight.Size(3)}), stride=({_stride[0]}, {_stride[1]}), " +
        $"padding=({_padding[0]}, {_padding[1]}), groups={Groups}, bias={Bias is not null}";
}

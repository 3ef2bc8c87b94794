using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>
/// How a family initialises the <see cref="Linear"/> and <see cref="Conv2d"/> layers it makes, as its official code
/// does. Layers of the kit take one and apply it right after constructing each Linear/Conv2d (the order of random
/// draws is then the order of construction, as in the official modules); <see cref="Deferred"/> leaves PyTorch's
/// default initialisation for families that re-initialise the whole model afterwards (<see cref="Apply"/>).
/// </summary>
/// <param name="Linear">Applied to every new Linear, or null for PyTorch's default.</param>
/// <param name="Conv">Applied to every new Conv2d, or null for PyTorch's default.</param>
internal sealed record WeightInit(Action<Linear>? Linear, Action<Conv2d>? Conv)
{
    /// <summary>PyTorch's defaults at construction; the family initialises later with <see cref="Apply"/> (SMT's
    /// <c>self.apply(self._init_weights)</c>, TransXNet's <c>init_weights</c>).</summary>
    public static readonly WeightInit Deferred = new(null, null);

    /// <summary>timm's <c>_init_weights</c> of the PVT line (TransNeXt, SMT): Linear trunc-normal(0.02) with zero bias,
    /// Conv2d normal(0, √(2 / fan_out)) with fan_out = kH·kW·out/groups and zero bias.</summary>
    public static readonly WeightInit Timm = new(TruncNormalLinear, FanOutConv);

    /// <summary>The official PaddlePaddle code (MixFormer): Linear trunc-normal(0.02) cut at ±2σ with zero bias, Conv2d
    /// Paddle's default normal(0, √(2 / (kH·kW·in))) with the full input-channel count and zero bias.</summary>
    public static readonly WeightInit Paddle = new(PaddleLinear, PaddleConv);

    /// <summary>TransXNet: every Conv2d trunc-normal(0.02) with zero bias (Linear layers: none in the model).</summary>
    public static readonly WeightInit TruncNormalConvs = new(null, TruncNormalConv);

    /// <summary>A new Linear, initialised by this policy.</summary>
    public Linear NewLinear(long inFeatures, long outFeatures, bool bias = true)
    {
        var l = new Linear(inFeatures, outFeatures, bias);
        Linear?.Invoke(l);
        return l;
    }

    /// <summary>A new square-kernel Conv2d, initialised by this policy.</summary>
    public Conv2d NewConv(long inChannels, long outChannels, long kernel, long stride = 1, long padding = 0, long groups = 1, bool bias = true)
    {
        var c = new Conv2d(inChannels, outChannels, kernel, stride, padding, groups: groups, bias: bias);
        Conv?.Invoke(c);
        return c;
    }

    /// <summary>Re-initialises every Linear and Conv2d under <paramref name="root"/> in module order (PyTorch's
    /// <c>model.apply(init)</c>); norms keep their defaults (weight 1, bias 0).</summary>
    public void Apply(Module root)
    {
        using (Autograd.NoGrad())
            foreach (var (_, m) in root.NamedModules())
            {
                if (m is Linear l) Linear?.Invoke(l);
                else if (m is Conv2d c) Conv?.Invoke(c);
            }
    }

    /// <summary>timm's <c>trunc_normal_(w, std=.02)</c> (bounds ±2 absolute) and a zero bias.</summary>
    public static void TruncNormalLinear(Linear l)
    {
        Init.TruncNormal_(l.Weight, std: 0.02);
        if (l.Bias is not null) Init.Zeros_(l.Bias);
    }

    /// <summary>Paddle's <c>TruncatedNormal(std=.02)</c>: cut at ±2σ = ±0.04; zero bias.</summary>
    public static void PaddleLinear(Linear l)
    {
        Init.TruncNormal_(l.Weight, 0, 0.02, -0.04, 0.04);
        if (l.Bias is not null) Init.Zeros_(l.Bias);
    }

    /// <summary>normal(0, √(2 / fan_out)), fan_out = kH·kW·out / groups; zero bias.</summary>
    public static void FanOutConv(Conv2d c)
    {
        long fanOut = c.Weight.Size(2) * c.Weight.Size(3) * c.Weight.Size(0) / c.Groups;
        Init.Normal_(c.Weight, 0, Math.Sqrt(2.0 / fanOut));
        if (c.Bias is not null) Init.Zeros_(c.Bias);
    }

    /// <summary>Paddle's default Conv2D initialisation: normal(0, √(2 / (kH·kW·in))) with the FULL input-channel count
    /// even for grouped convolutions; zero bias.</summary>
    public static void PaddleConv(Conv2d c)
    {
        long fanIn = c.Weight.Size(2) * c.Weight.Size(3) * (c.Weight.Size(1) * c.Groups);
        Init.Normal_(c.Weight, 0, Math.Sqrt(2.0 / fanIn));
        if (c.Bias is not null) Init.Zeros_(c.Bias);
    }

    /// <summary>trunc-normal(0.02) weights (bounds ±2 absolute) and a zero bias.</summary>
    public static void TruncNormalConv(Conv2d c)
    {
        Init.TruncNormal_(c.Weight, std: 0.02);
        if (c.Bias is not null) Init.Zeros_(c.Bias);
    }

    /// <summary>A new parameter of <paramref name="shape"/> drawn from trunc-normal(0, <paramref name="std"/>)
    /// (timm bounds ±2 absolute): query embeddings, learnable tokens, kernel banks.</summary>
    public static Parameter TruncNormalParameter(long[] shape, double std)
    {
        var t = Tensor.Empty(shape);
        Init.TruncNormal_(t, std: std);
        return new Parameter(t);
    }
}

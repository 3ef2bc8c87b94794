using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary>Weight initialisers (<c>torch.nn.init</c> and timm's <c>trunc_normal_</c>). They draw from libtorch's
/// generator in the same order as PyTorch, so a model built after <see cref="TorchRuntime.ManualSeed"/> starts
/// from the same numbers as its Python twin. All work in place under no-grad and return the tensor.</summary>
public static class Init
{
    /// <summary>(fan_in, fan_out) as PyTorch computes them: dims 1 and 0 times the receptive field.</summary>
    public static (long FanIn, long FanOut) Fans(Tensor t)
    {
        if (t.Dim < 2)
            throw new ArgumentException($"Fan in and fan out need a tensor with at least 2 dimensions; this one has shape [{string.Join(", ", t.Shape)}].", nameof(t));
        long receptive = 1;
        for (int d = 2; d < t.Dim; d++) receptive *= t.Size(d);
        return (t.Size(1) * receptive, t.Size(0) * receptive);
    }

    /// <summary><c>nn.init.calculate_gain</c> for the common non-linearities.</summary>
    public static double Gain(string nonlinearity, double param = 0.01) => nonlinearity switch
    {
        "linear" or "conv2d" or "sigmoid" => 1.0,
        "tanh" => 5.0 / 3,
        "relu" => Math.Sqrt(2.0),
        "leaky_relu" => Math.Sqrt(2.0 / (1 + param * param)),
        "selu" => 3.0 / 4,
        _ => throw new ArgumentException($"Unknown non-linearity '{nonlinearity}'; expected linear, conv2d, sigmoid, tanh, relu, leaky_relu or selu.", nameof(nonlinearity)),
    };

    /// <summary>Fills with a constant.</summary>
    public static Tensor Constant_(Tensor t, double value)
    {
        using (Autograd.NoGrad()) t.Fill_(value);
        return t;
    }

    /// <summary>Fills with zeros.</summary>
    public static Tensor Zeros_(Tensor t) => Constant_(t, 0);

    /// <summary>Fills with ones.</summary>
    public static Tensor Ones_(Tensor t) => Constant_(t, 1);

    /// <summary>U(a, b).</summary>
    public static Tensor Uniform_(Tensor t, double a = 0, double b = 1)
    {
        using (Autograd.NoGrad()) t.Uniform_(a, b);
        return t;
    }

    /// <summary>N(mean, std).</summary>
    public static Tensor Normal_(Tensor t, double mean = 0, double std = 1)
    {
        using (Autograd.NoGrad()) t.Normal_(mean, std);
        return t;
    }

    /// <summary>Truncated normal N(mean, std) restricted to [a, b] (absolute bounds, as timm's and PyTorch's
    /// <c>trunc_normal_</c>): inverse-CDF sampling from a uniform on the bounds' CDF range.</summary>
    public static Tensor TruncNormal_(Tensor t, double mean = 0, double std = 1, double a = -2, double b = 2)
    {
        static double NormCdf(double x) => (1.0 + Erf(x / Math.Sqrt(2.0))) / 2.0;
        double l = NormCdf((a - mean) / std), u = NormCdf((b - mean) / std);
        using (Autograd.NoGrad())
        {
            t.Uniform_(2 * l - 1, 2 * u - 1);
            t.Erfinv_();
            t.Mul_(std * Math.Sqrt(2.0));
            t.Add_(mean);
            t.Clamp_(a, b);
        }
        return t;
    }

    /// <summary>Kaiming/He uniform: bound = gain·sqrt(3 / fan).</summary>
    public static Tensor KaimingUniform_(Tensor t, double a = 0, bool fanIn = true, string nonlinearity = "leaky_relu")
    {
        var (fi, fo) = Fans(t);
        double std = Gain(nonlinearity, a) / Math.Sqrt(fanIn ? fi : fo);
        double bound = Math.Sqrt(3.0) * std;
        return Uniform_(t, -bound, bound);
    }

    /// <summary>Kaiming/He normal: std = gain / sqrt(fan).</summary>
    public static Tensor KaimingNormal_(Tensor t, double a = 0, bool fanIn = true, string nonlinearity = "leaky_relu")
    {
        var (fi, fo) = Fans(t);
        return Normal_(t, 0, Gain(nonlinearity, a) / Math.Sqrt(fanIn ? fi : fo));
    }

    /// <summary>Xavier/Glorot uniform: bound = gain·sqrt(6 / (fan_in + fan_out)).</summary>
    public static Tensor XavierUniform_(Tensor t, double gain = 1)
    {
        var (fi, fo) = Fans(t);
        double a = gain * Math.Sqrt(2.0 / (fi + fo)) * Math.Sqrt(3.0);
        return Uniform_(t, -a, a);
    }

    /// <summary>Xavier/Glorot normal: std = gain·sqrt(2 / (fan_in + fan_out)).</summary>
    public static Tensor XavierNormal_(Tensor t, double gain = 1)
    {
        var (fi, fo) = Fans(t);
        return Normal_(t, 0, gain * Math.Sqrt(2.0 / (fi + fo)));
    }

    /// <summary>The error function in double precision (Math has none); max error ~1e-15 via erfc continued
    /// fraction / series, enough for the truncation bounds.</summary>
    internal static double Erf(double x)
    {
        // Abramowitz-Stegun 7.1.26 is too coarse (1e-7); use the series for small |x| and erfc's continued
        // fraction for large |x|.
        double ax = Math.Abs(x);
        if (ax < 2.5)
        {
            double sum = x, term = x, x2 = x * x;
            for (int n = 1; n < 200; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        // erfc(x) = exp(-x²)/sqrt(pi) · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (Lentz would be overkill here)
        double f = ax;
        for (int n = 60; n >= 1; n--) f = ax + n / 2.0 / f;
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        return Math.Sign(x) * (1 - erfc);
    }
}

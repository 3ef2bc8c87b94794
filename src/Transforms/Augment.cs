using MLNetExt.Imaging;

namespace MLNetExt.Transforms;

/// <summary>A per-image transform drawing its randomness from the given generator.</summary>
internal interface IImageTransform
{
    RgbImage Apply(RgbImage image, Rng rng);
}

/// <summary>Horizontal flip with probability <see cref="P"/>.</summary>
internal sealed class RandomHorizontalFlip(double p = 0.5) : IImageTransform
{
    public double P { get; } = p;

    public RgbImage Apply(RgbImage image, Rng rng)
    {
        if (rng.Chance(P)) ImageOps.FlipHorizontal(image);
        return image;
    }
}

/// <summary>torchvision <c>ColorJitter</c>: brightness/contrast/saturation factors drawn from [max(0, 1−v), 1+v], hue
/// from [−h, h], applied in a random order.</summary>
internal sealed class ColorJitter : IImageTransform
{
    public double Brightness { get; }
    public double Contrast { get; }
    public double Saturation { get; }
    public double Hue { get; }

    public ColorJitter(double brightness = 0, double contrast = 0, double saturation = 0, double hue = 0)
    {
        if (brightness < 0 || contrast < 0 || saturation < 0) throw new ArgumentException("ColorJitter strengths must be ≥ 0.");
        if (hue is < 0 or > 0.5) throw new ArgumentOutOfRangeException(nameof(hue), hue, "hue must lie in [0, 0.5]");
        (Brightness, Contrast, Saturation, Hue) = (brightness, contrast, saturation, hue);
    }

    public RgbImage Apply(RgbImage image, Rng rng)
    {
        var order = new List<int> { 0, 1, 2, 3 };
        rng.Shuffle(order);
        foreach (var op in order)
        {
            switch (op)
            {
                case 0 when Brightness > 0: ImageOps.AdjustBrightness(image, rng.Uniform(Math.Max(0, 1 - Brightness), 1 + Brightness)); break;
                case 1 when Contrast > 0: ImageOps.AdjustContrast(image, rng.Uniform(Math.Max(0, 1 - Contrast), 1 + Contrast)); break;
                case 2 when Saturation > 0: ImageOps.AdjustSaturation(image, rng.Uniform(Math.Max(0, 1 - Saturation), 1 + Saturation)); break;
                case 3 when Hue > 0: ImageOps.AdjustHue(image, rng.Uniform(-Hue, Hue)); break;
            }
        }
        return image;
    }
}

/// <summary>torchvision <c>TrivialAugmentWide</c>: one operation with one magnitude from 31 bins, nearest
/// interpolation, black fill.</summary>
internal sealed class TrivialAugmentWide : IImageTransform
{
    public const int Bins = 31;

    public static readonly string[] Operations =
    [
        "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
        "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
    ];

    /// <summary>The magnitude of bin <paramref name="bin"/> for an operation (torchvision's table, float32 values).</summary>
    public static double Magnitude(string op, int bin)
    {
        float Lin(float lo, float hi) => lo + (hi - lo) * bin / (Bins - 1);
        return op switch
        {
            "ShearX" or "ShearY" or "Brightness" or "Color" or "Contrast" or "Sharpness" => Lin(0f, 0.99f),
            "TranslateX" or "TranslateY" => Lin(0f, 32f),
            "Rotate" => Lin(0f, 135f),
            "Posterize" => 8 - (int)Math.Round(bin / ((Bins - 1) / 6.0), MidpointRounding.ToEven),
            "Solarize" => Lin(255f, 0f),
            _ => 0.0,
        };
    }

    static bool Signed(string op) => op is "ShearX" or "ShearY" or "TranslateX" or "TranslateY" or "Rotate" or "Brightness" or "Color" or "Contrast" or "Sharpness";

    public RgbImage Apply(RgbImage image, Rng rng)
    {
        var op = Operations[rng.Next(0, Operations.Length)];
        double m = Magnitude(op, rng.Next(0, Bins));
        if (Signed(op) && rng.Next(0, 2) == 1) m = -m;
        return ApplyOp(image, op, m);
    }

    /// <summary>torchvision's <c>_apply_op</c> for PIL images.</summary>
    public static RgbImage ApplyOp(RgbImage img, string op, double magnitude)
    {
        switch (op)
        {
            case "Identity": return img;
            case "ShearX": return ImageOps.AffineNearest(img, ImageOps.InverseAffine(0, 0, 0, 0, 0, 1, Math.Atan(magnitude) * 180 / Math.PI, 0));
            case "ShearY": return ImageOps.AffineNearest(img, ImageOps.InverseAffine(0, 0, 0, 0, 0, 1, 0, Math.Atan(magnitude) * 180 / Math.PI));
            case "TranslateX": return ImageOps.AffineNearest(img, ImageOps.InverseAffine(img.Width * 0.5, img.Height * 0.5, 0, (int)magnitude, 0, 1, 0, 0));
            case "TranslateY": return ImageOps.AffineNearest(img, ImageOps.InverseAffine(img.Width * 0.5, img.Height * 0.5, 0, 0, (int)magnitude, 1, 0, 0));
            case "Rotate": return ImageOps.RotateNearest(img, magnitude);
            case "Brightness": ImageOps.AdjustBrightness(img, 1 + magnitude); return img;
            case "Color": ImageOps.AdjustSaturation(img, 1 + magnitude); return img;
            case "Contrast": ImageOps.AdjustContrast(img, 1 + magnitude); return img;
            case "Sharpness": ImageOps.AdjustSharpness(img, 1 + magnitude); return img;
            case "Posterize": ImageOps.Posterize(img, (int)magnitude); return img;
            case "Solarize": ImageOps.Solarize(img, magnitude); return img;
            case "AutoContrast": ImageOps.AutoContrast(img); return img;
            case "Equalize": ImageOps.Equalize(img); return img;
            default: throw new ArgumentException($"Unknown TrivialAugment operation '{op}'; known: {string.Join(", ", Operations)}.");
        }
    }
}

/// <summary>torchvision <c>RandomResizedCrop.get_params</c>: the crop (left, top, width, height) for an image size.</summary>
internal static class RandomResizedCropParams
{
    public static (int Left, int Top, int Width, int Height) Sample(int width, int height, Rng rng,
        double scaleMin = 0.08, double scaleMax = 1.0, double ratioMin = 3.0 / 4, double ratioMax = 4.0 / 3)
    {
        double area = (double)width * height;
        double logLo = Math.Log(ratioMin), logHi = Math.Log(ratioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * rng.Uniform(scaleMin, scaleMax);
            double aspect = Math.Exp(rng.Uniform(logLo, logHi));
            int w = (int)Math.Round(Math.Sqrt(target * aspect), MidpointRounding.ToEven);
            int h = (int)Math.Round(Math.Sqrt(target / aspect), MidpointRounding.ToEven);
            if (w > 0 && w <= width && h > 0 && h <= height)
            {
                int top = rng.Next(0, height - h + 1), left = rng.Next(0, width - w + 1);
                return (left, top, w, h);
            }
        }
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < ratioMin) { cw = width; ch = (int)Math.Round(cw / ratioMin, MidpointRounding.ToEven); }
        else if (inRatio > ratioMax) { ch = height; cw = (int)Math.Round(ch * ratioMax, MidpointRounding.ToEven); }
        else { cw = width; ch = height; }
        return ((width - cw) / 2, (height - ch) / 2, cw, ch);
    }
}

/// <summary>torchvision <c>RandomErasing</c> on a normalised CHW float image: with probability P erases a rectangle of
/// area fraction in <see cref="ScaleMin"/>..<see cref="ScaleMax"/> and aspect in RatioMin..RatioMax, filled with
/// <see cref="Value"/> or, when <see cref="RandomFill"/>, with standard-normal noise per pixel (timm's "pixel" mode).</summary>
internal sealed class RandomErasing(double p = 0.25, double scaleMin = 0.02, double scaleMax = 1.0 / 3, double ratioMin = 0.3,
    double ratioMax = 3.3, float value = 0f, bool randomFill = true)
{
    public double P { get; } = p;
    public double ScaleMin { get; } = scaleMin;
    public double ScaleMax { get; } = scaleMax;
    public double RatioMin { get; } = ratioMin;
    public double RatioMax { get; } = ratioMax;
    public float Value { get; } = value;
    public bool RandomFill { get; } = randomFill;

    /// <summary>Erases in place; returns the rectangle erased (left, top, width, height) or null.</summary>
    public (int, int, int, int)? Apply(Span<float> chw, int channels, int height, int width, Rng rng)
    {
        if (!rng.Chance(P)) return null;
        double area = (double)height * width;
        double logLo = Math.Log(RatioMin), logHi = Math.Log(RatioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * rng.Uniform(ScaleMin, ScaleMax);
            double aspect = Math.Exp(rng.Uniform(logLo, logHi));
            int h = (int)Math.Round(Math.Sqrt(target * aspect), MidpointRounding.ToEven);
            int w = (int)Math.Round(Math.Sqrt(target / aspect), MidpointRounding.ToEven);
            if (h >= height || w >= width || h < 1 || w < 1) continue;
            int top = rng.Next(0, height - h + 1), left = rng.Next(0, width - w + 1);
            for (int c = 0; c < channels; c++)
                for (int y = top; y < top + h; y++)
                {
                    var row = chw.Slice((c * height + y) * width + left, w);
                    if (RandomFill) for (int x = 0; x < w; x++) row[x] = (float)rng.Normal();
                    else row.Fill(Value);
                }
            return (left, top, w, h);
        }
        return null;
    }
}

/// <summary>Per-channel normalisation of a uint8 HWC image into float32 CHW: (v/255 − mean)/std.</summary>
internal sealed class Normalize
{
    public float[] Mean { get; }
    public float[] Std { get; }
    readonly float[][] lut = new float[3][];

    /// <summary>ImageNet statistics, the default of most pretrained backbones.</summary>
    public static readonly Normalize ImageNet = new([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

    public Normalize(IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        if (mean.Count != 3 || std.Count != 3) throw new ArgumentException($"Normalize needs 3 means and 3 stds (RGB); got {mean.Count} and {std.Count}.");
        if (std.Any(s => s <= 0)) throw new ArgumentException("Normalize: every std must be positive.");
        Mean = mean.Select(m => (float)m).ToArray();
        Std = std.Select(s => (float)s).ToArray();
        for (int c = 0; c < 3; c++)
        {
            lut[c] = new float[256];
            // Same float32 arithmetic as torchvision: ToTensor (v / 255) then (x - mean) / std.
            for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255f - Mean[c]) / Std[c];
        }
    }

    /// <summary>Writes the image as CHW floats into <paramref name="dst"/> (length 3·H·W).</summary>
    public void Apply(RgbImage img, Span<float> dst)
    {
        int n = img.Width * img.Height;
        if (dst.Length != 3 * n) throw new ArgumentException($"Normalize: destination holds {dst.Length} floats, the image needs {3 * n}.");
        var p = img.Pixels;
        var r = dst.Slice(0, n);
        var g = dst.Slice(n, n);
        var b = dst.Slice(2 * n, n);
        float[] l0 = lut[0], l1 = lut[1], l2 = lut[2];
        for (int i = 0, j = 0; i < n; i++, j += 3)
        {
            r[i] = l0[p[j]];
            g[i] = l1[p[j + 1]];
            b[i] = l2[p[j + 2]];
        }
    }
}

/// <summary>timm-style batch Mixup / CutMix on NCHW floats with one-hot (optionally smoothed) targets: each batch is
/// mixed with its reverse. With both enabled, CutMix is chosen with probability <see cref="SwitchProb"/>.</summary>
internal sealed class MixupCutmix(double mixupAlpha = 0.8, double cutmixAlpha = 1.0, double prob = 1.0, double switchProb = 0.5, double labelSmoothing = 0.1)
{
    public double MixupAlpha { get; } = mixupAlpha;
    public double CutmixAlpha { get; } = cutmixAlpha;
    public double Prob { get; } = prob;
    public double SwitchProb { get; } = switchProb;
    public double LabelSmoothing { get; } = labelSmoothing;

    /// <summary>Mixes <paramref name="images"/> (N·C·H·W) in place and returns soft targets (N·numClasses) and the λ used.</summary>
    public (float[] Targets, double Lambda, bool UsedCutmix) Apply(float[] images, int n, int c, int h, int w, int[] labels, int numClasses, Rng rng)
    {
        double lam = 1.0;
        bool cut = false;
        if (rng.Chance(Prob) && n > 1)
        {
            if (MixupAlpha > 0 && CutmixAlpha > 0) cut = rng.Chance(SwitchProb);
            else cut = CutmixAlpha > 0;
            double alpha = cut ? CutmixAlpha : MixupAlpha;
            if (alpha > 0) lam = rng.Beta(alpha, alpha);
        }
        int plane = c * h * w;
        if (lam < 1.0)
        {
            var src = (float[])images.Clone();
            if (cut)
            {
                double ratio = Math.Sqrt(1 - lam);
                int cutH = (int)(h * ratio), cutW = (int)(w * ratio);
                int cy = rng.Next(0, h), cx = rng.Next(0, w);
                int y0 = Math.Clamp(cy - cutH / 2, 0, h), y1 = Math.Clamp(cy + cutH / 2, 0, h);
                int x0 = Math.Clamp(cx - cutW / 2, 0, w), x1 = Math.Clamp(cx + cutW / 2, 0, w);
                for (int i = 0; i < n; i++)
                {
                    int other = n - 1 - i;
                    for (int ch = 0; ch < c; ch++)
                        for (int y = y0; y < y1; y++)
                            Array.Copy(src, other * plane + (ch * h + y) * w + x0, images, i * plane + (ch * h + y) * w + x0, x1 - x0);
                }
                lam = 1 - (double)(y1 - y0) * (x1 - x0) / (h * w);
            }
            else
            {
                float l = (float)lam, m = (float)(1 - lam);
                for (int i = 0; i < n; i++)
                {
                    int other = n - 1 - i;
                    for (int k = 0; k < plane; k++) images[i * plane + k] = src[i * plane + k] * l + src[other * plane + k] * m;
                }
            }
        }
        double off = LabelSmoothing / numClasses, on = 1 - LabelSmoothing + off;
        var targets = new float[n * numClasses];
        for (int i = 0; i < n; i++)
        {
            for (int k = 0; k < numClasses; k++)
            {
                double a = labels[i] == k ? on : off, b = labels[n - 1 - i] == k ? on : off;
                targets[i * numClasses + k] = (float)(a * lam + b * (1 - lam));
            }
        }
        return (targets, lam, cut);
    }
}

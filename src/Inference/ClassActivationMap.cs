using MLNetExt.Imaging;

namespace MLNetExt.Inference;

/// <summary>
/// Where the network found the evidence for one class in one image: Grad-CAM (Selvaraju et al., ICCV 2017) over the
/// last stage's feature map — each channel weighted by the mean gradient of the class's logit with respect to it, summed,
/// negative evidence cut at zero — brought up to the network's input and scaled so the strongest place is 1. For heads
/// that pool the map and apply one linear layer (SMT, TransXNet, TransNeXt) this is exactly the class activation map
/// of Zhou et al. (2016). Made by <see cref="ImageClassificationModel.Explain"/>.
/// </summary>
public sealed class ClassActivationMap
{
    internal ClassActivationMap(RgbImage image, float[] heat, int classIndex, string label, float probability, int mapHeight, int mapWidth)
    {
        Image = image;
        Heat = heat;
        ClassIndex = classIndex;
        Label = label;
        Probability = probability;
        MapHeight = mapHeight;
        MapWidth = mapWidth;
    }

    /// <summary>The image as the network saw it: resized and centre-cropped by the evaluation pipeline.</summary>
    public RgbImage Image { get; }

    /// <summary>The evidence at each pixel of <see cref="Image"/>, row-major, from 0 (none) to 1 (the strongest); all
    /// zero when nothing in the image speaks for the class.</summary>
    public float[] Heat { get; }

    /// <summary>The class explained.</summary>
    public int ClassIndex { get; }

    /// <summary>Its name.</summary>
    public string Label { get; }

    /// <summary>The probability the model gives that class for this image.</summary>
    public float Probability { get; }

    /// <summary>Size of the feature map the evidence was measured on (the input size / 32 for these backbones).</summary>
    public int MapHeight { get; }

    /// <inheritdoc cref="MapHeight"/>
    public int MapWidth { get; }

    /// <summary><see cref="Image"/> with the heat laid over it in the jet colours (blue: none, red: the strongest),
    /// blended at <paramref name="opacity"/>.</summary>
    public RgbImage Overlay(double opacity = 0.45)
    {
        if (!(opacity >= 0 && opacity <= 1)) throw new ArgumentOutOfRangeException(nameof(opacity), opacity, "The opacity must be in [0, 1].");
        var outImage = new RgbImage(Image.Width, Image.Height);
        for (int p = 0; p < Heat.Length; p++)
        {
            var (r, g, b) = Jet(Heat[p]);
            int i = p * 3;
            outImage.Pixels[i] = Blend(Image.Pixels[i], r, opacity);
            outImage.Pixels[i + 1] = Blend(Image.Pixels[i + 1], g, opacity);
            outImage.Pixels[i + 2] = Blend(Image.Pixels[i + 2], b, opacity);
        }
        return outImage;
    }

    /// <summary>Writes a PNG of <see cref="Image"/> beside its <see cref="Overlay"/>, 8 white pixels apart (atomically).</summary>
    public void SavePng(string path, double opacity = 0.45)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var overlay = Overlay(opacity);
        const int gap = 8;
        var both = new RgbImage(2 * Image.Width + gap, Image.Height);
        Array.Fill(both.Pixels, (byte)255);
        int row = Image.Width * 3;
        for (int y = 0; y < Image.Height; y++)
        {
            Array.Copy(Image.Pixels, y * row, both.Pixels, y * both.Width * 3, row);
            Array.Copy(overlay.Pixels, y * row, both.Pixels, (y * both.Width + Image.Width + gap) * 3, row);
        }
        PngEncoder.Save(both, path);
    }

    static byte Blend(byte under, double over, double opacity) => (byte)Math.Round(under * (1 - opacity) + over * 255 * opacity);

    /// <summary>The jet colour map: dark blue → blue → cyan → yellow → red → dark red over 0..1.</summary>
    static (double R, double G, double B) Jet(double v)
    {
        static double Ramp(double x) => Math.Clamp(1.5 - Math.Abs(x), 0, 1);
        return (Ramp(4 * v - 3), Ramp(4 * v - 2), Ramp(4 * v - 1));
    }

    /// <summary>Grad-CAM from the feature map and the gradient of the class's logit, both [C, H, W] row-major: per-channel
    /// mean gradient as the weight, the weighted sum over channels, negative values cut.</summary>
    internal static float[] GradCam(ReadOnlySpan<float> features, ReadOnlySpan<float> gradients, int channels, int height, int width)
    {
        int plane = height * width;
        var cam = new double[plane];
        for (int c = 0; c < channels; c++)
        {
            double weight = 0;
            var g = gradients.Slice(c * plane, plane);
            for (int p = 0; p < plane; p++) weight += g[p];
            weight /= plane;
            var a = features.Slice(c * plane, plane);
            for (int p = 0; p < plane; p++) cam[p] += weight * a[p];
        }
        return cam.Select(v => (float)Math.Max(0, v)).ToArray();
    }

    /// <summary>Bilinear resize of a [H, W] map to [outHeight, outWidth] with half-pixel centres and edges clamped
    /// (PyTorch's <c>interpolate(mode="bilinear", align_corners=False)</c>), then scaled so its maximum is 1.</summary>
    internal static float[] Upsample(float[] map, int height, int width, int outHeight, int outWidth)
    {
        var outMap = new float[outHeight * outWidth];
        float max = 0;
        for (int y = 0; y < outHeight; y++)
        {
            double sy = Math.Max(0, (y + 0.5) * height / outHeight - 0.5);
            int y0 = Math.Min((int)sy, height - 1), y1 = Math.Min(y0 + 1, height - 1);
            double fy = sy - y0;
            for (int x = 0; x < outWidth; x++)
            {
                double sx = Math.Max(0, (x + 0.5) * width / outWidth - 0.5);
                int x0 = Math.Min((int)sx, width - 1), x1 = Math.Min(x0 + 1, width - 1);
                double fx = sx - x0;
                double top = map[y0 * width + x0] * (1 - fx) + map[y0 * width + x1] * fx;
                double bottom = map[y1 * width + x0] * (1 - fx) + map[y1 * width + x1] * fx;
                float v = (float)(top * (1 - fy) + bottom * fy);
                outMap[y * outWidth + x] = v;
                max = Math.Max(max, v);
            }
        }
        if (max > 0)
            for (int i = 0; i < outMap.Length; i++) outMap[i] /= max;
        return outMap;
    }
}

using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Data;

/// <summary>
/// A procedural, labelled image set of fabric-like patterns — checks, dots, rings, stripes, waves — each drawn in
/// a class-typical hue (overlapping between classes) over a random background, at a random scale, angle and phase, under uneven lighting and sensor noise, anti-aliased from
/// the signed distance to each edge. Unlike <see cref="SyntheticShapes"/> the class is visible everywhere in the
/// image, which is what a backbone trained from scratch (global average pooling, no pretrained weights) learns
/// within minutes on a CPU; the demo uses it. Every image is a pure function of (seed, class, index).
/// </summary>
public static class SyntheticPatterns
{
    /// <summary>The class names in label order (ordinal order, as <see cref="ImageDataset.FromFolder"/> lists them).</summary>
    public static IReadOnlyList<string> Classes { get; } = ["checks", "dots", "rings", "stripes", "waves"];

    /// <summary>Name of the file that records how a generated folder was made (written last).</summary>
    public const string ManifestName = "synthetic-patterns.json";

    /// <summary>Writes <paramref name="perClass"/> images of every class as <c>root/&lt;class&gt;/&lt;class&gt;_NNN.png</c>
    /// (indices <paramref name="firstIndex"/>…) and returns the full path; complete or absent, reused when the same
    /// generation is already there (see <see cref="SyntheticShapes.WriteFolder"/>).</summary>
    public static string WriteFolder(string root, int perClass, int size, ulong seed, int firstIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (perClass < 1) throw new ArgumentOutOfRangeException(nameof(perClass), perClass, "At least one image per class is needed.");
        if (firstIndex < 0) throw new ArgumentOutOfRangeException(nameof(firstIndex), firstIndex, "The first index must be ≥ 0.");
        var full = Path.GetFullPath(root);
        var manifest = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["generator"] = "MLNetExt.SyntheticPatterns v1", ["classes"] = Classes, ["per_class"] = perClass, ["size"] = size,
            ["seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture), ["first_index"] = firstIndex,
        });
        if (SyntheticFolder.ReuseOrCheckEmpty(full, ManifestName, manifest)) return full;
        SyntheticFolder.Write(full, Classes, perClass, firstIndex, ManifestName, manifest, (name, index) => Render(LabelOf(name), size, seed, index));
        return full;
    }

    /// <summary><c>root/train</c> and <c>root/val</c> (validation continues the index sequence: no shared images).</summary>
    public static (string Train, string Val) WriteSplit(string root, int trainPerClass, int valPerClass, int size, ulong seed) =>
        (WriteFolder(Path.Combine(root, "train"), trainPerClass, size, seed), WriteFolder(Path.Combine(root, "val"), valPerClass, size, seed, trainPerClass));

    /// <summary>The label of a class name (case-insensitive).</summary>
    public static int LabelOf(string className)
    {
        for (int i = 0; i < Classes.Count; i++)
            if (string.Equals(Classes[i], className, StringComparison.OrdinalIgnoreCase)) return i;
        throw new ArgumentException($"Unknown pattern class '{className}'; expected one of {string.Join(", ", Classes)}.", nameof(className));
    }

    /// <summary>Renders image <paramref name="index"/> of class <paramref name="label"/> at
    /// <paramref name="size"/>×<paramref name="size"/>.</summary>
    public static RgbImage Render(int label, int size, ulong seed, int index)
    {
        if ((uint)label >= (uint)Classes.Count)
            throw new ArgumentOutOfRangeException(nameof(label), label, $"Pattern label must lie in 0..{Classes.Count - 1} ({string.Join(", ", Classes)}).");
        if (size is < 16 or > 4096) throw new ArgumentOutOfRangeException(nameof(size), size, "Image side must lie in 16..4096 pixels.");
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), index, "Image index must be ≥ 0.");
        var rng = Rng.For(seed, 0x5041_5454, label, index); // "PATT"
        double angle = rng.NextDouble() * Math.PI;
        double period = size * (0.12 + 0.16 * rng.NextDouble());   // 3.5 to 8 periods across the image
        double phaseU = rng.NextDouble() * period, phaseV = rng.NextDouble() * period;
        double duty = 0.35 + 0.3 * rng.NextDouble();                 // dot radius / stripe width as a fraction of the period
        double waveAmp = period * (0.25 + 0.25 * rng.NextDouble()), wavePeriod = period * (2 + 2 * rng.NextDouble());
        double ringX = size * rng.NextDouble(), ringY = size * rng.NextDouble();
        var (bg, fg) = Colours(rng, label);
        double lightAngle = rng.NextDouble() * 2 * Math.PI, lightAmount = 0.35 * rng.NextDouble();
        double noise = 4 + 10 * rng.NextDouble();
        var noiseRng = Rng.For(seed, 0x4E4F_4953, label, index, size);

        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        var img = new RgbImage(size, size);
        var px = img.Pixels;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double cx = x + 0.5, cy = y + 0.5;
                double u = cx * cos + cy * sin + phaseU, v = -cx * sin + cy * cos + phaseV;
                // Signed distance (pixels) to the nearest edge, positive inside the foreground.
                double d = label switch
                {
                    0 => (Wave(u, period) * Wave(v, period) > 0 ? 1 : -1) * Math.Min(Edge(u, period), Edge(v, period)),
                    1 => duty * period * 0.5 - Math.Sqrt(Sq(Centered(u, period)) + Sq(Centered(v, period))),
                    2 => Band(Math.Sqrt(Sq(cx - ringX) + Sq(cy - ringY)), period, duty),
                    3 => Band(u, period, duty),
                    _ => Band(u + waveAmp * Math.Sin(2 * Math.PI * v / wavePeriod), period, duty),
                };
                double coverage = Math.Clamp(0.5 + d, 0, 1);
                double light = 1 + lightAmount * ((cx / size - 0.5) * Math.Cos(lightAngle) + (cy / size - 0.5) * Math.Sin(lightAngle));
                int o = (y * size + x) * 3;
                for (int c = 0; c < 3; c++)
                {
                    double value = (bg[c] + (fg[c] - bg[c]) * coverage) * light + noise * (noiseRng.NextDouble() + noiseRng.NextDouble() - 1);
                    px[o + c] = (byte)Math.Clamp(Math.Round(value), 0, 255);
                }
            }
        return img;
    }

    static double Sq(double x) => x * x;

    /// <summary>Position within the period, centred on 0 (−p/2..p/2).</summary>
    static double Centered(double t, double p) => t - p * Math.Floor(t / p) - p / 2;

    /// <summary>Signed distance to the edge of a band of width duty·p centred in each period.</summary>
    static double Band(double t, double p, double duty) => duty * p / 2 - Math.Abs(Centered(t, p));

    /// <summary>Sign of the half-period square wave (+1 in the first half of each period).</summary>
    static double Wave(double t, double p) => t - p * Math.Floor(t / p) < p / 2 ? 1 : -1;

    /// <summary>Distance to the nearest half-period boundary.</summary>
    static double Edge(double t, double p)
    {
        double r = t - p / 2 * Math.Floor(t / (p / 2));
        return Math.Min(r, p / 2 - r);
    }

    /// <summary>The pattern's colour has a hue typical of its class (class k centred on hue k/5, ±0.13, so neighbouring
    /// classes overlap, as real categories' colours do) and random saturation and brightness; the background is any
    /// colour at least 120 apart (Euclidean RGB), so the pattern is always visible. Colour is a hint a model picks up
    /// first; the geometry is what separates overlapping hues.</summary>
    static (double[] Background, double[] Foreground) Colours(Rng rng, int label)
    {
        double hue = (label / (double)Classes.Count + (rng.NextDouble() - 0.5) * 0.26 + 1) % 1;
        var fg = Hsv(hue, 0.45 + 0.55 * rng.NextDouble(), 0.45 + 0.55 * rng.NextDouble());
        while (true)
        {
            var bg = new[] { 255 * rng.NextDouble(), 255 * rng.NextDouble(), 255 * rng.NextDouble() };
            if (Math.Sqrt(Sq(bg[0] - fg[0]) + Sq(bg[1] - fg[1]) + Sq(bg[2] - fg[2])) >= 120) return (bg, fg);
        }
    }

    static double[] Hsv(double h, double s, double v)
    {
        double f = h * 6 - Math.Floor(h * 6), p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
        var (r, g, b) = ((int)Math.Floor(h * 6) % 6) switch
        {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        return [255 * r, 255 * g, 255 * b];
    }
}

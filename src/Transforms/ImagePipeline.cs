using MLNetExt.Vision;
using MLNetExt.Imaging;

namespace MLNetExt.Transforms;

/// <summary>How an image is brought to the output size.</summary>
internal enum GeometryMode
{
    /// <summary>torchvision <c>RandomResizedCrop(size, scale, ratio)</c> (training).</summary>
    RandomResizedCrop,
    /// <summary>timm evaluation: <c>Resize(floor(size / cropPct))</c> on the shorter side, then <c>CenterCrop(size)</c>.</summary>
    ResizeCenterCrop,
    /// <summary><c>Resize((h, w))</c> to the exact output size, no crop.</summary>
    Resize,
}

/// <summary>The geometry chosen for one image, in the coordinates of the full-size upright image, plus the smallest
/// size a decoder may reduce the image to (JPEG DCT scaling) without losing resolution in the output.</summary>
internal readonly record struct GeometryPlan(int Left, int Top, int CropWidth, int CropHeight, int ResizeWidth, int ResizeHeight, int MinWidth, int MinHeight);

/// <summary>Decode → geometry → per-image augmentations → normalise to float32 CHW → random erasing. Deterministic for a
/// given <see cref="Rng"/>. Build one with <c>Train</c> or <c>Eval</c> from a backbone's pretrained
/// configuration (input size, mean, std, crop fraction, interpolation).</summary>
internal sealed class ImagePipeline
{
    public int Height { get; }
    public int Width { get; }
    public GeometryMode Mode { get; }
    public Interpolation Interpolation { get; }
    public double CropPct { get; init; } = 0.875;
    public double ScaleMin { get; init; } = 0.08;
    public double ScaleMax { get; init; } = 1.0;
    public double RatioMin { get; init; } = 3.0 / 4;
    public double RatioMax { get; init; } = 4.0 / 3;
    public IReadOnlyList<IImageTransform> Augmentations { get; init; } = [];
    public Normalize Normalize { get; init; } = Normalize.ImageNet;
    public RandomErasing? Erasing { get; init; }
    /// <summary>Let JPEGs decode at a reduced DCT scale when the output needs less resolution (faster; pixel values then
    /// differ slightly from a full-size decode + resize, as with PIL's <c>draft</c>).</summary>
    public bool DctScaling { get; init; } = true;

    public ImagePipeline(int height, int width, GeometryMode mode, Interpolation interpolation)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"Pipeline output size {height}x{width}: both sides must be positive.");
        (Height, Width, Mode, Interpolation) = (height, width, mode, interpolation);
    }

    /// <summary>Number of floats one processed image occupies (3·H·W).</summary>
    public int SampleLength => 3 * Height * Width;

    /// <summary>The usual fine-tuning pipeline: RandomResizedCrop, horizontal flip, optional ColorJitter and
    /// TrivialAugmentWide, normalise, RandomErasing (timm's defaults: jitter 0.4, erasing 0.25, pixel fill).</summary>
    public static ImagePipeline Train(int height, int width, IReadOnlyList<double> mean, IReadOnlyList<double> std,
        Interpolation interpolation = Interpolation.Bicubic, double scaleMin = 0.08, double hflip = 0.5, double colorJitter = 0.4,
        bool trivialAugment = false, double randomErasing = 0.25)
    {
        var aug = new List<IImageTransform>();
        if (hflip > 0) aug.Add(new RandomHorizontalFlip(hflip));
        if (trivialAugment) aug.Add(new TrivialAugmentWide());
        else if (colorJitter > 0) aug.Add(new ColorJitter(colorJitter, colorJitter, colorJitter));
        return new ImagePipeline(height, width, GeometryMode.RandomResizedCrop, interpolation)
        {
            ScaleMin = scaleMin,
            Augmentations = aug,
            Normalize = new Normalize(mean, std),
            Erasing = randomErasing > 0 ? new RandomErasing(randomErasing) : null,
        };
    }

    /// <summary>The evaluation pipeline: resize the shorter side to floor(size / cropPct), center crop, normalise.</summary>
    public static ImagePipeline Eval(int height, int width, IReadOnlyList<double> mean, IReadOnlyList<double> std,
        double cropPct = 0.875, Interpolation interpolation = Interpolation.Bicubic)
    {
        if (cropPct is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(cropPct), cropPct, "crop fraction must lie in (0, 1]");
        return new ImagePipeline(height, width, GeometryMode.ResizeCenterCrop, interpolation) { CropPct = cropPct, Normalize = new Normalize(mean, std) };
    }

    /// <summary><see cref="Train(int, int, IReadOnlyList{double}, IReadOnlyList{double}, Interpolation, double, double, double, bool, double)"/>
    /// at a backbone's pretrained input size, mean, std and interpolation.</summary>
    public static ImagePipeline Train(PretrainedConfig config, double scaleMin = 0.08, double hflip = 0.5, double colorJitter = 0.4,
        bool trivialAugment = false, double randomErasing = 0.25)
        => Train(config.Height, config.Width, config.Mean, config.Std, Resampler.Parse(config.Interpolation), scaleMin, hflip, colorJitter, trivialAugment, randomErasing);

    /// <summary><see cref="Eval(int, int, IReadOnlyList{double}, IReadOnlyList{double}, double, Interpolation)"/> at a
    /// backbone's pretrained input size, mean, std, crop fraction and interpolation.</summary>
    public static ImagePipeline Eval(PretrainedConfig config)
        => Eval(config.Height, config.Width, config.Mean, config.Std, config.CropPct, Resampler.Parse(config.Interpolation));

    /// <summary>Chooses the geometry for a full-size upright image of <paramref name="width"/>×<paramref name="height"/>.</summary>
    public GeometryPlan Plan(int width, int height, Rng rng)
    {
        switch (Mode)
        {
            case GeometryMode.RandomResizedCrop:
            {
                var (l, t, cw, ch) = RandomResizedCropParams.Sample(width, height, rng, ScaleMin, ScaleMax, RatioMin, RatioMax);
                int minW = (int)Math.Ceiling((double)Width * width / cw), minH = (int)Math.Ceiling((double)Height * height / ch);
                return new GeometryPlan(l, t, cw, ch, Width, Height, minW, minH);
            }
            case GeometryMode.ResizeCenterCrop:
            {
                int scaleSize = (int)Math.Floor(Math.Min(Height, Width) / CropPct);
                var (rw, rh) = Height == Width ? Resampler.ShorterSideSize(width, height, scaleSize)
                    : ((int)Math.Floor(Width / CropPct), (int)Math.Floor(Height / CropPct));
                var (l, t) = ImageOps.CenterCropOffsets(rw, rh, Width, Height);
                return new GeometryPlan(l, t, Width, Height, rw, rh, rw, rh);
            }
            default:
                return new GeometryPlan(0, 0, Width, Height, Width, Height, Width, Height);
        }
    }

    /// <summary>Applies a plan made for a <paramref name="fullWidth"/>×<paramref name="fullHeight"/> image to
    /// <paramref name="img"/>, which is that image or a reduced copy of it (DCT-scaled decode or the cache).</summary>
    public RgbImage ApplyGeometry(RgbImage img, int fullWidth, int fullHeight, GeometryPlan plan)
    {
        bool full = img.Width == fullWidth && img.Height == fullHeight;
        switch (Mode)
        {
            case GeometryMode.RandomResizedCrop:
                if (full)
                    return Resampler.ResizeRegion(img, plan.Left, plan.Top, plan.CropWidth, plan.CropHeight, Width, Height, Interpolation);
                double sx = (double)img.Width / fullWidth, sy = (double)img.Height / fullHeight;
                return Resampler.Resize(img, Width, Height, Interpolation,
                    (plan.Left * sx, plan.Top * sy, (plan.Left + plan.CropWidth) * sx, (plan.Top + plan.CropHeight) * sy));
            case GeometryMode.ResizeCenterCrop:
                var resized = Resampler.Resize(img, plan.ResizeWidth, plan.ResizeHeight, Interpolation);
                return ImageOps.Crop(resized, plan.Left, plan.Top, Width, Height);
            default:
                return Resampler.Resize(img, Width, Height, Interpolation);
        }
    }

    /// <summary>Decodes and processes encoded bytes into <paramref name="dst"/> (3·H·W floats); returns the EXIF
    /// orientation the file was stored with (1 = upright), which the decode applied.</summary>
    public int Process(ReadOnlySpan<byte> encoded, Rng rng, Span<float> dst)
    {
        var info = ImageDecoder.ReadInfo(encoded);
        var plan = Plan(info.Width, info.Height, rng);
        // The decoded image only feeds the geometry step (which always makes a new image): decode into scratch.
        var img = DctScaling ? ImageDecoder.Decode(encoded, plan.MinWidth, plan.MinHeight, true, scratch: true)
                             : ImageDecoder.Decode(encoded, 0, 0, true, scratch: true);
        Finish(img, info.Width, info.Height, plan, rng, dst);
        return info.Orientation;
    }

    /// <summary>Processes a decoded image; <paramref name="fullWidth"/>/<paramref name="fullHeight"/> give the size of
    /// the original when <paramref name="img"/> is a reduced copy (0 = it is the original).</summary>
    public void Process(RgbImage img, Rng rng, Span<float> dst, int fullWidth = 0, int fullHeight = 0)
    {
        if (fullWidth <= 0) (fullWidth, fullHeight) = (img.Width, img.Height);
        var plan = Plan(fullWidth, fullHeight, rng);
        Finish(img, fullWidth, fullHeight, plan, rng, dst);
    }

    /// <summary>Geometry + augmentations only (uint8 output, before normalisation).</summary>
    public RgbImage ProcessToImage(RgbImage img, Rng rng)
    {
        var plan = Plan(img.Width, img.Height, rng);
        var outImg = ApplyGeometry(img, img.Width, img.Height, plan);
        foreach (var t in Augmentations) outImg = t.Apply(outImg, rng);
        return outImg;
    }

    void Finish(RgbImage img, int fullWidth, int fullHeight, GeometryPlan plan, Rng rng, Span<float> dst)
    {
        var outImg = ApplyGeometry(img, fullWidth, fullHeight, plan);
        if (ReferenceEquals(outImg, img)) outImg = img.Clone(); // augmentations work in place; never touch the caller's/cache's image
        foreach (var t in Augmentations) outImg = t.Apply(outImg, rng);
        Normalize.Apply(outImg, dst);
        Erasing?.Apply(dst, 3, Height, Width, rng);
    }
}

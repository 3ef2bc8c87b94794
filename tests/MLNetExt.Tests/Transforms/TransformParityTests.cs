using MLNetExt.Data;
using MLNetExt.Serialization;
using MLNetExt.Tests.Data;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Transforms;

/// <summary>Transforms against torchvision 0.14 / PIL 9.4 outputs for fixed parameters (tests/fixtures/data/make_data_fixtures.py).</summary>
[TestClass]
public sealed class TransformParityTests
{
    static StateDict expected = null!;
    static RgbImage source = null!, dull = null!;

    [ClassInitialize]
    public static void Load(TestContext _)
    {
        expected = SafeTensors.Load(Fixtures.Path("data/expected_transforms.safetensors"));
        source = DataFixtures.Load("data/transform_source.png");
        dull = DataFixtures.Load("data/transform_dull.png");
    }

    [ClassCleanup]
    public static void Free() => expected.Dispose();

    static void Check(string key, RgbImage actual, int levels) => DataFixtures.AssertClose(expected[key], actual, levels, key);

    [TestMethod]
    [DataRow("bilinear")]
    [DataRow("bicubic")]
    public void ResizeMatchesPilExactly(string name)
    {
        var f = Resampler.Parse(name);
        foreach (var (w, h) in new[] { (30, 22), (150, 150), (96, 40), (11, 80) })
            Check($"resize_{name}_{w}x{h}", Resampler.Resize(source, w, h, f), Tolerances.ExactLevels);
        Check($"resize_{name}_box", Resampler.Resize(source, 40, 30, f, (6.5, 4.25, 84.0, 60.5)), Tolerances.ExactLevels);
        Check($"resized_crop_{name}", Resampler.Resize(ImageOps.Crop(source, 13, 8, 61, 46), 40, 40, f), Tolerances.ExactLevels);
        Check($"resized_crop_{name}", Resampler.ResizeRegion(source, 13, 8, 61, 46, 40, 40, f), Tolerances.ExactLevels);
        // the region path (no crop copy) equals crop-then-resize, including one-pass cases and regions at the border
        foreach (var (l, t, w, h, ow, oh) in new[] { (5, 7, 30, 20, 30, 50), (5, 7, 30, 20, 11, 20), (0, 0, 96, 72, 50, 50), (60, 40, 36, 32, 90, 13), (3, 3, 10, 10, 10, 10) })
            CollectionAssert.AreEqual(Resampler.Resize(ImageOps.Crop(source, l, t, w, h), ow, oh, f).Pixels,
                Resampler.ResizeRegion(source, l, t, w, h, ow, oh, f).Pixels, $"region {l},{t},{w}x{h} -> {ow}x{oh}");
        Check($"resize_shorter_{name}", Resampler.ResizeShorterSide(source, 45, f), Tolerances.ExactLevels);
    }

    [TestMethod]
    public void CropsAndFlipMatchTorchvision()
    {
        Check("center_crop_40x30", ImageOps.CenterCrop(source, 40, 30), Tolerances.ExactLevels);
        Check("center_crop_pad_109x78", ImageOps.CenterCrop(source, 109, 78), Tolerances.ExactLevels);
        var flipped = source.Clone();
        ImageOps.FlipHorizontal(flipped);
        Check("hflip", flipped, Tolerances.ExactLevels);
    }

    [TestMethod]
    public void ColorAdjustmentsMatchTorchvision()
    {
        RgbImage With(Action<RgbImage> f) { var c = source.Clone(); f(c); return c; }
        Check("brightness_1.37", With(i => ImageOps.AdjustBrightness(i, 1.37)), Tolerances.BlendLevels);
        Check("brightness_0.42", With(i => ImageOps.AdjustBrightness(i, 0.42)), Tolerances.BlendLevels);
        Check("contrast_1.6", With(i => ImageOps.AdjustContrast(i, 1.6)), Tolerances.BlendLevels);
        Check("contrast_0.3", With(i => ImageOps.AdjustContrast(i, 0.3)), Tolerances.BlendLevels);
        Check("saturation_1.8", With(i => ImageOps.AdjustSaturation(i, 1.8)), Tolerances.BlendLevels);
        Check("saturation_0.25", With(i => ImageOps.AdjustSaturation(i, 0.25)), Tolerances.BlendLevels);
        Check("hue_0.1", With(i => ImageOps.AdjustHue(i, 0.1)), Tolerances.HueLevels);
        Check("hue_-0.27", With(i => ImageOps.AdjustHue(i, -0.27)), Tolerances.HueLevels);
    }

    [TestMethod]
    [DataRow("ShearX", 0.3)]
    [DataRow("ShearY", -0.45)]
    [DataRow("TranslateX", 11.0)]
    [DataRow("TranslateY", -7.0)]
    [DataRow("Rotate", 31.5)]
    [DataRow("Rotate", -90.0)]
    [DataRow("Sharpness", 0.8)]
    [DataRow("Sharpness", -0.6)]
    [DataRow("Posterize", 3.0)]
    [DataRow("Solarize", 128.0)]
    [DataRow("AutoContrast", 0.0)]
    [DataRow("Equalize", 0.0)]
    [DataRow("Color", 0.5)]
    [DataRow("Contrast", -0.5)]
    [DataRow("Brightness", 0.3)]
    public void TrivialAugmentOperationsMatchTorchvision(string op, double magnitude)
    {
        var key = $"op_{op}_{magnitude.ToString("0.0##", System.Globalization.CultureInfo.InvariantCulture)}";
        int levels = op is "Sharpness" or "Color" or "Contrast" or "Brightness" ? Tolerances.BlendLevels : Tolerances.ExactLevels;
        Check(key, TrivialAugmentWide.ApplyOp(source.Clone(), op, magnitude), levels);
    }

    [TestMethod]
    public void AutoContrastAndEqualizeOnLowContrastImage()
    {
        Check("op_AutoContrast_dull", TrivialAugmentWide.ApplyOp(dull.Clone(), "AutoContrast", 0), Tolerances.ExactLevels);
        Check("op_Equalize_dull", TrivialAugmentWide.ApplyOp(dull.Clone(), "Equalize", 0), Tolerances.ExactLevels);
    }

    /// <summary>timm's eval transform: Resize(floor(48 / 0.875), bicubic) + CenterCrop(48) + ToTensor + Normalize.</summary>
    [TestMethod]
    public void EvalPipelineMatchesTorchvision()
    {
        using var scope = TensorScope.Begin();
        var p = ImagePipeline.Eval(48, 48, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 0.875, Interpolation.Bicubic);
        var dst = new float[p.SampleLength];
        p.Process(File.ReadAllBytes(Fixtures.Path("data/transform_source.png")), new Rng(0), dst);
        var actual = Tensor.FromArray<float>(dst, [3, 48, 48]);
        TensorAssert.Close(expected["eval_pipeline_48"], actual, Tolerances.PipelineFloatAbs, 0, "eval pipeline");
    }

    [TestMethod]
    public void TrivialAugmentMagnitudeTableMatchesTorchvision()
    {
        Assert.AreEqual(0.0, TrivialAugmentWide.Magnitude("Rotate", 0));
        Assert.AreEqual(135.0, TrivialAugmentWide.Magnitude("Rotate", 30));
        Assert.AreEqual(8.0, TrivialAugmentWide.Magnitude("Posterize", 0));
        Assert.AreEqual(2.0, TrivialAugmentWide.Magnitude("Posterize", 30));
        Assert.AreEqual(7.0, TrivialAugmentWide.Magnitude("Posterize", 3)); // round(0.6) = 1
        Assert.AreEqual(255.0, TrivialAugmentWide.Magnitude("Solarize", 0));
    }
}

[TestClass]
public sealed class PipelineConfigTests
{
    /// <summary>Pipelines built from a backbone's PretrainedConfig take its size, statistics, crop fraction and filter.</summary>
    [TestMethod]
    public void PipelinesFollowPretrainedConfig()
    {
        var cfg = new MLNetExt.Vision.PretrainedConfig(3, 48, 48, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25], 0.9, "bilinear", 1000, "stem.conv", "head");
        var eval = ImagePipeline.Eval(cfg);
        Assert.AreEqual((48, 48, 0.9, Interpolation.Bilinear, GeometryMode.ResizeCenterCrop), (eval.Height, eval.Width, eval.CropPct, eval.Interpolation, eval.Mode));
        CollectionAssert.AreEqual(new float[] { 0.5f, 0.5f, 0.5f }, eval.Normalize.Mean);
        var plan = eval.Plan(200, 100, new Rng(0));
        Assert.AreEqual((106, 53), (plan.ResizeWidth, plan.ResizeHeight), "shorter side floor(48 / 0.9) = 53, longer int(53·200/100)");
        var train = ImagePipeline.Train(cfg);
        Assert.AreEqual(GeometryMode.RandomResizedCrop, train.Mode);
        Assert.IsNotNull(train.Erasing);
        Assert.Throws<ArgumentException>(() => ImagePipeline.Eval(cfg with { Interpolation = "lanczos" }));
    }
}

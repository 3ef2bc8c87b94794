using MLNetExt.Data;
using MLNetExt.Tests.Data;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Transforms;

/// <summary>Random transforms: the properties that define them (no torchvision reference exists for our generator's draws).</summary>
[TestClass]
public sealed class AugmentTests
{
    static float[] ConstantBatch(int n, int plane)
    {
        var x = new float[n * plane];
        for (int i = 0; i < n; i++) Array.Fill(x, i, i * plane, plane);
        return x;
    }

    [TestMethod]
    public void MixupBlendsEachSampleWithItsMirrorAndTargetsFollowLambda()
    {
        int n = 4, c = 3, h = 8, w = 8, plane = c * h * w;
        var x = ConstantBatch(n, plane);
        var labels = new[] { 0, 1, 2, 1 };
        var m = new MixupCutmix(mixupAlpha: 0.8, cutmixAlpha: 0, labelSmoothing: 0);
        var (t, lam, cut) = m.Apply(x, n, c, h, w, labels, 3, new Rng(5));
        Assert.IsFalse(cut);
        Assert.IsTrue(lam is > 0 and < 1, $"lambda {lam}");
        for (int i = 0; i < n; i++)
        {
            float expected = (float)(i * lam + (n - 1 - i) * (1 - lam));
            Assert.AreEqual(expected, x[i * plane + 17], 1e-5f, $"sample {i}");
            for (int k = 0; k < 3; k++)
            {
                double e = (labels[i] == k ? lam : 0) + (labels[n - 1 - i] == k ? 1 - lam : 0);
                Assert.AreEqual(e, t[i * 3 + k], 1e-6, $"target {i},{k}");
            }
        }
    }

    [TestMethod]
    public void CutmixPastesABoxAndLambdaIsTheKeptArea()
    {
        int n = 2, c = 3, h = 16, w = 20, plane = c * h * w;
        var m = new MixupCutmix(mixupAlpha: 0, cutmixAlpha: 1.0, labelSmoothing: 0.1);
        for (ulong seed = 0; seed < 10; seed++)
        {
            var x = ConstantBatch(n, plane);
            var (t, lam, cut) = m.Apply(x, n, c, h, w, [0, 1], 2, new Rng(seed));
            Assert.IsTrue(cut);
            int pasted = 0;
            for (int k = 0; k < plane; k++) if (x[k] == 1f) pasted++;
            Assert.AreEqual(1 - lam, pasted / (double)plane, 1e-9, "λ = 1 − pasted area");
            // smoothed one-hot targets: on = 0.95, off = 0.05
            Assert.AreEqual(0.95 * lam + 0.05 * (1 - lam), t[0], 1e-6);
            Assert.AreEqual(1.0, t[0] + t[1], 1e-6);
        }
    }

    [TestMethod]
    public void RandomErasingErasesOneRectangleInsideTheImage()
    {
        int c = 3, h = 20, w = 30;
        var e = new RandomErasing(p: 1.0, randomFill: false, value: -9f);
        int erasedRuns = 0;
        for (ulong seed = 0; seed < 20; seed++)
        {
            var x = new float[c * h * w];
            Array.Fill(x, 1f);
            var rect = e.Apply(x, c, h, w, new Rng(seed));
            if (rect is not var (l, t, rw, rh)) continue;
            erasedRuns++;
            Assert.IsTrue(l >= 0 && t >= 0 && l + rw <= w && t + rh <= h);
            double area = rw * rh / (double)(h * w);
            Assert.IsTrue(area is >= 0.02 - 0.01 and <= 1.0 / 3 + 0.05, $"area fraction {area}");
            Assert.AreEqual(c * rw * rh, x.Count(v => v == -9f));
            Assert.AreEqual(x.Length - c * rw * rh, x.Count(v => v == 1f));
        }
        Assert.IsGreaterThan(15, erasedRuns);
        var none = new float[c * h * w];
        Assert.IsNull(new RandomErasing(p: 0).Apply(none, c, h, w, new Rng(1)));
    }

    [TestMethod]
    public void RandomResizedCropParamsStayInsideAndFollowScaleAndRatio()
    {
        var rng = new Rng(3);
        for (int i = 0; i < 500; i++)
        {
            var (l, t, w, h) = RandomResizedCropParams.Sample(500, 375, rng);
            Assert.IsTrue(l >= 0 && t >= 0 && l + w <= 500 && t + h <= 375, $"{l},{t},{w},{h}");
            double area = w * h / (500.0 * 375), ratio = (double)w / h;
            Assert.IsTrue(area is > 0.07 and <= 1.0, $"area {area}");
            Assert.IsTrue(ratio is > 0.74 and < 1.35, $"ratio {ratio}");
        }
        // extreme aspect falls back to the largest centred crop with a ratio at the boundary
        var (fl, ft, fw, fh) = RandomResizedCropParams.Sample(1000, 10, new Rng(0), scaleMin: 0.9);
        Assert.AreEqual((10, 13), (fh, fw));
        Assert.AreEqual(((1000 - 13) / 2, 0), (fl, ft));
    }

    [TestMethod]
    public void PipelineIsDeterministicGivenTheGeneratorAndZeroJitterIsIdentity()
    {
        var img = DataFixtures.Load("data/transform_source.png");
        var p = ImagePipeline.Train(32, 32, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], trivialAugment: true, randomErasing: 0.5);
        var a = new float[p.SampleLength];
        var b = new float[p.SampleLength];
        var c = new float[p.SampleLength];
        p.Process(img, Rng.For(9, 1, 2), a);
        p.Process(img, Rng.For(9, 1, 2), b);
        p.Process(img, Rng.For(9, 1, 3), c);
        CollectionAssert.AreEqual(a, b);
        CollectionAssert.AreNotEqual(a, c);
        var same = img.Clone();
        new ColorJitter().Apply(same, new Rng(1));
        CollectionAssert.AreEqual(img.Pixels, same.Pixels);
    }

    [TestMethod]
    public void DctScaledTrainingDecodeStaysCloseToTheExactPath()
    {
        // A JPEG large enough for a 1/2 reduction at a 24x24 output: same plan, reduced decode, mean error small.
        var bytes = File.ReadAllBytes(DataFixtures.Image("rgb.jpg"));
        var exact = new ImagePipeline(12, 12, GeometryMode.RandomResizedCrop, Interpolation.Bilinear) { ScaleMin = 0.9, DctScaling = false };
        var scaled = exact.WithDct();
        double err = 0;
        var x = new float[exact.SampleLength];
        var y = new float[exact.SampleLength];
        for (int s = 0; s < 5; s++)
        {
            exact.Process(bytes, new Rng((ulong)s), x);
            scaled.Process(bytes, new Rng((ulong)s), y);
            for (int i = 0; i < x.Length; i++) err += Math.Abs(x[i] - y[i]);
        }
        err /= 5 * x.Length;
        Assert.IsLessThan(0.15, err, $"mean abs difference (normalised units) {err}");
    }
}

internal static class PipelineTestExtensions
{
    public static ImagePipeline WithDct(this ImagePipeline p) => new(p.Height, p.Width, p.Mode, p.Interpolation)
    {
        ScaleMin = p.ScaleMin, ScaleMax = p.ScaleMax, Augmentations = p.Augmentations, Normalize = p.Normalize, DctScaling = true,
    };
}

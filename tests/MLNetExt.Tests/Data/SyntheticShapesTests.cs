using System.Diagnostics;
using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

[TestClass]
public sealed class SyntheticShapesTests
{
    static string TempDir() => Path.Combine(Path.GetTempPath(), "mlnetext-shapes-" + Guid.NewGuid().ToString("N"));

    [TestMethod]
    public void SameArgumentsGiveTheSameBytesAndOtherIndicesSeedsOrClassesDiffer()
    {
        for (int label = 0; label < SyntheticShapes.Classes.Count; label++)
        {
            var a = PngEncoder.Encode(SyntheticShapes.Render(label, 96, 7, 3));
            var b = PngEncoder.Encode(SyntheticShapes.Render(SyntheticShapes.Classes[label], 96, 7, 3));
            CollectionAssert.AreEqual(a, b, $"class {label}: same (seed, index) must give the same PNG");
            var otherIndex = SyntheticShapes.Render(label, 96, 7, 4).Pixels;
            var otherSeed = SyntheticShapes.Render(label, 96, 8, 3).Pixels;
            var first = SyntheticShapes.Render(label, 96, 7, 3).Pixels;
            Assert.IsGreaterThan(1000, Differing(first, otherIndex), $"class {label}: index 3 and 4 should be different scenes");
            Assert.IsGreaterThan(1000, Differing(first, otherSeed), $"class {label}: seeds 7 and 8 should be different scenes");
        }
        Assert.IsGreaterThan(1000, Differing(SyntheticShapes.Render(0, 64, 1, 0).Pixels, SyntheticShapes.Render(1, 64, 1, 0).Pixels),
            "two classes at the same (seed, index) should not share a scene");
    }

    static int Differing(byte[] a, byte[] b)
    {
        Assert.HasCount(a.Length, b);
        int n = 0;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) n++;
        return n;
    }

    /// <summary>The geometry promised by the documentation: the shape lies inside the frame, its extent stays
    /// within 70 % of the side, and where it is fully covered it stands out from its immediate surroundings.</summary>
    [TestMethod]
    public void ShapesStayInsideTheFrameAtTheDocumentedSizeAndAreVisible()
    {
        const int size = 96;
        int visible = 0, total = 0;
        for (int label = 0; label < SyntheticShapes.Classes.Count; label++)
            for (int index = 0; index < 12; index++)
            {
                var mask = SyntheticShapes.ShapeCoverage(label, size, 11, index);
                var image = SyntheticShapes.Render(label, size, 11, index);
                int x0 = size, x1 = -1, y0 = size, y1 = -1;
                double inSum = 0, outSum = 0;
                var inside = new double[3];
                var outside = new double[3];
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                    {
                        float m = mask[y * size + x];
                        if (m <= 0) continue;
                        x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
                    }
                string what = $"{SyntheticShapes.Classes[label]} #{index}";
                Assert.IsTrue(x1 >= 0, $"{what}: empty shape");
                Assert.IsTrue(x0 > 0 && y0 > 0 && x1 < size - 1 && y1 < size - 1, $"{what}: touches the border (box {x0},{y0}..{x1},{y1})");
                Assert.IsLessThanOrEqualTo(0.70 * size + 2, (double)Math.Max(x1 - x0 + 1, y1 - y0 + 1), $"{what}: larger than 70 % of the side");
                Assert.IsGreaterThanOrEqualTo(0.30 * size * 0.75 - 2, (double)Math.Max(x1 - x0 + 1, y1 - y0 + 1), $"{what}: smaller than the documented minimum");
                // Mean colour of fully covered pixels vs a 3-pixel band just outside the shape.
                for (int y = 0; y < size; y++)
                    for (int x = 0; x < size; x++)
                    {
                        float m = mask[y * size + x];
                        int o = (y * size + x) * 3;
                        if (m >= 1) { inSum++; for (int c = 0; c < 3; c++) inside[c] += image.Pixels[o + c]; }
                        else if (m == 0 && NearShape(mask, size, x, y, 3)) { outSum++; for (int c = 0; c < 3; c++) outside[c] += image.Pixels[o + c]; }
                    }
                double dist = Math.Sqrt(Enumerable.Range(0, 3).Sum(c => Math.Pow(inside[c] / inSum - outside[c] / outSum, 2)));
                total++;
                if (dist > 40) visible++;
            }
        // Lines drawn over the shape and gradients can lower the contrast of a few images, never of most.
        Assert.IsGreaterThanOrEqualTo(0.9 * total, (double)visible, $"only {visible} of {total} shapes differ clearly from their surroundings");
    }

    static bool NearShape(float[] mask, int size, int x, int y, int r)
    {
        for (int dy = -r; dy <= r; dy++)
            for (int dx = -r; dx <= r; dx++)
            {
                int xx = x + dx, yy = y + dy;
                if (xx >= 0 && yy >= 0 && xx < size && yy < size && mask[yy * size + xx] > 0) return true;
            }
        return false;
    }

    [TestMethod]
    public void FolderDecodesBackInClassOrderWithTheRenderedPixels()
    {
        var root = TempDir();
        try
        {
            var path = SyntheticShapes.WriteFolder(root, perClass: 3, size: 64, seed: 5);
            Assert.AreEqual(Path.GetFullPath(root), path);
            var ds = ImageDataset.FromFolder(path);
            CollectionAssert.AreEqual(SyntheticShapes.Classes.ToList(), ds.Classes.ToList());
            CollectionAssert.AreEqual(Enumerable.Repeat(3, SyntheticShapes.Classes.Count).ToArray(), ds.CountPerClass());
            Assert.HasCount(0, ds.Issues);
            foreach (var item in ds.Items)
            {
                var name = Path.GetFileNameWithoutExtension(item.Path!);
                int index = int.Parse(name[(name.LastIndexOf('_') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
                StringAssert.StartsWith(name, ds.Classes[item.Label] + "_");
                var expected = SyntheticShapes.Render(item.Label, 64, 5, index);
                var decoded = ImageDecoder.DecodeFile(item.Path!);
                CollectionAssert.AreEqual(expected.Pixels, decoded.Pixels, $"{item.Path} does not decode to the rendered image");
            }
            // Same settings: reused as is; another generation into the same folder is refused.
            Assert.AreEqual(path, SyntheticShapes.WriteFolder(root, 3, 64, 5));
            Assert.ThrowsExactly<IOException>(() => SyntheticShapes.WriteFolder(root, 4, 64, 5));
            Assert.IsFalse(Directory.EnumerateDirectories(Path.GetDirectoryName(path)!, Path.GetFileName(path) + ".partial-*").Any(),
                "no temporary folder is left behind");
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    [TestMethod]
    public void SplitUsesTheTrainValLayoutWithDisjointScenesAndASubsetOfClasses()
    {
        var root = TempDir();
        try
        {
            var (train, val) = SyntheticShapes.WriteSplit(root, trainPerClass: 2, valPerClass: 2, size: 48, seed: 9, classes: ["triangle", "circle"]);
            var (t, v) = ImageDataset.FromFolders(root);
            Assert.IsNotNull(v);
            Assert.AreEqual(train, t.Source);
            Assert.AreEqual(val, v.Source);
            CollectionAssert.AreEqual(new[] { "circle", "triangle" }, t.Classes.ToArray());
            CollectionAssert.AreEqual(new[] { "circle", "triangle" }, v.Classes.ToArray());
            var trainPixels = t.Items.Select(i => ImageDecoder.DecodeFile(i.Path!).Pixels).ToList();
            foreach (var item in v.Items)
            {
                var px = ImageDecoder.DecodeFile(item.Path!).Pixels;
                Assert.IsFalse(trainPixels.Any(p => p.AsSpan().SequenceEqual(px)), $"{item.Path} repeats a training image");
            }
            CollectionAssert.AreEqual(new[] { "circle_002.png", "circle_003.png" },
                Directory.GetFiles(Path.Combine(val, "circle")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    [TestMethod]
    public void BadArgumentsAreRejectedWithTheirNames()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => SyntheticShapes.Render("hexagon", 64, 0, 0));
        StringAssert.Contains(e.Message, "hexagon");
        StringAssert.Contains(e.Message, "circle");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(5, 64, 0, 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(0, 8, 0, 0));
        Assert.ThrowsExactly<ArgumentException>(() => SyntheticShapes.WriteFolder(TempDir(), 1, 32, 0, ["star"]));
        Assert.ThrowsExactly<ArgumentException>(() => SyntheticShapes.WriteFolder(TempDir(), 1, 32, 0, ["star", "STAR"]));
    }

    [TestMethod]
    public void EasyScenesHaveLargerShapesAndOptionsAreValidated()
    {
        const int size = 64;
        double Area(ShapeSceneOptions o, int label, int index) => SyntheticShapes.ShapeCoverage(label, size, 3, index, o).Sum() / (size * size);
        for (int label = 0; label < SyntheticShapes.Classes.Count; label++)
        {
            double easy = Enumerable.Range(0, 10).Average(i => Area(ShapeSceneOptions.Easy, label, i));
            double hard = Enumerable.Range(0, 10).Average(i => Area(ShapeSceneOptions.Default, label, i));
            Assert.IsGreaterThan(hard * 1.3, easy, $"{SyntheticShapes.Classes[label]}: mean area {easy:F3} (easy) vs {hard:F3} (default)");
            // The smallest easy shape: extent 0.45 of the side; its area is at least that of the inscribed triangle/star.
            Assert.IsGreaterThan(0.03, Enumerable.Range(0, 10).Min(i => Area(ShapeSceneOptions.Easy, label, i)));
        }
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(0, 64, 0, 0, new ShapeSceneOptions { MaxExtent = 0.95 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(0, 64, 0, 0, new ShapeSceneOptions { MinExtent = 0.8, MaxExtent = 0.5 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(0, 64, 0, 0, new ShapeSceneOptions { MaxRotationDegrees = 270 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(0, 64, 0, 0, new ShapeSceneOptions { MaxDistractorLines = -1 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticShapes.Render(0, 64, 0, 0, new ShapeSceneOptions { BackgroundContrast = 1.5 }));
        var root = TempDir();
        try
        {
            SyntheticShapes.WriteFolder(root, 1, 32, 0, ["circle", "star"], options: ShapeSceneOptions.Easy);
            var e = Assert.ThrowsExactly<IOException>(() => SyntheticShapes.WriteFolder(root, 1, 32, 0, ["circle", "star"]));
            StringAssert.Contains(e.Message, "other settings");
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    /// <summary>Generation must stay cheap next to training (the demo writes a few hundred images).</summary>
    [TestMethod]
    public void RenderingIsFast()
    {
        SyntheticShapes.Render(0, 112, 0, 0); // JIT
        var clock = Stopwatch.StartNew();
        const int n = 25;
        for (int i = 0; i < n; i++) SyntheticShapes.Render(i % SyntheticShapes.Classes.Count, 112, 1, i);
        double ms = clock.Elapsed.TotalMilliseconds / n;
        // 10 ms is the target on an idle core; the bound leaves room for a shared, loaded build machine.
        Assert.IsLessThan(40.0, ms, $"{ms:F1} ms per 112x112 image");
    }
}

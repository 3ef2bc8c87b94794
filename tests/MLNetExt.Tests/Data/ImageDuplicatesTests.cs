using System.Numerics;
using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

/// <summary>The same photo stored more than once: the difference hash, the groups (identical files, resized and
/// re-encoded copies; conflicting labels and train/val leaks first), distinct real photos kept apart, and the
/// `dataset` verb's report.</summary>
[TestClass]
public sealed class ImageDuplicatesTests
{
    static RgbImage Ramp(int width, int height, bool rising)
    {
        var img = new RgbImage(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                img.Pixels.AsSpan((y * width + x) * 3, 3).Fill((byte)(rising ? x * 255 / (width - 1) : 255 - x * 255 / (width - 1)));
        return img;
    }

    static ImageFingerprint Print(string split, string source, string cls, string content, ulong hash, byte thumbnail = 100) =>
        new(split, source, cls, content, hash, Enumerable.Repeat(thumbnail, 256).ToArray());

    [TestMethod]
    public void DifferenceHash_SetsABitWhereACellIsBrighterThanItsRightNeighbour()
    {
        Assert.AreEqual(0UL, ImageDuplicates.DifferenceHash(Ramp(90, 40, rising: true)), "brighter to the right: no bit");
        Assert.AreEqual(ulong.MaxValue, ImageDuplicates.DifferenceHash(Ramp(90, 40, rising: false)), "darker to the right: every bit");
        // Smaller than the grid: cells of one pixel, columns 0-4 on the bright pixel and 5-8 on the dark one.
        Assert.AreEqual(0x0808_0808_0808_0808UL, ImageDuplicates.DifferenceHash(Ramp(2, 1, rising: false)));
        Assert.AreEqual(0UL, ImageDuplicates.DifferenceHash(new RgbImage(1, 1)), "one pixel: every cell equal");
        // Only the top row of cells darker to the right: the first 8 bits (the most significant) are set.
        var img = Ramp(90, 80, rising: true);
        var top = Ramp(90, 10, rising: false);
        Array.Copy(top.Pixels, img.Pixels, top.Pixels.Length);
        Assert.AreEqual(0xFF00_0000_0000_0000UL, ImageDuplicates.DifferenceHash(img));
    }

    [TestMethod]
    public void Find_GroupsCopies_ConflictsAndLeaksFirst_AndLeavesDistinctImagesApart()
    {
        var images = new[]
        {
            Print("train", "a/1.jpg", "a", "H1", 0x0F0F_0F0F_0F0F_0F0FUL, 40),
            Print("train", "a/1 copy.jpg", "a", "H1", 0x0F0F_0F0F_0F0F_0F0FUL, 40),             // identical to a/1
            Print("train", "a/2.jpg", "a", "H2", 0x1234_5678_9ABC_DEF0UL, 100),
            Print("val", "a/2-small.png", "a", "H3", 0x1234_5678_9ABC_DEF0UL ^ 0xFF, 106),      // 8 bits, 6 levels from a/2: a copy, in val
            Print("train", "b/9.jpg", "b", "H4", 0xFFFF_0000_FFFF_0000UL),
            Print("train", "a/9.png", "a", "H5", 0xFFFF_0000_FFFF_0000UL ^ (1UL << 63)),        // 1 bit from b/9, another class
            Print("train", "b/5.jpg", "b", "H6", 0x0F0F_0F0F_0F0F_0F0FUL ^ 0b1111UL, 47),       // 4 bits but 7 levels from a/1: distinct
            Print("train", "b/6.jpg", "b", "H7", 0x1234_5678_9ABC_DEF0UL ^ 0x1_FF00, 100),     // 9 bits from a/2 (17 from its copy): distinct
        };
        var groups = ImageDuplicates.Find(images);
        Assert.HasCount(3, groups);
        CollectionAssert.AreEqual(new[] { "b/9.jpg", "a/9.png" }, groups[0].Images.Select(i => i.Source).ToArray(), "conflicting labels first");
        Assert.IsTrue(groups[0].ConflictingLabels);
        Assert.IsFalse(groups[0].Identical);
        CollectionAssert.AreEqual(new[] { "a/2.jpg", "a/2-small.png" }, groups[1].Images.Select(i => i.Source).ToArray(), "then train/val leaks");
        Assert.IsTrue(groups[1].CrossesSplits);
        Assert.IsFalse(groups[1].ConflictingLabels);
        CollectionAssert.AreEqual(new[] { "a/1.jpg", "a/1 copy.jpg" }, groups[2].Images.Select(i => i.Source).ToArray());
        Assert.IsTrue(groups[2].Identical);
        Assert.IsFalse(groups[2].CrossesSplits);

        // Identical bytes are one photo even if their hashes were computed apart (a different decoded size).
        var apart = ImageDuplicates.Find([Print("train", "x", "a", "H", 0UL, 0), Print("val", "y", "a", "H", ulong.MaxValue, 255)]);
        Assert.HasCount(1, apart);
        Assert.IsTrue(apart[0].Identical);
        Assert.IsEmpty(ImageDuplicates.Find([]));
    }

    /// <summary>Real photos, decoded as `dataset` decodes them (a reduced JPEG scale of at least 64 px): a copy halved in
    /// size (bicubic) and saved as PNG looks like the photo, and so does the photo decoded at full size; no two distinct
    /// photos of the 397 look alike.</summary>
    [TestMethod]
    public void HymenopteraPhotos_CopiesLookAlike_DistinctPhotosDoNot()
    {
        var files = Directory.GetFiles(DataFixtures.RequireHymenoptera(), "*.jpg", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        Assert.IsGreaterThan(300, files.Count);
        var prints = files.AsParallel().AsOrdered().Select(f =>
        {
            var bytes = File.ReadAllBytes(f);
            return ImageFingerprint.Of("train", f, "c", bytes, ImageDecoder.Decode(bytes, 64, 64));
        }).ToList();
        Assert.IsEmpty(ImageDuplicates.Find(prints), "distinct photos");

        for (int i = 0; i < 24; i++)
        {
            var full = ImageDecoder.DecodeFile(files[i]);
            var png = PngEncoder.Encode(Resampler.Resize(full, full.Width / 2, full.Height / 2, Interpolation.Bicubic));
            foreach (var (what, copy) in new[] { ("halved", ImageDecoder.Decode(png, 64, 64)), ("full size", full) })
            {
                var print = ImageFingerprint.Of("val", what, "c", png, copy);
                int bits = BitOperations.PopCount(prints[i].DifferenceHash ^ print.DifferenceHash);
                double levels = prints[i].Thumbnail.Zip(print.Thumbnail, (a, b) => Math.Abs(a - b)).Average();
                Assert.IsTrue(ImageDuplicates.LookAlike(prints[i], print), $"{files[i]}, {what}: {bits} bits, {levels:F2} levels apart");
            }
        }
    }

    [TestMethod]
    public void DatasetCommand_ListsTheSamePhotoStoredTwice_MostHarmfulFirst()
    {
        var root = Directory.CreateTempSubdirectory("mlnx-dup-").FullName;
        try
        {
            var photos = Directory.GetFiles(Path.Combine(DataFixtures.RequireHymenoptera(), "train", "ants"), "*.jpg").Order(StringComparer.Ordinal).Take(4).ToList();
            string Put(string rel, string photo)
            {
                var p = Path.Combine(root, rel);
                Directory.CreateDirectory(Path.GetDirectoryName(p)!);
                File.Copy(photo, p);
                return p;
            }
            // Photo 0 twice in class a, and halved as a PNG in val/b; photo 2 twice in class b; photos 1 and 3 once.
            var jpg = Put("train/a/1.jpg", photos[0]);
            var copy = Put("train/a/1-copy.jpg", photos[0]);
            var full = ImageDecoder.DecodeFile(photos[0]);
            var png = Path.Combine(root, "val", "b", "1.png");
            Directory.CreateDirectory(Path.GetDirectoryName(png)!);
            File.WriteAllBytes(png, PngEncoder.Encode(Resampler.Resize(full, full.Width / 2, full.Height / 2, Interpolation.Bicubic)));
            Put("train/b/2.jpg", photos[1]);
            var twice = Put("train/b/3.jpg", photos[2]);
            var twice2 = Put("train/b/4.jpg", photos[2]);
            Put("val/a/5.jpg", photos[3]);
            var output = new StringWriter();
            Assert.AreEqual(0, DatasetCommand.Run(root, null, output, new StringWriter()));
            var lines = output.ToString().Split('\n').Select(l => l.TrimEnd()).ToList();
            int at = lines.FindIndex(l => l.StartsWith("Duplicates: ", StringComparison.Ordinal));
            Assert.IsGreaterThanOrEqualTo(0, at, output.ToString());
            Assert.AreEqual("Duplicates: 2 photos are stored more than once (1 only as identical files, 1 with resized or re-encoded copies)", lines[at]);
            Assert.AreEqual($"  look alike, labelled 'a' and 'b' (at most one is right), in train and val (validation scores count a photo the model " +
                            $"trained on): {copy}, {jpg}, {png}", lines[at + 1]);
            Assert.AreEqual($"  identical: {twice}, {twice2}", lines[at + 2]);

            Directory.Delete(Path.Combine(root, "val"), recursive: true);
            File.Delete(copy); File.Delete(twice2);
            output = new StringWriter();
            Assert.AreEqual(0, DatasetCommand.Run(root, null, output, new StringWriter()));
            StringAssert.Contains(output.ToString(), "Duplicates: none (no identical files, no resized or re-encoded copies)");
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}

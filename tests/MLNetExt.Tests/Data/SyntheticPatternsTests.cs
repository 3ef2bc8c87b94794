using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

[TestClass]
public sealed class SyntheticPatternsTests
{
    [TestMethod]
    public void Render_IsDeterministic_AndDiffersAcrossIndicesAndClasses()
    {
        var a = SyntheticPatterns.Render(3, 48, 5, 7);
        CollectionAssert.AreEqual(a.Pixels, SyntheticPatterns.Render(3, 48, 5, 7).Pixels);
        CollectionAssert.AreNotEqual(a.Pixels, SyntheticPatterns.Render(3, 48, 5, 8).Pixels);
        CollectionAssert.AreNotEqual(a.Pixels, SyntheticPatterns.Render(4, 48, 5, 7).Pixels);
        CollectionAssert.AreNotEqual(a.Pixels, SyntheticPatterns.Render(3, 48, 6, 7).Pixels);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SyntheticPatterns.Render(5, 48, 0, 0));
    }

    [TestMethod]
    public void Render_ShowsTwoColoursEverywhere()
    {
        // The class is visible all over the image: every quarter holds both colours (a wide spread of luma).
        for (int label = 0; label < SyntheticPatterns.Classes.Count; label++)
            for (int index = 0; index < 4; index++)
            {
                var img = SyntheticPatterns.Render(label, 64, 1, index);
                for (int q = 0; q < 4; q++)
                {
                    var luma = new List<double>();
                    for (int y = q / 2 * 32; y < q / 2 * 32 + 32; y++)
                        for (int x = q % 2 * 32; x < q % 2 * 32 + 32; x++)
                        {
                            int o = (y * 64 + x) * 3;
                            luma.Add(Math.Abs(img.Pixels[o] - (double)img.Pixels[o + 1]) + Math.Abs(img.Pixels[o + 1] - (double)img.Pixels[o + 2]) + img.Pixels[o]);
                        }
                    luma.Sort();
                    Assert.IsGreaterThan(30, luma[^16] - luma[15], $"{SyntheticPatterns.Classes[label]} #{index}, quarter {q}");
                }
            }
    }

    [TestMethod]
    public void WriteSplit_ReadsBackAsAClassFolderDataset_AndIsReused()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-patterns-");
        try
        {
            var (train, val) = SyntheticPatterns.WriteSplit(dir.FullName, 2, 1, 40, 3);
            var (t, v) = ImageDataset.FromFolders(dir.FullName);
            CollectionAssert.AreEqual(SyntheticPatterns.Classes.ToList(), t.Classes.ToList());
            Assert.AreEqual(10, t.Count);
            Assert.AreEqual(5, v!.Count);
            var decoded = ImageDecoder.DecodeFile(Path.Combine(val, "rings", "rings_002.png"));
            CollectionAssert.AreEqual(SyntheticPatterns.Render(2, 40, 3, 2).Pixels, decoded.Pixels, "the validation split continues the index sequence");
            var stamp = File.GetLastWriteTimeUtc(Path.Combine(train, "dots", "dots_000.png"));
            SyntheticPatterns.WriteSplit(dir.FullName, 2, 1, 40, 3);
            Assert.AreEqual(stamp, File.GetLastWriteTimeUtc(Path.Combine(train, "dots", "dots_000.png")), "same settings: reused");
            Assert.ThrowsExactly<IOException>(() => SyntheticPatterns.WriteFolder(train, 3, 40, 3));
        }
        finally { dir.Delete(true); }
    }
}

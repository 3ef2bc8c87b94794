using MLNetExt.Data;
using MLNetExt.Torch;
using MLNetExt.Transforms;

namespace MLNetExt.Tests.Data;

[TestClass]
public sealed class LoaderTests
{
    static readonly string[] Files = ["rgb.jpg", "rgb.png", "lossy.webp", "gray.jpg", "cmyk.jpg", "exif6.jpg", "still.gif", "odd.jpg", "progressive.jpg", "rgba.png", "palette.png"];

    static ImageDataset Mixed()
    {
        var items = new List<ImageItem>();
        for (int i = 0; i < 22; i++)
        {
            var f = Files[i % Files.Length];
            items.Add(new ImageItem($"{i}:{f}", i % 3, Bytes: File.ReadAllBytes(DataFixtures.Image(f))));
        }
        items.Insert(5, new ImageItem("truncated.jpg", 1, Path: DataFixtures.Image("truncated.jpg")));
        items.Insert(9, new ImageItem("random.bin", 2, Path: DataFixtures.Image("random.bin")));
        return ImageDataset.FromList(["a", "b", "c"], items);
    }

    static ImagePipeline TrainPipeline(bool trivial) =>
        ImagePipeline.Train(24, 20, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], trivialAugment: trivial, randomErasing: 0.5);

    static List<(float[] Images, long[] Labels, float[]? Targets, int[] Indices)> Epoch(DataLoader loader, int epoch)
    {
        using var scope = TensorScope.Begin();
        var list = new List<(float[], long[], float[]?, int[])>();
        foreach (var b in loader.GetEpoch(epoch))
        {
            using (b)
            {
                CollectionAssert.AreEqual(new long[] { b.Count, 3, 24, 20 }, b.Images.Shape);
                Assert.AreEqual(DType.Float32, b.Images.DType);
                Assert.AreEqual(DType.Int64, b.Labels.DType);
                list.Add((b.Images.ToArray<float>(), b.Labels.ToArray<long>(), b.Targets?.ToArray<float>(), b.Indices));
            }
        }
        return list;
    }

    static void AssertSame(List<(float[] Images, long[] Labels, float[]? Targets, int[] Indices)> a, List<(float[] Images, long[] Labels, float[]? Targets, int[] Indices)> b, string what)
    {
        Assert.HasCount(a.Count, b, $"{what}: batch count");
        for (int i = 0; i < a.Count; i++)
        {
            CollectionAssert.AreEqual(a[i].Indices, b[i].Indices, $"{what}: batch {i} indices");
            CollectionAssert.AreEqual(a[i].Labels, b[i].Labels, $"{what}: batch {i} labels");
            CollectionAssert.AreEqual(a[i].Images, b[i].Images, $"{what}: batch {i} images");
            CollectionAssert.AreEqual(a[i].Targets, b[i].Targets, $"{what}: batch {i} targets");
        }
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void BatchesAreIdenticalForAnyWorkerCountAndPrefetch(bool trivial)
    {
        var ds = Mixed();
        var opts = new LoaderOptions { BatchSize = 5, Seed = 7, Workers = 1, Prefetch = 1, Mixup = new MixupCutmix() };
        var one = new DataLoader(ds, TrainPipeline(trivial), opts);
        var reference = Epoch(one, 3);
        AssertSame(reference, Epoch(new DataLoader(ds, TrainPipeline(trivial), opts with { Workers = 3, Prefetch = 2 }), 3), "3 workers");
        AssertSame(reference, Epoch(new DataLoader(ds, TrainPipeline(trivial), opts with { Workers = 8, Prefetch = 4 }), 3), "8 workers");
        // the two undecodable files are skipped and reported, the rest all arrive
        Assert.AreEqual(22, reference.Sum(b => b.Indices.Length));
        var skipped = one.Skipped;
        Assert.HasCount(2, skipped);
        StringAssert.Contains(skipped.Single(s => s.Path.EndsWith("truncated.jpg")).Reason, "truncated JPEG");
        StringAssert.Contains(skipped.Single(s => s.Path.EndsWith("random.bin")).Reason, "unsupported format");
        // soft targets: rows sum to 1
        foreach (var b in reference)
            for (int r = 0; r < b.Indices.Length; r++)
                Assert.AreEqual(1.0, b.Targets!.Skip(r * 3).Take(3).Sum(), 1e-5);
    }

    [TestMethod]
    public void EpochsAndSeedsChangeTheOrderAndAugmentation()
    {
        var ds = Mixed();
        var opts = new LoaderOptions { BatchSize = 8, Seed = 1, Workers = 2 };
        var e0 = Epoch(new DataLoader(ds, TrainPipeline(false), opts), 0);
        var e1 = Epoch(new DataLoader(ds, TrainPipeline(false), opts), 1);
        var s2 = Epoch(new DataLoader(ds, TrainPipeline(false), opts with { Seed = 2 }), 0);
        CollectionAssert.AreNotEqual(e0.SelectMany(b => b.Indices).ToArray(), e1.SelectMany(b => b.Indices).ToArray());
        CollectionAssert.AreNotEqual(e0.SelectMany(b => b.Indices).ToArray(), s2.SelectMany(b => b.Indices).ToArray());
        var sorted = e0.SelectMany(b => b.Indices).OrderBy(i => i).ToArray();
        CollectionAssert.AreEqual(Enumerable.Range(0, 24).Where(i => i != 5 && i != 9).ToArray(), sorted, "every decodable sample exactly once");
    }

    [TestMethod]
    public void CacheLargerThanTheImagesGivesTheSameBatches()
    {
        var ds = Mixed();
        var opts = new LoaderOptions { BatchSize = 6, Seed = 3, Workers = 2, Shuffle = false, DropLast = true };
        var plainLoader = new DataLoader(ds, TrainPipeline(true), opts);
        var plain = Epoch(plainLoader, 0);
        var cache = new DecodedImageCache(shorterSide: 1000);
        var cachedLoader = new DataLoader(ds, TrainPipeline(true), opts with { Cache = cache });
        AssertSame(plain, Epoch(cachedLoader, 0), "cached epoch 0");
        // the photos stored rotated (EXIF orientation 6), which the trainer names, are seen through the cache too
        CollectionAssert.AreEqual(new[] { "16:exif6.jpg", "5:exif6.jpg" }, plainLoader.Rotated.ToArray());
        CollectionAssert.AreEqual(new[] { "16:exif6.jpg", "5:exif6.jpg" }, cachedLoader.Rotated.ToArray());
        Assert.AreEqual(24, cache.Count, "22 decoded images and the 2 failures are remembered");
        Assert.AreEqual(24 / 6, plain.Count, "drop last keeps only full-index batches");
        // a small cache side reduces images but keeps geometry planned on the original size
        var small = new DecodedImageCache(shorterSide: 30);
        var e = Epoch(new DataLoader(ds, TrainPipeline(false), opts with { Cache = small }), 0);
        Assert.HasCount(plain.Count, e);
        Assert.IsTrue(small.Bytes <= 22 * 30 * 64 * 3, $"cache holds reduced images ({small.Bytes} bytes)");
    }

    /// <summary>Training leaves out a last batch of one image (BatchNorm cannot train on it): another image each epoch
    /// since the order is shuffled; sharded, a last global batch that would give a rank one image is left out on every
    /// rank, so the ranks run the same number of batches.</summary>
    [TestMethod]
    public void MinLastBatch_LeavesOutALastBatchOfOneImage_OnEveryRank()
    {
        var items = Enumerable.Range(0, 9).Select(i => new ImageItem($"{i}", i % 2)).ToList();
        var ds = new ImageDataset("nine", ["a", "b"], items);
        var pipeline = TrainPipeline(false);
        var single = new DataLoader(ds, pipeline, new LoaderOptions { BatchSize = 4, MinLastBatch = 2 });
        Assert.AreEqual(2, single.BatchesPerEpoch);
        var left = Enumerable.Range(0, 6).Select(e => Enumerable.Range(0, 9).Except(single.Order(e)).Single()).ToList();
        Assert.IsTrue(single.Order(0).Length == 8 && left.Distinct().Count() > 1, $"one image left out, another each epoch: {string.Join(",", left)}");
        Assert.AreEqual(3, new DataLoader(ds, pipeline, new LoaderOptions { BatchSize = 4 }).BatchesPerEpoch, "by default every image is used");
        Assert.AreEqual(9, new DataLoader(ds, pipeline, new LoaderOptions { BatchSize = 3, MinLastBatch = 2 }).Order(0).Length, "no partial batch: nothing left out");

        // two ranks, global batch 2 × 2: 9 = 2 × 4 + 1 (rest 1: left out, as before), 11 = 2 × 4 + 3 (rank 1 would get one image)
        foreach (var (count, used) in new[] { (9, 8), (11, 8), (12, 12) })
        {
            var data = new ImageDataset("n", ["a", "b"], Enumerable.Range(0, count).Select(i => new ImageItem($"{i}", i % 2)).ToList());
            var ranks = Enumerable.Range(0, 2).Select(r => new DataLoader(data, pipeline, new LoaderOptions { BatchSize = 2, MinLastBatch = 2, Shard = (r, 2) })).ToList();
            Assert.AreEqual(used, ranks.Sum(l => l.Order(0).Length), $"{count} images");
            Assert.AreEqual(ranks[0].BatchesPerEpoch, ranks[1].BatchesPerEpoch);
        }
    }

    [TestMethod]
    public void StoppingEarlyEndsTheWorkers()
    {
        var loader = new DataLoader(Mixed(), TrainPipeline(false), new LoaderOptions { BatchSize = 2, Workers = 3, Prefetch = 2 });
        using var scope = TensorScope.Begin();
        foreach (var b in loader.GetEpoch(0)) { b.Dispose(); break; }
        var again = loader.GetEpoch(0).Count();
        Assert.IsGreaterThan(0, again);
    }

    /// <summary>The real photo set through the evaluation pipeline with two workers: every image arrives.</summary>
    [TestMethod]
    public void HymenopteraValidationSetLoads()
    {
        var root = DataFixtures.RequireHymenoptera();
        var ds = ImageDataset.FromFolder(Path.Combine(root, "val"));
        var p = ImagePipeline.Eval(64, 64, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);
        var loader = new DataLoader(ds, p, new LoaderOptions { BatchSize = 32, Workers = 2, Shuffle = false });
        using var scope = TensorScope.Begin();
        int n = 0;
        foreach (var b in loader.GetEpoch(0)) using (b) n += b.Count;
        Assert.AreEqual(153, n);
        Assert.IsEmpty(loader.Skipped);
    }
}

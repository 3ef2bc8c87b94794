using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

[TestClass]
public sealed class DatasetTests
{
    string root = null!;

    [TestInitialize]
    public void Make() => root = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"mlnx-ds-{Guid.NewGuid():N}")).FullName;

    [TestCleanup]
    public void Clean() => Directory.Delete(root, true);

    string Put(string rel, string fixture)
    {
        var p = Path.Combine(root, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        File.Copy(DataFixtures.Image(fixture), p);
        return p;
    }

    [TestMethod]
    public void ClassFoldersAreSortedAndBadFilesReported()
    {
        Put("zebra/1.jpg", "rgb.jpg");
        Put("zebra/2.png", "rgb.png");
        Put("Apple/1.webp", "lossy.webp");
        Put("Apple/gif-named.jpg", "still.gif");
        Put("Apple/empty.jpg", "empty.jpg");
        Put("Apple/pic.tif", "image.tif");
        Put("Apple/pic.bmp", "bmp_palette4.bmp");
        Put("mango/sub/deep.jpg", "gray.jpg");
        File.WriteAllText(Path.Combine(root, "mango", ".hidden"), "x");
        var ds = ImageDataset.FromFolder(root);
        CollectionAssert.AreEqual(new[] { "Apple", "mango", "zebra" }, ds.Classes.ToArray(), "ordinal sort of folder names");
        CollectionAssert.AreEqual(new[] { 3, 1, 2 }, ds.CountPerClass());
        Assert.HasCount(2, ds.Issues);
        StringAssert.Contains(ds.Issues.Single(i => i.Path.EndsWith("empty.jpg")).Reason, "empty file");
        StringAssert.Contains(ds.Issues.Single(i => i.Path.EndsWith("pic.tif")).Reason, "unsupported format (TIFF");
    }

    [TestMethod]
    public void EmptyClassFolderIsAnErrorNamingIt()
    {
        Put("cats/1.jpg", "rgb.jpg");
        Put("dogs/empty.jpg", "empty.jpg");
        var e = Assert.Throws<DatasetException>(() => ImageDataset.FromFolder(root));
        StringAssert.Contains(e.Message, Path.Combine(root, "dogs"));
        StringAssert.Contains(e.Message, "found only 1 file that was left out: empty.jpg: ", "says what was there instead");
        StringAssert.Contains(e.Message, "empty file");
        Directory.CreateDirectory(Path.Combine(root, "birds"));
        e = Assert.Throws<DatasetException>(() => ImageDataset.FromFolder(root));
        Assert.DoesNotContain("left out", e.Message, "an empty folder has nothing to list");
    }

    [TestMethod]
    public void EvenSample_SpreadsOverTheSet()
    {
        var items = Enumerable.Range(0, 1000).Select(i => new ImageItem($"i{i}", i / 100, Image: new RgbImage(1, 1))).ToList();
        var sample = ImageDataset.FromList(Enumerable.Range(0, 10).Select(c => $"c{c}").ToList(), items, "big").EvenSample(128);
        Assert.HasCount(128, sample);
        Assert.HasCount(128, sample.Distinct());
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 10).ToList(), sample.Select(i => i.Label).Distinct().ToList(), "every class of a class-ordered set");
        var few = ImageDataset.FromList(["a", "b"], Enumerable.Range(0, 5).Select(i => items[i] with { Label = i % 2 }).ToList(), "few");
        Assert.HasCount(5, few.EvenSample(128), "all of a small set");
    }

    [TestMethod]
    public void OneClassOrNoClassFoldersIsAnError()
    {
        var e = Assert.Throws<DatasetException>(() => ImageDataset.FromFolder(root));
        StringAssert.Contains(e.Message, root);
        StringAssert.Contains(e.Message, "no class sub-folders");
        Put("cats/1.jpg", "rgb.jpg");
        e = Assert.Throws<DatasetException>(() => ImageDataset.FromFolder(root));
        StringAssert.Contains(e.Message, "only one class");
        StringAssert.Contains(e.Message, root);
        Assert.Throws<DatasetException>(() => ImageDataset.FromFolder(Path.Combine(root, "missing")));
        StringAssert.Contains(Assert.Throws<DatasetException>(() => ImageDataset.FindImages(Path.Combine(root, "missing"))).Message, "does not exist");
    }

    [TestMethod]
    public void TrainValLayoutIsDetectedAndValUsesTrainClasses()
    {
        Put("train/a/1.jpg", "rgb.jpg");
        Put("train/b/1.jpg", "rgb.jpg");
        Put("train/b/2.jpg", "gray.jpg");
        Put("val/b/1.png", "rgb.png");
        var (train, val) = ImageDataset.FromFolders(root);
        Assert.IsNotNull(val);
        CollectionAssert.AreEqual(new[] { 1, 2 }, train.CountPerClass());
        CollectionAssert.AreEqual(new[] { 0, 1 }, val.CountPerClass());
        Put("other/c/1.jpg", "rgb.jpg");
        var e = Assert.Throws<DatasetException>(() => ImageDataset.FromFolders(Path.Combine(root, "train"), Path.Combine(root, "other")));
        StringAssert.Contains(e.Message, "not present in the training set");
    }

    [TestMethod]
    public void CsvRowsWithMissingFilesAreReportedWithLineNumbers()
    {
        Put("img/a.jpg", "rgb.jpg");
        Put("img/b.png", "rgb.png");
        Put("img/c.webp", "lossy.webp");
        Put("img/t.jpg", "empty.jpg");
        var csv = Path.Combine(root, "labels.csv");
        File.WriteAllLines(csv, ["path,label", "img/a.jpg,cat", "img/missing.jpg,dog", "", "img/b.png,dog", "\"img/c.webp\",cat", "img/t.jpg,dog", "bad row"]);
        var ds = ImageDataset.FromCsv(csv);
        CollectionAssert.AreEqual(new[] { "cat", "dog" }, ds.Classes.ToArray());
        Assert.AreEqual(3, ds.Count);
        var missing = ds.Issues.Single(i => i.Path.EndsWith("missing.jpg"));
        Assert.AreEqual(3, missing.Line);
        StringAssert.Contains(missing.Reason, "file not found");
        Assert.AreEqual(7, ds.Issues.Single(i => i.Path.EndsWith("t.jpg")).Line);
        Assert.AreEqual(8, ds.Issues.Single(i => i.Reason.Contains("expected 2 fields")).Line);
        var tsv = Path.Combine(root, "labels.tsv");
        File.WriteAllLines(tsv, ["img/a.jpg\tcat", "img/b.png\tdog"]);
        Assert.AreEqual(2, ImageDataset.FromCsv(tsv).Count);
        File.WriteAllLines(csv, ["img/a.jpg,cat", "img/c.webp,cat"]);
        StringAssert.Contains(Assert.Throws<DatasetException>(() => ImageDataset.FromCsv(csv)).Message, "at least two");
    }

    /// <summary>A header naming its columns lets the rows carry more (a spreadsheet's export, cross-validation's
    /// out-of-fold.csv): path and label are the columns it names, in any order; a row of another width is reported.</summary>
    [TestMethod]
    public void CsvWithAHeader_TakesThePathAndLabelColumnsItNames_AmongOthers()
    {
        Put("img/a.jpg", "rgb.jpg");
        Put("img/b.png", "rgb.png");
        var csv = Path.Combine(root, "wide.csv");
        File.WriteAllLines(csv, ["id,Label,note,image", "1,cat,\"sits, looks\",img/a.jpg", "2,dog,,img/b.png", "3,dog,img/b.png"]);
        var ds = ImageDataset.FromCsv(csv);
        CollectionAssert.AreEqual(new[] { "cat", "dog" }, ds.Classes.ToArray());
        CollectionAssert.AreEqual(new[] { "img/a.jpg", "img/b.png" }, ds.Items.Select(i => i.Name).ToArray());
        var bad = ds.Issues.Single();
        Assert.AreEqual(4, bad.Line);
        StringAssert.Contains(bad.Reason, "expected 4 fields as the header has, found 3");
        File.WriteAllLines(csv, ["source,label,predicted,label_probability", $"{Path.Combine(root, "img/a.jpg")},cat,dog,0.1", $"{Path.Combine(root, "img/b.png")},dog,dog,0.9"]);
        Assert.AreEqual(2, ImageDataset.FromCsv(csv).Count, "out-of-fold.csv's columns, absolute paths");
    }

    [TestMethod]
    public void InMemoryListAcceptsPathsBytesAndImages()
    {
        var img = ImageDecoder.DecodeFile(DataFixtures.Image("rgb.png"));
        var ds = ImageDataset.FromList(["x", "y"], [
            new ImageItem("p", 0, Path: DataFixtures.Image("rgb.jpg")),
            new ImageItem("b", 1, Bytes: File.ReadAllBytes(DataFixtures.Image("lossy.webp"))),
            new ImageItem("i", 1, Image: img),
        ]);
        CollectionAssert.AreEqual(new[] { 1, 2 }, ds.CountPerClass());
        Assert.Throws<DatasetException>(() => ImageDataset.FromList(["x", "y"], []));
        Assert.Throws<DatasetException>(() => ImageDataset.FromList(["x", "y"], [new ImageItem("i", 1, Image: img)]));
    }

    static ImageDataset Synthetic(params int[] perClass)
    {
        var items = new List<ImageItem>();
        for (int c = 0; c < perClass.Length; c++)
            for (int i = 0; i < perClass[c]; i++) items.Add(new ImageItem($"c{c}/{i}", c, Path: $"/nowhere/c{c}/{i}.jpg"));
        return new ImageDataset("synthetic", perClass.Select((_, c) => $"class{c}").ToList(), items);
    }

    [TestMethod]
    public void SplitIsDeterministicStratifiedAndDisjoint()
    {
        var ds = Synthetic(50, 20, 7, 2, 1);
        var (t1, v1) = ds.Split(0.2, 42);
        var (t2, v2) = ds.Split(0.2, 42);
        CollectionAssert.AreEqual(v1.Items.Select(i => i.Name).ToArray(), v2.Items.Select(i => i.Name).ToArray(), "same seed, same split");
        CollectionAssert.AreEqual(t1.Items.Select(i => i.Name).ToArray(), t2.Items.Select(i => i.Name).ToArray());
        CollectionAssert.AreEqual(new[] { 10, 4, 1, 1, 0 }, v1.CountPerClass(), "round(n·0.2) per class, ≥1 when a class has ≥2, none from a singleton");
        CollectionAssert.AreEqual(new[] { 40, 16, 6, 1, 1 }, t1.CountPerClass());
        var all = t1.Items.Concat(v1.Items).Select(i => i.Name).ToList();
        Assert.HasCount(ds.Count, all.Distinct().ToList(), "train and val are disjoint and cover the dataset");
        var (_, v3) = ds.Split(0.2, 43);
        CollectionAssert.AreNotEqual(v1.Items.Select(i => i.Name).ToArray(), v3.Items.Select(i => i.Name).ToArray(), "another seed gives another split");
    }

    [TestMethod]
    public void DatasetCommandPrintsClassesCountsSizesAndUnreadableFiles()
    {
        Put("train/b/1.jpg", "rgb.jpg");
        Put("train/b/2.jpg", "truncated.jpg");
        Put("train/a/1.png", "rgb.png");
        Put("train/a/2.gif", "anim.gif");
        Put("train/a/3.jpg", "random.bin");
        Put("val/a/1.webp", "lossy.webp");
        Put("val/b/1.jpg", "odd.jpg");
        Put("val/b/2.jpg", "exif6.jpg");
        Put("val/b/3.bmp", "bmp_palette4.bmp");
        var output = new StringWriter();
        var error = new StringWriter();
        int code = DatasetCommand.Run(root, null, output, error);
        var text = output.ToString();
        Assert.AreEqual(0, code, error.ToString() + text);
        var lines = text.Split('\n').Select(l => l.TrimEnd()).ToList();
        Assert.IsTrue(lines.Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).SequenceEqual(["0", "a", "2", "1"])), text);
        Assert.IsTrue(lines.Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).SequenceEqual(["1", "b", "1", "3"])), text);
        StringAssert.Contains(text, "width 37..64, height 23..64", "sizes upright: the EXIF-rotated photo is 48x64");
        StringAssert.Contains(text, $"Stored rotated: 1 image carries an EXIF orientation ({Path.Combine(root, "val", "b", "2.jpg")})");
        StringAssert.Contains(text, "ML.NET's LoadImages (a model.zip's ImagePath input) reads them as stored");
        StringAssert.Contains(text, "Unreadable files: 2");
        StringAssert.Contains(text, "2.jpg: truncated JPEG");
        StringAssert.Contains(text, "3.jpg: unsupported format");

        int bad = DatasetCommand.Run(Path.Combine(root, "val", "a"), null, new StringWriter(), error = new StringWriter());
        Assert.AreEqual(1, bad);
        StringAssert.StartsWith(error.ToString(), "error: ", "one line, as every verb ends a failure");
        StringAssert.Contains(error.ToString(), Path.Combine(root, "val", "a"));
    }

    [TestMethod]
    public void DatasetCommandPointsOutImbalancedClasses()
    {
        for (int i = 0; i < 5; i++) Put($"a/{i}.jpg", "rgb.jpg");
        Put("b/0.png", "palette.png");
        var output = new StringWriter();
        Assert.AreEqual(0, DatasetCommand.Run(root, null, output, new StringWriter()));
        StringAssert.Contains(output.ToString(), "Imbalanced: 'a' has 5 training images, 'b' 1 (5x): train with --class-weights balanced");
        Put("b/1.png", "palette.png");
        output = new StringWriter();
        Assert.AreEqual(0, DatasetCommand.Run(root, null, output, new StringWriter()));
        Assert.DoesNotContain("Imbalanced", output.ToString(), "2.5x is not");
        StringAssert.Contains(output.ToString(), "Small validation set: training's 20% split holds out about 1 image, so one image moves top-1 by 100 points");
    }
}

using System.Buffers.Binary;
using System.Diagnostics;
using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.Serialization;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

/// <summary>Hostile image files and folders: decompression bombs (headers declaring huge sizes), FIFOs, links to
/// devices, directory links that loop or reach other classes. Each is skipped and reported with its reason, by the one
/// mechanism every reader goes through (<see cref="ImageFiles"/>, <see cref="ImageDecoder.MaxImagePixels"/>); nothing
/// hangs, crashes or counts images twice.</summary>
[TestClass]
public sealed class HostileInputTests
{
    /// <summary>A valid PNG stream declaring <paramref name="width"/>x<paramref name="height"/> RGB with a tiny IDAT.</summary>
    internal static byte[] PngBomb(uint width, uint height)
    {
        var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] body)
        {
            Span<byte> len = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(len, (uint)body.Length);
            ms.Write(len);
            var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(body).ToArray();
            ms.Write(typed);
            BinaryPrimitives.WriteUInt32BigEndian(len, Crc32.Append(0, typed));
            ms.Write(len);
        }
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk("IHDR", ihdr);
        Chunk("IDAT", [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
        Chunk("IEND", []);
        return ms.ToArray();
    }

    /// <summary>A real JPEG whose SOF header is patched to declare <paramref name="width"/>x<paramref name="height"/>.</summary>
    internal static byte[] JpegBomb(ushort width, ushort height)
    {
        var bytes = File.ReadAllBytes(DataFixtures.Image("exif2.jpg"));
        for (int i = 2; i + 9 < bytes.Length; i++)
            if (bytes[i] == 0xFF && bytes[i + 1] is 0xC0 or 0xC1 or 0xC2)
            {
                BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(i + 5), height);
                BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(i + 7), width);
                return bytes;
            }
        throw new InvalidOperationException("no SOF marker in the fixture");
    }

    static void MakeFifo(string path)
    {
        using var p = Process.Start(new ProcessStartInfo("mkfifo", $"\"{path}\"") { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.AreEqual(0, p.ExitCode, "mkfifo");
    }

    [TestMethod]
    public void DecompressionBombs_AreRejectedFromTheHeader_WithTheLimitNamed()
    {
        foreach (var (name, bytes) in new[] { ("PNG", PngBomb(60000, 60000)), ("JPEG", JpegBomb(60000, 60000)) })
        {
            var e = Assert.ThrowsExactly<ImageDecodeException>(() => ImageDecoder.Decode(bytes), name);
            StringAssert.Contains(e.Message, $"{name} declares 60000x60000 = 3,600,000,000 pixels");
            StringAssert.Contains(e.Message, "MLNETEXT_MAX_IMAGE_PIXELS");
        }
        var gif = File.ReadAllBytes(DataFixtures.Image("anim.gif"));
        gif[6] = gif[7] = gif[8] = gif[9] = 0xFF;
        StringAssert.Contains(Assert.ThrowsExactly<ImageDecodeException>(() => ImageDecoder.Decode(gif)).Message, "GIF declares 65535x65535");
        // A JPEG decoded at a reduced DCT scale is judged by the size it decodes to: asked for a small output, the
        // 8x smaller decode passes the guard (and then fails on the missing data, as a truncated JPEG).
        var small = Assert.ThrowsExactly<ImageDecodeException>(() => ImageDecoder.Decode(JpegBomb(12000, 12000), 100, 100));
        Assert.IsFalse(small.Message.Contains("pixels, more than"), small.Message);

        long saved = ImageDecoder.MaxImagePixels;
        try
        {
            ImageDecoder.MaxImagePixels = 10;
            var real = File.ReadAllBytes(DataFixtures.Image("exif2.jpg"));
            StringAssert.Contains(Assert.ThrowsExactly<ImageDecodeException>(() => ImageDecoder.Decode(real)).Message, "more than the 10 an image may decode to");
            ImageDecoder.MaxImagePixels = 0; // no limit
            Assert.IsNotNull(ImageDecoder.Decode(real));
            // without the budget a BMP's rows are still checked against its data before memory is taken: a row of
            // 2^29 + 1 pixels (over 2 GB, past an int) is a truncated file, not a 1.6 GB allocation or an overflow
            var wide = File.ReadAllBytes(DataFixtures.Image("bmp_topdown32.bmp"));
            BitConverter.TryWriteBytes(wide.AsSpan(18), (1 << 29) + 1);
            BitConverter.TryWriteBytes(wide.AsSpan(22), -1);
            StringAssert.Contains(Assert.ThrowsExactly<ImageDecodeException>(() => ImageDecoder.Decode(wide)).Message,
                "truncated BMP (536870913x1 at 32 bits needs 2,147,483,652 bytes of pixels");
        }
        finally { ImageDecoder.MaxImagePixels = saved; }
    }

    [TestMethod]
    public void JpegCutBeforeItsFrameHeader_IsNamedTruncated_NotAnEmptyImage()
    {
        // libjpeg-turbo reads such a header as a success with a 0x0 size; the error says the file is incomplete
        var bytes = File.ReadAllBytes(DataFixtures.Image("exif2.jpg"));
        int sof = Enumerable.Range(2, bytes.Length - 3).First(i => bytes[i] == 0xFF && bytes[i + 1] is 0xC0 or 0xC1 or 0xC2);
        var cut = bytes.AsSpan(0, sof).ToArray();
        foreach (var read in new Action[] { () => ImageDecoder.ReadInfo(cut), () => ImageDecoder.Decode(cut), () => ImageDecoder.Decode(cut, 16, 16) })
        {
            var e = Assert.ThrowsExactly<ImageDecodeException>(read);
            StringAssert.Contains(e.Message, $"JPEG: no frame header (image size) in the file's {sof:N0} bytes; the file is truncated");
        }
    }

    [TestMethod]
    public void HostileFolder_IsListedQuickly_EveryBadEntryReported_NoImageCountedTwice()
    {
        var root = Directory.CreateTempSubdirectory("mlnetext-hostile-");
        try
        {
            var data = Path.Combine(root.FullName, "data");
            SyntheticShapes.WriteFolder(data, 3, 32, 1, ["circle", "square"]);
            var circle = Path.Combine(data, "circle");
            File.WriteAllBytes(Path.Combine(circle, "bomb.png"), PngBomb(60000, 60000));
            MakeFifo(Path.Combine(circle, "pipe.png"));
            File.CreateSymbolicLink(Path.Combine(circle, "zero.jpg"), "/dev/zero");
            Directory.CreateSymbolicLink(Path.Combine(circle, "self"), ".");
            Directory.CreateSymbolicLink(Path.Combine(circle, "again"), ".");
            Directory.CreateSymbolicLink(Path.Combine(circle, "parent"), "..");
            File.CreateSymbolicLink(Path.Combine(circle, "dangling.png"), Path.Combine(root.FullName, "nowhere.png"));

            var sw = Stopwatch.StartNew();
            var ds = ImageDataset.FromFolder(data);
            Assert.IsLessThan(10.0, sw.Elapsed.TotalSeconds, "no hang");
            CollectionAssert.AreEqual(new[] { 4, 3 }, ds.CountPerClass(), "3 shapes + the bomb (its header is fine) in circle; square's images only once");
            string Reason(string name) => ds.Issues.Single(i => Path.GetFileName(i.Path) == name).Reason;
            StringAssert.Contains(Reason("pipe.png"), "not a regular file");
            StringAssert.Contains(Reason("zero.jpg"), "not a regular file");
            StringAssert.Contains(Reason("dangling.png"), "link to nothing readable");
            foreach (var link in new[] { "self", "again", "parent" }) StringAssert.Contains(Reason(link), "directory link");

            // Training's loader skips the bomb with its reason; the epoch completes.
            var pipeline = ImagePipeline.Eval(24, 24, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
            var loader = new DataLoader(ds, pipeline, new LoaderOptions { BatchSize = 4, Workers = 2, Shuffle = false });
            int images = 0;
            foreach (var b in loader.GetEpoch(0)) using (b) images += b.LabelValues.Length;
            Assert.AreEqual(6, images);
            StringAssert.Contains(loader.Skipped.Single().Reason, "more than the");

            // predict: the good images get their output, the bad ones their reason.
            using var scope = Torch.TensorScope.Begin();
            var bad = new[] { "bomb.png", "pipe.png", "zero.jpg" }.Select(n => Path.Combine(circle, n)).ToArray();
            var listed = PredictCommand.ExpandInputs([circle]).Select(Path.GetFileName).ToList();
            Assert.HasCount(7, listed, "predict lists the three shapes, the bomb and the files named like images it cannot read (each gets its reason), no directory link: " + string.Join(", ", listed));
            CollectionAssert.IsSubsetOf(new[] { "bomb.png", "pipe.png", "zero.jpg", "dangling.png" }, listed);
            foreach (var f in bad) Assert.IsNull(ImageDecoder.TryDecodeFile(f, out var why), f);
        }
        finally { root.Delete(recursive: true); }
    }

    [TestMethod]
    public void Reads_NeverOpenAFifo_OrReadADevice()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-fifo-");
        try
        {
            var fifo = Path.Combine(dir.FullName, "x.png");
            MakeFifo(fifo);
            var sw = Stopwatch.StartNew();
            StringAssert.Contains(Assert.ThrowsExactly<ImageDecodeException>(() => ImageFiles.ReadAllBytes(fifo)).Message, "not a regular file");
            Assert.ThrowsExactly<FileNotFoundException>(() => ImageFiles.ReadAllBytes(Path.Combine(dir.FullName, "none.png")));
            StringAssert.Contains(ImageDataset.HeaderProblem(fifo)!, "not a regular file");
            Assert.IsNull(ImageDecoder.TryDecodeFile("/dev/zero", out var reason));
            StringAssert.Contains(reason!, "not a regular file");
            Assert.IsLessThan(5.0, sw.Elapsed.TotalSeconds);
            StringAssert.Contains(ImageFiles.FileProblem(dir.FullName)!, "is a folder");
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void BadLabels_AreRefusedOrReported_BeforeTraining()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-labels-");
        try
        {
            SyntheticShapes.WriteFolder(Path.Combine(dir.FullName, "img"), 1, 24, 1, ["circle", "square"]);
            var csv = Path.Combine(dir.FullName, "list.csv");
            string First(string cls) => Path.GetRelativePath(dir.FullName, Directory.GetFiles(Path.Combine(dir.FullName, "img", cls)).Order().First());
            File.WriteAllLines(csv, [$"{First("circle")},a", $"{First("square")},", ",b", $"{First("square")},b"]);
            var ds = ImageDataset.FromCsv(csv);
            CollectionAssert.AreEqual(new[] { "a", "b" }, ds.Classes.ToArray(), "an empty label is not a class");
            StringAssert.Contains(ds.Issues.Single(i => i.Line == 2).Reason, "empty label");
            StringAssert.Contains(ds.Issues.Single(i => i.Line == 3).Reason, "empty path");

            File.WriteAllLines(csv, ["only-one-column", "img/circle/missing.png,a"]);
            var e = Assert.ThrowsExactly<DatasetException>(() => ImageDataset.FromCsv(csv));
            StringAssert.Contains(e.Message, "expected 2 fields");
            StringAssert.Contains(e.Message, "file not found");

            var item = new ImageItem("x", 0, Image: new RgbImage(4, 4));
            StringAssert.Contains(Assert.ThrowsExactly<DatasetException>(() => ImageDataset.FromList(["ok", "line\nbreak"], [item], "list")).Message, "line break");
            StringAssert.Contains(Assert.ThrowsExactly<DatasetException>(() => ImageDataset.FromList(["", "b"], [item], "list")).Message, "empty");
            StringAssert.Contains(Assert.ThrowsExactly<DatasetException>(() => ImageDataset.FromList(["a", "a"], [item], "list")).Message, "more than once");
        }
        finally { dir.Delete(true); }
    }
}

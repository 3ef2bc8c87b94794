using MLNetExt.Data;
using MLNetExt.Serialization;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

[TestClass]
public sealed class DecodeTests
{
    /// <summary>Every file of the real photo set (the GIF named in its README and the progressive JPEG included) decodes,
    /// and the RGB bytes equal PIL's (MD5 of PIL's decode recorded by make_data_fixtures.py).</summary>
    [TestMethod]
    public void EveryHymenopteraFileDecodesLikePil()
    {
        var root = DataFixtures.RequireHymenoptera();
        var rows = File.ReadAllLines(Fixtures.Path("data/hymenoptera_pil.tsv")).Select(l => l.Split('\t')).ToList();
        Assert.AreEqual(397, rows.Count);
        Assert.IsTrue(rows.Any(r => r[0].EndsWith(".gif")), "the set's GIF is listed");
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.ForEach(rows, new ParallelOptions { MaxDegreeOfParallelism = 2 }, r =>
        {
            var path = Path.Combine(root, r[0]);
            var img = ImageDecoder.TryDecodeFile(path, out var reason);
            if (img == null) { failures.Add($"{r[0]}: {reason}"); return; }
            if (img.Width != int.Parse(r[1]) || img.Height != int.Parse(r[2])) failures.Add($"{r[0]}: {img.Width}x{img.Height}, PIL {r[1]}x{r[2]}");
            else if (DataFixtures.Md5(img.Pixels) != r[3]) failures.Add($"{r[0]}: pixels differ from PIL's");
        });
        Assert.IsEmpty(failures, string.Join("\n", failures));
    }

    [TestMethod]
    public void ProgressiveJpegAndGifOfTheRealSetAreRecognised()
    {
        var root = DataFixtures.RequireHymenoptera();
        var gif = Directory.GetFiles(root, "*.gif", SearchOption.AllDirectories).Single();
        Assert.AreEqual(ImageFormat.Gif, ImageDecoder.ReadInfo(File.ReadAllBytes(gif)).Format);
        var img = ImageDecoder.DecodeFile(gif);
        Assert.AreEqual(300, img.Width);
    }

    /// <summary>Generated PNG (RGB, RGBA, gray, palette, eXIf), WebP (lossless, lossy, alpha), JPEG (RGB, progressive,
    /// gray, CMYK, odd size, EXIF orientations 2–8) and GIF (still, animated → first frame) against PIL's decode
    /// with exif_transpose and convert("RGB"); and BMP (make_data_fixtures.py: bmp): PIL's own 1-, 8- (gray, palette)
    /// and 24-bit files (an odd width too), 32-bit top-down, 16-bit 5-5-5 and 5-6-5 bitfields, version 4 and 5 headers
    /// with alpha masks (RGBA and BGRA order), a 4-bit palette, the OS/2 header, a palette shorter than its indices,
    /// RLE8 and RLE4 — byte for byte.</summary>
    [TestMethod]
    [DataRow("expected_decode.safetensors", 23)]
    [DataRow("expected_decode_bmp.safetensors", 15)]
    public void GeneratedFormatsMatchPil(string fixture, int files)
    {
        using var expected = SafeTensors.Load(Fixtures.Path("data/" + fixture));
        Assert.AreEqual(files, expected.Count);
        var report = new List<string>();
        foreach (var (name, tensor) in expected)
        {
            var bytes = File.ReadAllBytes(DataFixtures.Image(name));
            if (name.StartsWith("bmp_")) Assert.AreEqual(ImageFormat.Bmp, ImageDecoder.ReadInfo(bytes).Format, name);
            int allowed = name.StartsWith("cmyk") ? Tolerances.CmykToRgbLevels : 0;
            var (max, n) = DataFixtures.Compare(tensor, ImageDecoder.Decode(bytes), name);
            if (max > allowed) report.Add($"{name}: {n} bytes differ, max {max} (allowed {allowed})");
        }
        Assert.IsEmpty(report, string.Join("\n", report));
    }

    /// <summary>What PIL 9.4 gets wrong or refuses in RLE, decoded as the format specifies: a delta move (PIL reads
    /// four bytes for it), an end of bitmap before the last row (the pixels no code reached are index 0), and an
    /// absolute RLE4 run of odd length (three nibbles in two bytes, padded to a word).</summary>
    [TestMethod]
    public void BmpRle_DeltaEarlyEndAndOddRuns_FollowTheFormat()
    {
        byte[] palette = Enumerable.Range(0, 16).SelectMany(i => new byte[] { (byte)(i * 10), (byte)(i * 10 + 1), (byte)(i * 10 + 2), 0 }).ToArray();
        // 5x3 RLE8, bottom-up: row 0 (bottom) = 1 1 1 then delta (+1, +1) to x=4 of row 1, one 7; end of bitmap.
        byte[] rle8 = [3, 1, 0, 2, 1, 1, 1, 7, 0, 1];
        var img = ImageDecoder.Decode(Bmp(5, 3, 8, 1, palette, rle8));
        int[] Index(RgbImage im) => Enumerable.Range(0, im.Width * im.Height).Select(i => im.Pixels[3 * i + 2] / 10).ToArray();
        CollectionAssert.AreEqual(new[] { 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 7, /**/ 1, 1, 1, 0, 0 }, Index(img));
        // 4x1 RLE4: an absolute run of 3 nibbles (2 bytes, already word-aligned), then an encoded run 5,5... cut to the width
        byte[] rle4 = [0, 3, 0x23, 0x40, 4, 0x55, 0, 1];
        CollectionAssert.AreEqual(new[] { 2, 3, 4, 5 }, Index(ImageDecoder.Decode(Bmp(4, 1, 4, 2, palette, rle4))));
        // the data ends before the end-of-bitmap code: a truncated file, not a silently short image
        var e = Assert.Throws<ImageDecodeException>(() => ImageDecoder.Decode(Bmp(5, 3, 8, 1, palette, rle8[..^2])));
        StringAssert.Contains(e.Message, "truncated BMP (the RLE data ends before its end-of-bitmap code)");
    }

    /// <summary>A bitmap written field by field: a 40-byte info header, the palette, then the pixel data.</summary>
    static byte[] Bmp(int width, int height, int bits, int compression, byte[] palette, byte[] pixels)
    {
        var b = new List<byte>();
        void U16(int v) => b.AddRange(BitConverter.GetBytes((ushort)v));
        void U32(int v) => b.AddRange(BitConverter.GetBytes(v));
        int offset = 14 + 40 + palette.Length;
        b.AddRange("BM"u8.ToArray()); U32(offset + pixels.Length); U32(0); U32(offset);
        U32(40); U32(width); U32(height); U16(1); U16(bits); U32(compression); U32(pixels.Length); U32(0); U32(0); U32(palette.Length / 4); U32(0);
        b.AddRange(palette);
        b.AddRange(pixels);
        return b.ToArray();
    }

    /// <summary>The formats people meet that are not read are named, with the way out for the iPhone's.</summary>
    [TestMethod]
    public void UnreadFormats_AreNamed()
    {
        static string Reason(params byte[] head) => ImageDecoder.UnsupportedReason(head)!;
        byte[] Ftyp(string brand) => [0, 0, 0, 0x18, .. "ftyp"u8, .. System.Text.Encoding.ASCII.GetBytes(brand), 0, 0, 0, 0];
        StringAssert.Contains(Reason(Ftyp("heic")), "unsupported format (HEIC/HEIF, the iPhone camera's default; convert it to JPEG");
        StringAssert.Contains(Reason(Ftyp("mif1")), "HEIC/HEIF");
        StringAssert.Contains(Reason(Ftyp("avif")), "unsupported format (AVIF; first bytes 0000001866747970)");
        StringAssert.Contains(Reason(Ftyp("isom")), "unsupported format (unrecognised", "an MP4 video is not named an image format");
        StringAssert.Contains(Reason(0xFF, 0x0A, 0xFA, 0x7F), "JPEG XL");
        StringAssert.Contains(Reason(0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A), "JPEG XL");
        StringAssert.Contains(Reason([.. "8BPS"u8, 0, 1]), "Photoshop PSD");
        StringAssert.Contains(Reason(File.ReadAllBytes(DataFixtures.Image("image.tif"))[..32]), "unsupported format (TIFF;");
    }

    /// <summary>"BM" alone does not make a bitmap: a text file starting so stays unrecognised, with the reason.</summary>
    [TestMethod]
    public void TextStartingWithBM_IsNotTakenForABitmap()
    {
        var text = "BMW service record, 2026 and more text"u8.ToArray();
        Assert.AreEqual(ImageFormat.Unknown, ImageDecoder.Sniff(text));
        StringAssert.Contains(ImageDecoder.UnsupportedReason(text), "starts like a BMP but its info header size is");
        StringAssert.Contains(ImageDecoder.UnsupportedReason("BM12"u8), "truncated BMP (4 bytes");
    }

    [TestMethod]
    [DataRow("truncated.jpg", "truncated JPEG")]
    [DataRow("truncated.png", "PNG")]
    [DataRow("truncated.webp", "WebP")]
    [DataRow("animated.webp", "animated WebP is not supported")]
    [DataRow("truncated.gif", "GIF")]
    [DataRow("random.bin", "unsupported format")]
    [DataRow("random_header.jpg", "JPEG")]
    [DataRow("empty.jpg", "empty file")]
    [DataRow("image.tif", "unsupported format (TIFF")]
    [DataRow("truncated.bmp", "truncated BMP (64x48 at 24 bits needs 9,216 bytes of pixels")]
    [DataRow("jpeg_in.bmp", "embedded JPEG stream")]
    [DataRow("depth2.bmp", "unsupported BMP pixel depth (2 bits")]
    [DataRow("bomb_rle.bmp", "BMP declares 60000x60000 = 3,600,000,000 pixels")]
    public void UndecodableFilesGiveAReasonNotACrash(string name, string reasonPart)
    {
        var img = ImageDecoder.TryDecodeFile(DataFixtures.Image(name), out var reason);
        Assert.IsNull(img, $"{name} should not decode");
        Assert.IsNotNull(reason);
        StringAssert.Contains(reason, reasonPart, $"{name}: reason was '{reason}'");
        Assert.Throws<ImageDecodeException>(() => ImageDecoder.DecodeFile(DataFixtures.Image(name)));
    }

    [TestMethod]
    public void ExifOrientationSwapsSizeInHeaderInfo()
    {
        var info = ImageDecoder.ReadInfo(File.ReadAllBytes(DataFixtures.Image("exif6.jpg")));
        Assert.AreEqual(6, info.Orientation);
        Assert.AreEqual((64, 48, 48, 64), (info.StoredWidth, info.StoredHeight, info.Width, info.Height));
        var png = ImageDecoder.ReadInfo(File.ReadAllBytes(DataFixtures.Image("exif6.png")));
        Assert.AreEqual(6, png.Orientation);
        Assert.AreEqual(1, ImageDecoder.ReadInfo(File.ReadAllBytes(DataFixtures.Image("rgb.jpg"))).Orientation);
    }

    /// <summary>With a target size the JPEG is decoded at the smallest DCT scale that still covers it.</summary>
    [TestMethod]
    public void JpegDecodesAtReducedDctScaleWhenTargetIsSmall()
    {
        Assert.AreEqual((1, 8), ImageDecoder.JpegScale(2592, 1944, 224, 224));
        Assert.AreEqual((1, 4), ImageDecoder.JpegScale(1024, 768, 224, 180));
        Assert.AreEqual((1, 1), ImageDecoder.JpegScale(500, 375, 400, 300)); // 7/8 would do, but only 1/2^k scales are used
        var full = ImageDecoder.DecodeFile(DataFixtures.Image("rgb.jpg"));
        var half = ImageDecoder.DecodeFile(DataFixtures.Image("rgb.jpg"), 30, 20);
        Assert.AreEqual((64, 48), (full.Width, full.Height));
        Assert.AreEqual((32, 24), (half.Width, half.Height));
        // reduced decode approximates a 2x box reduction of the full decode
        double err = 0;
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++)
                {
                    int s = 0;
                    for (int dy = 0; dy < 2; dy++) for (int dx = 0; dx < 2; dx++) s += full.Pixels[((2 * y + dy) * 64 + 2 * x + dx) * 3 + c];
                    err += Math.Abs(s / 4.0 - half.Pixels[(y * 32 + x) * 3 + c]);
                }
        Assert.IsLessThan(12.0, err / (32 * 24 * 3), "mean abs difference to a 2x2 box reduction");
    }

    [TestMethod]
    public void SniffIgnoresFileNames()
    {
        Assert.AreEqual(ImageFormat.Gif, ImageDecoder.Sniff(File.ReadAllBytes(DataFixtures.Image("still.gif"))));
        Assert.AreEqual(ImageFormat.WebP, ImageDecoder.Sniff(File.ReadAllBytes(DataFixtures.Image("lossy.webp"))));
        Assert.AreEqual(ImageFormat.Bmp, ImageDecoder.Sniff(File.ReadAllBytes(DataFixtures.Image("bmp_rgb24.bmp"))));
        Assert.AreEqual(ImageFormat.Unknown, ImageDecoder.Sniff(File.ReadAllBytes(DataFixtures.Image("image.tif"))));
        // a GIF under a .jpg name still decodes as GIF
        var tmp = Path.Combine(Path.GetTempPath(), $"mlnx-{Guid.NewGuid():N}.jpg");
        File.Copy(DataFixtures.Image("still.gif"), tmp);
        try { Assert.AreEqual(64, ImageDecoder.DecodeFile(tmp).Width); }
        finally { File.Delete(tmp); }
    }
}

[TestClass]
public sealed class ImageLibraryTests
{
    [TestMethod]
    public void AMissingLibraryIsNamedWithItsDebianPackage()
    {
        var e = Assert.Throws<ImageLibraryMissingException>(() => ImageLibraries.Require("libmlnx-absent.so.3", "libmlnx-absent3"));
        StringAssert.Contains(e.Message, "libmlnx-absent.so.3");
        StringAssert.Contains(e.Message, "apt-get install libmlnx-absent3");
        // the real ones load
        ImageLibraries.Require(ImageLibraries.TurboJpeg);
        ImageLibraries.Require(ImageLibraries.Png);
        ImageLibraries.Require(ImageLibraries.WebP);
        ImageLibraries.Require(ImageLibraries.Gif);
    }
}

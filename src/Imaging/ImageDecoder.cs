using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using static MLNetExt.Imaging.NativeImaging;

namespace MLNetExt.Imaging;

/// <summary>Decodes JPEG (TurboJPEG, with decode-time DCT scaling), PNG (libpng), WebP (libwebp), GIF (giflib, first
/// frame) and BMP (<see cref="BmpDecoder"/>) into upright RGB: grayscale is replicated, alpha is dropped (as PIL's
/// <c>convert("RGB")</c> does), CMYK is converted, and the EXIF orientation is applied. Failures throw
/// <see cref="ImageDecodeException"/> with the reason.</summary>
public static unsafe class ImageDecoder
{
    /// <summary>Recognises the format from the leading bytes.</summary>
    public static ImageFormat Sniff(ReadOnlySpan<byte> d)
    {
        if (d.Length >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat.Jpeg;
        if (d.Length >= 8 && d.Slice(0, 8).SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A })) return ImageFormat.Png;
        if (d.Length >= 12 && d.Slice(0, 4).SequenceEqual("RIFF"u8) && d.Slice(8, 4).SequenceEqual("WEBP"u8)) return ImageFormat.WebP;
        if (d.Length >= 6 && (d.Slice(0, 6).SequenceEqual("GIF87a"u8) || d.Slice(0, 6).SequenceEqual("GIF89a"u8))) return ImageFormat.Gif;
        if (BmpDecoder.Sniff(d)) return ImageFormat.Bmp;
        return ImageFormat.Unknown;
    }

    /// <summary>How many leading bytes <see cref="Sniff"/> and <see cref="UnsupportedReason"/> need to tell every
    /// format (a BMP's info-header size is at bytes 14–17).</summary>
    internal const int HeadBytes = 32;

    /// <summary>The formats read, for messages.</summary>
    internal const string Supported = "JPEG, PNG, WebP, GIF or BMP";

    /// <summary>The reason a file with these leading bytes is not decodable, or null when its format is supported.</summary>
    public static string? UnsupportedReason(ReadOnlySpan<byte> head)
    {
        if (head.Length == 0) return "empty file (0 bytes)";
        if (Sniff(head) != ImageFormat.Unknown) return null;
        if (BmpDecoder.NotABitmapReason(head) is { } bmp) return bmp;
        var hex = Convert.ToHexString(head.Slice(0, Math.Min(8, head.Length)));
        return $"unsupported format ({KnownFormat(head) ?? "unrecognised"}; first bytes {hex}); expected {Supported}";
    }

    /// <summary>The name of a format this reader does not read, when the leading bytes tell it (with the usual way out
    /// for the camera formats people meet); null when they do not.</summary>
    static string? KnownFormat(ReadOnlySpan<byte> h)
    {
        if (h.Length >= 4 && ((h[0] == 'I' && h[1] == 'I' && h[2] == 42 && h[3] == 0) || (h[0] == 'M' && h[1] == 'M' && h[2] == 0 && h[3] == 42))) return "TIFF";
        if (h.Length >= 12 && h.Slice(4, 4).SequenceEqual("ftyp"u8))
        {
            var brand = System.Text.Encoding.ASCII.GetString(h.Slice(8, 4));
            if (brand is "heic" or "heix" or "hevc" or "hevx" or "heim" or "heis" or "mif1" or "msf1")
                return "HEIC/HEIF, the iPhone camera's default; convert it to JPEG (e.g. heif-convert) or set the camera to Most Compatible";
            if (brand is "avif" or "avis") return "AVIF";
        }
        if (h.Length >= 2 && h[0] == 0xFF && h[1] == 0x0A) return "JPEG XL";
        if (h.Length >= 12 && h.Slice(4, 8).SequenceEqual(new byte[] { 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A })) return "JPEG XL";
        if (h.Length >= 4 && h.Slice(0, 4).SequenceEqual("8BPS"u8)) return "Photoshop PSD";
        return null;
    }

    /// <summary>Reads format, stored size and EXIF orientation without decoding pixels.</summary>
    public static ImageInfo ReadInfo(ReadOnlySpan<byte> data)
    {
        var format = Sniff(data);
        int w, h;
        switch (format)
        {
            case ImageFormat.Jpeg:
                ImageLibraries.Require(ImageLibraries.TurboJpeg);
                var tj = RentTj();
                bool failed = true;
                try
                {
                    fixed (byte* p = data)
                        (w, h, _) = JpegHeader(tj, p, data.Length);
                    failed = false;
                }
                finally { ReturnTj(tj, failed); }
                break;
            case ImageFormat.Png:
                (w, h) = PngHeader(data);
                break;
            case ImageFormat.WebP:
                ImageLibraries.Require(ImageLibraries.WebP);
                fixed (byte* p = data)
                    if (WebPGetInfo(p, (nuint)data.Length, out w, out h) == 0) throw new ImageDecodeException("WebP: invalid or truncated header");
                break;
            case ImageFormat.Gif:
                if (data.Length < 10) throw new ImageDecodeException("GIF: truncated header");
                w = data[6] | data[7] << 8;
                h = data[8] | data[9] << 8;
                break;
            case ImageFormat.Bmp:
                (w, h) = BmpDecoder.ReadSize(data);
                break;
            default:
                throw new ImageDecodeException(UnsupportedReason(data)!);
        }
        if (w <= 0 || h <= 0) throw new ImageDecodeException($"{format}: header gives an empty size {w}x{h}");
        return new ImageInfo(format, w, h, Exif.ReadOrientation(data, format));
    }

    /// <summary>The most pixels an image may decode to (width x height, after JPEG DCT scaling), checked from the header
    /// before any pixel memory is taken: a guard against decompression bombs (a few-KB PNG declaring 60000x60000).
    /// Default 178,956,970 — PIL's error threshold (twice its MAX_IMAGE_PIXELS); the environment variable
    /// <c>MLNETEXT_MAX_IMAGE_PIXELS</c> sets another; 0 = no limit.</summary>
    public static long MaxImagePixels { get; set; } = DefaultMaxImagePixels();

    static long DefaultMaxImagePixels() =>
        long.TryParse(Environment.GetEnvironmentVariable("MLNETEXT_MAX_IMAGE_PIXELS"), out var v) && v >= 0 ? v : 178_956_970;

    /// <summary>A JPEG's size and colour space. libjpeg-turbo reports success with a 0x0 size when the data ends
    /// before the frame header (a file cut short inside its metadata), so that case is named as what it is.</summary>
    static (int Width, int Height, int ColorSpace) JpegHeader(IntPtr tj, byte* data, int length)
    {
        if (tjDecompressHeader3(tj, data, new CULong((nuint)length), out int w, out int h, out _, out int cs) != 0)
            throw new ImageDecodeException("JPEG header: " + TjError(tj));
        if (w <= 0 || h <= 0)
            throw new ImageDecodeException($"JPEG: no frame header (image size) in the file's {length:N0} bytes; the file is truncated or not a complete JPEG");
        return (w, h, cs);
    }

    /// <summary>Throws when a declared size is empty or above <see cref="MaxImagePixels"/> (sizes as longs: no overflow).</summary>
    internal static void CheckPixels(string format, long width, long height)
    {
        if (width <= 0 || height <= 0) throw new ImageDecodeException($"{format}: header gives an empty size {width}x{height}");
        long limit = MaxImagePixels;
        if (limit > 0 && width * height > limit)
            throw new ImageDecodeException($"{format} declares {width}x{height} = {width * height:N0} pixels, more than the {limit:N0} an image may decode to " +
                "(decompression-bomb guard: ImageDecoder.MaxImagePixels or MLNETEXT_MAX_IMAGE_PIXELS)");
    }

    /// <summary>Decodes to upright RGB. When <paramref name="minWidth"/>/<paramref name="minHeight"/> (in upright
    /// coordinates) are given, a JPEG is decoded at the smallest TurboJPEG scale (down to 1/8) whose result still
    /// covers them; other formats are always decoded at full size.</summary>
    public static RgbImage Decode(ReadOnlySpan<byte> data, int minWidth = 0, int minHeight = 0, bool applyExif = true)
        => Decode(data, minWidth, minHeight, applyExif, false);

    /// <summary>With <paramref name="scratch"/>, a JPEG may be decoded into the thread's reusable buffer (the result is
    /// only valid until the next scratch decode on this thread).</summary>
    internal static RgbImage Decode(ReadOnlySpan<byte> data, int minWidth, int minHeight, bool applyExif, bool scratch)
    {
        var format = Sniff(data);
        int orientation = applyExif ? Exif.ReadOrientation(data, format) : 1;
        if (orientation >= 5) (minWidth, minHeight) = (minHeight, minWidth);
        var img = format switch
        {
            ImageFormat.Jpeg => DecodeJpeg(data, minWidth, minHeight, scratch),
            ImageFormat.Png => DecodePng(data),
            ImageFormat.WebP => DecodeWebP(data),
            ImageFormat.Gif => DecodeGif(data),
            ImageFormat.Bmp => BmpDecoder.Decode(data),
            _ => throw new ImageDecodeException(UnsupportedReason(data)!),
        };
        return Exif.Apply(img, orientation);
    }

    /// <summary>Reads and decodes a file; see <c>Decode</c>.</summary>
    public static RgbImage DecodeFile(string path, int minWidth = 0, int minHeight = 0, bool applyExif = true)
        => Decode(ImageFiles.ReadAllBytes(path), minWidth, minHeight, applyExif);

    /// <summary>Decodes a file, returning null and the reason instead of throwing for undecodable content or I/O errors.</summary>
    public static RgbImage? TryDecodeFile(string path, out string? reason, int minWidth = 0, int minHeight = 0)
    {
        try
        {
            reason = null;
            return DecodeFile(path, minWidth, minHeight);
        }
        catch (Exception e) when (ImageDecodeException.IsImageProblem(e))
        {
            reason = e.Message;
            return null;
        }
    }

    // ---------------- JPEG ----------------

    static readonly ConcurrentBag<IntPtr> TjHandles = new();
    static TjScalingFactor[]? scalingFactors;

    static IntPtr RentTj()
    {
        if (TjHandles.TryTake(out var h)) return h;
        h = tjInitDecompress();
        if (h == IntPtr.Zero) throw new ImageDecodeException("TurboJPEG: could not create a decompressor");
        return h;
    }

    static void ReturnTj(IntPtr h, bool failed = false)
    {
        // A decompressor that stopped on an error keeps state that breaks later calls: never reuse it.
        if (failed) tjDestroy(h);
        else TjHandles.Add(h);
    }

    static string TjError(IntPtr h) => Marshal.PtrToStringUTF8(tjGetErrorStr2(h)) ?? "unknown TurboJPEG error";

    static TjScalingFactor[] ScalingFactors()
    {
        if (scalingFactors != null) return scalingFactors;
        var p = tjGetScalingFactors(out int n);
        var list = new List<TjScalingFactor>();
        // Power-of-two reductions only: they have SIMD inverse DCTs; 7/8, 3/4, ... are slower than a full decode.
        for (int i = 0; i < n; i++) if (p[i].Num == 1 && p[i].Denom is 1 or 2 or 4 or 8) list.Add(p[i]);
        return scalingFactors = list.ToArray();
    }

    static int Scaled(int dim, TjScalingFactor f) => (int)(((long)dim * f.Num + f.Denom - 1) / f.Denom);

    /// <summary>The TurboJPEG scale (as a fraction) used for a stored size and a minimum target size.</summary>
    public static (int Num, int Denom) JpegScale(int width, int height, int minWidth, int minHeight)
    {
        ImageLibraries.Require(ImageLibraries.TurboJpeg);
        var best = new TjScalingFactor { Num = 1, Denom = 1 };
        if (minWidth <= 0 && minHeight <= 0) return (1, 1);
        foreach (var f in ScalingFactors())
        {
            if (Scaled(width, f) < minWidth || Scaled(height, f) < minHeight) continue;
            if ((double)f.Num / f.Denom < (double)best.Num / best.Denom) best = f;
        }
        return (best.Num, best.Denom);
    }

    static RgbImage DecodeJpeg(ReadOnlySpan<byte> data, int minWidth, int minHeight, bool scratch)
    {
        ImageLibraries.Require(ImageLibraries.TurboJpeg);
        var tj = RentTj();
        bool failed = true;
        try
        {
            fixed (byte* p = data)
            {
                var size = new CULong((nuint)data.Length);
                var (w, h, cs) = JpegHeader(tj, p, data.Length);
                var (num, den) = JpegScale(w, h, minWidth, minHeight);
                var f = new TjScalingFactor { Num = num, Denom = den };
                int sw = Scaled(w, f), sh = Scaled(h, f);
                CheckPixels("JPEG", sw, sh);
                bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
                int channels = cmyk ? 4 : 3;
                int need = checked(sw * sh * channels);
                bool useScratch = scratch && !cmyk;
                var buf = useScratch ? RgbImage.Scratch(0, need) : new byte[need];
                fixed (byte* o = buf)
                {
                    if (tjDecompress2(tj, p, size, o, sw, sw * channels, sh, cmyk ? TJPF_CMYK : TJPF_RGB, 0) != 0)
                    {
                        // Warnings (e.g. extraneous bytes) leave a complete image; a premature end does not.
                        var msg = TjError(tj);
                        if (tjGetErrorCode(tj) != TJERR_WARNING || msg.Contains("Premature end", StringComparison.OrdinalIgnoreCase))
                            throw new ImageDecodeException(msg.Contains("Premature end", StringComparison.OrdinalIgnoreCase)
                                ? $"truncated JPEG ({msg})" : $"corrupt JPEG ({msg})");
                    }
                }
                failed = false;
                return cmyk ? CmykToRgb(buf, sw, sh) : useScratch ? new RgbImage(sw, sh, buf, scratch: true) : new RgbImage(sw, sh, buf);
            }
        }
        finally { ReturnTj(tj, failed); }
    }

    /// <summary>JPEG CMYK is stored inverted (Adobe convention, as PIL assumes); converted as PIL's cmyk→rgb:
    /// R = (255 − K) − C·(255 − K)/255 with the inks un-inverted.</summary>
    static RgbImage CmykToRgb(byte[] cmyk, int w, int h)
    {
        var rgb = new byte[w * h * 3];
        for (int i = 0, o = 0; i < cmyk.Length; i += 4, o += 3)
        {
            int nk = cmyk[i + 3]; // 255 - K with K = 255 - stored
            for (int c = 0; c < 3; c++)
            {
                int ink = 255 - cmyk[i + c];
                int t = ink * nk + 128;
                int v = nk - ((t + (t >> 8)) >> 8);
                rgb[o + c] = (byte)Math.Clamp(v, 0, 255);
            }
        }
        return new RgbImage(w, h, rgb);
    }

    // ---------------- PNG ----------------

    static (int, int) PngHeader(ReadOnlySpan<byte> d)
    {
        if (d.Length < 24 || !d.Slice(12, 4).SequenceEqual("IHDR"u8)) throw new ImageDecodeException("PNG: missing IHDR header");
        return ((int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(d.Slice(16)),
                (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(d.Slice(20)));
    }

    static string PngMessage(PngImage* img) => Marshal.PtrToStringUTF8((IntPtr)img->Message) ?? "unknown libpng error";

    static RgbImage DecodePng(ReadOnlySpan<byte> data)
    {
        ImageLibraries.Require(ImageLibraries.Png);
        var img = new PngImage { Version = PNG_IMAGE_VERSION };
        fixed (byte* p = data)
        {
            if (png_image_begin_read_from_memory(&img, p, (nuint)data.Length) == 0)
            {
                var msg = PngMessage(&img);
                png_image_free(&img);
                throw new ImageDecodeException($"PNG: {msg}");
            }
            try { CheckPixels("PNG", img.Width, img.Height); }
            catch { png_image_free(&img); throw; }
            int w = (int)img.Width, h = (int)img.Height;
            // Read RGBA and drop alpha: PIL's convert("RGB") discards alpha instead of compositing.
            img.Format = PNG_FORMAT_RGBA;
            var rgba = new byte[checked(w * h * 4)];
            fixed (byte* o = rgba)
            {
                if (png_image_finish_read(&img, null, o, w * 4, null) == 0)
                {
                    var msg = PngMessage(&img);
                    png_image_free(&img);
                    throw new ImageDecodeException(msg.Contains("EOF", StringComparison.OrdinalIgnoreCase) || msg.Contains("truncat", StringComparison.OrdinalIgnoreCase)
                        ? $"truncated PNG ({msg})" : $"corrupt PNG ({msg})");
                }
            }
            png_image_free(&img);
            var rgb = new byte[w * h * 3];
            for (int i = 0, j = 0; i < rgba.Length; i += 4, j += 3)
            {
                rgb[j] = rgba[i];
                rgb[j + 1] = rgba[i + 1];
                rgb[j + 2] = rgba[i + 2];
            }
            return new RgbImage(w, h, rgb);
        }
    }

    // ---------------- WebP ----------------

    static RgbImage DecodeWebP(ReadOnlySpan<byte> data)
    {
        ImageLibraries.Require(ImageLibraries.WebP);
        fixed (byte* p = data)
        {
            if (WebPGetInfo(p, (nuint)data.Length, out int w, out int h) == 0) throw new ImageDecodeException("WebP: invalid or truncated header");
            // VP8X extended header, flags byte: bit 1 = animation. libwebp's simple decoder reads still images only.
            if (data.Length > 20 && data.Slice(12, 4).SequenceEqual("VP8X"u8) && (data[20] & 0x02) != 0)
                throw new ImageDecodeException("animated WebP is not supported (only still images are; save a frame as PNG or JPEG)");
            CheckPixels("WebP", w, h);
            var buf = new byte[checked(w * h * 3)];
            fixed (byte* o = buf)
                if (WebPDecodeRGBInto(p, (nuint)data.Length, o, (nuint)buf.Length, w * 3) == null)
                    throw new ImageDecodeException("corrupt or truncated WebP (libwebp could not decode the bitstream)");
            return new RgbImage(w, h, buf);
        }
    }

    // ---------------- GIF ----------------

    static RgbImage DecodeGif(ReadOnlySpan<byte> data)
    {
        ImageLibraries.Require(ImageLibraries.Gif);
        // the logical screen from the header, before giflib allocates frames
        if (data.Length >= 10) CheckPixels("GIF", data[6] | data[7] << 8, data[8] | data[9] << 8);
        fixed (byte* p = data)
        {
            var src = new GifSource { Data = p, Length = data.Length };
            var gif = DGifOpen(&src, &GifRead, out int err);
            if (gif == null) throw new ImageDecodeException($"GIF: {GifError(err)}");
            try
            {
                // ImageCount counts a frame once its descriptor is read, so after a failed slurp frame 0 is
                // complete only when a second frame had been started.
                if (DGifSlurp(gif) == 0 && (gif->ImageCount < 2 || gif->SavedImages == null))
                    throw new ImageDecodeException($"corrupt or truncated GIF ({GifError(gif->Error)})");
                if (gif->ImageCount < 1 || gif->SavedImages == null) throw new ImageDecodeException("GIF: no frames");
                var frame = gif->SavedImages[0];
                var desc = frame.ImageDesc;
                var map = desc.ColorMap != null ? desc.ColorMap : gif->SColorMap;
                if (map == null) throw new ImageDecodeException("GIF: frame 0 has no colour map");
                if (frame.RasterBits == null) throw new ImageDecodeException("corrupt or truncated GIF (frame 0 has no pixels)");
                int w = gif->SWidth, h = gif->SHeight;
                if (w <= 0 || h <= 0) { w = desc.Width; h = desc.Height; }
                var rgb = new byte[checked(w * h * 3)];
                int bg = gif->SColorMap != null && gif->SBackGroundColor < gif->SColorMap->ColorCount ? gif->SBackGroundColor : -1;
                if (bg >= 0 && (desc.Left != 0 || desc.Top != 0 || desc.Width != w || desc.Height != h))
                {
                    var c = gif->SColorMap->Colors + 3 * bg;
                    for (int i = 0; i < rgb.Length; i += 3) { rgb[i] = c[0]; rgb[i + 1] = c[1]; rgb[i + 2] = c[2]; }
                }
                for (int y = 0; y < desc.Height; y++)
                {
                    int oy = desc.Top + y;
                    if (oy < 0 || oy >= h) continue;
                    for (int x = 0; x < desc.Width; x++)
                    {
                        int ox = desc.Left + x;
                        if (ox < 0 || ox >= w) continue;
                        int idx = frame.RasterBits[y * desc.Width + x];
                        if (idx >= map->ColorCount) idx = 0;
                        var c = map->Colors + 3 * idx;
                        int o = (oy * w + ox) * 3;
                        rgb[o] = c[0];
                        rgb[o + 1] = c[1];
                        rgb[o + 2] = c[2];
                    }
                }
                return new RgbImage(w, h, rgb);
            }
            finally
            {
                DGifCloseFile(gif, out _);
            }
        }
    }

    static string GifError(int code) => Marshal.PtrToStringUTF8(GifErrorString(code)) ?? $"giflib error {code}";
}

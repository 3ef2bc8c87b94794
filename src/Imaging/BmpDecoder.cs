using System.Buffers.Binary;
using System.Numerics;

namespace MLNetExt.Imaging;

/// <summary>Windows and OS/2 bitmaps (BMP), decoded to the RGB bytes PIL 9.4's <c>convert("RGB")</c> gives: 1-, 4- and
/// 8-bit palettes (an index past the palette reads as the grey of its value, as in PIL), 16-bit 5-5-5, 24- and 32-bit
/// (the fourth byte and any alpha dropped), bitfield masks of any contiguous width (scaled as <c>v·255/max</c>,
/// PIL's rule), bottom-up and top-down rows, and RLE8/RLE4 as the format specifies them. Every size is checked
/// against the data before memory is taken (a truncated file or one declaring more pixels than
/// <see cref="ImageDecoder.MaxImagePixels"/> is refused with the reason).</summary>
internal static class BmpDecoder
{
    /// <summary>The info-header sizes of the BMP versions read: OS/2 1.x (12), Windows 3 (40), its bitfield extensions
    /// (52, 56), OS/2 2.x (64), Windows 4 (108) and 5 (124).</summary>
    static readonly int[] InfoHeaderSizes = [12, 40, 52, 56, 64, 108, 124];

    const int FileHeaderSize = 14;
    const int RgbCompression = 0, Rle8 = 1, Rle4 = 2, BitFields = 3, JpegInside = 4, PngInside = 5;

    /// <summary>"BM" followed by an info header of a known size: two letters alone would take text files for bitmaps.</summary>
    public static bool Sniff(ReadOnlySpan<byte> d) =>
        d.Length >= FileHeaderSize + 4 && d[0] == (byte)'B' && d[1] == (byte)'M' && Array.IndexOf(InfoHeaderSizes, (int)U32(d, FileHeaderSize)) >= 0;

    /// <summary>Why data starting with "BM" is not read as a bitmap (too short for its headers, or an info header of
    /// an unknown size), or null when it does not start with "BM".</summary>
    public static string? NotABitmapReason(ReadOnlySpan<byte> d)
    {
        if (d.Length < 2 || d[0] != (byte)'B' || d[1] != (byte)'M') return null;
        if (d.Length < FileHeaderSize + 4) return $"truncated BMP ({d.Length} bytes; its headers need at least {FileHeaderSize + 4})";
        return $"starts like a BMP but its info header size is {U32(d, FileHeaderSize)}, not one of {string.Join(", ", InfoHeaderSizes)}";
    }

    readonly record struct Header(int Width, int Height, bool TopDown, int Bits, int Compression, int InfoSize, uint Colors,
                                  long PixelOffset);

    /// <summary>The stored size.</summary>
    public static (int Width, int Height) ReadSize(ReadOnlySpan<byte> d)
    {
        var h = ReadHeader(d);
        return (h.Width, h.Height);
    }

    static Header ReadHeader(ReadOnlySpan<byte> d)
    {
        int info = (int)U32(d, FileHeaderSize);
        if (d.Length < FileHeaderSize + info) throw Truncated($"the {info}-byte info header needs {FileHeaderSize + info} bytes, the file has {d.Length}");
        int o = FileHeaderSize;
        long width, height;
        int bits, compression;
        uint colors = 0;
        if (info == 12)
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(d[(o + 4)..]);
            height = BinaryPrimitives.ReadUInt16LittleEndian(d[(o + 6)..]);
            bits = BinaryPrimitives.ReadUInt16LittleEndian(d[(o + 10)..]);
            compression = RgbCompression;
        }
        else
        {
            width = BinaryPrimitives.ReadInt32LittleEndian(d[(o + 4)..]);
            height = BinaryPrimitives.ReadInt32LittleEndian(d[(o + 8)..]);
            bits = BinaryPrimitives.ReadUInt16LittleEndian(d[(o + 14)..]);
            compression = (int)Math.Min(U32(d, o + 16), int.MaxValue);
            colors = U32(d, o + 32);
        }
        bool topDown = height < 0;
        ImageDecoder.CheckPixels("BMP", width, Math.Abs(height));
        if (bits is not (1 or 4 or 8 or 16 or 24 or 32))
            throw new ImageDecodeException($"unsupported BMP pixel depth ({bits} bits; expected 1, 4, 8, 16, 24 or 32)");
        switch (compression)
        {
            case RgbCompression: break;
            case Rle8 when bits == 8: break;
            case Rle4 when bits == 4: break;
            case Rle8 or Rle4:
                throw new ImageDecodeException($"corrupt BMP: RLE{(compression == Rle8 ? 8 : 4)} compression with {bits} bits a pixel");
            case BitFields when bits is 16 or 24 or 32: break;
            case BitFields: throw new ImageDecodeException($"corrupt BMP: bitfields with {bits} bits a pixel (expected 16, 24 or 32)");
            case JpegInside or PngInside:
                throw new ImageDecodeException($"unsupported BMP: the pixels are an embedded {(compression == JpegInside ? "JPEG" : "PNG")} stream (a printer format); save it as a plain BMP, PNG or JPEG");
            default: throw new ImageDecodeException($"unsupported BMP compression ({compression}; expected none, RLE8, RLE4 or bitfields)");
        }
        if (bits <= 8) colors = colors == 0 || colors > 1u << bits ? 1u << bits : colors;
        long offset = U32(d, 10);
        long afterHeaders = FileHeaderSize + info + (info == 40 && compression == BitFields ? 12 : 0);
        // As PIL: an offset pointing straight after the info header of a palette image means the palette comes first.
        if (offset == FileHeaderSize + info && bits <= 8) offset += 4 * colors;
        if (offset == 0) offset = afterHeaders + (bits <= 8 ? PaletteEntrySize(info) * colors : 0);
        return new Header((int)width, (int)Math.Abs(height), topDown, bits, compression, info, colors, offset);
    }

    static int PaletteEntrySize(int infoSize) => infoSize == 12 ? 3 : 4;

    public static RgbImage Decode(ReadOnlySpan<byte> d)
    {
        var h = ReadHeader(d);
        if (h.PixelOffset >= d.Length) throw Truncated($"the pixels start at byte {h.PixelOffset:N0}, the file has {d.Length:N0}");
        var pixels = d[(int)h.PixelOffset..];
        // uncompressed rows must all be there before memory is taken (with the pixel budget off, a width can be huge)
        if (h.Compression is RgbCompression or BitFields) RequireRows(pixels, h);
        var rgb = new byte[checked(h.Width * h.Height * 3)];
        if (h.Bits <= 8)
        {
            var palette = Palette(d, h);
            if (h.Compression == RgbCompression) PaletteRows(pixels, h, palette, rgb);
            else Rle(pixels, h, palette, rgb);
        }
        else DirectRows(pixels, h, Masks(d, h), rgb);
        return new RgbImage(h.Width, h.Height, rgb);
    }

    /// <summary>256 RGB entries: the file's palette, then (past it) the grey of each index, as PIL reads both.</summary>
    static byte[] Palette(ReadOnlySpan<byte> d, Header h)
    {
        int entry = PaletteEntrySize(h.InfoSize);
        int start = FileHeaderSize + h.InfoSize;
        long end = start + (long)entry * h.Colors;
        if (end > d.Length) throw Truncated($"the palette of {h.Colors} colours ends at byte {end:N0}, the file has {d.Length:N0}");
        var p = new byte[256 * 3];
        for (int i = 0; i < 256; i++)
        {
            if (i < h.Colors)
            {
                int s = start + i * entry; // stored blue, green, red
                p[3 * i] = d[s + 2];
                p[3 * i + 1] = d[s + 1];
                p[3 * i + 2] = d[s];
            }
            else p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = (byte)i;
        }
        return p;
    }

    /// <summary>Bytes a stored row takes (rows are padded to 4 bytes); a long: a hostile width overflows an int.</summary>
    static long Stride(Header h) => ((long)h.Width * h.Bits + 31) / 32 * 4;

    /// <summary>The output row of the i-th stored row (bottom-up unless the height was negative).</summary>
    static int OutRow(Header h, int stored) => h.TopDown ? stored : h.Height - 1 - stored;

    static void RequireRows(ReadOnlySpan<byte> pixels, Header h)
    {
        long need = Stride(h) * h.Height;
        if (pixels.Length < need)
            throw Truncated($"{h.Width}x{h.Height} at {h.Bits} bits needs {need:N0} bytes of pixels, {pixels.Length:N0} are there");
    }

    static void PaletteRows(ReadOnlySpan<byte> pixels, Header h, byte[] palette, byte[] rgb)
    {
        int stride = (int)Stride(h), perByte = 8 / h.Bits, mask = (1 << h.Bits) - 1;
        for (int r = 0; r < h.Height; r++)
        {
            var row = pixels.Slice(r * stride, stride);
            int o = OutRow(h, r) * h.Width * 3;
            for (int x = 0; x < h.Width; x++, o += 3)
            {
                // most significant bits first
                int shift = (perByte - 1 - x % perByte) * h.Bits;
                int i = (row[x / perByte] >> shift) & mask;
                rgb[o] = palette[3 * i];
                rgb[o + 1] = palette[3 * i + 1];
                rgb[o + 2] = palette[3 * i + 2];
            }
        }
    }

    /// <summary>The red, green and blue masks of a 16-, 24- or 32-bit image: from the header with bitfields, else the
    /// format's defaults (5-5-5 for 16 bits, bytes B, G, R for 24 and 32).</summary>
    static uint[] Masks(ReadOnlySpan<byte> d, Header h)
    {
        uint[] defaults = h.Bits == 16 ? [0x7C00, 0x3E0, 0x1F] : [0xFF0000, 0xFF00, 0xFF];
        if (h.Compression != BitFields) return defaults;
        int at = FileHeaderSize + 40; // inside a longer info header, or the 12 bytes after a 40-byte one
        if (d.Length < at + 12) throw Truncated("the bitfield masks are cut off");
        uint[] m = [U32(d, at), U32(d, at + 4), U32(d, at + 8)];
        if (m[0] == 0 && m[1] == 0 && m[2] == 0 && h.Bits == 32) return defaults; // PIL reads all-zero masks as B, G, R bytes
        foreach (var mask in m)
            if (mask != 0 && !Contiguous(mask))
                throw new ImageDecodeException($"corrupt BMP: bitfield mask 0x{mask:X8} is not one run of bits");
        return m;
    }

    static bool Contiguous(uint mask)
    {
        uint shifted = mask >> BitOperations.TrailingZeroCount(mask);
        return (shifted & (shifted + 1)) == 0;
    }

    static void DirectRows(ReadOnlySpan<byte> pixels, Header h, uint[] masks, byte[] rgb)
    {
        int stride = (int)Stride(h), bytes = h.Bits / 8;
        Span<int> shift = stackalloc int[3];
        Span<long> max = stackalloc long[3];
        for (int c = 0; c < 3; c++)
        {
            shift[c] = masks[c] == 0 ? 0 : BitOperations.TrailingZeroCount(masks[c]);
            max[c] = masks[c] >> shift[c];
        }
        // Whole-byte channels (B, G, R and X/A orders of 24 and 32 bits: nearly every file) are copied, not scaled.
        int ri = ByteOf(masks[0], bytes), gi = ByteOf(masks[1], bytes), bi = ByteOf(masks[2], bytes);
        bool whole = ri >= 0 && gi >= 0 && bi >= 0;
        for (int r = 0; r < h.Height; r++)
        {
            var row = pixels.Slice(r * stride, stride);
            int o = OutRow(h, r) * h.Width * 3;
            if (whole)
            {
                for (int x = 0, s = 0; x < h.Width; x++, s += bytes, o += 3)
                {
                    rgb[o] = row[s + ri];
                    rgb[o + 1] = row[s + gi];
                    rgb[o + 2] = row[s + bi];
                }
                continue;
            }
            for (int x = 0, s = 0; x < h.Width; x++, s += bytes, o += 3)
            {
                uint v = bytes == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(row[s..])
                    : bytes == 3 ? (uint)(row[s] | row[s + 1] << 8 | row[s + 2] << 16)
                    : BinaryPrimitives.ReadUInt32LittleEndian(row[s..]);
                for (int c = 0; c < 3; c++)
                    rgb[o + c] = max[c] == 0 ? (byte)0 : (byte)(((v & masks[c]) >> shift[c]) * 255 / max[c]);
            }
        }
    }

    /// <summary>The byte of a little-endian pixel that <paramref name="mask"/> selects whole, or -1.</summary>
    static int ByteOf(uint mask, int bytes)
    {
        for (int k = 0; k < bytes; k++) if (mask == 0xFFu << (8 * k)) return k;
        return -1;
    }

    /// <summary>RLE8/RLE4 as the format specifies: runs of one index (RLE4: two alternating), absolute runs padded to
    /// a 16-bit word, end of line, end of bitmap and delta moves; pixels no code reaches are index 0. Data that ends
    /// before the end-of-bitmap code is a truncated file.</summary>
    static void Rle(ReadOnlySpan<byte> s, Header h, byte[] palette, byte[] rgb)
    {
        bool four = h.Compression == Rle4;
        var index = new byte[checked(h.Width * h.Height)];
        int x = 0, y = 0, p = 0;
        void Put(byte i)
        {
            if (x < h.Width && y < h.Height) index[OutRow(h, y) * h.Width + x] = i;
            x++;
        }
        while (true)
        {
            if (p + 2 > s.Length) throw Truncated("the RLE data ends before its end-of-bitmap code");
            int n = s[p], v = s[p + 1];
            p += 2;
            if (n > 0)
            {
                for (int k = 0; k < n; k++) Put(four ? (byte)(k % 2 == 0 ? v >> 4 : v & 0xF) : (byte)v);
                continue;
            }
            if (v == 0) { x = 0; y++; }
            else if (v == 1) break;
            else if (v == 2)
            {
                if (p + 2 > s.Length) throw Truncated("the RLE data ends inside a delta code");
                x += s[p];
                y += s[p + 1];
                p += 2;
            }
            else
            {
                int bytes = four ? (v + 1) / 2 : v;
                if (p + bytes > s.Length) throw Truncated("the RLE data ends inside an absolute run");
                for (int k = 0; k < v; k++) Put(four ? (byte)(k % 2 == 0 ? s[p + k / 2] >> 4 : s[p + k / 2] & 0xF) : s[p + k]);
                p += bytes + (bytes & 1);
            }
            if (y >= h.Height) break; // codes past the last row draw nothing
        }
        for (int i = 0, o = 0; i < index.Length; i++, o += 3)
        {
            int c = index[i] * 3;
            rgb[o] = palette[c];
            rgb[o + 1] = palette[c + 1];
            rgb[o + 2] = palette[c + 2];
        }
    }

    static uint U32(ReadOnlySpan<byte> d, int at) => BinaryPrimitives.ReadUInt32LittleEndian(d[at..]);

    static ImageDecodeException Truncated(string what) => new($"truncated BMP ({what})");
}

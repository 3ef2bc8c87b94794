using System.Buffers.Binary;

namespace MLNetExt.Imaging;

/// <summary>Reads the EXIF orientation tag (0x0112) from JPEG APP1, PNG eXIf and WebP EXIF chunks, and applies it
/// the way PIL's <c>ImageOps.exif_transpose</c> does.</summary>
internal static class Exif
{
    /// <summary>The orientation (1–8) stored in the container's EXIF block, or 1 when there is none or it is malformed.</summary>
    public static int ReadOrientation(ReadOnlySpan<byte> data, ImageFormat format)
    {
        try
        {
            return format switch
            {
                ImageFormat.Jpeg => FromJpeg(data),
                ImageFormat.Png => FromPng(data),
                ImageFormat.WebP => FromWebP(data),
                _ => 1,
            };
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException)
        {
            return 1; // a broken EXIF block never makes an image unreadable
        }
    }

    static int FromJpeg(ReadOnlySpan<byte> d)
    {
        int p = 2;
        while (p + 4 <= d.Length)
        {
            if (d[p] != 0xFF) return 1;
            byte marker = d[p + 1];
            if (marker == 0xFF) { p++; continue; }
            if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) { p += 2; continue; }
            if (marker == 0xDA || marker == 0xD9) return 1; // start of scan: no more metadata
            int len = BinaryPrimitives.ReadUInt16BigEndian(d.Slice(p + 2));
            if (len < 2 || p + 2 + len > d.Length) return 1;
            var seg = d.Slice(p + 4, len - 2);
            if (marker == 0xE1 && seg.Length > 6 && seg.StartsWith("Exif\0\0"u8))
                return FromTiff(seg.Slice(6));
            p += 2 + len;
        }
        return 1;
    }

    static int FromPng(ReadOnlySpan<byte> d)
    {
        int p = 8;
        while (p + 12 <= d.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(d.Slice(p));
            var type = d.Slice(p + 4, 4);
            if (len < 0 || p + 12L + len > d.Length) return 1;
            if (type.SequenceEqual("eXIf"u8)) return FromTiff(d.Slice(p + 8, len));
            if (type.SequenceEqual("IDAT"u8) || type.SequenceEqual("IEND"u8)) return 1;
            p += 12 + len;
        }
        return 1;
    }

    static int FromWebP(ReadOnlySpan<byte> d)
    {
        int p = 12;
        while (p + 8 <= d.Length)
        {
            int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(d.Slice(p + 4));
            if (len < 0 || p + 8L + len > d.Length) return 1;
            if (d.Slice(p, 4).SequenceEqual("EXIF"u8))
            {
                var block = d.Slice(p + 8, len);
                if (block.StartsWith("Exif\0\0"u8)) block = block.Slice(6);
                return FromTiff(block);
            }
            p += 8 + len + (len & 1);
        }
        return 1;
    }

    /// <summary>Orientation from a TIFF structure ("II*\0" or "MM\0*"), IFD0 only.</summary>
    static int FromTiff(ReadOnlySpan<byte> t)
    {
        if (t.Length < 8) return 1;
        bool le = t[0] == (byte)'I' && t[1] == (byte)'I';
        bool be = t[0] == (byte)'M' && t[1] == (byte)'M';
        if (!le && !be) return 1;
        static uint U32(ReadOnlySpan<byte> s, bool le) => le ? BinaryPrimitives.ReadUInt32LittleEndian(s) : BinaryPrimitives.ReadUInt32BigEndian(s);
        static ushort U16(ReadOnlySpan<byte> s, bool le) => le ? BinaryPrimitives.ReadUInt16LittleEndian(s) : BinaryPrimitives.ReadUInt16BigEndian(s);
        long ifd = U32(t.Slice(4), le);
        if (ifd + 2 > t.Length) return 1;
        int n = U16(t.Slice((int)ifd), le);
        for (int i = 0; i < n; i++)
        {
            int e = (int)ifd + 2 + 12 * i;
            if (e + 12 > t.Length) return 1;
            if (U16(t.Slice(e), le) != 0x0112) continue;
            int type = U16(t.Slice(e + 2), le);
            int v = type == 3 ? U16(t.Slice(e + 8), le) : type == 4 ? (int)U32(t.Slice(e + 8), le) : 1;
            return v is >= 1 and <= 8 ? v : 1;
        }
        return 1;
    }

    /// <summary>Returns <paramref name="image"/> turned upright for the given orientation (the same image for 1).</summary>
    public static RgbImage Apply(RgbImage image, int orientation)
    {
        if (orientation is < 2 or > 8) return image;
        int w = image.Width, h = image.Height;
        bool swap = orientation >= 5;
        int ow = swap ? h : w, oh = swap ? w : h;
        var src = image.Pixels;
        var dst = new byte[w * h * 3];
        for (int y = 0; y < oh; y++)
        {
            for (int x = 0; x < ow; x++)
            {
                // (sx, sy): the stored pixel that lands at output (x, y)
                int sx, sy;
                switch (orientation)
                {
                    case 2: sx = w - 1 - x; sy = y; break;          // mirror left-right
                    case 3: sx = w - 1 - x; sy = h - 1 - y; break;  // rotate 180
                    case 4: sx = x; sy = h - 1 - y; break;          // mirror top-bottom
                    case 5: sx = y; sy = x; break;                  // transpose
                    case 6: sx = y; sy = h - 1 - x; break;          // rotate 90 clockwise
                    case 7: sx = w - 1 - y; sy = h - 1 - x; break;  // transverse
                    default: sx = w - 1 - y; sy = x; break;         // 8: rotate 90 counter-clockwise
                }
                int s = (sy * w + sx) * 3, o = (y * ow + x) * 3;
                dst[o] = src[s];
                dst[o + 1] = src[s + 1];
                dst[o + 2] = src[s + 2];
            }
        }
        return new RgbImage(ow, oh, dst);
    }
}

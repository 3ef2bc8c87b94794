using System.Numerics;
using System.Runtime.InteropServices;

namespace MLNetExt.Imaging;

/// <summary>Resampling filters. Both are antialiased when shrinking (the filter widens with the scale), as PIL does.</summary>
public enum Interpolation
{
    /// <summary>PIL's BILINEAR (triangle filter).</summary>
    Bilinear,
    /// <summary>PIL's BICUBIC (a = −0.5).</summary>
    Bicubic,
}

/// <summary>Separable resampling that reproduces PIL's <c>Image.resize</c> for RGB images bit for bit: coefficients in
/// double, normalised, converted to 22-bit fixed point, horizontal pass first with a uint8 intermediate, then the
/// vertical pass (vectorised across each row).</summary>
internal static class Resampler
{
    const int PrecisionBits = 32 - 8 - 2;

    public static Interpolation Parse(string name) => name.ToLowerInvariant() switch
    {
        "bilinear" or "linear" => Interpolation.Bilinear,
        "bicubic" or "cubic" => Interpolation.Bicubic,
        _ => throw new ArgumentException($"Interpolation '{name}' is not supported; expected 'bilinear' or 'bicubic'."),
    };

    static double Support(Interpolation f) => f == Interpolation.Bicubic ? 2.0 : 1.0;

    static double Filter(Interpolation f, double x)
    {
        x = Math.Abs(x);
        if (f == Interpolation.Bilinear) return x < 1.0 ? 1.0 - x : 0.0;
        const double a = -0.5;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>PIL's precompute_coeffs + normalize_coeffs_8bpc.</summary>
    static int Coefficients(int inSize, double in0, double in1, int outSize, Interpolation f, out int[] bounds, out int[] kk)
    {
        double scale = (in1 - in0) / outSize;
        double filterscale = Math.Max(scale, 1.0);
        double support = Support(f) * filterscale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        bounds = new int[outSize * 2];
        kk = new int[outSize * ksize];
        var k = new double[ksize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = in0 + (xx + 0.5) * scale;
            double ww = 0.0, ss = 1.0 / filterscale;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            for (int x = 0; x < xmax; x++)
            {
                double w = Filter(f, (x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < ksize; x++)
            {
                double v = x < xmax && ww != 0.0 ? k[x] / ww : x < xmax ? k[x] : 0.0;
                kk[xx * ksize + x] = v < 0 ? (int)(-0.5 + v * (1 << PrecisionBits)) : (int)(0.5 + v * (1 << PrecisionBits));
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return ksize;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static byte Clip8(int v)
    {
        v >>= PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    /// <summary>Resizes to <paramref name="outWidth"/>×<paramref name="outHeight"/>; <paramref name="box"/> (left, top,
    /// right, bottom in source pixels, fractional allowed) selects the source region as PIL's <c>box</c> argument does.</summary>
    public static RgbImage Resize(RgbImage src, int outWidth, int outHeight, Interpolation filter, (double X0, double Y0, double X1, double Y1)? box = null)
        => Core(src, 0, 0, src.Width, src.Height, outWidth, outHeight, filter, box ?? (0, 0, src.Width, src.Height));

    /// <summary>Equals <c>Resize(ImageOps.Crop(src, left, top, width, height), ...)</c> (torchvision's resized_crop: the
    /// filter never reads outside the crop) for a region inside the image, without copying the crop.</summary>
    public static RgbImage ResizeRegion(RgbImage src, int left, int top, int width, int height, int outWidth, int outHeight, Interpolation filter)
    {
        if (left < 0 || top < 0 || width <= 0 || height <= 0 || left + width > src.Width || top + height > src.Height)
            return Resize(ImageOps.Crop(src, left, top, width, height), outWidth, outHeight, filter);
        return Core(src, left, top, width, height, outWidth, outHeight, filter, (0, 0, width, height));
    }

    /// <summary>Resampling of the region (xOff, yOff, inW, inH) of <paramref name="src"/> treated as an image of its own.</summary>
    static RgbImage Core(RgbImage src, int xOff, int yOff, int inW, int inH, int outWidth, int outHeight, Interpolation filter,
        (double X0, double Y0, double X1, double Y1) box)
    {
        if (outWidth <= 0 || outHeight <= 0) throw new ArgumentException($"Resize target {outWidth}x{outHeight}: both sides must be positive.");
        var (bx0, by0, bx1, by1) = box;
        bool needH = outWidth != inW || bx0 != 0 || bx1 != outWidth;
        bool needV = outHeight != inH || by0 != 0 || by1 != outHeight;
        if (!needH && !needV) return xOff == 0 && yOff == 0 && inW == src.Width && inH == src.Height ? src.Clone() : ImageOps.Crop(src, xOff, yOff, inW, inH);
        int kh = Coefficients(inW, bx0, bx1, outWidth, filter, out var boundsH, out var kkH);
        int kv = Coefficients(inH, by0, by1, outHeight, filter, out var boundsV, out var kkV);
        int yFirst = boundsV[0], yLast = boundsV[outHeight * 2 - 2] + boundsV[outHeight * 2 - 1];

        if (needH)
        {
            for (int i = 0; i < outHeight; i++) boundsV[i * 2] -= yFirst;
            int tmpH = yLast - yFirst;
            var tmp = needV ? new RgbImage(outWidth, tmpH, RgbImage.Scratch(1, outWidth * tmpH * 3), scratch: true) : new RgbImage(outWidth, tmpH);
            Horizontal(src, tmp, xOff, yOff + yFirst, kh, boundsH, kkH);
            if (!needV) return tmp;
            var output = new RgbImage(outWidth, outHeight);
            Vertical(tmp, 0, 0, output, kv, boundsV, kkV);
            return output;
        }
        var outV = new RgbImage(outWidth, outHeight);
        Vertical(src, xOff, yOff, outV, kv, boundsV, kkV);
        return outV;
    }

    static unsafe void Horizontal(RgbImage src, RgbImage dst, int xOffset, int yOffset, int ksize, int[] bounds, int[] kk)
    {
        int inStride = src.Stride, outW = dst.Width, outStride = dst.Stride;
        const int half = 1 << (PrecisionBits - 1);
        fixed (byte* inp = src.Pixels, outp = dst.Pixels)
        fixed (int* kp = kk, bp = bounds)
        {
            for (int y = 0; y < dst.Height; y++)
            {
                byte* inRow = inp + (long)(y + yOffset) * inStride + xOffset * 3;
                byte* o = outp + (long)y * outStride;
                for (int xx = 0; xx < outW; xx++, o += 3)
                {
                    int xmax = bp[xx * 2 + 1];
                    int* k = kp + xx * ksize;
                    byte* p = inRow + bp[xx * 2] * 3;
                    int s0 = half, s1 = half, s2 = half;
                    for (int x = 0; x < xmax; x++, p += 3)
                    {
                        int w = k[x];
                        s0 += p[0] * w;
                        s1 += p[1] * w;
                        s2 += p[2] * w;
                    }
                    o[0] = Clip8(s0);
                    o[1] = Clip8(s1);
                    o[2] = Clip8(s2);
                }
            }
        }
    }

    static void Vertical(RgbImage src, int xOffset, int yOffset, RgbImage dst, int ksize, int[] bounds, int[] kk)
    {
        var inp = src.Pixels;
        var outp = dst.Pixels;
        int n = dst.Stride; // same row length in bytes as the source
        var acc = new int[n];
        int vlen = Vector<int>.Count, blen = Vector<byte>.Count;
        const int half = 1 << (PrecisionBits - 1);
        var zero = Vector<int>.Zero;
        var max = new Vector<int>(255);
        for (int yy = 0; yy < dst.Height; yy++)
        {
            int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1], kb = yy * ksize;
            Array.Fill(acc, half);
            var accV = MemoryMarshal.Cast<int, Vector<int>>(acc.AsSpan());
            for (int y = 0; y < ymax; y++)
            {
                int w = kk[kb + y];
                if (w == 0) continue;
                var wv = new Vector<int>(w);
                var row = inp.AsSpan((yOffset + ymin + y) * src.Stride + xOffset * 3, n);
                int x = 0;
                // widen bytes -> ushort -> int, one Vector<byte> at a time
                for (; x + blen <= n; x += blen)
                {
                    var b = new Vector<byte>(row.Slice(x));
                    Vector.Widen(b, out Vector<ushort> lo, out Vector<ushort> hi);
                    Vector.Widen(lo, out Vector<uint> a0, out Vector<uint> a1);
                    Vector.Widen(hi, out Vector<uint> a2, out Vector<uint> a3);
                    int vi = x / vlen;
                    accV[vi] += Vector.AsVectorInt32(a0) * wv;
                    accV[vi + 1] += Vector.AsVectorInt32(a1) * wv;
                    accV[vi + 2] += Vector.AsVectorInt32(a2) * wv;
                    accV[vi + 3] += Vector.AsVectorInt32(a3) * wv;
                }
                for (; x < n; x++) acc[x] += row[x] * w;
            }
            var orow = outp.AsSpan(yy * n, n);
            int i = 0;
            for (; i + blen <= n; i += blen)
            {
                int vi = i / vlen;
                var v0 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(accV[vi], PrecisionBits), zero), max));
                var v1 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(accV[vi + 1], PrecisionBits), zero), max));
                var v2 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(accV[vi + 2], PrecisionBits), zero), max));
                var v3 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(accV[vi + 3], PrecisionBits), zero), max));
                Vector.Narrow(Vector.Narrow(v0, v1), Vector.Narrow(v2, v3)).CopyTo(orow.Slice(i));
            }
            for (; i < n; i++) orow[i] = Clip8(acc[i]);
        }
    }

    /// <summary>torchvision's size for <c>Resize(size)</c> with an int: the shorter side becomes <paramref name="size"/>,
    /// the longer one int(size·long/short).</summary>
    public static (int Width, int Height) ShorterSideSize(int width, int height, int size)
    {
        int shortSide = Math.Min(width, height), longSide = Math.Max(width, height);
        int newLong = (int)((double)size * longSide / shortSide);
        return width <= height ? (size, newLong) : (newLong, size);
    }

    /// <summary>torchvision <c>Resize(size)</c>: shorter side to <paramref name="size"/>.</summary>
    public static RgbImage ResizeShorterSide(RgbImage src, int size, Interpolation filter)
    {
        var (w, h) = ShorterSideSize(src.Width, src.Height, size);
        return Resize(src, w, h, filter);
    }
}

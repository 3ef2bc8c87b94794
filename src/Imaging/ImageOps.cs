
namespace MLNetExt.Imaging;

/// <summary>Pixel operations on <see cref="RgbImage"/>, each reproducing the PIL function torchvision calls for PIL
/// input (named in each summary) so that fixtures from torchvision can check them.</summary>
internal static class ImageOps
{
    /// <summary>PIL <c>crop((left, top, left+w, top+h))</c>: pixels outside the image are black.</summary>
    public static RgbImage Crop(RgbImage src, int left, int top, int width, int height)
    {
        var dst = new RgbImage(width, height);
        int x0 = Math.Max(0, left), x1 = Math.Min(src.Width, left + width);
        if (x1 <= x0) return dst;
        for (int y = 0; y < height; y++)
        {
            int sy = top + y;
            if (sy < 0 || sy >= src.Height) continue;
            Array.Copy(src.Pixels, (sy * src.Width + x0) * 3, dst.Pixels, (y * width + (x0 - left)) * 3, (x1 - x0) * 3);
        }
        return dst;
    }

    /// <summary>torchvision <c>center_crop</c>: offsets round half to even, as Python's round; a crop larger than the
    /// image pads with black.</summary>
    public static RgbImage CenterCrop(RgbImage src, int width, int height)
    {
        var (left, top) = CenterCropOffsets(src.Width, src.Height, width, height);
        return Crop(src, left, top, width, height);
    }

    public static (int Left, int Top) CenterCropOffsets(int imageWidth, int imageHeight, int width, int height)
    {
        // torchvision pads (crop - image) // 2 on the left/top first, then crops at round((padded - crop) / 2) = 0.
        int left = width > imageWidth ? -((width - imageWidth) / 2) : (int)Math.Round((imageWidth - width) / 2.0, MidpointRounding.ToEven);
        int top = height > imageHeight ? -((height - imageHeight) / 2) : (int)Math.Round((imageHeight - height) / 2.0, MidpointRounding.ToEven);
        return (left, top);
    }

    /// <summary>PIL <c>transpose(FLIP_LEFT_RIGHT)</c>, in place.</summary>
    public static void FlipHorizontal(RgbImage img)
    {
        var p = img.Pixels;
        int w = img.Width;
        for (int y = 0; y < img.Height; y++)
        {
            int row = y * w * 3;
            for (int a = 0, b = w - 1; a < b; a++, b--)
            {
                int i = row + a * 3, j = row + b * 3;
                (p[i], p[j]) = (p[j], p[i]);
                (p[i + 1], p[j + 1]) = (p[j + 1], p[i + 1]);
                (p[i + 2], p[j + 2]) = (p[j + 2], p[i + 2]);
            }
        }
    }

    /// <summary>PIL <c>convert("L")</c> for one pixel: (19595 R + 38470 G + 7471 B + 0x8000) >> 16.</summary>
    public static byte Luma(byte r, byte g, byte b) => (byte)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);

    /// <summary>PIL <c>Image.blend(degenerate, img, alpha)</c> in float32 with truncation, in place on <paramref name="img"/>.</summary>
    static void Blend(byte[] degenerate, RgbImage img, float alpha, bool degenerateIsGray)
    {
        if (alpha == 1f) return;
        var p = img.Pixels;
        for (int i = 0; i < p.Length; i++)
        {
            int d = degenerateIsGray ? degenerate[i / 3] : degenerate[i];
            if (alpha == 0f) { p[i] = (byte)d; continue; }
            float t = d + alpha * (p[i] - d);
            p[i] = t <= 0f ? (byte)0 : t >= 255f ? (byte)255 : (byte)t;
        }
    }

    /// <summary>PIL <c>ImageEnhance.Brightness(img).enhance(factor)</c>, in place.</summary>
    public static void AdjustBrightness(RgbImage img, double factor) => Blend(new byte[img.Width * img.Height], img, (float)factor, true);

    /// <summary>PIL <c>ImageEnhance.Contrast</c>: blends with the rounded mean of the grayscale image, in place.</summary>
    public static void AdjustContrast(RgbImage img, double factor)
    {
        var p = img.Pixels;
        long sum = 0;
        for (int i = 0; i < p.Length; i += 3) sum += Luma(p[i], p[i + 1], p[i + 2]);
        int mean = (int)((double)sum / (img.Width * img.Height) + 0.5);
        var deg = new byte[img.Width * img.Height];
        Array.Fill(deg, (byte)mean);
        Blend(deg, img, (float)factor, true);
    }

    /// <summary>PIL <c>ImageEnhance.Color</c> (saturation): blends with the grayscale image, in place.</summary>
    public static void AdjustSaturation(RgbImage img, double factor)
    {
        var p = img.Pixels;
        var deg = new byte[img.Width * img.Height];
        for (int i = 0, j = 0; j < deg.Length; i += 3, j++) deg[j] = Luma(p[i], p[i + 1], p[i + 2]);
        Blend(deg, img, (float)factor, true);
    }

    /// <summary>PIL <c>ImageEnhance.Sharpness</c>: blends with the SMOOTH-filtered image (border pixels unchanged), in place.</summary>
    public static void AdjustSharpness(RgbImage img, double factor)
    {
        int w = img.Width, h = img.Height;
        var p = img.Pixels;
        var deg = (byte[])p.Clone();
        if (w > 2 && h > 2)
        {
            for (int y = 1; y < h - 1; y++)
                for (int x = 1; x < w - 1; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        int s = 0;
                        for (int dy = -1; dy <= 1; dy++)
                            for (int dx = -1; dx <= 1; dx++)
                                s += p[((y + dy) * w + x + dx) * 3 + c] * (dx == 0 && dy == 0 ? 5 : 1);
                        // PIL's filter3x3 works in float: sum * (1/13) + 0.5, clipped
                        float v = s / 13f + 0.5f;
                        deg[(y * w + x) * 3 + c] = v <= 0 ? (byte)0 : v >= 255 ? (byte)255 : (byte)(int)v;
                    }
        }
        Blend(deg, img, (float)factor, false);
    }

    /// <summary>torchvision <c>adjust_hue</c> for PIL: RGB→HSV (PIL), H += uint8(factor·255) wrapping, HSV→RGB (PIL), in place.</summary>
    public static void AdjustHue(RgbImage img, double hueFactor)
    {
        if (hueFactor is < -0.5 or > 0.5) throw new ArgumentOutOfRangeException(nameof(hueFactor), hueFactor, "hue factor must lie in [-0.5, 0.5]");
        int shift = ((int)(hueFactor * 255)) & 0xFF;
        var p = img.Pixels;
        for (int i = 0; i < p.Length; i += 3)
        {
            byte r = p[i], g = p[i + 1], b = p[i + 2];
            byte maxc = Math.Max(r, Math.Max(g, b)), minc = Math.Min(r, Math.Min(g, b));
            byte uh = 0, us = 0, uv = maxc;
            if (minc != maxc)
            {
                float cr = maxc - minc;
                float s = cr / maxc;
                float rc = (maxc - r) / cr, gc = (maxc - g) / cr, bc = (maxc - b) / cr;
                // as in PIL's C: the 2.0/4.0 sums are evaluated in double and stored as float
                float hh = r == maxc ? bc - gc : g == maxc ? (float)(2.0 + rc - bc) : (float)(4.0 + gc - rc);
                hh = (float)((hh / 6.0 + 1.0) % 1.0);
                uh = (byte)Math.Clamp((int)(hh * 255.0), 0, 255);
                us = (byte)Math.Clamp((int)(s * 255.0), 0, 255);
            }
            uh = (byte)(uh + shift);
            if (us == 0) { p[i] = p[i + 1] = p[i + 2] = uv; continue; }
            int sector = (int)Math.Floor(uh * 6.0 / 255.0);
            float f = (float)(uh * 6.0 / 255.0 - sector);
            float fs = (float)(us / 255.0);
            byte P = Clip(Math.Round(uv * (1.0 - fs), MidpointRounding.AwayFromZero));
            byte Q = Clip(Math.Round(uv * (1.0 - fs * f), MidpointRounding.AwayFromZero));
            byte T = Clip(Math.Round(uv * (1.0 - fs * (1.0 - f)), MidpointRounding.AwayFromZero));
            (p[i], p[i + 1], p[i + 2]) = (sector % 6) switch
            {
                0 => (uv, T, P),
                1 => (Q, uv, P),
                2 => (P, uv, T),
                3 => (P, Q, uv),
                4 => (T, P, uv),
                _ => (uv, P, Q),
            };
        }
    }

    static byte Clip(double v) => v <= 0 ? (byte)0 : v >= 255 ? (byte)255 : (byte)v;

    /// <summary>PIL <c>ImageOps.posterize</c>: keeps the top <paramref name="bits"/> bits, in place.</summary>
    public static void Posterize(RgbImage img, int bits)
    {
        byte mask = (byte)~((1 << (8 - Math.Clamp(bits, 0, 8))) - 1);
        var p = img.Pixels;
        for (int i = 0; i < p.Length; i++) p[i] &= mask;
    }

    /// <summary>PIL <c>ImageOps.solarize</c>: inverts values ≥ threshold, in place.</summary>
    public static void Solarize(RgbImage img, double threshold)
    {
        var p = img.Pixels;
        for (int i = 0; i < p.Length; i++) if (p[i] >= threshold) p[i] = (byte)(255 - p[i]);
    }

    /// <summary>PIL <c>ImageOps.autocontrast</c> (cutoff 0): stretches each channel's [min, max] to [0, 255], in place.</summary>
    public static void AutoContrast(RgbImage img)
    {
        var p = img.Pixels;
        for (int c = 0; c < 3; c++)
        {
            int lo = 255, hi = 0;
            for (int i = c; i < p.Length; i += 3) { lo = Math.Min(lo, p[i]); hi = Math.Max(hi, p[i]); }
            if (hi <= lo) continue;
            double scale = 255.0 / (hi - lo), offset = -lo * scale;
            var lut = new byte[256];
            for (int v = 0; v < 256; v++)
            {
                int ix = (int)(v * scale + offset);
                lut[v] = (byte)Math.Clamp(ix, 0, 255);
            }
            for (int i = c; i < p.Length; i += 3) p[i] = lut[p[i]];
        }
    }

    /// <summary>PIL <c>ImageOps.equalize</c>: per-channel histogram equalisation, in place.</summary>
    public static void Equalize(RgbImage img)
    {
        var p = img.Pixels;
        for (int c = 0; c < 3; c++)
        {
            var h = new int[256];
            for (int i = c; i < p.Length; i += 3) h[p[i]]++;
            var nonzero = h.Where(v => v != 0).ToArray();
            if (nonzero.Length <= 1) continue;
            int step = (nonzero.Sum() - nonzero[^1]) / 255;
            if (step == 0) continue;
            var lut = new byte[256];
            int n = step / 2;
            for (int v = 0; v < 256; v++)
            {
                lut[v] = (byte)Math.Min(255, n / step);
                n += h[v];
            }
            for (int i = c; i < p.Length; i += 3) p[i] = lut[p[i]];
        }
    }

    /// <summary>PIL <c>transform(size, AFFINE, matrix, NEAREST, fillcolor)</c>: <paramref name="m"/> maps output pixel
    /// centres to input coordinates (a, b, c, d, e, f). Like PIL, uses 16.16 fixed point whenever the mapped corners
    /// stay within ±32768 (always, for images of ordinary size), else double stepping. Returns a new image.</summary>
    public static RgbImage AffineNearest(RgbImage src, double[] m, byte fill = 0)
    {
        int w = src.Width, h = src.Height;
        var dst = new RgbImage(w, h);
        var sp = src.Pixels;
        var dp = dst.Pixels;
        if (fill != 0) Array.Fill(dp, fill);
        bool Fits(int x, int y) => Math.Abs(x * m[0] + y * m[1] + m[2]) < 32768.0 && Math.Abs(x * m[3] + y * m[4] + m[5]) < 32768.0;
        void Put(int x, int y, int xin, int yin)
        {
            if (xin < 0 || xin >= w || yin < 0 || yin >= h) return;
            int s = (yin * w + xin) * 3, o = (y * w + x) * 3;
            dp[o] = sp[s]; dp[o + 1] = sp[s + 1]; dp[o + 2] = sp[s + 2];
        }
        if (Fits(0, 0) && Fits(w, h) && Fits(0, h) && Fits(w, 0))
        {
            static int Fix(double v) { v = v * 65536.0 + 0.5; return v < 0.0 ? (int)Math.Floor(v) : (int)v; }
            int a0 = Fix(m[0]), a1 = Fix(m[1]), a3 = Fix(m[3]), a4 = Fix(m[4]);
            int a2 = Fix(m[2] + m[0] * 0.5 + m[1] * 0.5), a5 = Fix(m[5] + m[3] * 0.5 + m[4] * 0.5);
            for (int y = 0; y < h; y++)
            {
                int xx = a2, yy = a5;
                for (int x = 0; x < w; x++)
                {
                    Put(x, y, xx >> 16, yy >> 16);
                    xx += a0;
                    yy += a3;
                }
                a2 += a1;
                a5 += a4;
            }
            return dst;
        }
        double xo = m[2] + m[1] * 0.5 + m[0] * 0.5, yo = m[5] + m[4] * 0.5 + m[3] * 0.5;
        for (int y = 0; y < h; y++)
        {
            double xd = xo, yd = yo;
            for (int x = 0; x < w; x++)
            {
                Put(x, y, xd < 0.0 ? -1 : (int)xd, yd < 0.0 ? -1 : (int)yd);
                xd += m[0];
                yd += m[3];
            }
            xo += m[1];
            yo += m[4];
        }
        return dst;
    }

    /// <summary>torchvision <c>_get_inverse_affine_matrix</c> (angle and shear in degrees).</summary>
    public static double[] InverseAffine(double cx, double cy, double angle, double tx, double ty, double scale, double shearX, double shearY)
    {
        double rad = Math.PI / 180, rot = angle * rad, sx = shearX * rad, sy = shearY * rad; // math.radians
        double a = Math.Cos(rot - sy) / Math.Cos(sy);
        double b = -Math.Cos(rot - sy) * Math.Tan(sx) / Math.Cos(sy) - Math.Sin(rot);
        double c = Math.Sin(rot - sy) / Math.Cos(sy);
        double d = -Math.Sin(rot - sy) * Math.Tan(sx) / Math.Cos(sy) + Math.Cos(rot);
        var m = new[] { d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0 };
        m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
        m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
        m[2] += cx;
        m[5] += cy;
        return m;
    }

    /// <summary>Python's <c>round(x, 15)</c>: correctly rounded through the decimal representation.</summary>
    static double Round15(double x) => double.Parse(x.ToString("F15", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>PIL <c>Image.rotate(angle, NEAREST)</c> about the centre, same size, black fill.</summary>
    public static RgbImage RotateNearest(RgbImage src, double angleDegrees, byte fill = 0)
    {
        double angle = angleDegrees % 360.0;
        if (angle < 0) angle += 360.0;
        if (angle == 0) return src.Clone();
        double w = src.Width, h = src.Height;
        if (angle == 180) return Imaging.Exif.Apply(src, 3);
        if ((angle == 90 || angle == 270) && src.Width == src.Height) return Imaging.Exif.Apply(src, angle == 90 ? 8 : 6);
        double r = -(angle * (Math.PI / 180)); // math.radians
        var m = new[] { Round15(Math.Cos(r)), Round15(Math.Sin(r)), 0.0, Round15(-Math.Sin(r)), Round15(Math.Cos(r)), 0.0 };
        double cx = w / 2.0, cy = h / 2.0;
        m[2] = m[0] * -cx + m[1] * -cy + m[2];
        m[5] = m[3] * -cx + m[4] * -cy + m[5];
        m[2] += cx;
        m[5] += cy;
        return AffineNearest(src, m, fill);
    }
}

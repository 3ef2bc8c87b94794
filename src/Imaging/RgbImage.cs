namespace MLNetExt.Imaging;

/// <summary>An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC): byte <c>(y * Width + x) * 3 + c</c>.</summary>
public sealed class RgbImage
{
    /// <summary>Width in pixels.</summary>
    public int Width { get; }
    /// <summary>Height in pixels.</summary>
    public int Height { get; }
    /// <summary>Width·Height·3 bytes.</summary>
    public byte[] Pixels { get; }

    /// <summary>An image over <paramref name="pixels"/> (row-major RGB, at least width·height·3 bytes; not copied).</summary>
    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"Image size {width}x{height}: both sides must be positive.");
        if (pixels.Length != (long)width * height * 3)
            throw new ArgumentException($"A {width}x{height} RGB image needs {(long)width * height * 3} bytes but {pixels.Length} were given.");
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    /// <summary>A black image.</summary>
    public RgbImage(int width, int height) : this(width, height, new byte[checked(width * height * 3)]) { }

    /// <summary>A temporary image over a reusable buffer that may be longer than Width·Height·3 (pipeline internals
    /// only: such an image is consumed at once and never handed to user code).</summary>
    internal RgbImage(int width, int height, byte[] buffer, bool scratch)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"Image size {width}x{height}: both sides must be positive.");
        if (buffer.Length < (long)width * height * 3) throw new ArgumentException($"Scratch buffer of {buffer.Length} bytes is too small for {width}x{height}.");
        Width = width;
        Height = height;
        Pixels = buffer;
        IsScratch = scratch;
    }

    internal bool IsScratch { get; }

    /// <summary>A reusable per-thread buffer of at least <paramref name="length"/> bytes (slot 0: decoding, 1: resampling).
    /// Buffers above 16 MB are not kept.</summary>
    internal static byte[] Scratch(int slot, int length)
    {
        scratch ??= new byte[2][];
        var b = scratch[slot];
        if (b != null && b.Length >= length) return b;
        b = GC.AllocateUninitializedArray<byte>(length);
        if (length <= 16 << 20) scratch[slot] = b;
        return b;
    }

    [ThreadStatic] static byte[]?[]? scratch;

    /// <summary>Bytes per row (width · 3).</summary>
    public int Stride => Width * 3;

    /// <summary>A copy with its own pixels.</summary>
    public RgbImage Clone() => new(Width, Height, Pixels.AsSpan(0, Width * Height * 3).ToArray());

    /// <summary>"RgbImage WxH".</summary>
    public override string ToString() => $"RgbImage {Width}x{Height}";
}

/// <summary>The container formats the decoder understands, recognised by their leading bytes (never by file name).</summary>
public enum ImageFormat
{
    /// <summary>None of the formats below.</summary>
    Unknown,
    /// <summary>JPEG (TurboJPEG).</summary>
    Jpeg,
    /// <summary>PNG (libpng).</summary>
    Png,
    /// <summary>WebP (libwebp; still images).</summary>
    WebP,
    /// <summary>GIF (giflib; the first frame).</summary>
    Gif,
    /// <summary>BMP (Windows and OS/2 bitmaps; MLNetExt's own reader).</summary>
    Bmp,
}

/// <summary>Thrown when bytes cannot be decoded; <see cref="Exception.Message"/> is the reason shown to the user.</summary>
public sealed class ImageDecodeException(string reason) : Exception(reason)
{
    /// <summary>Whether <paramref name="e"/> means "this file cannot be used as an image" (to skip and report it):
    /// undecodable content, I/O and permission errors, and arithmetic overflow from sizes a hostile header declares.</summary>
    public static bool IsImageProblem(Exception e) => e is ImageDecodeException or IOException or UnauthorizedAccessException or OverflowException;
}

/// <summary>What the header says: the stored size, the EXIF orientation (1–8, 1 = as stored) and the size after
/// orientation is applied.</summary>
public readonly record struct ImageInfo(ImageFormat Format, int StoredWidth, int StoredHeight, int Orientation)
{
    /// <summary>Orientations 5–8 swap width and height.</summary>
    public bool Transposed => Orientation >= 5;
    /// <summary>Width after the orientation is applied.</summary>
    public int Width => Transposed ? StoredHeight : StoredWidth;
    /// <summary>Height after the orientation is applied.</summary>
    public int Height => Transposed ? StoredWidth : StoredHeight;
}

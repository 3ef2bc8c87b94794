namespace MLNetExt.Data;

/// <summary>An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC): byte <c>(y * Width + x) * 3 + c</c>.</summary>
public sealed class RgbImage
{
    public int Width { get; }
    public int Height { get; }
    /// <summary>Width·Height·3 bytes.</summary>
    public byte[] Pixels { get; }

    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"Image size {width}x{height}: both sides must be positive.");
        if (pixels.Length != (long)width * height * 3)
            throw new ArgumentException($"A {width}x{height} RGB image needs {(long)width * height * 3} bytes but {pixels.Length} were given.");
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public RgbImage(int width, int height) : this(width, height, new byte[checked(width * height * 3)]) { }

    public int Stride => Width * 3;

    public RgbImage Clone() => new(Width, Height, (byte[])Pixels.Clone());

    public override string ToString() => $"RgbImage {Width}x{Height}";
}

/// <summary>The container formats the decoder understands, recognised by their leading bytes (never by file name).</summary>
public enum ImageFormat { Unknown, Jpeg, Png, WebP, Gif }

/// <summary>Thrown when bytes cannot be decoded; <see cref="Exception.Message"/> is the reason shown to the user.</summary>
public sealed class ImageDecodeException(string reason) : Exception(reason);

/// <summary>What the header says: the stored size, the EXIF orientation (1–8, 1 = as stored) and the size after
/// orientation is applied.</summary>
public readonly record struct ImageInfo(ImageFormat Format, int StoredWidth, int StoredHeight, int Orientation)
{
    /// <summary>Orientations 5–8 swap width and height.</summary>
    public bool Transposed => Orientation >= 5;
    public int Width => Transposed ? StoredHeight : StoredWidth;
    public int Height => Transposed ? StoredWidth : StoredHeight;
}

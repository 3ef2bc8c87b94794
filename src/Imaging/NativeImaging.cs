using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MLNetExt.Imaging;

/// <summary>P/Invoke declarations for TurboJPEG 2.1, libpng's simplified API, libwebp and giflib 5.</summary>
internal static unsafe partial class NativeImaging
{
    // ---- TurboJPEG (libturbojpeg.so.0); `unsigned long` is 64-bit on Linux x64 ----
    internal const int TJPF_RGB = 0, TJPF_CMYK = 11;
    internal const int TJCS_GRAY = 2, TJCS_CMYK = 3, TJCS_YCCK = 4;
    internal const int TJERR_WARNING = 0;

    [StructLayout(LayoutKind.Sequential)]
    internal struct TjScalingFactor { public int Num, Denom; }

    [LibraryImport(ImageLibraries.TurboJpeg)] internal static partial IntPtr tjInitDecompress();
    [LibraryImport(ImageLibraries.TurboJpeg)] internal static partial int tjDestroy(IntPtr handle);
    [LibraryImport(ImageLibraries.TurboJpeg)]
    internal static partial int tjDecompressHeader3(IntPtr handle, byte* jpeg, CULong size, out int width, out int height, out int subsamp, out int colorspace);
    [LibraryImport(ImageLibraries.TurboJpeg)]
    internal static partial int tjDecompress2(IntPtr handle, byte* jpeg, CULong size, byte* dst, int width, int pitch, int height, int pixelFormat, int flags);
    [LibraryImport(ImageLibraries.TurboJpeg)] internal static partial TjScalingFactor* tjGetScalingFactors(out int count);
    [LibraryImport(ImageLibraries.TurboJpeg)] internal static partial IntPtr tjGetErrorStr2(IntPtr handle);
    [LibraryImport(ImageLibraries.TurboJpeg)] internal static partial int tjGetErrorCode(IntPtr handle);

    // ---- libpng simplified API (libpng16.so.16) ----
    internal const uint PNG_IMAGE_VERSION = 1;
    internal const uint PNG_FORMAT_RGB = 2, PNG_FORMAT_RGBA = 3;

    [StructLayout(LayoutKind.Sequential)]
    internal struct PngImage
    {
        public IntPtr Opaque;
        public uint Version, Width, Height, Format, Flags, ColormapEntries, WarningOrError;
        public fixed byte Message[64];
    }

    [LibraryImport(ImageLibraries.Png)] internal static partial int png_image_begin_read_from_memory(PngImage* image, byte* memory, nuint size);
    [LibraryImport(ImageLibraries.Png)] internal static partial int png_image_finish_read(PngImage* image, void* background, byte* buffer, int rowStride, void* colormap);
    [LibraryImport(ImageLibraries.Png)] internal static partial void png_image_free(PngImage* image);

    // ---- libwebp (libwebp.so.7) ----
    [LibraryImport(ImageLibraries.WebP)] internal static partial int WebPGetInfo(byte* data, nuint size, out int width, out int height);
    [LibraryImport(ImageLibraries.WebP)] internal static partial byte* WebPDecodeRGBInto(byte* data, nuint size, byte* output, nuint outputSize, int stride);

    // ---- giflib 5 (libgif.so.7) ----
    [StructLayout(LayoutKind.Sequential)]
    internal struct GifColorMap { public int ColorCount, BitsPerPixel; public byte SortFlag; public byte* Colors; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct GifImageDesc { public int Left, Top, Width, Height; public byte Interlace; public GifColorMap* ColorMap; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct GifSavedImage { public GifImageDesc ImageDesc; public byte* RasterBits; public int ExtensionBlockCount; public IntPtr ExtensionBlocks; }

    [StructLayout(LayoutKind.Sequential)]
    internal struct GifFile
    {
        public int SWidth, SHeight, SColorResolution, SBackGroundColor;
        public byte AspectByte;
        public GifColorMap* SColorMap;
        public int ImageCount;
        public GifImageDesc Image;
        public GifSavedImage* SavedImages;
        public int ExtensionBlockCount;
        public IntPtr ExtensionBlocks;
        public int Error;
        public void* UserData;
        public void* Private;
    }

    /// <summary>Where the read callback takes its bytes from.</summary>
    internal struct GifSource { public byte* Data; public long Length, Position; }

    [LibraryImport(ImageLibraries.Gif)] internal static partial GifFile* DGifOpen(void* userData, delegate* unmanaged<GifFile*, byte*, int, int> read, out int error);
    [LibraryImport(ImageLibraries.Gif)] internal static partial int DGifSlurp(GifFile* gif);
    [LibraryImport(ImageLibraries.Gif)] internal static partial int DGifCloseFile(GifFile* gif, out int error);
    [LibraryImport(ImageLibraries.Gif)] internal static partial IntPtr GifErrorString(int error);

    [UnmanagedCallersOnly]
    internal static int GifRead(GifFile* gif, byte* buffer, int length)
    {
        var src = (GifSource*)gif->UserData;
        long n = Math.Min(length, src->Length - src->Position);
        if (n <= 0) return 0;
        Buffer.MemoryCopy(src->Data + src->Position, buffer, length, n);
        src->Position += n;
        return (int)n;
    }
}

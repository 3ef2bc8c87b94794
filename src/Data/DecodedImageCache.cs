using System.Collections.Concurrent;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Data;

/// <summary>Keeps decoded images, reduced so their shorter side is at most <see cref="ShorterSide"/>, for small
/// datasets that are read every epoch. Entries remember the original size so a pipeline plans its geometry exactly as
/// for the full image. Decode failures are cached too. Stops adding once <see cref="MaxBytes"/> is reached.</summary>
internal sealed class DecodedImageCache(int shorterSide, long maxBytes = 2L << 30, Interpolation interpolation = Interpolation.Bicubic)
{
    public int ShorterSide { get; } = shorterSide;
    public long MaxBytes { get; } = maxBytes;
    long bytes;
    readonly ConcurrentDictionary<ImageItem, Entry> entries = new(ReferenceEqualityComparer.Instance);

    public sealed record Entry(RgbImage? Image, int FullWidth, int FullHeight, string? Error, int Orientation = 1);

    public long Bytes => Interlocked.Read(ref bytes);
    public int Count => entries.Count;

    /// <summary>The cached entry for an item, decoding (and storing, if there is room) on first use.</summary>
    public Entry Get(ImageItem item)
    {
        if (entries.TryGetValue(item, out var e)) return e;
        e = Load(item);
        long size = e.Image?.Pixels.Length ?? 0;
        if (Interlocked.Read(ref bytes) + size <= MaxBytes && entries.TryAdd(item, e)) Interlocked.Add(ref bytes, size);
        return e;
    }

    Entry Load(ImageItem item)
    {
        try
        {
            RgbImage full;
            int fw, fh, orientation = 1;
            if (item.Image != null) { full = item.Image; fw = full.Width; fh = full.Height; }
            else
            {
                var data = item.ReadBytes();
                var info = ImageDecoder.ReadInfo(data);
                (fw, fh, orientation) = (info.Width, info.Height, info.Orientation);
                var (tw, th) = Target(fw, fh);
                full = ImageDecoder.Decode(data, tw, th);
            }
            var (w, h) = Target(fw, fh);
            var img = full.Width == w && full.Height == h ? full : Resampler.Resize(full, w, h, interpolation);
            return new Entry(img, fw, fh, null, orientation);
        }
        catch (Exception ex) when (ImageDecodeException.IsImageProblem(ex))
        {
            return new Entry(null, 0, 0, ex.Message);
        }
    }

    (int, int) Target(int w, int h) => Math.Min(w, h) <= ShorterSide ? (w, h) : Resampler.ShorterSideSize(w, h, ShorterSide);
}

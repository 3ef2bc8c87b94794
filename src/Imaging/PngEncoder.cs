using System.Buffers.Binary;
using System.IO.Compression;
using MLNetExt.Serialization;

namespace MLNetExt.Imaging;

/// <summary>Writes an <see cref="RgbImage"/> as an 8-bit RGB PNG (filter 0 rows, zlib from the framework). Used for
/// generated datasets and report thumbnails; the decoder (libpng) reads the result back byte for byte.</summary>
internal static class PngEncoder
{
    static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The PNG file bytes of <paramref name="image"/>.</summary>
    public static byte[] Encode(RgbImage image, CompressionLevel level = CompressionLevel.Optimal)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var ms = new MemoryStream();
        ms.Write(Signature);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], image.Height);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 2;  // colour type RGB
        ihdr[10] = ihdr[11] = ihdr[12] = 0; // deflate, adaptive filtering, no interlace
        WriteChunk(ms, "IHDR", ihdr);

        int stride = image.Width * 3;
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, level, leaveOpen: true))
        {
            for (int y = 0; y < image.Height; y++)
            {
                z.WriteByte(0); // filter: none
                z.Write(image.Pixels, y * stride, stride);
            }
        }
        WriteChunk(ms, "IDAT", raw.GetBuffer().AsSpan(0, (int)raw.Length));
        WriteChunk(ms, "IEND", ReadOnlySpan<byte>.Empty);
        return ms.ToArray();
    }

    /// <summary>Encodes and writes to <paramref name="path"/> (through a temporary file, so no partial PNG is left).</summary>
    public static void Save(RgbImage image, string path)
    {
        Serialization.AtomicFile.WriteAllBytes(path, Encode(image));
    }

    static void WriteChunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        for (int i = 0; i < 4; i++) head[4 + i] = (byte)type[i];
        s.Write(head);
        s.Write(data);
        uint crc = Crc32.Append(Crc32.Append(0, head[4..]), data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        s.Write(tail);
    }
}

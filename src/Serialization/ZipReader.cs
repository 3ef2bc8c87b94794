using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace MLNetExt.Serialization;

/// <summary>One member of a zip archive, as its central directory describes it.</summary>
internal sealed class ZipEntry
{
    public required string Name { get; init; }
    public required int Method { get; init; }
    public required uint Crc { get; init; }
    public required long CompressedSize { get; init; }
    public required long Size { get; init; }
    public required long LocalHeaderOffset { get; init; }
    /// <summary>Offset of the entry's bytes in the file; resolved from the local header on first use.</summary>
    public long DataOffset = -1;
}

/// <summary>
/// Reads the zip archives written by <c>torch.save</c> (miniz, entries stored, zip64 when large). Only the
/// central directory is parsed up front; entry bytes are read on demand straight into the caller's memory,
/// so storages are copied exactly once (page cache to tensor). Compressed (deflate) entries are accepted
/// for archives repacked by other tools.
/// </summary>
internal sealed class ZipReader
{
    readonly SafeFileHandle _file;
    readonly Dictionary<string, ZipEntry> _byName = new(StringComparer.Ordinal);

    public string Path { get; }
    public long Length { get; }
    public List<ZipEntry> Entries { get; } = new();

    ZipReader(string path, SafeFileHandle file)
    {
        Path = path;
        _file = file;
        Length = RandomAccess.GetLength(file);
    }

    public static ZipReader Open(string path, SafeFileHandle file)
    {
        var z = new ZipReader(path, file);
        z.ReadCentralDirectory();
        return z;
    }

    CheckpointException Corrupt(string what) => new(Path, $"corrupt zip archive: {what}.");

    public ZipEntry? Find(string name) => _byName.GetValueOrDefault(name);

    void ReadExactly(long offset, Span<byte> into, string what)
    {
        if (offset < 0 || offset + into.Length > Length)
            throw Corrupt($"{what} lies at bytes {offset}..{offset + into.Length} but the file has only {Length} bytes (truncated?)");
        int done = 0;
        while (done < into.Length)
        {
            int n = RandomAccess.Read(_file, into[done..], offset + done);
            if (n <= 0) throw Corrupt($"the file ended while reading {what} at byte {offset + done}");
            done += n;
        }
    }

    void ReadCentralDirectory()
    {
        const int EocdSize = 22;
        if (Length < EocdSize)
            throw new CheckpointException(Path, $"the file has only {Length} bytes, too short for a zip archive (truncated?).");

        // The end-of-central-directory record sits in the last 22 + up to 65535 (comment) bytes.
        int tailLen = (int)Math.Min(Length, EocdSize + 65535);
        var tail = new byte[tailLen];
        ReadExactly(Length - tailLen, tail, "the archive tail");
        int eocd = -1;
        for (int i = tailLen - EocdSize; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == 0x06054b50 &&
                i + EocdSize + BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(i + 20)) == tailLen)
            {
                eocd = i;
                break;
            }
        }
        if (eocd < 0)
            throw new CheckpointException(Path, $"expected a zip end-of-central-directory record at the end of the file but found none " +
                $"among the last {tailLen} bytes: the file is truncated or is not a zip archive ({Length} bytes).");

        var e = tail.AsSpan(eocd);
        long eocdPos = Length - tailLen + eocd;
        long count = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
        long cdSize = BinaryPrimitives.ReadUInt32LittleEndian(e[12..]);
        long cdOffset = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
        long cdEnd = eocdPos;

        if (count == 0xFFFF || cdSize == 0xFFFFFFFF || cdOffset == 0xFFFFFFFF)
        {
            // zip64: a 20-byte locator precedes the EOCD and points at the zip64 EOCD record.
            if (eocdPos < 20) throw Corrupt("zip64 locator missing");
            Span<byte> loc = stackalloc byte[20];
            ReadExactly(eocdPos - 20, loc, "the zip64 locator");
            if (BinaryPrimitives.ReadUInt32LittleEndian(loc) != 0x07064b50) throw Corrupt("zip64 locator signature not found before the end record");
            long z64 = (long)BinaryPrimitives.ReadUInt64LittleEndian(loc[8..]);
            Span<byte> rec = stackalloc byte[56];
            ReadExactly(z64, rec, "the zip64 end record");
            if (BinaryPrimitives.ReadUInt32LittleEndian(rec) != 0x06064b50) throw Corrupt($"zip64 end record signature not found at byte {z64}");
            count = (long)BinaryPrimitives.ReadUInt64LittleEndian(rec[32..]);
            cdSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(rec[40..]);
            cdOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(rec[48..]);
            cdEnd = z64;
        }
        if (cdOffset < 0 || cdSize < 0 || cdOffset + cdSize > cdEnd || count < 0 || count > cdSize / 46)
            throw Corrupt($"the central directory (offset {cdOffset}, {cdSize} bytes, {count} entries) does not fit before byte {cdEnd}");

        var cd = new byte[cdSize];
        ReadExactly(cdOffset, cd, "the central directory");
        int p = 0;
        for (long i = 0; i < count; i++)
        {
            if (p + 46 > cd.Length || BinaryPrimitives.ReadUInt32LittleEndian(cd.AsSpan(p)) != 0x02014b50)
                throw Corrupt($"central directory entry {i} of {count}: signature not found at byte {cdOffset + p}");
            var h = cd.AsSpan(p);
            int flags = BinaryPrimitives.ReadUInt16LittleEndian(h[8..]);
            int method = BinaryPrimitives.ReadUInt16LittleEndian(h[10..]);
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(h[16..]);
            long comp = BinaryPrimitives.ReadUInt32LittleEndian(h[20..]);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(h[24..]);
            int nameLen = BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
            int extraLen = BinaryPrimitives.ReadUInt16LittleEndian(h[30..]);
            int commentLen = BinaryPrimitives.ReadUInt16LittleEndian(h[32..]);
            long local = BinaryPrimitives.ReadUInt32LittleEndian(h[42..]);
            if (p + 46 + nameLen + extraLen + commentLen > cd.Length)
                throw Corrupt($"central directory entry {i} runs past the directory's end");
            string name = Encoding.UTF8.GetString(h.Slice(46, nameLen));

            // zip64 extra field (id 1) carries, in this order, whichever of the three values overflowed.
            var extra = h.Slice(46 + nameLen, extraLen);
            while (extra.Length >= 4)
            {
                int id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
                int len = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
                if (4 + len > extra.Length) break;
                if (id == 1)
                {
                    var f = extra.Slice(4, len);
                    if (size == 0xFFFFFFFF && f.Length >= 8) { size = (long)BinaryPrimitives.ReadUInt64LittleEndian(f); f = f[8..]; }
                    if (comp == 0xFFFFFFFF && f.Length >= 8) { comp = (long)BinaryPrimitives.ReadUInt64LittleEndian(f); f = f[8..]; }
                    if (local == 0xFFFFFFFF && f.Length >= 8) { local = (long)BinaryPrimitives.ReadUInt64LittleEndian(f); }
                }
                extra = extra[(4 + len)..];
            }
            if ((flags & 1) != 0) throw new CheckpointException(Path, $"zip entry '{name}' is encrypted; checkpoints are never encrypted.");
            if (method != 0 && method != 8)
                throw new CheckpointException(Path, $"zip entry '{name}' uses compression method {method}; expected 0 (stored) or 8 (deflate).");
            if (method == 0 && comp != size) throw Corrupt($"stored entry '{name}' has compressed size {comp} but size {size}");
            if (local < 0 || comp < 0 || size < 0 || local + 30 + comp > cdOffset)
                throw Corrupt($"entry '{name}' ({comp} bytes at byte {local}) does not fit before the central directory at byte {cdOffset}");

            var entry = new ZipEntry { Name = name, Method = method, Crc = crc, CompressedSize = comp, Size = size, LocalHeaderOffset = local };
            Entries.Add(entry);
            _byName.TryAdd(name, entry);
            p += 46 + nameLen + extraLen + commentLen;
        }
    }

    /// <summary>Resolves where the entry's bytes begin (after its local header) and checks they fit.</summary>
    public long DataOffset(ZipEntry e)
    {
        if (e.DataOffset >= 0) return e.DataOffset;
        Span<byte> h = stackalloc byte[30];
        ReadExactly(e.LocalHeaderOffset, h, $"the local header of '{e.Name}'");
        if (BinaryPrimitives.ReadUInt32LittleEndian(h) != 0x04034b50)
            throw Corrupt($"local header of '{e.Name}' not found at byte {e.LocalHeaderOffset}");
        long data = e.LocalHeaderOffset + 30 + BinaryPrimitives.ReadUInt16LittleEndian(h[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(h[28..]);
        if (data + e.CompressedSize > Length)
            throw Corrupt($"entry '{e.Name}' needs bytes {data}..{data + e.CompressedSize} but the file has only {Length} (truncated?)");
        return e.DataOffset = data;
    }

    /// <summary>The largest metadata entry (a pickle, a byte-order note) read whole: a state dict's pickle is a few MB
    /// even for the largest models, so a bigger one is a deflate bomb or not a checkpoint.</summary>
    public const long MaxReadAllBytes = 256L << 20;

    /// <summary>Reads a whole (small) entry into a new array, checking its CRC; sizes are checked before inflating.</summary>
    public byte[] ReadAll(ZipEntry e)
    {
        if (e.Size > MaxReadAllBytes)
            throw Corrupt($"entry '{e.Name}' declares {e.Size:N0} bytes, more than the {MaxReadAllBytes:N0} a checkpoint's metadata entry may have " +
                $"(compressed {e.CompressedSize:N0} bytes{(e.CompressedSize > 0 ? $", ratio {e.Size / Math.Max(1, e.CompressedSize):N0}:1" : "")})");
        var buf = new byte[e.Size];
        unsafe
        {
            fixed (byte* p = buf) Read(e, p, verifyCrc: true);
        }
        return buf;
    }

    /// <summary>Reads the entry's <see cref="ZipEntry.Size"/> bytes into <paramref name="dest"/>; with
    /// <paramref name="verifyCrc"/> the CRC-32 the directory records is checked (0 means "not recorded").</summary>
    public unsafe void Read(ZipEntry e, byte* dest, bool verifyCrc)
    {
        long offset = DataOffset(e);
        if (e.Method == 0)
        {
            long done = 0;
            while (done < e.Size)
            {
                int chunk = (int)Math.Min(e.Size - done, 1 << 30);
                int n = RandomAccess.Read(_file, new Span<byte>(dest + done, chunk), offset + done);
                if (n <= 0) throw Corrupt($"the file ended inside entry '{e.Name}'");
                done += n;
            }
        }
        else
        {
            using var raw = new FileStream(new SafeFileHandle(_file.DangerousGetHandle(), ownsHandle: false), FileAccess.Read, 1 << 16);
            raw.Position = offset;
            using var inflate = new DeflateStream(new BoundedStream(raw, e.CompressedSize), CompressionMode.Decompress);
            long done = 0;
            try
            {
                while (done < e.Size)
                {
                    int n = inflate.Read(new Span<byte>(dest + done, (int)Math.Min(e.Size - done, 1 << 30)));
                    if (n <= 0) break;
                    done += n;
                }
            }
            catch (InvalidDataException ex)
            {
                throw Corrupt($"entry '{e.Name}' does not inflate: {ex.Message}");
            }
            if (done != e.Size) throw Corrupt($"entry '{e.Name}' inflates to {done} bytes but the directory says {e.Size}");
        }
        if (verifyCrc && e.Crc != 0)
        {
            uint crc = Crc32.Append(0, dest, e.Size);
            if (crc != e.Crc)
                throw Corrupt($"entry '{e.Name}' has CRC-32 {crc:x8} but the directory records {e.Crc:x8}: its bytes are damaged");
        }
    }

    /// <summary>A read-only window of <c>length</c> bytes from the stream's current position.</summary>
    sealed class BoundedStream(Stream inner, long length) : Stream
    {
        long _left = length;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            _left -= n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

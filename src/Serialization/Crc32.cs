using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace MLNetExt.Serialization;

/// <summary>The zip CRC-32 (reflected polynomial 0xEDB88320). Checkpoints are hundreds of megabytes, so the
/// x86 path folds 64 bytes per step with carry-less multiplication; elsewhere a slice-by-8 table is used.</summary>
internal static class Crc32
{
    static readonly uint[] s_table = BuildTable();

    static uint[] BuildTable()
    {
        var t = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        for (int i = 0; i < 256; i++)
            for (int s = 1; s < 8; s++)
                t[s * 256 + i] = (t[(s - 1) * 256 + i] >> 8) ^ t[t[(s - 1) * 256 + i] & 0xFF];
        return t;
    }

    /// <summary>Continues <paramref name="crc"/> (0 for a fresh computation) over <paramref name="data"/>.</summary>
    public static unsafe uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        fixed (byte* p0 = data)
        {
            byte* p = p0;
            long n = data.Length;
            if (n >= 128 && Pclmulqdq.IsSupported && Sse2.IsSupported)
            {
                long bulk = n & ~15L;
                c = Fold(c, p, bulk);
                p += bulk;
                n -= bulk;
            }
            c = Table(c, p, n);
        }
        return ~c;
    }

    /// <summary>CRC of native memory of any length.</summary>
    public static unsafe uint Append(uint crc, byte* data, long length)
    {
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, 1 << 30);
            crc = Append(crc, new ReadOnlySpan<byte>(data, chunk));
            data += chunk;
            length -= chunk;
        }
        return crc;
    }

    static unsafe uint Table(uint c, byte* p, long n)
    {
        var t = s_table;
        while (n >= 8)
        {
            uint lo = Unsafe.ReadUnaligned<uint>(p) ^ c;
            uint hi = Unsafe.ReadUnaligned<uint>(p + 4);
            c = t[7 * 256 + (lo & 0xFF)] ^ t[6 * 256 + ((lo >> 8) & 0xFF)] ^ t[5 * 256 + ((lo >> 16) & 0xFF)] ^ t[4 * 256 + (lo >> 24)]
              ^ t[3 * 256 + (hi & 0xFF)] ^ t[2 * 256 + ((hi >> 8) & 0xFF)] ^ t[1 * 256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
            p += 8;
            n -= 8;
        }
        while (n-- > 0) c = t[(c ^ *p++) & 0xFF] ^ (c >> 8);
        return c;
    }

    // Folding constants for the reflected CRC-32 polynomial: x^(4*128±32) mod P, x^(128±32) mod P, x^64 mod P,
    // and the Barrett pair (P, floor(x^64 / P)), each bit-reflected.
    const ulong K1 = 0x154442bd4, K2 = 0x1c6e41596, K3 = 0x1751997d0, K4 = 0x0ccaa009e, K5 = 0x163cd6124;
    const ulong Poly = 0x1db710641, Mu = 0x1f7011641;

    /// <summary>Folds <paramref name="n"/> bytes (a multiple of 16, at least 64) into the raw register.</summary>
    static unsafe uint Fold(uint c, byte* p, long n)
    {
        var x1 = Sse2.LoadVector128((ulong*)p);
        var x2 = Sse2.LoadVector128((ulong*)(p + 16));
        var x3 = Sse2.LoadVector128((ulong*)(p + 32));
        var x4 = Sse2.LoadVector128((ulong*)(p + 48));
        x1 = Sse2.Xor(x1, Vector128.CreateScalar((ulong)c));
        p += 64;
        n -= 64;

        var k12 = Vector128.Create(K1, K2);
        while (n >= 64)
        {
            x1 = Step(x1, k12, Sse2.LoadVector128((ulong*)p));
            x2 = Step(x2, k12, Sse2.LoadVector128((ulong*)(p + 16)));
            x3 = Step(x3, k12, Sse2.LoadVector128((ulong*)(p + 32)));
            x4 = Step(x4, k12, Sse2.LoadVector128((ulong*)(p + 48)));
            p += 64;
            n -= 64;
        }

        var k34 = Vector128.Create(K3, K4);
        x1 = Step(x1, k34, x2);
        x1 = Step(x1, k34, x3);
        x1 = Step(x1, k34, x4);
        while (n >= 16)
        {
            x1 = Step(x1, k34, Sse2.LoadVector128((ulong*)p));
            p += 16;
            n -= 16;
        }

        // 128 -> 64 bits (appending 32 zero bits), then 64 -> 32 by Barrett reduction.
        var mask32 = Vector128.Create(0xFFFFFFFFUL, 0UL);
        var t = Pclmulqdq.CarrylessMultiply(k34, x1, 0x01);
        x1 = Sse2.Xor(Sse2.ShiftRightLogical128BitLane(x1, 8), t);
        t = Pclmulqdq.CarrylessMultiply(Sse2.And(x1, mask32), Vector128.CreateScalar(K5), 0x00);
        x1 = Sse2.Xor(Sse2.ShiftRightLogical128BitLane(x1, 4), t);
        var pm = Vector128.Create(Poly, Mu);
        t = Pclmulqdq.CarrylessMultiply(Sse2.And(x1, mask32), pm, 0x10);
        t = Pclmulqdq.CarrylessMultiply(Sse2.And(t, mask32), pm, 0x00);
        x1 = Sse2.Xor(x1, t);
        return x1.AsUInt32().GetElement(1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<ulong> Step(Vector128<ulong> x, Vector128<ulong> k, Vector128<ulong> data) =>
        Sse2.Xor(Sse2.Xor(Pclmulqdq.CarrylessMultiply(x, k, 0x00), Pclmulqdq.CarrylessMultiply(x, k, 0x11)), data);
}

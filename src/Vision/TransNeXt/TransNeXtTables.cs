using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.TransNeXt;

/// <summary>
/// The resolution-dependent tables of TransNeXt, computed once for the build resolution (never stored in a
/// checkpoint): the log-spaced continuous position-bias coordinates and gather index of each stage, and the
/// sliding-window padding mask and per-pixel length scale of each aggregated-attention block.
/// </summary>
internal static class TransNeXtTables
{
    /// <summary>
    /// log-CPB table of one stage: query grid <paramref name="queryH"/>×<paramref name="queryW"/> (integer
    /// coordinates), key grid <paramref name="keyH"/>×<paramref name="keyW"/> whose coordinates are the centres of
    /// adaptive-average-pool bins of the query axes, offsets normalised by the pretraining grid (P − 1) and scaled by
    /// 8, then sign·log2(1 + |Δ|)/log2(8). Returns the gather index (int64, N·Np, row-major over (query, key)) into
    /// the table of unique (Δrow, Δcol) pairs (float32, T×2, sorted lexicographically as torch.unique sorts them).
    /// </summary>
    public static (Tensor Index, Tensor Coords) RelativePositionCpb(int queryH, int queryW, int keyH, int keyW, int pretrainH, int pretrainW)
    {
        var (uh, ih) = AxisOffsets(queryH, keyH, pretrainH);
        var (uw, iw) = AxisOffsets(queryW, keyW, pretrainW);
        // Every (Δrow, Δcol) combination occurs (query rows/cols and key rows/cols vary independently), so the unique
        // rows of the stacked pairs are the Cartesian product of the unique values of each axis, in lexicographic order.
        int th = uh.Length, tw = uw.Length;
        var table = new float[th * tw * 2];
        for (int a = 0; a < th; a++)
            for (int b = 0; b < tw; b++)
            {
                table[(a * tw + b) * 2] = uh[a];
                table[(a * tw + b) * 2 + 1] = uw[b];
            }
        long n = (long)queryH * queryW, np = (long)keyH * keyW;
        var index = new long[n * np];
        for (int qr = 0; qr < queryH; qr++)
            for (int qc = 0; qc < queryW; qc++)
            {
                long row = ((long)qr * queryW + qc) * np;
                for (int kr = 0; kr < keyH; kr++)
                    for (int kc = 0; kc < keyW; kc++)
                        index[row + kr * keyW + kc] = (long)ih[qr * keyH + kr] * tw + iw[qc * keyW + kc];
            }
        using var raw = Tensor.From(table, th * tw, 2);
        // sign(t) * log2(|t| + 1) / log2(8), in float32 as the official code computes it
        using var sign = raw.Sign();
        using var abs = raw.Abs();
        using var plus = abs.Add(1.0);
        using var log = plus.Log2();
        using var num = sign * log;
        using var eight = Tensor.Scalar(8.0);
        using var log8 = eight.Log2();
        var coords = num / log8;
        var idx = Tensor.From(index, n * np);
        return (idx, coords);
    }

    /// <summary>Offsets along one axis, computed with float32 tensor ops in the official order
    /// ((q − k) / (P − 1) · 8); returns their sorted unique values and the rank of each (query, key) pair's offset.</summary>
    static (float[] Unique, int[] Rank) AxisOffsets(int queryLen, int keyLen, int pretrainLen)
    {
        using var axisQ = Tensor.Arange(0, queryLen, 1, DType.Float32);
        using var q4 = axisQ.View(1, 1, 1, queryLen);
        using var pooled = F.AdaptiveAvgPool2d(q4, 1, keyLen);
        using var axisK = pooled.View(keyLen);
        using var qcol = axisQ.View(queryLen, 1);
        using var krow = axisK.View(1, keyLen);
        using var diff = qcol - krow;
        using var scaled = diff.Div((double)(pretrainLen - 1));
        using var rel = scaled.Mul(8.0);
        using var contiguous = rel.Contiguous();
        var offsets = contiguous.ToArray<float>();
        var unique = offsets.Distinct().OrderBy(v => v).ToArray();
        // -0 and +0 compare equal; Distinct on floats treats them as equal too (Equals(-0f, 0f) is true).
        var rank = new Dictionary<float, int>();
        for (int i = 0; i < unique.Length; i++) rank[unique[i]] = i;
        var ranks = offsets.Select(v => rank[v]).ToArray();
        return (unique, ranks);
    }

    /// <summary>Sliding-window padding mask (N × k², true where window position j = a·k + b of pixel n lies outside
    /// the grid, zero padding k/2) and the length scale log(valid window keys + pooled keys) (N × 1, float32).</summary>
    public static (Tensor PaddingMask, Tensor SeqLengthScale) SeqLengthAndMask(int height, int width, int window, int poolLength)
    {
        int half = window / 2, l = window * window;
        long n = (long)height * width;
        var mask = new bool[n * l];
        var scale = new float[n];
        for (int r = 0; r < height; r++)
            for (int c = 0; c < width; c++)
            {
                long p = (long)r * width + c;
                int valid = 0;
                for (int a = 0; a < window; a++)
                    for (int b = 0; b < window; b++)
                    {
                        int rr = r + a - half, cc = c + b - half;
                        bool inside = rr >= 0 && rr < height && cc >= 0 && cc < width;
                        mask[p * l + a * window + b] = !inside;
                        if (inside) valid++;
                    }
                // numpy's log of float32 (valid + pool_len): the correctly rounded float32 value
                scale[p] = (float)Math.Log((float)valid + poolLength);
            }
        var maskBytes = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) maskBytes[i] = mask[i] ? (byte)1 : (byte)0;
        var maskTensor = Tensor.FromBytes(maskBytes, DType.Bool, new[] { n, (long)l });
        var scaleTensor = Tensor.From(scale, n, 1);
        return (maskTensor, scaleTensor);
    }
}

using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Distributed;

/// <summary>
/// Data-parallel training over a <see cref="ProcessGroup"/>: every rank holds the same model, takes its shard of each
/// global batch, and before each optimizer step the gradients are averaged over the ranks, weighted by how many samples
/// each rank had, so the step equals a single process's step on the whole global batch (the mean loss's gradient).
/// Collectives work on flat buckets of about <see cref="BucketBytes"/> (one all-reduce per bucket instead of one per
/// parameter). BatchNorm statistics stay per process (as PyTorch's DistributedDataParallel) unless
/// <see cref="SynchronizeBatchNorm"/> makes them span every process's batch (as its SyncBatchNorm).
/// </summary>
public static class DataParallel
{
    /// <summary>Bytes of gradients all-reduced in one call (PyTorch's DDP uses 25 MB buckets).</summary>
    public const long BucketBytes = 25L << 20;

    /// <summary>Copies rank 0's parameters and buffers (BatchNorm statistics included) into every rank's model, so all
    /// start from the same weights; with <paramref name="buffersOnly"/> only the buffers (so every rank evaluates rank
    /// 0's model after training with per-process BatchNorm statistics).</summary>
    public static void BroadcastState(Module module, ProcessGroup group, bool buffersOnly = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(group);
        using var scope = TensorScope.Begin();
        using var noGrad = Autograd.NoGrad();
        var buffers = module.NamedBuffers().Select(b => b.Buffer);
        var tensors = (buffersOnly ? buffers : module.Parameters().Cast<Tensor>().Concat(buffers)).ToList();
        foreach (var bucket in Buckets(tensors))
        {
            // Gloo has no bool: masks travel as bytes
            using var flat = Flatten(bucket, t => t.DType == DType.Bool ? t.To(DType.UInt8) : t);
            group.Broadcast(flat, root: 0);
            Unflatten(flat, bucket, (t, part) => t.Copy_(part));
        }
    }

    /// <summary>Averages the gradients of <paramref name="parameters"/> over the ranks, weighted by each rank's sample
    /// count <paramref name="localSamples"/> (its share of the global batch; 0 when it had none), in place. A parameter
    /// without a gradient on this rank takes part as zeros (ranks must agree on what they send). Returns the global
    /// batch size (the samples of all ranks).</summary>
    public static long AverageGradients(IEnumerable<Parameter> parameters, int localSamples, ProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(group);
        using var scope = TensorScope.Begin();
        using var noGrad = Autograd.NoGrad();
        var (total, share) = GlobalBatch(localSamples, group);
        var ps = parameters.Where(p => p.RequiresGrad).ToList();
        foreach (var p in ps)
            if (p.Grad is null) p.Grad = p.ZerosLike();
        if (total == 0) return 0;
        foreach (var bucket in Buckets(ps.Cast<Tensor>().ToList()))
        {
            using var flat = Flatten(bucket, t => ((Parameter)t).Grad!.Mul(share));
            group.AllReduceSum(flat);
            Unflatten(flat, bucket, (t, part) => ((Parameter)t).Grad!.Copy_(part));
        }
        return total;
    }

    /// <summary>The global batch size (every rank's <paramref name="localSamples"/> summed, one small all-reduce) and this
    /// rank's share of it, by which its mean-loss gradient is weighted (0 when the global batch is empty).</summary>
    internal static (long Total, double Share) GlobalBatch(int localSamples, ProcessGroup group)
    {
        if (localSamples < 0) throw new ArgumentOutOfRangeException(nameof(localSamples), localSamples, "A sample count cannot be negative.");
        using var count = Tensor.FromArray<double>([localSamples], [1]);
        group.AllReduceSum(count);
        long total = (long)count.ToArray<double>()[0];
        return (total, total == 0 ? 0 : (double)localSamples / total);
    }

    /// <summary>Synchronised BatchNorm (PyTorch's <c>SyncBatchNorm.convert_sync_batchnorm</c>): every BatchNorm2d of
    /// <paramref name="module"/> then normalises, while training, with the mean and variance of the whole global batch
    /// (all ranks' shards; one all-reduce forward and one backward per layer), and its running statistics are the same
    /// on every rank. With equal shards a step then equals one process's step on the whole batch even for BatchNorm
    /// models; an epoch's last batch, when it does not divide by the world size, has unequal shards and weighs the
    /// ranks' losses as PyTorch does (slightly differently from one process). Evaluation is unchanged (running
    /// statistics). A null <paramref name="group"/> (or a world of one) restores per-process statistics. Returns the
    /// number of BatchNorm layers.</summary>
    public static int SynchronizeBatchNorm(Module module, ProcessGroup? group)
    {
        ArgumentNullException.ThrowIfNull(module);
        var sync = group is { WorldSize: > 1 } g ? new BatchNormSync(g.Rank, g.WorldSize, g.AllReduceSumDifferentiable) : null;
        int count = 0;
        foreach (var bn in module.NamedModules().Select(m => m.Module).OfType<BatchNorm2d>())
        {
            bn.Sync = sync;
            count++;
        }
        return count;
    }

    /// <summary>The items rank <paramref name="rank"/> of <paramref name="worldSize"/> trains on, in order, from an
    /// epoch's <paramref name="order"/> of the whole set cut into global batches of <paramref name="globalBatch"/>:
    /// each global batch is split into contiguous shards of globalBatch / worldSize (the last, shorter batch as evenly
    /// as possible, the first ranks taking one more). Every item goes to exactly one rank, and step k of every rank
    /// together is global batch k — the same batches as one process with the whole global batch.</summary>
    public static IReadOnlyList<int> Shard(IReadOnlyList<int> order, int globalBatch, int rank, int worldSize)
    {
        ArgumentNullException.ThrowIfNull(order);
        if (worldSize < 1 || rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must be in [0, {worldSize - 1}].");
        if (globalBatch < worldSize || globalBatch % worldSize != 0)
            throw new ArgumentException($"The global batch ({globalBatch}) must be a multiple of the world size ({worldSize}), so every rank takes the same share.", nameof(globalBatch));
        var mine = new List<int>(order.Count / worldSize + 1);
        for (int start = 0; start < order.Count; start += globalBatch)
        {
            int n = Math.Min(globalBatch, order.Count - start);
            var (from, count) = ShardOf(n, rank, worldSize);
            for (int i = 0; i < count; i++) mine.Add(order[start + from + i]);
        }
        return mine;
    }

    /// <summary>Where rank r's part of a batch of n items starts and how long it is (the first n % world ranks take one more).</summary>
    internal static (int From, int Count) ShardOf(int n, int rank, int worldSize)
    {
        int q = n / worldSize, r = n % worldSize;
        return (rank * q + Math.Min(rank, r), q + (rank < r ? 1 : 0));
    }

    /// <summary>Consecutive groups of same-dtype tensors of about <see cref="BucketBytes"/> each.</summary>
    static IEnumerable<List<Tensor>> Buckets(List<Tensor> tensors)
    {
        foreach (var byType in tensors.GroupBy(t => t.DType))
        {
            var bucket = new List<Tensor>();
            long bytes = 0;
            foreach (var t in byType)
            {
                bucket.Add(t);
                bytes += t.NumEl * t.DType.ElementSize();
                if (bytes >= BucketBytes)
                {
                    yield return bucket;
                    (bucket, bytes) = (new List<Tensor>(), 0);
                }
            }
            if (bucket.Count > 0) yield return bucket;
        }
    }

    static Tensor Flatten(List<Tensor> bucket, Func<Tensor, Tensor> value) =>
        Tensor.Cat(bucket.Select(t => value(t).Reshape(-1)).ToArray());

    static void Unflatten(Tensor flat, List<Tensor> bucket, Action<Tensor, Tensor> write)
    {
        long offset = 0;
        foreach (var t in bucket)
        {
            write(t, flat.Narrow(0, offset, t.NumEl).View(t.Shape));
            offset += t.NumEl;
        }
    }
}

using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Data;

/// <summary>Settings of a <see cref="DataLoader"/>.</summary>
internal sealed record LoaderOptions
{
    public int BatchSize { get; init; } = 32;
    public bool Shuffle { get; init; } = true;
    public ulong Seed { get; init; }
    /// <summary>Decode + augment threads (≥ 1).</summary>
    public int Workers { get; init; } = Math.Max(1, Environment.ProcessorCount);
    /// <summary>How many batches may be prepared ahead of the consumer (≥ 1).</summary>
    public int Prefetch { get; init; } = 2;
    public bool DropLast { get; init; }
    /// <summary>A last batch with fewer images than this (on some rank, when sharded) is left out of the epoch. Training
    /// sets 2 for a model with BatchNorm: BatchNorm cannot take a batch statistic of one value (PyTorch refuses it; the running variance would
    /// become NaN), and a shuffled order drops another image each epoch.</summary>
    public int MinLastBatch { get; init; } = 1;
    /// <summary>Batch-level Mixup/CutMix; batches then carry soft <see cref="Batch.Targets"/>.</summary>
    public MixupCutmix? Mixup { get; init; }
    /// <summary>Cache of decoded, reduced images (for small datasets).</summary>
    public DecodedImageCache? Cache { get; init; }
    /// <summary>Data-parallel training: this process's rank and the world size. Each epoch's order is cut into global
    /// batches of <see cref="BatchSize"/> × world size and this rank takes its contiguous shard of each
    /// (<see cref="Distributed.DataParallel.Shard"/>), so step k of all ranks is global batch k of a single process. A last
    /// global batch with fewer images than ranks is left out, so every rank has the same number of batches.</summary>
    public (int Rank, int WorldSize)? Shard { get; init; }
}

/// <summary>One batch: images float32 [N, 3, H, W], labels int64 [N] and, with Mixup/CutMix, soft targets float32
/// [N, classes]. N can be smaller than the batch size when samples were skipped. Dispose to free the tensors.</summary>
internal sealed class Batch : IDisposable
{
    public required Tensor Images { get; init; }
    public required Tensor Labels { get; init; }
    public Tensor? Targets { get; init; }
    /// <summary>Dataset indices of the samples, in batch order.</summary>
    public required int[] Indices { get; init; }
    public required int[] LabelValues { get; init; }
    public int Count => Indices.Length;

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
        Targets?.Dispose();
    }
}

/// <summary>Parallel decode + augment with bounded prefetch. Every random choice comes from
/// <c>Rng.For(seed, epoch, index)</c> (batch mixing from <c>(seed, epoch, -1 - batch)</c>), so batches are identical
/// for any number of workers. Undecodable samples are dropped from their batch and listed in <see cref="Skipped"/>.</summary>
internal sealed class DataLoader
{
    public ImageDataset Dataset { get; }
    public ImagePipeline Pipeline { get; }
    public LoaderOptions Options { get; }
    readonly Dictionary<string, DatasetIssue> skipped = new();
    readonly HashSet<string> rotated = new(StringComparer.Ordinal);

    public DataLoader(ImageDataset dataset, ImagePipeline pipeline, LoaderOptions? options = null)
    {
        Dataset = dataset;
        Pipeline = pipeline;
        Options = options ?? new LoaderOptions();
        if (Options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.BatchSize, "batch size must be ≥ 1");
        if (Torch.TorchRuntime.ThreadCountProblem(Options.Workers, "The loader's worker count") is { } problem)
            throw new ArgumentOutOfRangeException(nameof(options), Options.Workers, problem);
        if (Options.Prefetch < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.Prefetch, "prefetch must be ≥ 1");
        if (dataset.Count == 0) throw new DatasetException($"Dataset '{dataset.Source}' is empty.");
    }

    public int BatchesPerEpoch
    {
        get
        {
            int n = ShardedCount, batch = Options.BatchSize * (Options.Shard?.WorldSize ?? 1);
            return Options.DropLast ? n / batch : (n + batch - 1) / batch;
        }
    }

    /// <summary>The images an epoch uses across all ranks: all of them, less a last (global) batch that would give some
    /// rank fewer than <see cref="LoaderOptions.MinLastBatch"/> images (fewer than one: none) — left out on every rank,
    /// so all ranks run the same number of batches.</summary>
    int ShardedCount
    {
        get
        {
            int world = Options.Shard?.WorldSize ?? 1;
            int rest = Dataset.Count % (Options.BatchSize * world);
            return rest > 0 && rest < world * Options.MinLastBatch ? Dataset.Count - rest : Dataset.Count;
        }
    }

    /// <summary>Samples skipped so far (undecodable), one entry per file.</summary>
    public IReadOnlyList<DatasetIssue> Skipped
    {
        get { lock (skipped) return skipped.Values.OrderBy(s => s.Path, StringComparer.Ordinal).ToList(); }
    }

    /// <summary>Files read so far that are stored rotated (an EXIF orientation, applied by the decode), in path order:
    /// ML.NET's own LoadImages reads such files as stored, so the trainer names them.</summary>
    public IReadOnlyList<string> Rotated
    {
        get { lock (rotated) return rotated.Order(StringComparer.Ordinal).ToList(); }
    }

    /// <summary>The sample order of an epoch (this rank's part of it when sharded).</summary>
    public int[] Order(int epoch)
    {
        var order = Enumerable.Range(0, Dataset.Count).ToArray();
        if (Options.Shuffle) Rng.For(Options.Seed, epoch, -7).Shuffle(order);
        if (Options.Shard is not { } shard) return ShardedCount < order.Length ? order[..ShardedCount] : order;
        return Distributed.DataParallel.Shard(order[..ShardedCount], Options.BatchSize * shard.WorldSize, shard.Rank, shard.WorldSize).ToArray();
    }

    // Batch buffers are large (megabytes): reuse them instead of churning the large-object heap.
    readonly System.Collections.Concurrent.ConcurrentBag<float[]> buffers = new();

    float[] RentBuffer(int length)
    {
        while (buffers.TryTake(out var b)) if (b.Length == length) return b;
        return new float[length];
    }

    sealed class BatchWork(int size, float[] data)
    {
        public readonly float[] Data = data;
        public readonly bool[] Ok = new bool[size];
        public int Remaining = size;
    }

    /// <summary>Processes one sample (decode or cache, pipeline) into <paramref name="dst"/>; false when undecodable.</summary>
    bool ProcessSample(int index, int epoch, Span<float> dst)
    {
        var item = Dataset.Items[index];
        var rng = Rng.For(Options.Seed, epoch, index);
        string name = item.Source;
        try
        {
            int orientation = 1;
            if (Options.Cache != null)
            {
                var e = Options.Cache.Get(item);
                if (e.Image == null) throw new ImageDecodeException(e.Error!);
                Pipeline.Process(e.Image, rng, dst, e.FullWidth, e.FullHeight);
                orientation = e.Orientation;
            }
            else if (item.Image != null) Pipeline.Process(item.Image, rng, dst);
            else orientation = Pipeline.Process(item.ReadBytes(), rng, dst);
            if (orientation != 1) lock (rotated) rotated.Add(name);
            return true;
        }
        catch (Exception ex) when (ImageDecodeException.IsImageProblem(ex))
        {
            lock (skipped) skipped.TryAdd(name, new DatasetIssue(name, ex.Message));
            return false;
        }
    }

    /// <summary>The batches of one epoch, produced by <see cref="LoaderOptions.Workers"/> threads at most
    /// <see cref="LoaderOptions.Prefetch"/> batches ahead of the consumer. <paramref name="startBatch"/> skips the first
    /// batches without preparing them (resuming inside an epoch gives the same remaining batches).</summary>
    public IEnumerable<Batch> GetEpoch(int epoch, int startBatch = 0)
    {
        if (startBatch < 0 || startBatch > BatchesPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(startBatch), startBatch, $"The first batch must lie in 0..{BatchesPerEpoch}.");
        var order = Order(epoch);
        int bs = Options.BatchSize, nBatches = BatchesPerEpoch, total = Math.Min(order.Length, nBatches * bs);
        int len = Pipeline.SampleLength;
        var work = new BatchWork?[nBatches];
        var gate = new object();
        int next = startBatch * bs, consumed = startBatch;
        bool stop = false;
        Exception? failure = null;

        BatchWork Work(int b)
        {
            lock (gate)
            {
                if (work[b] == null)
                {
                    int size = Math.Min(bs, total - b * bs);
                    work[b] = new BatchWork(size, RentBuffer(size * len));
                }
                return work[b]!;
            }
        }

        void Worker()
        {
            try
            {
                while (true)
                {
                    int pos;
                    lock (gate)
                    {
                        while (!stop && next < total && next / bs >= consumed + Options.Prefetch) Monitor.Wait(gate);
                        if (stop || next >= total) return;
                        pos = next++;
                    }
                    int b = pos / bs, slot = pos % bs;
                    var w = Work(b);
                    w.Ok[slot] = ProcessSample(order[pos], epoch, w.Data.AsSpan(slot * len, len));
                    lock (gate)
                    {
                        if (--w.Remaining == 0) Monitor.PulseAll(gate);
                    }
                }
            }
            catch (Exception ex)
            {
                lock (gate) { failure ??= ex; stop = true; Monitor.PulseAll(gate); }
            }
        }

        var threads = Enumerable.Range(0, Math.Min(Options.Workers, Math.Max(1, total - next)))
            .Select(i => new Thread(Worker) { IsBackground = true, Name = $"mlnetext-loader-{i}" }).ToList();
        threads.ForEach(t => t.Start());
        try
        {
            for (int b = startBatch; b < nBatches; b++)
            {
                BatchWork w;
                lock (gate)
                {
                    while (failure == null && (work[b] == null || work[b]!.Remaining > 0)) Monitor.Wait(gate);
                    if (failure != null) throw new InvalidOperationException($"Data loader worker failed: {failure.Message}", failure);
                    w = work[b]!;
                    work[b] = null;
                }
                var batch = Assemble(w, order, b, epoch);
                lock (gate) { consumed++; Monitor.PulseAll(gate); }
                if (batch != null) yield return batch;
            }
        }
        finally
        {
            lock (gate) { stop = true; Monitor.PulseAll(gate); }
            foreach (var t in threads) t.Join();
        }
    }

    Batch? Assemble(BatchWork w, int[] order, int b, int epoch)
    {
        int bs = Options.BatchSize, len = Pipeline.SampleLength;
        var idx = new List<int>();
        for (int s = 0; s < w.Ok.Length; s++) if (w.Ok[s]) idx.Add(s);
        if (idx.Count == 0) { buffers.Add(w.Data); return null; }
        int n = idx.Count;
        float[] data = w.Data;
        if (n != w.Ok.Length)
        {
            data = new float[n * len];
            for (int k = 0; k < n; k++) Array.Copy(w.Data, idx[k] * len, data, k * len, len);
        }
        var indices = idx.Select(s => order[b * bs + s]).ToArray();
        var labels = indices.Select(i => Dataset.Items[i].Label).ToArray();
        float[]? targets = null;
        if (Options.Mixup != null)
            targets = Options.Mixup.Apply(data, n, 3, Pipeline.Height, Pipeline.Width, labels, Dataset.Classes.Count, Rng.For(Options.Seed, epoch, -1 - b)).Targets;
        var images = Tensor.FromArray<float>(data, [n, 3, Pipeline.Height, Pipeline.Width]); // copies
        buffers.Add(w.Data);
        return new Batch
        {
            Images = images,
            Labels = Tensor.FromArray<long>(labels.Select(l => (long)l).ToArray(), [n]),
            Targets = targets == null ? null : Tensor.FromArray<float>(targets, [n, Dataset.Classes.Count]),
            Indices = indices,
            LabelValues = labels,
        };
    }

    /// <summary>Processes one sample without batching (for inspection and tests): float32 CHW, or null when undecodable.</summary>
    public float[]? Sample(int index, int epoch = 0)
    {
        var dst = new float[Pipeline.SampleLength];
        return ProcessSample(index, epoch, dst) ? dst : null;
    }
}

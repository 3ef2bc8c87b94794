using MLNetExt.Torch;

namespace MLNetExt.Nn;

/// <summary><c>nn.LayerNorm</c> over the trailing <c>normalized_shape</c> dimensions.</summary>
public sealed class LayerNorm : Module<Tensor, Tensor>
{
    readonly long[] _shape;

    /// <summary>Epsilon added to the variance.</summary>
    public double Eps { get; }

    /// <summary>Scale (ones), or null without affine.</summary>
    public Parameter? Weight { get; }

    /// <summary>Shift (zeros), or null without affine.</summary>
    public Parameter? Bias { get; }

    /// <summary>Normalises over the last dimension of size <paramref name="normalizedShape"/>.</summary>
    public LayerNorm(long normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, Device? device = null)
        : this(new[] { normalizedShape }, eps, elementwiseAffine, device) { }

    /// <summary>Normalises over the trailing dimensions <paramref name="normalizedShape"/>.</summary>
    public LayerNorm(long[] normalizedShape, double eps = 1e-5, bool elementwiseAffine = true, Device? device = null)
    {
        _shape = normalizedShape;
        Eps = eps;
        if (elementwiseAffine)
        {
            Weight = RegisterParameter("weight", new Parameter(Tensor.Ones(normalizedShape, device: device)));
            Bias = RegisterParameter("bias", new Parameter(Tensor.Zeros(normalizedShape, device: device)));
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.LayerNorm(input, _shape, Weight, Bias, Eps);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"({string.Join(", ", _shape)}), eps={Eps}";
}

/// <summary><c>nn.GroupNorm</c>; one group normalises over (C, H, W) jointly per sample.</summary>
public sealed class GroupNorm : Module<Tensor, Tensor>
{
    /// <summary>Number of groups.</summary>
    public long NumGroups { get; }

    /// <summary>Epsilon added to the variance.</summary>
    public double Eps { get; }

    /// <summary>Per-channel scale (ones), or null.</summary>
    public Parameter? Weight { get; }

    /// <summary>Per-channel shift (zeros), or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>Creates the layer.</summary>
    public GroupNorm(long numGroups, long numChannels, double eps = 1e-5, bool affine = true, Device? device = null)
    {
        if (numGroups < 1 || numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm: num_channels={numChannels} must be divisible by num_groups={numGroups}.", nameof(numGroups));
        NumGroups = numGroups;
        Eps = eps;
        if (affine)
        {
            Weight = RegisterParameter("weight", new Parameter(Tensor.Ones(new[] { numChannels }, device: device)));
            Bias = RegisterParameter("bias", new Parameter(Tensor.Zeros(new[] { numChannels }, device: device)));
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.GroupNorm(input, NumGroups, Weight, Bias, Eps);
}

/// <summary><c>nn.BatchNorm2d</c> with running statistics (<c>running_mean</c>, <c>running_var</c>,
/// <c>num_batches_tracked</c>); batch statistics in training, running ones in eval. In data-parallel training the batch
/// statistics can span every process's batch (<c>nn.SyncBatchNorm</c>; see <c>DataParallel.SynchronizeBatchNorm</c>).</summary>
public sealed class BatchNorm2d : Module<Tensor, Tensor>
{
    /// <summary>Epsilon added to the variance.</summary>
    public double Eps { get; }

    /// <summary>Running-average momentum; null means a cumulative average (1 / batches seen).</summary>
    public double? Momentum { get; }

    /// <summary>Scale (ones).</summary>
    public Parameter? Weight { get; }

    /// <summary>Shift (zeros).</summary>
    public Parameter? Bias { get; }

    /// <summary>Running mean, running variance and the batch counter (int64).</summary>
    public Tensor? RunningMean { get; }

    /// <summary>Running variance.</summary>
    public Tensor? RunningVar { get; }

    /// <summary>Number of training batches seen (int64 scalar).</summary>
    public Tensor? NumBatchesTracked { get; }

    /// <summary>Set for synchronised BatchNorm: training then takes the mean and variance over all processes' batches
    /// (null: this process's batch only).</summary>
    internal BatchNormSync? Sync { get; set; }

    /// <summary>Creates the layer.</summary>
    public BatchNorm2d(long numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true,
                       bool trackRunningStats = true, Device? device = null)
    {
        Eps = eps;
        Momentum = momentum;
        if (affine)
        {
            Weight = RegisterParameter("weight", new Parameter(Tensor.Ones(new[] { numFeatures }, device: device)));
            Bias = RegisterParameter("bias", new Parameter(Tensor.Zeros(new[] { numFeatures }, device: device)));
        }
        if (trackRunningStats)
        {
            RunningMean = RegisterBuffer("running_mean", Tensor.Zeros(new[] { numFeatures }, device: device));
            RunningVar = RegisterBuffer("running_var", Tensor.Ones(new[] { numFeatures }, device: device));
            NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensor.Zeros(Array.Empty<long>(), DType.Int64, device));
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (input.Dim != 4)
            throw new ArgumentException($"BatchNorm2d expects a 4-D (N, C, H, W) input, got shape [{string.Join(", ", input.Shape)}].", nameof(input));
        double factor = Momentum ?? 0;
        if (Training && NumBatchesTracked is not null)
        {
            using (Autograd.NoGrad()) NumBatchesTracked.Add_(1);
            if (Momentum is null) factor = 1.0 / NumBatchesTracked.ToDouble();
        }
        bool useBatchStats = Training || RunningMean is null;
        if (Training && Sync is { } sync) return SynchronizedBatchNorm(input, sync, factor);
        return F.BatchNorm(input, RunningMean, RunningVar, Weight, Bias, useBatchStats, factor, Eps);
    }

    /// <summary>Batch statistics over every process's batch with one collective: each process computes its count, mean
    /// and sum of squared deviations (two passes, as aten's batch_norm), the processes exchange them (an all-gather, as
    /// PyTorch's SyncBatchNorm), and every process combines them in the same order (Chan's parallel formula, exact
    /// without the cancellation of E[x²] − E[x]²). The gradients flow back through the exchange.</summary>
    Tensor SynchronizedBatchNorm(Tensor input, BatchNormSync sync, double factor)
    {
        long channels = input.Size(1);
        var dims = new long[] { 0, 2, 3 };
        var localMean = input.Mean(dims);
        var localM2 = input.Sub(localMean.View(1, channels, 1, 1)).Square().Sum(dims);
        using var localCount = Tensor.Full(new long[] { 1 }, input.NumEl / channels, input.DType);
        var row = Tensor.Cat(new[] { localCount, localMean, localM2 });
        var all = sync.AllGather(row);                                // [world, 1 + 2C]
        var counts = all.Slice(1, 0, 1);
        var means = all.Slice(1, 1, 1 + channels);
        double count = counts.Sum().ToDouble();
        var mean = means.Mul(counts).Sum(0).Div(count);
        var m2 = all.Slice(1, 1 + channels, 1 + 2 * channels).Sum(0).Add(means.Sub(mean).Square().Mul(counts).Sum(0));
        var variance = m2.Div(count);
        var y = input.Sub(mean.View(1, channels, 1, 1)).Mul(variance.Add(Eps).Rsqrt().View(1, channels, 1, 1));
        if (Weight is not null) y = y.Mul(Weight.View(1, channels, 1, 1));
        if (Bias is not null) y = y.Add(Bias.View(1, channels, 1, 1));
        if (RunningMean is not null && RunningVar is not null)
            using (Autograd.NoGrad())
            {
                RunningMean.Lerp_(mean, factor);
                RunningVar.Lerp_(variance.Mul(count / Math.Max(count - 1, 1)), factor);   // unbiased, as aten's
            }
        return y;
    }
}

/// <summary>What synchronised BatchNorm needs from the process group: this process's rank, the world size and a
/// differentiable sum over all processes (its backward sums the gradient over them).</summary>
internal sealed record BatchNormSync(int Rank, int WorldSize, Func<Tensor, Tensor> Sum)
{
    /// <summary>Every process's <paramref name="row"/>, stacked in rank order: each process places its row in a table of
    /// zeros and the table is summed over the processes.</summary>
    public Tensor AllGather(Tensor row)
    {
        var rows = Enumerable.Range(0, WorldSize).Select(r => r == Rank ? row : row.ZerosLike()).ToArray();
        return Sum(Tensor.Stack(rows));
    }
}

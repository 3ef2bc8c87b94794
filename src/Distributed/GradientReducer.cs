using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Distributed;

/// <summary>
/// Averages gradients over the ranks while the backward pass runs, as PyTorch's DistributedDataParallel does: a hook on
/// every parameter writes its gradient into a bucket of about <see cref="DataParallel.BucketBytes"/> as soon as autograd
/// has it, and a full bucket starts its all-reduce (on Gloo's threads) while the backward goes on with earlier layers.
/// The result equals <see cref="DataParallel.AverageGradients"/>: each rank's gradient weighted by its share of the
/// global batch, summed. Per step: <see cref="Prepare"/> before the backward of the step's last micro-batch (earlier
/// micro-batches only accumulate), <see cref="Finish"/> after it. Every rank must make the same calls in the same order.
/// Buckets start strictly in order (Gloo pairs collectives by order), so a parameter the forward does not use holds
/// its bucket and the later ones back until <see cref="Finish"/>, which reduces it as zeros: still correct, less overlap.
/// </summary>
public sealed class GradientReducer : IDisposable
{
    readonly ProcessGroup _group;
    IntPtr _handle;

    /// <summary>Hooks the parameters that require gradients (in their registration order, as the model lists them:
    /// buckets are filled from the last, which the backward reaches first).</summary>
    public unsafe GradientReducer(IEnumerable<Parameter> parameters, ProcessGroup group, long bucketBytes = DataParallel.BucketBytes)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _group = group ?? throw new ArgumentNullException(nameof(group));
        if (bucketBytes < 1) throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "A bucket must hold at least one byte.");
        var ps = parameters.Where(p => p.RequiresGrad).ToList();
        foreach (var p in ps)
            if (p.Device.Type != DeviceType.Cpu)
                throw new ArgumentException($"Gradients are reduced with Gloo, on CPU tensors; a parameter is on {p.Device}.", nameof(parameters));
        Parameters = ps;
        var handles = ps.Select(p => p.Handle).ToArray();
        fixed (IntPtr* h = handles)
            Native.Check(Native.mlnx_dist_reducer_create(group.Handle, h, handles.Length, bucketBytes, out _handle));
        GC.KeepAlive(ps);
    }

    /// <summary>The parameters whose gradients are reduced.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Before the backward of a step's last micro-batch: sums the ranks' sample counts for the step (one small
    /// all-reduce) and arms the hooks to reduce each gradient weighted by this rank's share,
    /// <paramref name="localSamples"/> / global. Returns the global batch size.</summary>
    public long Prepare(int localSamples)
    {
        var (total, share) = DataParallel.GlobalBatch(localSamples, _group);
        Native.Check(Native.mlnx_dist_reducer_arm(Handle, share));
        return total;
    }

    /// <summary>After that backward: reduces the gradients no hook saw (parameters this step did not use), waits for
    /// every bucket and writes the averaged gradients. Returns how many buckets started during the backward (the
    /// overlap).</summary>
    public int Finish()
    {
        Native.Check(Native.mlnx_dist_reducer_finish(Handle, out long started));
        GC.KeepAlive(Parameters);
        return (int)started;
    }

    IntPtr Handle => _handle != IntPtr.Zero ? _handle : throw new ObjectDisposedException(nameof(GradientReducer));

    /// <summary>Removes the hooks.</summary>
    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h != IntPtr.Zero) Native.mlnx_dist_reducer_free(h);
    }
}

using MLNetExt.Torch.Interop;

namespace MLNetExt.Torch;

/// <summary>Autograd switches. Like PyTorch's, they are thread-local: dispose them on the thread that
/// created them (do not cross an <c>await</c>).</summary>
public static class Autograd
{
    /// <summary>Whether operations on this thread are recorded for backward.</summary>
    public static bool IsGradEnabled => Native.mlnx_grad_mode_get() != 0;

    /// <summary><c>torch.no_grad()</c>: disables recording until disposed, then restores the previous state.</summary>
    public static GradModeGuard NoGrad() => new(false);

    /// <summary><c>torch.enable_grad()</c>.</summary>
    public static GradModeGuard EnableGrad() => new(true);

    /// <summary><c>torch.inference_mode()</c>: no recording and no version counting. Tensors created inside
    /// cannot later be used in autograd.</summary>
    public static InferenceModeGuard InferenceMode() => new();

    /// <summary>Back-propagates from several outputs at once; <paramref name="retainGraph"/> defaults to
    /// <paramref name="createGraph"/>, as in PyTorch.</summary>
    public static unsafe void Backward(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor?>? gradients = null,
                                       bool? retainGraph = null, bool createGraph = false)
    {
        if (gradients != null && gradients.Count != outputs.Count)
            throw new ArgumentException($"{outputs.Count} outputs but {gradients.Count} gradients were given.", nameof(gradients));
        var t = new IntPtr[outputs.Count];
        var g = new IntPtr[outputs.Count];
        for (int k = 0; k < t.Length; k++)
        {
            t[k] = outputs[k].Handle;
            g[k] = gradients?[k]?.Handle ?? IntPtr.Zero;
        }
        IntPtr error;
        fixed (IntPtr* pt = t, pg = g)
            error = Native.mlnx_backward(pt, pg, t.Length, (retainGraph ?? createGraph) ? 1 : 0, createGraph ? 1 : 0);
        GC.KeepAlive(outputs);  // before Check, so no tensor is finalized mid-call on the error path either
        GC.KeepAlive(gradients);
        Native.Check(error);
    }

    /// <summary>Restores the previous grad mode when disposed.</summary>
    public readonly struct GradModeGuard : IDisposable
    {
        readonly int _previous;

        internal GradModeGuard(bool enabled) => _previous = Native.mlnx_grad_mode_set(enabled ? 1 : 0);

        /// <summary>Restores the previous state.</summary>
        public void Dispose() => Native.mlnx_grad_mode_set(_previous);
    }

    /// <summary>Leaves inference mode when disposed.</summary>
    public sealed class InferenceModeGuard : IDisposable
    {
        IntPtr _guard;

        internal InferenceModeGuard() => Native.Check(Native.mlnx_inference_mode_enter(out _guard));

        /// <summary>Leaves inference mode.</summary>
        public void Dispose()
        {
            var g = Interlocked.Exchange(ref _guard, IntPtr.Zero);
            if (g != IntPtr.Zero) Native.mlnx_inference_mode_exit(g);
        }
    }
}

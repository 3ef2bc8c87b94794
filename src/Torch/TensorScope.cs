namespace MLNetExt.Torch;

/// <summary>
/// Frees, when disposed, every tensor created on this thread while it was the innermost scope, except those
/// moved out (<see cref="Tensor.MoveToOuterScope"/>) or detached (<see cref="Tensor.DetachFromScope"/>).
/// Scopes nest and must be disposed in reverse order on the thread that began them:
/// <code>using (TensorScope.Begin()) { ... loss.Backward(); }</code>
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] static TensorScope? t_current;

    readonly TensorScope? _parent;
    readonly int _threadId;
    List<Tensor> _owned = new();
    bool _disposed;

    TensorScope(TensorScope? parent)
    {
        _parent = parent;
        _threadId = Environment.CurrentManagedThreadId;
    }

    /// <summary>Starts a scope nested in the current one.</summary>
    public static TensorScope Begin() => t_current = new TensorScope(t_current);

    /// <summary>The innermost scope on this thread, or null.</summary>
    public static TensorScope? Current => t_current;

    /// <summary>Number of tensors this scope will free.</summary>
    public int Count => _owned.Count(t => t.Scope == this && !t.IsDisposed);

    internal static void Register(Tensor t)
    {
        var s = t_current;
        if (s is null) return;
        s._owned.Add(t);
        t.Scope = s;
    }

    internal void MoveOut(Tensor t)
    {
        t.Scope = _parent;
        _parent?._owned.Add(t);
    }

    /// <summary>Frees the scope's tensors and makes the enclosing scope current again.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (Environment.CurrentManagedThreadId != _threadId)
            throw new InvalidOperationException("A TensorScope must be disposed on the thread that began it.");
        if (!ReferenceEquals(t_current, this))
            throw new InvalidOperationException("TensorScopes must be disposed innermost first; an inner scope is still open.");
        _disposed = true;
        t_current = _parent;
        var owned = _owned;
        _owned = new List<Tensor>();
        foreach (var t in owned)
        {
            if (ReferenceEquals(t.Scope, this))
            {
                t.Scope = null;
                t.Dispose();
            }
        }
    }
}

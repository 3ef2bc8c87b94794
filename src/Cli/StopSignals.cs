namespace MLNetExt.Cli;

/// <summary>Ctrl-C and SIGTERM (kill, a scheduler's stop) as a cancellation: the first one cancels <see cref="Token"/>
/// so a long run finishes its step and saves what it has; a second one ends the process at once.</summary>
internal sealed class StopSignals : IDisposable
{
    readonly CancellationTokenSource _cts = new();
    readonly ConsoleCancelEventHandler _onCancel;
    readonly System.Runtime.InteropServices.PosixSignalRegistration _onTerm;

    public StopSignals()
    {
        _onCancel = (_, e) =>
        {
            if (_cts.IsCancellationRequested) return;
            e.Cancel = true;
            _cts.Cancel();
        };
        Console.CancelKeyPress += _onCancel;
        _onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
        {
            if (_cts.IsCancellationRequested) return;
            ctx.Cancel = true;
            _cts.Cancel();
        });
    }

    public CancellationToken Token => _cts.Token;

    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancel;
        _onTerm.Dispose();
        _cts.Dispose();
    }
}

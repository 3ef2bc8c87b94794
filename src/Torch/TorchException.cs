namespace MLNetExt.Torch;

/// <summary>An error raised inside libtorch. The message names the operator, carries libtorch's own
/// message and describes the arguments (dtype, shape and device of every tensor).</summary>
public sealed class TorchException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public TorchException(string message) : base(message) { }
}

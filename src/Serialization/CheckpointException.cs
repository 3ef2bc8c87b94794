namespace MLNetExt.Serialization;

/// <summary>A checkpoint or safetensors file could not be read or written: it is truncated, corrupt, in a
/// format this library does not read, or holds something it cannot represent. The message names the file,
/// what was expected and what was found.</summary>
public sealed class CheckpointException : IOException
{
    /// <summary>Creates the exception for <paramref name="filePath"/>; the message is prefixed with the path.</summary>
    public CheckpointException(string filePath, string message, Exception? inner = null)
        : base($"{filePath}: {message}", inner)
    {
        FilePath = filePath;
    }

    /// <summary>The file that failed.</summary>
    public string FilePath { get; }
}

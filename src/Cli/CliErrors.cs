using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Cli;

/// <summary>How the training-side verbs turn a user's mistake into one clear line on stderr and an exit code
/// (2: bad arguments, 1: bad data, files or a failed run) instead of a stack trace.</summary>
internal static class CliErrors
{
    public static bool IsUserError(Exception e) => e is ArgumentException or IOException or InvalidDataException or DatasetException
        or TrainingException or InvalidOperationException or TorchException or OnnxExportException or OnnxRuntime.OnnxRuntimeException
        or UnauthorizedAccessException;

    public static int Guarded(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return e is ArgumentException ? 2 : 1;
        }
    }
}

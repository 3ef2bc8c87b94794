using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Imaging;

namespace MLNetExt.Cli;

/// <summary>How the training-side verbs turn a user's mistake into one clear line on stderr and an exit code
/// (2: bad arguments, 1: bad data, files or a failed run) instead of a stack trace.</summary>
internal static class CliErrors
{
    public static bool IsUserError(Exception e) => e is ArgumentException or IOException or InvalidDataException or DatasetException
        or TrainingException or InvalidOperationException or TorchException or OnnxExportException or OnnxRuntime.OnnxRuntimeException
        or UnauthorizedAccessException or FormatException or ImageDecodeException or NotSupportedException or DllNotFoundException
        or Pretrained.WeightsDownloadException or Microsoft.ML.OnnxRuntime.OnnxRuntimeException;

    /// <summary>The last resort for an exception that reached the top of the tool: one line naming it (with the inner
    /// cause), exit 2 for bad arguments, 1 for other known failures, 70 (EX_SOFTWARE) for anything unexpected — whose
    /// stack trace is printed only with MLNETEXT_DEBUG=1.</summary>
    public static int Report(Exception e)
    {
        // wrappers that say only where a failure surfaced (a static constructor, reflection): report the cause
        while (e is System.Reflection.TargetInvocationException or TypeInitializationException && e.InnerException is { } inner) e = inner;
        if (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return e is ArgumentException or FormatException ? 2 : 1;
        }
        var cause = e.InnerException is { } i && i.Message != e.Message ? $" ({i.Message})" : "";
        Console.Error.WriteLine($"error: unexpected {e.GetType().Name}: {e.Message}{cause}. This is a bug in MLNetExt; " +
            (Environment.GetEnvironmentVariable("MLNETEXT_DEBUG") == "1" ? "details follow." : "set MLNETEXT_DEBUG=1 to print where it happened."));
        if (Environment.GetEnvironmentVariable("MLNETEXT_DEBUG") == "1") Console.Error.WriteLine(e);
        return 70;
    }

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

    /// <summary>Checks that the file an option names exists and is a file: "does not exist" or "is a folder, not a file",
    /// with the option and the full path.</summary>
    public static void RequireFile(FileInfo file, string option)
    {
        if (file.Exists) return;
        if (Directory.Exists(file.FullName)) throw new ArgumentException($"{option}: '{file.FullName}' is a folder, not a file.");
        throw new FileNotFoundException($"{option}: file '{file.FullName}' does not exist.", file.FullName);
    }

    /// <summary>Replaces .NET type names in a parse error with what the user should type.</summary>
    public static string PlainTypeNames(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"as expected type '(System\.Nullable`1\[)?System\.(\w+)\]?'");
        if (!m.Success) return message;
        var kind = m.Groups[2].Value switch
        {
            "Double" or "Single" => "a number",
            "Int32" or "Int64" or "UInt64" or "UInt32" => "a whole number",
            "Boolean" => "true or false",
            _ => m.Groups[2].Value.ToLowerInvariant(),
        };
        return message[..m.Index] + $"as {kind}" + message[(m.Index + m.Length)..];
    }
}

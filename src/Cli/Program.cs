using System.CommandLine;
using MLNetExt.Cli;

var root = new RootCommand("MLNetExt: modern vision backbones for .NET — fine-tune, export to ONNX, serve.")
{
    DemoCommand.Create(),
    TrainCommand.Create(),
    CrossValidateCommand.Create(),
    EvaluateCommand.Create(),
    PredictCommand.Create(),
    ExplainCommand.Create(),
    KeysCommand.Create(),
    LogitsCommand.Create(),
    DatasetCommand.Create(),
    ExportCommand.Create(),
    RunOnnxCommand.Create(),
    ModelsCommand.Create(),
};
// Every verb ends with one line on stderr for any failure, never a .NET stack trace (CliErrors.Report).
try
{
    var parsed = root.Parse(args);
    // System.CommandLine names the .NET type it wanted ("System.Nullable`1[System.Double]"): say it in words.
    var typed = parsed.Errors.Where(e => e.Message.Contains("as expected type", StringComparison.Ordinal)).ToList();
    if (typed.Count > 0)
    {
        foreach (var e in typed) Console.Error.WriteLine("error: " + CliErrors.PlainTypeNames(e.Message));
        return 2;
    }
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return CliErrors.Report(e);
}

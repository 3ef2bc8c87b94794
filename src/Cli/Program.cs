using System.CommandLine;
using MLNetExt.Cli;

var root = new RootCommand("MLNetExt: modern vision backbones for .NET — fine-tune, export to ONNX, serve.")
{
    DemoCommand.Create(),
    TrainCommand.Create(),
    EvaluateCommand.Create(),
    PredictCommand.Create(),
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
    return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e)
{
    return CliErrors.Report(e);
}

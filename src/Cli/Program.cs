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
return root.Parse(args).Invoke();

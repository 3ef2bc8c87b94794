using System.CommandLine;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext keys`: with <c>--weights FILE</c>, every tensor of a checkpoint as <c>name TAB [d0, d1] TAB dtype</c>
/// in file order (nested dicts flattened with dots), then <c>total TAB N</c> (elements); with <c>--variant NAME</c>
/// (or <c>--arch FAMILY --config FILE.json</c>), the model's state_dict in order, then <c>total_params TAB N</c>
/// (trainable parameters).
/// </summary>
internal static class KeysCommand
{
    public static Command Create()
    {
        var weights = new Option<FileInfo>("--weights")
        {
            Description = "A torch.save checkpoint (.pth, .pt, .pth.tar) or a .safetensors file",
        };
        var model = new ModelOptions();
        var pretrained = PretrainedOption.Create();
        var cmd = new Command("keys", "List the tensors of a checkpoint, or the state_dict of a model: name, shape and dtype.") { weights, pretrained };
        model.AddTo(cmd);
        cmd.SetAction(r => CliErrors.Guarded(() =>
        {
            var file = r.GetValue(weights);
            if (PretrainedOption.Value(r, pretrained) is { } name)
            {
                if (file is not null) throw new ArgumentException("Give --weights FILE or --pretrained, not both.");
                file = PretrainedOption.Fetch(PretrainedOption.Find(name, r.GetValue(model.Variant)), Console.Error);
            }
            return file is not null ? Run(file, Console.Out, Console.Error) : RunModel(model.Resolve(r), Console.Out);
        }));
        return cmd;
    }

    internal static int Run(FileInfo file, TextWriter output, TextWriter error)
    {
        try { CliErrors.RequireFile(file, "--weights"); }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException)
        {
            error.WriteLine($"error: {e.Message}");
            return 2;
        }
        try
        {
            using var dict = SafeTensors.IsSafeTensorsFile(file.FullName) ? SafeTensors.Load(file.FullName) : TorchCheckpoint.LoadStateDict(file.FullName);
            long total = 0;
            foreach (var (name, tensor) in dict)
            {
                output.WriteLine(Line(name, tensor));
                total += tensor.NumEl;
            }
            output.WriteLine($"total\t{total}");
            return 0;
        }
        catch (CheckpointException e)
        {
            error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    internal static int RunModel(ModelOptions.Choice choice, TextWriter output)
    {
        using var model = choice.Create();
        foreach (var (name, tensor) in model.StateDict()) output.WriteLine(Line(name, tensor));
        output.WriteLine($"total_params\t{model.Parameters().Where(p => p.RequiresGrad).Sum(p => p.NumEl)}");
        return 0;
    }

    static string Line(string name, Tensor t) => $"{name}\t[{string.Join(", ", t.Shape)}]\t{t.DType.TorchName()}";
}

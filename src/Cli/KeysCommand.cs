using System.CommandLine;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Cli;

/// <summary>`mlnetext keys --weights FILE`: every tensor of a checkpoint as <c>name TAB [d0, d1] TAB dtype</c>, in
/// file order (nested dicts flattened with dots), then <c>total TAB N</c> (elements).</summary>
internal static class KeysCommand
{
    public static Command Create()
    {
        var weights = new Option<FileInfo>("--weights")
        {
            Description = "A torch.save checkpoint (.pth, .pt, .pth.tar) or a .safetensors file",
            Required = true,
        };
        var cmd = new Command("keys", "List the tensors of a checkpoint: name, shape and dtype.") { weights };
        cmd.SetAction(r => Run(r.GetValue(weights)!, Console.Out, Console.Error));
        return cmd;
    }

    internal static int Run(FileInfo file, TextWriter output, TextWriter error)
    {
        if (!file.Exists)
        {
            error.WriteLine($"--weights: file '{file.FullName}' does not exist.");
            return 2;
        }
        try
        {
            using var dict = SafeTensors.IsSafeTensorsFile(file.FullName) ? SafeTensors.Load(file.FullName) : TorchCheckpoint.LoadStateDict(file.FullName);
            long total = 0;
            foreach (var (name, tensor) in dict)
            {
                output.WriteLine($"{name}\t[{string.Join(", ", tensor.Shape)}]\t{tensor.DType.TorchName()}");
                total += tensor.NumEl;
            }
            output.WriteLine($"total\t{total}");
            return 0;
        }
        catch (CheckpointException e)
        {
            error.WriteLine(e.Message);
            return 1;
        }
    }
}

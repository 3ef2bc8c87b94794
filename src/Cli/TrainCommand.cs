using System.CommandLine;
using System.Globalization;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Vision;
using MLNetExt.Imaging;
using MLNetExt.Inference;

namespace MLNetExt.Cli;

/// <summary>
/// `mlnetext train --data DIR [--val DIR] (--variant NAME | --arch FAMILY --config FILE.json) [--weights FILE]
/// [--epochs --batch-size --lr --image-size --mode finetune|linear-probe|freeze:K ...] --output DIR`: fine-tunes a
/// backbone on a folder of class sub-folders (or a CSV of path,label) with live progress, then writes to the output
/// folder the model, checkpoints, metrics.json, report.html, model.onnx and generated C# consumption code.
/// Ctrl-C finishes the current step, saves a checkpoint and exits (code 130); `--resume DIR` continues it.
/// </summary>
internal static class TrainCommand
{
    sealed class Options
    {
        public readonly Option<string> Data = new("--data") { Description = "Training images: a folder of class sub-folders (or with train/ and val/ inside), or a CSV/TSV of path,label", Required = true };
        public readonly Option<string> Val = new("--val") { Description = "Validation folder or CSV (default: val/ beside train/, else a stratified --val-fraction of the training images)" };
        public readonly ModelOptions Model = new();
        public readonly Option<FileInfo> Weights = new("--weights") { Description = "Pretrained weights to start from (official .pth/.safetensors/.pdparams; default: random initialisation)" };
        public readonly Option<string?> Pretrained = PretrainedOption.Create();
        public readonly Option<int?> Threads = TrainingKnobOptions.ThreadsOption();
        public readonly Option<string> Resume = new("--resume") { Description = "Continue from a checkpoint file, or the output folder's checkpoint-last" };
        public readonly Option<string> Output = new("--output") { Description = "Output folder (model, checkpoints, metrics, report, ONNX, C# code)", Required = true };
        public readonly Option<bool> NoExport = new("--no-export") { Description = "Skip the ONNX export and the generated code" };
        public readonly Option<bool> Plain = new("--plain") { Description = "Plain progress lines instead of live bars" };
        public readonly Option<int> Nproc = new("--nproc") { Description = "Data-parallel worker processes on this machine (the global --batch-size is split over them); under torchrun's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT a process joins that job instead", DefaultValueFactory = _ => 1 };
        public readonly Option<double> DistTimeout = new("--dist-timeout") { Description = "Seconds a data-parallel worker waits for the others (rendezvous, each gradient exchange) before the job ends with an error", DefaultValueFactory = _ => 1800 };
        public readonly TrainingKnobOptions Knobs = new();

        public Command Command()
        {
            var cmd = new Command("train", "Fine-tune a backbone on a folder of labelled images; write model, report, ONNX and C# code.")
            {
                Data, Val, Weights, Pretrained,
            };
            Knobs.AddTo(cmd);
            foreach (var option in new Option[] { Threads, Resume, Output, NoExport, Plain, Nproc, DistTimeout }) cmd.Add(option);
            Model.AddTo(cmd);
            return cmd;
        }
    }

    public static Command Create()
    {
        var o = new Options();
        var cmd = o.Command();
        cmd.SetAction(r => CliErrors.Guarded(() => TrainingKnobOptions.AsCliError(() =>
        {
            TrainingKnobOptions.ApplyThreads(r, o.Threads);
            var output = r.GetValue(o.Output)!;
            var options = BuildOptions(r, o, output);
            int nproc = r.GetValue(o.Nproc);
            if (nproc < 1) throw new ArgumentException($"--nproc must be at least 1, got {nproc}.");
            double timeout = r.GetValue(o.DistTimeout);
            if (!(timeout > 0)) throw new ArgumentException($"--dist-timeout must be a positive number of seconds, got {timeout}.");
            if (nproc > 1)
            {
                if (Environment.GetEnvironmentVariable("WORLD_SIZE") is not null)
                    throw new ArgumentException("--nproc starts its own workers; under WORLD_SIZE (torchrun or another launcher) leave it out.");
                if (options.BatchSize % nproc != 0)
                    throw new ArgumentException($"--batch-size {options.BatchSize} is the global batch and must be a multiple of --nproc {nproc}.");
                return WorkerLauncher.Run(nproc, WorkerLauncher.WithoutNproc(Environment.GetCommandLineArgs()[1..]), Console.Out, Console.Error);
            }
            var (train, val) = LoadData(r.GetValue(o.Data)!, r.GetValue(o.Val));
            using var group = Distributed.ProcessGroup.FromEnvironment(TimeSpan.FromSeconds(timeout));
            if (group is { IsMain: false })   // the other ranks train in silence; rank 0 reports and writes
                return Run(options with { ProcessGroup = group }, train, val, output, export: false, plain: true, TextWriter.Null, writes: false);
            if (group is not null) Console.Out.WriteLine($"distributed: rank 0 of {group.WorldSize} (rendezvous {group.Address})");
            return Run(options with { ProcessGroup = group }, train, val, output, !r.GetValue(o.NoExport), r.GetValue(o.Plain), Console.Out);
        })));
        return cmd;
    }

    /// <summary>The options a <c>train</c> command line sets, without running it (for tests).</summary>
    internal static ImageClassificationOptions OptionsOf(params string[] args)
    {
        var o = new Options();
        var r = o.Command().Parse(args);
        if (r.Errors.Count > 0) throw new ArgumentException(r.Errors[0].Message);
        return TrainingKnobOptions.AsCliError(() => BuildOptions(r, o, r.GetValue(o.Output)!));
    }

    static ImageClassificationOptions BuildOptions(ParseResult r, Options o, string output)
    {
        var recipe = o.Knobs.Recipe(r, o.Model, o.Weights, o.Pretrained, "train");
        string? resume = r.GetValue(o.Resume);
        if (resume is not null && Directory.Exists(resume)) resume = Path.Combine(resume, ModelFolder.LastCheckpointFileName);
        return recipe with { CheckpointDirectory = output, ResumeFrom = resume };
    }

    /// <summary>A folder (class sub-folders, or train/ + val/) or a CSV/TSV file of path,label.</summary>
    internal static (ImageDataset Train, ImageDataset? Val) LoadData(string data, string? val)
    {
        static bool IsTable(string p) => File.Exists(p) && (p.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || p.EndsWith(".tsv", StringComparison.OrdinalIgnoreCase));
        if (IsTable(data))
        {
            var train = ImageDataset.FromCsv(data);
            return (train, val is null ? null : IsTable(val) ? ImageDataset.FromCsv(val, train.Classes) : ImageDataset.FromFolder(val, train.Classes));
        }
        if (File.Exists(data)) throw new DatasetException($"--data '{data}' is a file but not a .csv/.tsv list; give a folder of class sub-folders or a CSV of path,label.");
        if (val is not null && IsTable(val))
        {
            var (t, _) = ImageDataset.FromFolders(data, null);
            return (t, ImageDataset.FromCsv(val, t.Classes));
        }
        return ImageDataset.FromFolders(data, val);
    }

    /// <summary>Trains and writes the output folder. Returns the exit code (0, 1 on a training failure, 130 when
    /// interrupted).</summary>
    internal static int Run(ImageClassificationOptions options, ImageDataset train, ImageDataset? val, string output, bool export, bool plain, TextWriter log,
        bool writes = true)
    {
        Directory.CreateDirectory(output);
        bool heldOut = val is null && options.ValidationFraction > 0;
        log.WriteLine($"data: {train.Count} {(heldOut ? "" : "training ")}images in {train.Classes.Count} classes ({string.Join(", ", train.Classes.Take(10))}{(train.Classes.Count > 10 ? ", ..." : "")})" +
                      (val is not null ? $", {val.Count} validation images"
                          : heldOut ? $"; {options.ValidationFraction:0.##%} held out for validation" : ""));
        var issues = train.Issues.Concat(val?.Issues ?? []).ToList();
        foreach (var issue in issues.Take(5)) log.WriteLine($"skipped: {issue}");
        if (issues.Count > 5) log.WriteLine($"skipped: ... and {issues.Count - 5} more files");
        log.WriteLine($"libtorch {TorchRuntime.Version}, {TorchRuntime.Threads} threads, CUDA {(TorchRuntime.CudaIsAvailable ? "available" : "not available")}");
        if (TorchRuntime.BlasAdvice is { } advice) log.WriteLine("note: " + advice);

        if (writes)   // a data-parallel run's other ranks leave the output folder to rank 0
            foreach (var name in Serialization.AtomicFile.RemoveStale(output))
                log.WriteLine($"removed {name}: a temporary file left by an earlier run that was stopped mid-write");

        // Ctrl-C and SIGTERM both finish the step, save and exit with the resume command
        using var stop = new StopSignals();
        ImageClassificationModel model;
        try
        {
            model = TrainingProgressView.Run(progress =>
                new ImageClassificationEstimator(options with { Progress = progress }).Fit(train, val, stop.Token), plain, log);
        }
        catch (TrainingInterruptedException e)
        {
            if (writes) ModelFolder.WriteRecord(e.History, output, log);
            log.WriteLine(e.Message);
            if (e.Checkpoint is not null) log.WriteLine($"resume with: ./mlnetext train <same options> --resume {output}");
            return 130;
        }
        catch (TrainingException e) when (e.History is not null)
        {
            if (writes) ModelFolder.WriteRecord(e.History, output, log);
            throw;
        }
        using (model)
        {
            var h = model.History!;
            log.WriteLine($"{h.StopReason}; {h.Epochs.Count} epochs in {h.Duration.TotalMinutes:F1} min");
            if (h.Final is { } m)
            {
                log.WriteLine($"validation (epoch {h.BestEpoch}): top-1 {m.Top1:P1}, top-{m.TopK} {m.Top5:P1}, macro-F1 {m.MacroF1:F3}, log-loss {m.LogLoss:F4} on {m.Count} images");
                if (EvaluateCommand.SelectiveText(m) is { Length: > 0 } selective) log.WriteLine("answering only when sure (predict --min-score): " + selective);
            }
            if (!writes) return 0;
            var failed = ModelFolder.Write(model, output, export, log, options.ScoringPrecision, calibration: train);
            if (failed.Count > 0)
            {
                var best = Path.Combine(output, ModelFolder.BestCheckpointFileName);
                var weights = File.Exists(best) && h.BestEpoch is not null ? best : Path.Combine(output, ModelFolder.LastCheckpointFileName);
                log.WriteLine($"error: training finished, but {string.Join("; ", failed)} could not be written. The trained weights are in " +
                    $"'{weights}': `./mlnetext evaluate --model {weights} --data DIR --output {output}` and `./mlnetext predict --model {weights} IMAGES` " +
                    "read it directly; after freeing space, the same train command with --resume writes every output again.");
                return 1;
            }
        }
        return 0;
    }
}

using MLNetExt.Cli;
using MLNetExt.Data;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Cli;

/// <summary>The tool's last-resort error handling and the thread-count guard: one line on stderr, an exit code, never a
/// stack trace, never a hang.</summary>
[TestClass]
[DoNotParallelize] // redirects Console.Error
public sealed class CliErrorsTests
{
    static (int Code, string Error) Capture(Func<int> action)
    {
        var saved = Console.Error;
        var err = new StringWriter();
        Console.SetError(err);
        try { return (action(), err.ToString()); }
        finally { Console.SetError(saved); }
    }

    [TestMethod]
    public void Report_GivesOneLine_AndAnExitCodeByKind()
    {
        var (code, text) = Capture(() => CliErrors.Report(new FormatException("Device 'tpu' is not understood")));
        Assert.AreEqual(2, code);
        Assert.AreEqual("error: Device 'tpu' is not understood", text.Trim());
        (code, text) = Capture(() => CliErrors.Report(new ImageDecodeException("PNG declares 60000x60000")));
        Assert.AreEqual(1, code);
        (code, text) = Capture(() => CliErrors.Report(new TypeInitializationException("Native", new DllNotFoundException("libmlnetext_native.so was not found"))));
        Assert.AreEqual(1, code);
        Assert.AreEqual("error: libmlnetext_native.so was not found", text.Trim());
        (code, text) = Capture(() => CliErrors.Report(new NullReferenceException("boom")));
        Assert.AreEqual(70, code);
        Assert.HasCount(1, text.Trim().Split('\n'), text);
        StringAssert.StartsWith(text, "error: unexpected NullReferenceException: boom.");
        StringAssert.Contains(text, "MLNETEXT_DEBUG=1");
        Assert.IsFalse(text.Contains("   at ", StringComparison.Ordinal), "no stack trace");
    }

    [TestMethod]
    public void FileOptions_SayWhetherThePathIsMissingOrAFolder()
    {
        var dir = Path.GetTempPath();
        var e = Assert.ThrowsExactly<ArgumentException>(() => CliErrors.RequireFile(new FileInfo(dir), "--weights"));
        StringAssert.EndsWith(e.Message, "is a folder, not a file.");
        StringAssert.StartsWith(e.Message, "--weights: ");
        var missing = Path.Combine(dir, "no-such-weights.pth");
        StringAssert.Contains(Assert.ThrowsExactly<FileNotFoundException>(() => CliErrors.RequireFile(new FileInfo(missing), "--weights")).Message, "does not exist");
    }

    [TestMethod]
    public void TrainingOptions_AreReportedUnderTheirCliNames()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-opt-");
        try
        {
            SyntheticShapes.WriteFolder(Path.Combine(dir.FullName, "data"), 2, 32, 1, ["circle", "square"]);
            var (code, text) = Capture(() =>
            {
                var saved = Console.Out;
                Console.SetOut(TextWriter.Null);
                try
                {
                    return TrainCommand.Create().Parse(["--data", Path.Combine(dir.FullName, "data"), "--variant", "mixformer_b0", "--workers", "100000",
                        "--output", Path.Combine(dir.FullName, "out")]).Invoke();
                }
                finally { Console.SetOut(saved); }
            });
            Assert.AreEqual(2, code, text);
            StringAssert.StartsWith(text, $"error: --workers must be 1 to {TorchRuntime.MaxThreads}");
        }
        finally { dir.Delete(true); }
        Assert.AreEqual("--batch-size", TrainingKnobs.CliName("BatchSize"));
        var e = Assert.ThrowsExactly<ArgumentException>(() => TrainingKnobOptions.AsCliError<int>(() => throw new MLNetExt.Training.TrainingOptionException("LearningRate", "must be positive; got -1")));
        Assert.AreEqual("--lr must be positive; got -1.", e.Message);
    }

    [TestMethod]
    public void ParseErrors_SayTheExpectedValueInWords()
    {
        Assert.AreEqual("Cannot parse argument 'abc' for option '--lr' as a number.",
            CliErrors.PlainTypeNames("Cannot parse argument 'abc' for option '--lr' as expected type 'System.Nullable`1[System.Double]'."));
        Assert.AreEqual("Cannot parse argument '1.5' for option '--epochs' as a whole number.",
            CliErrors.PlainTypeNames("Cannot parse argument '1.5' for option '--epochs' as expected type 'System.Int32'."));
    }

    [TestMethod]
    public void MistypedVariants_GetASuggestion()
    {
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MLNetExt.Vision.Backbones.Find("smt_tiny")).Message, "(did you mean 'smt_t'?)");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MLNetExt.Vision.Backbones.Find("transxnet-t")).Message, "(did you mean 'transxnet_t'?)");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => MLNetExt.Vision.Backbones.Family("mixfromer")).Message, "(did you mean 'mixformer'?)");
        Assert.IsFalse(Assert.ThrowsExactly<ArgumentException>(() => MLNetExt.Vision.Backbones.Find("resnet50")).Message.Contains("did you mean"));
    }

    [TestMethod]
    public void ThreadCounts_AreCheckedAgainstTheMachine()
    {
        int max = TorchRuntime.MaxThreads;
        Assert.AreEqual(Math.Max(8, 8 * Environment.ProcessorCount), max);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => TorchRuntime.Threads = 100000);
        StringAssert.Contains(e.Message, $"more than the {max}");
        int before = TorchRuntime.Threads;
        Assert.AreEqual(before, TorchRuntime.Threads, "unchanged");
        var ds = new ImageDataset("x", ["a", "b"], []);
        var pipeline = ImagePipeline.Eval(8, 8, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new DataLoader(ds, pipeline, new LoaderOptions { Workers = 100000 }));
        StringAssert.Contains(e.Message, "worker count is 100000");
        var (code, text) = Capture(() => TrainCommand.Create().Parse(["--data", "/nonexistent", "--variant", "smt_t", "--threads", "100000", "--output", "/tmp/x"]).Invoke());
        Assert.AreEqual(2, code);
        StringAssert.Contains(text, "--threads is 100000");
    }
}

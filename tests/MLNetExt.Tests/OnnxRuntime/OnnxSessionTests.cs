using System.Diagnostics;
using System.Runtime.InteropServices;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.Tests.OnnxRuntime;

[TestClass]
public sealed class OnnxSessionTests
{
    public TestContext TestContext { get; set; } = null!;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Seconds, Nanoseconds; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out Timespec time);

    private static double ThreadCpuMicroseconds()
    {
        if (ClockGetTime(3 /* CLOCK_THREAD_CPUTIME_ID */, out var t) != 0) throw new InvalidOperationException("clock_gettime failed");
        return t.Seconds * 1e6 + t.Nanoseconds / 1e3;
    }

    [TestMethod]
    [DataRow(1)]
    [DataRow(3)]
    public void Classifier_MatchesNumpy(int batch)
    {
        var (image, logits, score) = OnnxFixtures.Classifier();
        int per = 3 * 8 * 8;
        using var s = OnnxFixtures.Open("classifier.onnx");
        using var r = s.Run("image", OnnxTensor.FromMemory<float>(image.AsMemory(0, batch * per), batch, 3, 8, 8));
        CollectionAssert.AreEqual(new long[] { batch, 5 }, r["Score"].Shape.ToArray());
        OnnxFixtures.Close(logits.AsSpan(0, batch * 5), r["logits"].AsSpan<float>(), Tolerances.OnnxRuntimeFixture, $"logits b{batch}");
        OnnxFixtures.Close(score.AsSpan(0, batch * 5), r["Score"].AsSpan<float>(), Tolerances.OnnxRuntimeFixture, $"Score b{batch}");
    }

    [TestMethod]
    public void Input_IsReadInPlaceFromASliceOfCallerMemory()
    {
        // The second and third images, as a slice of the batch-3 array: the tensor points into the caller's array.
        var (image, logits, _) = OnnxFixtures.Classifier();
        int per = 3 * 8 * 8;
        using var s = OnnxFixtures.Open("classifier.onnx");
        var tensor = OnnxTensor.FromMemory<float>(image.AsMemory(per, 2 * per), 2, 3, 8, 8);
        using (var r = s.Run("image", tensor, ["logits"]))
            OnnxFixtures.Close(logits.AsSpan(5, 10), r[0].AsSpan<float>(), Tolerances.OnnxRuntimeFixture, "sliced input");
        // Changing the caller's memory changes what the same tensor object feeds to the next run (no copy was kept).
        Array.Copy(image, 0, image, per, per);
        using (var r = s.Run("image", tensor, ["logits"]))
            OnnxFixtures.Close(logits.AsSpan(0, 5), r[0].AsSpan<float>()[..5], Tolerances.OnnxRuntimeFixture, "input changed in place");
    }

    [TestMethod]
    public void Outputs_AreReturnedInTheRequestedOrder_AndSpansEndWithTheResult()
    {
        var (image, logits, score) = OnnxFixtures.Classifier();
        using var s = OnnxFixtures.Open("classifier.onnx");
        var r = s.Run("image", OnnxTensor.FromArray(image, 3, 3, 8, 8), ["logits", "Score"]);
        CollectionAssert.AreEqual(new[] { "logits", "Score" }, r.Select(v => v.Name).ToArray());
        var copy = r["Score"].ToArray<float>();
        r.Dispose();
        OnnxFixtures.Close(score, copy, Tolerances.OnnxRuntimeFixture, "copied Score outlives the result");
        Assert.ThrowsExactly<ObjectDisposedException>(() => r["logits"].AsSpan<float>().ToArray());
        using var only = s.Run("image", OnnxTensor.FromArray(image, 3, 3, 8, 8), ["logits"]);
        Assert.HasCount(1, only);
        var wrongType = Assert.ThrowsExactly<InvalidOperationException>(() => only[0].AsSpan<long>().ToArray());
        StringAssert.Contains(wrongType.Message, "holds float32, not int64");
        var e = Assert.ThrowsExactly<KeyNotFoundException>(() => only["Score"]);
        StringAssert.Contains(e.Message, "it has: logits");
    }

    [TestMethod]
    public void ConcurrentRuns_OnOneSession_GiveEachThreadItsOwnResult()
    {
        var (image, _, _) = OnnxFixtures.Classifier();
        int per = 3 * 8 * 8;
        using var s = OnnxFixtures.Open("classifier.onnx", new OnnxSessionOptions { IntraOpThreads = 1 });
        const int threads = 8, runs = 40;
        // Each thread has its own input (a scaled copy of one image, at its own batch size) and reference output.
        var inputs = Enumerable.Range(0, threads).Select(t =>
        {
            int batch = 1 + t % 3;
            var x = new float[batch * per];
            for (int i = 0; i < x.Length; i++) x[i] = image[(t * 17 + i) % image.Length] * (1 + 0.1f * t);
            return (x, batch);
        }).ToArray();
        var expected = inputs.Select(i => { using var r = s.Run("image", OnnxTensor.FromArray(i.x, i.batch, 3, 8, 8)); return r["Score"].ToArray<float>(); }).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int k = 0; k < runs; k++)
            {
                using var r = s.Run("image", OnnxTensor.FromArray(inputs[t].x, inputs[t].batch, 3, 8, 8));
                if (!r["Score"].AsSpan<float>().SequenceEqual(expected[t])) failures.Add($"thread {t} run {k}");
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.IsEmpty(failures, string.Join(", ", failures.Take(5)));
        Assert.AreNotEqual(expected[0][0], expected[1][0], "the threads' inputs differ");
    }

    [TestMethod]
    public void BadInputs_AreRejectedWithExpectedAndActual()
    {
        using var c = OnnxFixtures.Open("classifier.onnx");
        var image = new float[3 * 9 * 8];
        var e = Assert.ThrowsExactly<OnnxInputException>(() => c.Run("image", OnnxTensor.FromArray(image, 1, 3, 9, 8)));
        Assert.AreEqual("input 'image': shape [1,3,9,8] given, the model expects [N,3,8,8] (dimension 2 is 9, expected 8)", e.Message);
        e = Assert.ThrowsExactly<OnnxInputException>(() => c.Run("image", OnnxTensor.FromArray(new float[192], 3, 8, 8)));
        Assert.AreEqual("input 'image': shape [3,8,8] given, the model expects [N,3,8,8] (rank 3 given, 4 expected)", e.Message);
        e = Assert.ThrowsExactly<OnnxInputException>(() => c.Run("pixels", OnnxTensor.FromArray(new float[192], 1, 3, 8, 8)));
        Assert.AreEqual("the model has no input 'pixels'; its inputs are: image: float32 [N,3,8,8]", e.Message);
        e = Assert.ThrowsExactly<OnnxInputException>(() => c.Run("image", OnnxTensor.FromMemory<double>(new double[192], 1, 3, 8, 8)));
        Assert.AreEqual("input 'image': element type float64 given, the model expects float32 [N,3,8,8]", e.Message);
        e = Assert.ThrowsExactly<OnnxInputException>(() => c.Run("image", OnnxTensor.FromArray(new float[192], 1, 3, 8, 8), ["probabilities"]));
        Assert.AreEqual("the model has no output 'probabilities'; its outputs are: Score: float32 [N,5]; logits: float32 [N,5]", e.Message);

        using var g = OnnxFixtures.Open("gather.onnx");
        e = Assert.ThrowsExactly<OnnxInputException>(() => g.Run("ids", OnnxTensor.FromArray([1f, 2f], 2)));
        Assert.AreEqual("input 'ids': element type float32 given, the model expects int64 [K]", e.Message);

        using var am = OnnxFixtures.Open("add_mul.onnx");
        e = Assert.ThrowsExactly<OnnxInputException>(() => am.Run("x", OnnxTensor.FromArray(new float[3], 1, 3)));
        Assert.AreEqual("missing model input: y: float32 [N,3] (given: x)", e.Message);
        e = Assert.ThrowsExactly<OnnxInputException>(() => am.Run(new Dictionary<string, OnnxTensor>
        {
            ["x"] = OnnxTensor.FromArray(new float[6], 2, 3),
            ["y"] = OnnxTensor.FromArray(new float[9], 3, 3),
        }));
        Assert.AreEqual("input 'y': shape [3,3] given, the model expects [N,3]: dimension 0 ('N') is 3, but 'N' is 2 in input 'x'", e.Message);

        var t = Assert.ThrowsExactly<ArgumentException>(() => OnnxTensor.FromArray(new float[10], 1, 3, 8, 8));
        Assert.AreEqual("tensor shape [1,3,8,8] needs 192 elements, but the data has 10", t.Message);

        // An unnamed dynamic dimension takes any size.
        using var f = OnnxFixtures.Open("fold.onnx");
        using var r = f.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(new float[8], 2, 4), ["u"] = OnnxTensor.FromArray(new float[5], 5) });
        CollectionAssert.AreEqual(new long[] { 5 }, r["neg_u"].Shape.ToArray());
        e = Assert.ThrowsExactly<OnnxInputException>(() => f.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(new float[8], 4, 2), ["u"] = OnnxTensor.FromArray(new float[5], 5) }));
        Assert.AreEqual("input 'x': shape [4,2] given, the model expects [2,4] (dimension 0 is 4, expected 2)", e.Message);

        var missingFile = Path.Combine(Path.GetTempPath(), "no-such-model-mlnetext.onnx");
        var m = Assert.ThrowsExactly<FileNotFoundException>(() => OnnxSession.FromFile(missingFile));
        StringAssert.Contains(m.Message, missingFile);
    }

    [TestMethod]
    public void Outputs_OutliveTheirSession()
    {
        var (image, logits, _) = OnnxFixtures.Classifier();
        OnnxRunResult r;
        using (var s = OnnxFixtures.Open("classifier.onnx"))
            r = s.Run("image", OnnxTensor.FromArray(image, 3, 3, 8, 8), ["logits"]);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using (r) OnnxFixtures.Close(logits, r[0].AsSpan<float>(), Tolerances.OnnxRuntimeFixture, "output read after the session was released");
    }

    [TestMethod]
    public void DisposedSession_RefusesToRun()
    {
        var s = OnnxFixtures.Open("add_mul.onnx");
        s.Dispose();
        s.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => s.Run("x", OnnxTensor.FromArray(new float[3], 1, 3)));
    }

    /// <summary>Per-Run cost on a tiny model (two elementwise ops on [1,3]): the whole MLNetExt call (validation,
    /// wrapping caller memory, output wrapping, release) against the official API's bare <c>Run</c> on pre-made values
    /// with a session of its own, in alternating rounds. Printed for the record; bounded loosely (the machine may be
    /// heavily loaded).</summary>
    [TestMethod]
    public void RunOverhead_OnATinyModel_IsMicroseconds()
    {
        using var s = OnnxFixtures.Open("add_mul.onnx", new OnnxSessionOptions { IntraOpThreads = 1 });
        float[] x = [1f, 2, 3], y = [4f, 5, 6];
        var inputs = new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(x, 1, 3), ["y"] = OnnxTensor.FromArray(y, 1, 3) };

        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions { IntraOpNumThreads = 1 };
        using var bare = new Microsoft.ML.OnnxRuntime.InferenceSession(OnnxFixtures.Model("add_mul.onnx"), options);
        using var xv = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(x, [1, 3]);
        using var yv = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(y, [1, 3]);
        string[] inNames = ["x", "y"], outNames = ["sum", "prod"];
        var inValues = new[] { xv, yv };
        using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
        void Bare() => bare.Run(runOptions, inNames, inValues, outNames).Dispose();
        void Bound() => s.Run(inputs).Dispose();
        for (int i = 0; i < 300; i++) { Bare(); Bound(); }
        // CPU time of this thread (ORT runs a 1-thread session inline on the caller): unlike wall time it does not
        // count the time this thread waits for a core on a loaded machine.
        const int n = 1000;
        double bestBound = double.MaxValue, bestBare = double.MaxValue, wallBound = double.MaxValue;
        for (int rep = 0; rep < 5; rep++)
        {
            double t0 = ThreadCpuMicroseconds();
            for (int i = 0; i < n; i++) Bare();
            double t1 = ThreadCpuMicroseconds();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < n; i++) Bound();
            wallBound = Math.Min(wallBound, sw.Elapsed.TotalMicroseconds / n);
            double t2 = ThreadCpuMicroseconds();
            bestBare = Math.Min(bestBare, (t1 - t0) / n);
            bestBound = Math.Min(bestBound, (t2 - t1) / n);
        }
        var line = $"ONNX Runtime {OnnxRuntimeEnvironment.Version}, tiny model, thread CPU time per call: OnnxSession.Run {bestBound:F2} us, " +
                   $"bare InferenceSession.Run {bestBare:F2} us (layer overhead {bestBound - bestBare:F2} us); OnnxSession.Run wall {wallBound:F2} us " +
                   $"(best of 5 x {n}; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]})";
        TestContext.WriteLine(line);
        Console.WriteLine(line);
        Assert.IsLessThan(1000.0, bestBound, line);
    }
}

/// <summary>ONNX Runtime and libtorch loaded in one process (as the exporter's parity tests need): the fixture
/// classifier run by the engine's ops gives ORT's outputs.</summary>
[TestClass]
public sealed class OnnxRuntimeWithLibtorchTests
{
    [TestMethod]
    public void Classifier_ThroughTheEngine_MatchesOnnxRuntime()
    {
        using var scope = MLNetExt.Torch.TensorScope.Begin();
        var (image, _, _) = OnnxFixtures.Classifier();
        var p = OnnxFixtures.Floats("classifier_params.bin");
        var wconv = MLNetExt.Torch.Tensor.FromArray<float>(p[..108], new long[] { 4, 3, 3, 3 });
        var bconv = MLNetExt.Torch.Tensor.FromArray<float>(p[108..112], new long[] { 4 });
        var wfc = MLNetExt.Torch.Tensor.FromArray<float>(p[112..132], new long[] { 5, 4 });
        var bfc = MLNetExt.Torch.Tensor.FromArray<float>(p[132..137], new long[] { 5 });
        var x = MLNetExt.Torch.Tensor.FromArray<float>(image, new long[] { 3, 3, 8, 8 });
        var logits = MLNetExt.Nn.F.Linear(MLNetExt.Nn.F.Relu(MLNetExt.Nn.F.Conv2d(x, wconv, bconv, padding: 1)).Mean(new long[] { 2, 3 }), wfc, bfc);
        var engine = logits.Contiguous().ToArray<float>();
        using var s = OnnxFixtures.Open("classifier.onnx");
        using var r = s.Run("image", OnnxTensor.FromArray(image, 3, 3, 8, 8), ["logits"]);
        OnnxFixtures.Close(engine, r[0].AsSpan<float>(), Tolerances.OnnxRuntimeFixture, "ORT vs libtorch");
    }
}

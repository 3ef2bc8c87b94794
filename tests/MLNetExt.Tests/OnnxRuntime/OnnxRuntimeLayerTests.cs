using System.Text;
using MLNetExt.OnnxRuntime;
using Ort = Microsoft.ML.OnnxRuntime;

namespace MLNetExt.Tests.OnnxRuntime;

/// <summary>
/// What MLNetExt's layer over the official ONNX Runtime package (Microsoft.ML.OnnxRuntime.Managed with the CPU native
/// package) must keep: sessions from files and bytes, descriptions and metadata, optimisation and thread settings,
/// errors that say what was being done, the CUDA request on a CPU-only runtime (one runtime per process: see
/// MLNetModelFileTests).
/// </summary>
[TestClass]
public sealed class OnnxRuntimeLayerTests
{
    [TestMethod]
    public void Version_IsTheReferencedPackageVersion()
    {
        Assert.AreEqual(OnnxRuntimeEnvironment.PackageVersion, OnnxRuntimeEnvironment.Version);
        var managed = typeof(Ort.InferenceSession).Assembly.GetName().Version!;
        Assert.AreEqual(OnnxRuntimeEnvironment.PackageVersion, $"{managed.Major}.{managed.Minor}.{managed.Build}", "managed API version");
    }

    [TestMethod]
    public void AvailableProviders_ListTheCpuProvider()
    {
        var providers = OnnxRuntimeEnvironment.AvailableProviders;
        CollectionAssert.Contains(providers.ToList(), "CPUExecutionProvider", string.Join(", ", providers));
        Assert.AreEqual("CPUExecutionProvider", providers[^1], "CPU is always the last (fallback) provider");
    }

    [TestMethod]
    public void SessionFromFileAndFromBytes_GiveTheSameModel()
    {
        using var fromFile = OnnxFixtures.Open("classifier.onnx");
        using var fromBytes = OnnxSession.FromBytes(File.ReadAllBytes(OnnxFixtures.Model("classifier.onnx")));
        CollectionAssert.AreEqual(fromFile.Inputs.Select(i => i.ToString()).ToList(), fromBytes.Inputs.Select(i => i.ToString()).ToList());
        var (image, _, _) = OnnxFixtures.Classifier();
        using var a = fromFile.Run("image", OnnxTensor.FromArray(image, 3, 3, 8, 8));
        using var b = fromBytes.Run("image", OnnxTensor.FromArray(image, 3, 3, 8, 8));
        CollectionAssert.AreEqual(a["logits"].ToArray<float>(), b["logits"].ToArray<float>());

        var garbage = Encoding.ASCII.GetBytes("this is not an ONNX model at all");
        var e = Assert.ThrowsExactly<OnnxRuntimeException>(() => OnnxSession.FromBytes(garbage));
        Assert.AreEqual(OrtErrorCode.InvalidProtobuf, e.Code, e.Message);
        StringAssert.Contains(e.Message, "from 32 bytes in memory");
        var path = Path.Combine(Path.GetTempPath(), $"mlnetext-garbage-{Environment.ProcessId}.onnx");
        File.WriteAllBytes(path, garbage);
        try
        {
            var f = Assert.ThrowsExactly<OnnxRuntimeException>(() => OnnxSession.FromFile(path));
            Assert.AreEqual(OrtErrorCode.InvalidProtobuf, f.Code, f.Message);
            StringAssert.Contains(f.Message, path);
        }
        finally { File.Delete(path); }
    }

    [TestMethod]
    public void InputAndOutputDescriptions_MatchTheModels()
    {
        using (var s = OnnxFixtures.Open("add_mul.onnx"))
        {
            CollectionAssert.AreEqual(new[] { "x: float32 [N,3]", "y: float32 [N,3]" }, s.Inputs.Select(i => i.ToString()).ToArray());
            CollectionAssert.AreEqual(new[] { "sum: float32 [N,3]", "prod: float32 [N,3]" }, s.Outputs.Select(i => i.ToString()).ToArray());
            CollectionAssert.AreEqual(new long[] { -1, 3 }, s.Inputs[0].Dimensions.ToArray());
            CollectionAssert.AreEqual(new[] { "N", "" }, s.Inputs[0].SymbolicDimensions.ToArray());
        }
        using (var s = OnnxFixtures.Open("gather.onnx"))
        {
            Assert.AreEqual("ids: int64 [K]", s.Inputs.Single().ToString());
            Assert.AreEqual(OnnxElementType.Int64, s.Inputs[0].ElementType);
            Assert.AreEqual("rows: float32 [K,2]", s.Outputs.Single().ToString());
        }
        using (var s = OnnxFixtures.Open("fold.onnx"))
        {
            CollectionAssert.AreEqual(new[] { "x: float32 [2,4]", "u: float32 [?]" }, s.Inputs.Select(i => i.ToString()).ToArray());
            CollectionAssert.AreEqual(new[] { "out", "neg_u" }, s.Outputs.Select(i => i.Name).ToArray());
            Assert.AreEqual(OnnxValueKind.Tensor, s.Outputs[1].Kind);
        }
        using (var s = OnnxFixtures.Open("classifier.onnx"))
        {
            Assert.AreEqual("image: float32 [N,3,8,8]", s.Inputs.Single().ToString());
            CollectionAssert.AreEqual(new[] { "Score: float32 [N,5]", "logits: float32 [N,5]" }, s.Outputs.Select(i => i.ToString()).ToArray());
        }
    }

    [TestMethod]
    public void ModelMetadata_ReadsEveryField()
    {
        using var s = OnnxFixtures.Open("add_mul.onnx");
        var m = s.Metadata;
        Assert.AreEqual("mlnetext-fixtures", m.ProducerName);
        Assert.AreEqual("add_mul_graph", m.GraphName);
        Assert.AreEqual("ai.mlnetext.test", m.Domain);
        Assert.AreEqual("two elementwise ops for binding tests", m.Description);
        Assert.AreEqual("adds and multiplies", m.GraphDescription);
        Assert.AreEqual(7L, m.Version);
        Assert.HasCount(3, m.Custom);
        Assert.AreEqual("cat,dog,bird", m.Custom["class_names"]);
        Assert.AreEqual("0.485,0.456,0.406", m.Custom["mean"]);
        Assert.AreEqual("Größe 大", m.Custom["unicode"]);

        using var g = OnnxFixtures.Open("gather.onnx");
        Assert.IsEmpty(g.Metadata.Custom);
        Assert.AreEqual("", g.Metadata.Domain);
    }

    [TestMethod]
    public void Run_ComputesTheFixtureOutputs()
    {
        using var s = OnnxFixtures.Open("add_mul.onnx");
        float[] x = [1, 2, 3, 4, 5, 6], y = [0.5f, -1, 2, 10, 0, -3];
        using var r = s.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray(x, 2, 3), ["y"] = OnnxTensor.FromArray(y, 2, 3) });
        CollectionAssert.AreEqual(new[] { "sum", "prod" }, r.Select(v => v.Name).ToArray());
        CollectionAssert.AreEqual(new long[] { 2, 3 }, r["sum"].Shape.ToArray());
        Assert.AreEqual(OnnxElementType.Float32, r["sum"].ElementType);
        CollectionAssert.AreEqual(x.Zip(y, (a, b) => a + b).ToArray(), r["sum"].ToArray<float>());
        CollectionAssert.AreEqual(x.Zip(y, (a, b) => a * b).ToArray(), r["prod"].ToArray<float>());

        using var g = OnnxFixtures.Open("gather.onnx");
        using var rows = g.Run("ids", OnnxTensor.FromMemory<long>(new long[] { 9, 0, 3 }, 3));
        CollectionAssert.AreEqual(new long[] { 3, 2 }, rows[0].Shape.ToArray());
        CollectionAssert.AreEqual(new float[] { 9, 9.5f, 0, 0.5f, 3, 3.5f }, rows[0].ToArray<float>());
    }

    [TestMethod]
    public void OptimizationLevel_ControlsConstantFolding()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-ort-opt-");
        try
        {
            bool Folded(OnnxGraphOptimization level)
            {
                var path = Path.Combine(dir.FullName, $"{level}.onnx");
                using var s = OnnxFixtures.Open("fold.onnx", new OnnxSessionOptions { GraphOptimization = level, OptimizedModelPath = path });
                using var r = s.Run(new Dictionary<string, OnnxTensor>
                {
                    ["x"] = OnnxTensor.FromArray(new float[8], 2, 4),
                    ["u"] = OnnxTensor.FromArray([1f, -2f], 2),
                });
                CollectionAssert.AreEqual(new float[] { 11, 22, 33, 44, 11, 22, 33, 44 }, r["out"].ToArray<float>());
                CollectionAssert.AreEqual(new float[] { -1, 2 }, r["neg_u"].ToArray<float>());
                Assert.IsTrue(File.Exists(path), $"the optimized model is written to {path}");
                // The node "fold_me" adds two initializers: constant folding replaces it by an initializer.
                return File.ReadAllBytes(path).AsSpan().IndexOf("fold_me"u8) < 0;
            }
            Assert.IsFalse(Folded(OnnxGraphOptimization.Disabled), "no folding with optimisation disabled");
            Assert.IsTrue(Folded(OnnxGraphOptimization.Basic), "basic optimisation folds constants");
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void IntraOpThreads_SetsTheSessionThreadPoolSize()
    {
        static int Threads() => Directory.GetDirectories("/proc/self/task").Length;
        // A per-session intra-op pool of n threads starts n - 1 OS threads (the caller's thread is the n-th).
        int Added(int n)
        {
            int before = Threads();
            using var s = OnnxFixtures.Open("add_mul.onnx", new OnnxSessionOptions { IntraOpThreads = n });
            return Threads() - before;
        }
        int one = Added(1), six = Added(6);
        Assert.IsGreaterThanOrEqualTo(5, six - one, $"6 intra-op threads added {six} OS threads, 1 thread added {one}");
        Assert.IsLessThan(9, six - one, $"6 intra-op threads added {six} OS threads, 1 thread added {one}");
        Assert.ThrowsExactly<ArgumentException>(() => OnnxFixtures.Open("add_mul.onnx", new OnnxSessionOptions { IntraOpThreads = -1 }));
    }

    [TestMethod]
    public void CudaRequest_OnTheCpuPackage_FallsBackWithOneWarningNamingTheGpuPackage()
    {
        var warnings = new List<string>();
        using var s = OnnxFixtures.Open("add_mul.onnx", new OnnxSessionOptions { CudaDeviceId = 0, Warning = warnings.Add });
        if (s.ExecutionProvider == "CUDA") Assert.Inconclusive("CUDA is usable on this machine: the fallback path cannot be observed");
        Assert.AreEqual("CPU", s.ExecutionProvider);
        Assert.HasCount(1, warnings);
        CollectionAssert.AreEqual(warnings, s.Warnings.ToList());
        StringAssert.Contains(warnings[0], "CUDA execution provider (device 0) is unavailable");
        StringAssert.Contains(warnings[0], "Running on CPU instead.");
        // The CPU package has no CUDA entry point: the warning says which package brings CUDA.
        StringAssert.Contains(warnings[0], "CPU-only package");
        StringAssert.Contains(warnings[0], $"Microsoft.ML.OnnxRuntime.Gpu {OnnxRuntimeEnvironment.PackageVersion}");
        StringAssert.Contains(warnings[0], "OrtSessionOptionsAppendExecutionProvider_CUDA", "ONNX Runtime's own words are kept");
        // The session works on CPU.
        using var r = s.Run(new Dictionary<string, OnnxTensor> { ["x"] = OnnxTensor.FromArray([1f, 2, 3], 1, 3), ["y"] = OnnxTensor.FromArray([1f, 1, 1], 1, 3) });
        CollectionAssert.AreEqual(new float[] { 2, 3, 4 }, r["sum"].ToArray<float>());

        var e = Assert.ThrowsExactly<OnnxRuntimeException>(() =>
            OnnxFixtures.Open("add_mul.onnx", new OnnxSessionOptions { CudaDeviceId = 0, FallbackToCpu = false, Warning = warnings.Add }));
        StringAssert.StartsWith(e.Message, "CUDA execution provider (device 0) is unavailable");
        StringAssert.EndsWith(e.Message, "CPU fallback is disabled.");
        Assert.AreEqual(OrtErrorCode.EpFail, e.Code);
        Assert.HasCount(1, warnings, "no warning when the error is thrown instead");
    }

    /// <summary>Measured here: 300 classifier sessions kept alive grow RSS by ~35 MB (~120 kB each); created and
    /// released, by ~5 MB. The 20 MB bound separates the two.</summary>
    [TestMethod]
    public void ManySessions_AreReleased()
    {
        var bytes = File.ReadAllBytes(OnnxFixtures.Model("classifier.onnx"));
        static long Rss() => long.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        for (int i = 0; i < 20; i++) OnnxSession.FromBytes(bytes, new OnnxSessionOptions { IntraOpThreads = 1 }).Dispose();
        long before = Rss();
        for (int i = 0; i < 300; i++) OnnxSession.FromBytes(bytes, new OnnxSessionOptions { IntraOpThreads = 1 }).Dispose();
        long grownKb = Rss() - before;
        Assert.IsLessThan(20_000, grownKb, $"300 sessions created and released grew RSS by {grownKb} kB");
    }

    /// <summary>The GPU package's failure (CUDA libraries missing) is named by the libraries it could not load.</summary>
    [TestMethod]
    public void CudaMessage_NamesTheLibrariesTheGpuPackageCouldNotLoad()
    {
        var failure = new DllNotFoundException("[ErrorCode:RuntimeException] /x/libonnxruntime_providers_cuda.so: Failed to load library " +
            "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory");
        var text = OnnxSession.CudaUnavailableMessage(1, failure, fallback: false);
        StringAssert.StartsWith(text, "CUDA execution provider (device 1) is unavailable: libcublasLt.so.13 could not be loaded");
        StringAssert.Contains(text, "CUDA 13");
        StringAssert.EndsWith(text, "CPU fallback is disabled.");
    }
}

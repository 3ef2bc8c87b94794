using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MLNetExt.MLNet;
using MLNetExt.Pretrained;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Training;

namespace MLNetExt.Tests.Pretrained;

/// <summary>A loopback HTTP server for weights: files by URL path, byte ranges, and the faults a real download meets
/// (a body cut short, 404, a redirect, a slow transfer). Records every request.</summary>
internal sealed class WeightsServer : IDisposable
{
    readonly HttpListener _listener = new();
    readonly Thread _thread;
    public Dictionary<string, byte[]> Files { get; } = new();
    public Dictionary<string, string> Redirects { get; } = new();
    public List<(string Path, string? Range)> Requests { get; } = [];
    /// <summary>Bytes sent before the connection is dropped, per request number (0-based); absent: the whole body.</summary>
    public Func<int, long?> CutAt { get; set; } = _ => null;
    public TimeSpan ChunkDelay { get; set; }
    public string Root { get; }

    public WeightsServer()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Root = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Root + "/");
        _listener.Start();
        _thread = new Thread(Serve) { IsBackground = true };
        _thread.Start();
    }

    void Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = _listener.GetContext(); }
            catch (Exception) { return; }
            ThreadPool.QueueUserWorkItem(_ => Answer(ctx));
        }
    }

    void Answer(HttpListenerContext ctx)
    {
        var path = ctx.Request.Url!.AbsolutePath;
        int number;
        lock (Requests)
        {
            number = Requests.Count;
            Requests.Add((path, ctx.Request.Headers["Range"]));
        }
        var response = ctx.Response;
        try
        {
            if (Redirects.TryGetValue(path, out var target))
            {
                response.StatusCode = 302;
                response.RedirectLocation = Root + target;
                response.Close();
                return;
            }
            if (!Files.TryGetValue(path, out var data))
            {
                response.StatusCode = 404;
                response.Close();
                return;
            }
            long start = 0;
            if (ctx.Request.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
            {
                start = long.Parse(range[6..].TrimEnd('-'));
                response.StatusCode = 206;
                response.AddHeader("Content-Range", $"bytes {start}-{data.Length - 1}/{data.Length}");
            }
            response.ContentLength64 = data.Length - start;
            long end = CutAt(number) is long cut ? Math.Min(data.Length, start + cut) : data.Length;
            for (long at = start; at < end; at += 1 << 20)
            {
                response.OutputStream.Write(data, (int)at, (int)Math.Min(1 << 20, end - at));
                if (ChunkDelay > TimeSpan.Zero) Thread.Sleep(ChunkDelay);
            }
            if (end < data.Length) response.Abort();
            else response.Close();
        }
        catch (Exception) { try { response.Abort(); } catch (Exception) { } }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
    }
}

/// <summary>Pretrained weights by name against a loopback server that serves files the tests make under the official
/// URL paths (MLNETEXT_WEIGHTS_MIRROR): download, cache hit, resume, truncation, 404, redirect, hash and structure
/// checks, offline mode, two processes at once, and the C# option.</summary>
[TestClass]
[DoNotParallelize]
public sealed class PretrainedWeightsTests
{
    static byte[] b1 = null!, transx = null!;
    WeightsServer server = null!;
    DirectoryInfo cache = null!;
    static readonly string[] Variables = ["MLNETEXT_CACHE", "MLNETEXT_WEIGHTS_MIRROR", "MLNETEXT_OFFLINE", "MLNETEXT_WEIGHTS_CHECK"];

    /// <summary>Structurally valid weights (the variant's own initialisation) written as safetensors, which the loaders
    /// accept under any file name.</summary>
    static byte[] WeightsOf(string variant)
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create(variant);
        var file = Path.GetTempFileName();
        try
        {
            SafeTensors.Save(file, model.StateDict());
            return File.ReadAllBytes(file);
        }
        finally { File.Delete(file); }
    }

    [ClassInitialize]
    public static void Init(TestContext _)
    {
        b1 = WeightsOf("mixformer_b1");
        transx = WeightsOf("transxnet_t");
    }

    [TestInitialize]
    public void Start()
    {
        server = new WeightsServer();
        cache = Directory.CreateTempSubdirectory("mlnetext-cache-");
        Environment.SetEnvironmentVariable("MLNETEXT_CACHE", cache.FullName);
        Environment.SetEnvironmentVariable("MLNETEXT_WEIGHTS_MIRROR", server.Root);
        PretrainedWeights.RetryDelay = TimeSpan.Zero;
        PretrainedWeights.Attempts = 3;
    }

    [TestCleanup]
    public void Stop()
    {
        foreach (var v in Variables) Environment.SetEnvironmentVariable(v, null);
        PretrainedWeights.RetryDelay = TimeSpan.FromSeconds(1);
        PretrainedWeights.Attempts = 4;
        server.Dispose();
        cache.Delete(recursive: true);
    }

    static string PathOf(string tag) => new Uri(PretrainedCatalog.Find(tag).Url).AbsolutePath;

    [TestMethod]
    public void Catalogue_FindsByTagOrVariant_AndNamesWhatExists()
    {
        Assert.AreEqual("smt_t.in1k", PretrainedCatalog.Find("smt_t").Tag);
        Assert.AreEqual("https://github.com/AFeng-x/SMT/releases/download/v1.0.0/smt_large_22k_384_ft.pth", PretrainedCatalog.Find("smt_l.in22k_ft_in1k_384").Url);
        Assert.AreEqual(384, PretrainedCatalog.Find("transnext_base.in1k_384").Resolution);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => PretrainedCatalog.Find("mixformer_b0")).Message, "has no official pretrained weights");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => PretrainedCatalog.Find("smt_l.in1k")).Message, "smt_l.in22k_ft_in1k");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => PretrainedCatalog.Find("smt_tt")).Message, "did you mean");
        foreach (var c in PretrainedCatalog.All)
        {
            Assert.IsTrue(Backbones.Variants.Any(v => v.Name == c.Variant), c.Tag);
            StringAssert.StartsWith(c.Tag, c.Variant + ".");
            StringAssert.StartsWith(c.Url, "https://");
        }
        Assert.AreEqual($"{server.Root}/LMMMEng/TransXNet/releases/download/v1.0/transx-t.pth.tar", PretrainedWeights.SourceUrl(PretrainedCatalog.Find("transxnet_t")),
            "the mirror replaces scheme and host, keeps the path");
    }

    [TestMethod]
    public void Download_IsCached_AndTheNextFetchMakesNoRequest()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        var progress = new List<DownloadProgress>();
        var path = PretrainedWeights.Fetch("mixformer_b1", progress.Add);
        Assert.AreEqual(Path.Combine(cache.FullName, "weights", "MixFormer_B1_pretrained.pdparams"), path);
        CollectionAssert.AreEqual(b1, File.ReadAllBytes(path));
        Assert.AreEqual(b1.Length, progress[^1].Received);
        Assert.AreEqual(b1.Length, progress[^1].Total);
        Assert.HasCount(1, server.Requests);
        Assert.AreEqual(path, PretrainedWeights.Fetch("mixformer_b1.in1k"));
        Assert.HasCount(1, server.Requests, "a cache hit makes no request");
        Assert.IsFalse(File.Exists(path + ".part"));
    }

    [TestMethod]
    public void InterruptedTransfer_IsResumedWithARangeRequest()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        long half = b1.Length / 2;
        server.CutAt = n => n == 0 ? half : null;
        var warnings = new List<string>();
        var path = PretrainedWeights.Fetch("mixformer_b1", warn: warnings.Add);
        CollectionAssert.AreEqual(b1, File.ReadAllBytes(path));
        Assert.HasCount(2, server.Requests);
        Assert.IsNull(server.Requests[0].Range);
        Assert.AreEqual($"bytes={half}-", server.Requests[1].Range, "the second request asks for the rest only");
        Assert.IsTrue(warnings.Any(w => w.Contains("retrying")), string.Join("\n", warnings));
    }

    [TestMethod]
    public void TruncatedBody_IsNeverCachedAsComplete()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        server.CutAt = _ => 1000;
        var e = Assert.ThrowsExactly<WeightsDownloadException>(() => PretrainedWeights.Fetch("mixformer_b1", warn: _ => { }));
        StringAssert.Contains(e.Message, "after 3 attempt(s)");
        Assert.IsFalse(File.Exists(PretrainedWeights.CachePath(PretrainedCatalog.Find("mixformer_b1"))), "nothing in the cache");
        Assert.AreEqual(3000, new FileInfo(PretrainedWeights.CachePath(PretrainedCatalog.Find("mixformer_b1")) + ".part").Length,
            "the part received is kept for the next attempt to resume");
    }

    [TestMethod]
    public void NotFound_NamesTheUrlAndTheWeights_WithoutRetrying()
    {
        var e = Assert.ThrowsExactly<WeightsDownloadException>(() => PretrainedWeights.Fetch("smt_s", warn: _ => { }));
        StringAssert.Contains(e.Message, $"{server.Root}/AFeng-x/SMT/releases/download/v1.0.0/smt_small.pth answered 404");
        StringAssert.Contains(e.Message, "smt_s.in1k");
        Assert.HasCount(1, server.Requests);
    }

    [TestMethod]
    public void Redirects_AreFollowed_AsGitHubReleaseAssetsNeedThem()
    {
        server.Redirects[PathOf("mixformer_b1")] = "/objects/asset-123";
        server.Files["/objects/asset-123"] = b1;
        CollectionAssert.AreEqual(b1, File.ReadAllBytes(PretrainedWeights.Fetch("mixformer_b1")));
    }

    [TestMethod]
    public void HashMismatch_IsAnError_OrAWarningInStructureMode()
    {
        server.Files[PathOf("transxnet_t")] = transx;   // not the official bytes: the published SHA-256 differs
        var e = Assert.ThrowsExactly<WeightsDownloadException>(() => PretrainedWeights.Fetch("transxnet_t", warn: _ => { }));
        StringAssert.Contains(e.Message, "is not the official transxnet_t.in1k checkpoint: its SHA-256 is");
        Assert.IsFalse(File.Exists(PretrainedWeights.CachePath(PretrainedCatalog.Find("transxnet_t"))));

        Environment.SetEnvironmentVariable("MLNETEXT_WEIGHTS_CHECK", "structure");
        var warnings = new List<string>();
        var path = PretrainedWeights.Fetch("transxnet_t", warn: warnings.Add);
        Assert.IsTrue(File.Exists(path));
        Assert.IsTrue(warnings.Any(w => w.Contains("accepted by structure")), string.Join("\n", warnings));
    }

    [TestMethod]
    public void WrongFile_FailsTheStructureCheck_AndIsNotCached()
    {
        server.Files[PathOf("mixformer_b2")] = b1;   // b1 weights where b2's are expected
        var e = Assert.ThrowsExactly<WeightsDownloadException>(() => PretrainedWeights.Fetch("mixformer_b2", warn: _ => { }));
        StringAssert.Contains(e.Message, "does not load as mixformer_b2");
        Assert.IsFalse(File.Exists(PretrainedWeights.CachePath(PretrainedCatalog.Find("mixformer_b2"))));
        Assert.IsFalse(File.Exists(PretrainedWeights.CachePath(PretrainedCatalog.Find("mixformer_b2")) + ".part"));
    }

    [TestMethod]
    public void OfflineMode_UsesTheCacheOnly_AndNamesTheFileToPlace()
    {
        Environment.SetEnvironmentVariable("MLNETEXT_OFFLINE", "1");
        var e = Assert.ThrowsExactly<WeightsDownloadException>(() => PretrainedWeights.Fetch("smt_t"));
        StringAssert.Contains(e.Message, "place smt_tiny.pth");
        StringAssert.Contains(e.Message, Path.Combine(cache.FullName, "weights", "smt_tiny.pth"));
        Assert.IsEmpty(server.Requests);
        Directory.CreateDirectory(Path.Combine(cache.FullName, "weights"));
        File.WriteAllBytes(Path.Combine(cache.FullName, "weights", "MixFormer_B1_pretrained.pdparams"), b1);
        Assert.IsTrue(File.Exists(PretrainedWeights.Fetch("mixformer_b1")), "a cached file is used offline");
    }

    /// <summary>Two CLI processes ask for the same weights at once: one downloads, the other waits on the lock and uses
    /// the cached file; the server sees one transfer.</summary>
    [TestMethod, TestCategory("Slow")]
    public void TwoProcesses_DownloadTheFileOnce()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        server.ChunkDelay = TimeSpan.FromMilliseconds(100);
        Process Start()
        {
            var psi = new ProcessStartInfo("dotnet", $"\"{Path.Combine(AppContext.BaseDirectory, "MLNetExt.Cli.dll")}\" keys --pretrained mixformer_b1.in1k")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            };
            psi.Environment["MLNETEXT_CACHE"] = cache.FullName;
            psi.Environment["MLNETEXT_WEIGHTS_MIRROR"] = server.Root;
            return Process.Start(psi)!;
        }
        using var a = Start();
        using var b = Start();
        var outputs = new[] { a, b }.Select(p => (Out: p.StandardOutput.ReadToEndAsync(), Err: p.StandardError.ReadToEndAsync())).ToArray();
        Assert.IsTrue(a.WaitForExit(120_000) && b.WaitForExit(120_000), "both finish");
        Assert.AreEqual(0, a.ExitCode, outputs[0].Err.Result);
        Assert.AreEqual(0, b.ExitCode, outputs[1].Err.Result);
        foreach (var o in outputs) StringAssert.Contains(o.Out.Result, "patch_embed");
        Assert.HasCount(1, server.Requests, "one transfer for two processes");
        Assert.IsTrue(outputs.Any(o => o.Err.Result.Contains("another process is downloading")), outputs[0].Err.Result + outputs[1].Err.Result);
    }

    /// <summary>The CLI: export --pretrained (no value: the variant's default) downloads, loads and exports; a 384 TransNeXt
    /// tag becomes a custom build with img_size 384; --weights with --pretrained is refused.</summary>
    [TestMethod, TestCategory("Slow")]
    public void Cli_Pretrained_Export_AndTheModelItLoadsInto()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        var onnx = Path.Combine(cache.FullName, "b1.onnx");
        var psi = new ProcessStartInfo("dotnet", $"\"{Path.Combine(AppContext.BaseDirectory, "MLNetExt.Cli.dll")}\" export --variant mixformer_b1 --pretrained --image-size 64 --output \"{onnx}\"")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["MLNETEXT_CACHE"] = cache.FullName;
        psi.Environment["MLNETEXT_WEIGHTS_MIRROR"] = server.Root;
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        Assert.IsTrue(p.WaitForExit(300_000));
        Assert.AreEqual(0, p.ExitCode, output.Result + error.Result);
        Assert.IsTrue(File.Exists(onnx));
        StringAssert.Contains(error.Result, "downloading MixFormer_B1_pretrained.pdparams");
        Assert.IsFalse(output.Result.Contains("no --weights given"), output.Result);

        var file = PretrainedWeights.CachePath(PretrainedCatalog.Find("transnext_base.in1k_384"));
        File.WriteAllBytes(file, [0]);
        var (choice, weights) = MLNetExt.Cli.PretrainedOption.Resolve(new MLNetExt.Cli.ModelOptions.Choice("transnext_base", null, null), null, "transnext_base.in1k_384", TextWriter.Null);
        Assert.AreEqual(file, weights!.FullName);
        Assert.AreEqual("transnext", choice.VariantOrFamily);
        Assert.AreEqual(384, (int)choice.CustomKwargs!["img_size"]!);
        var both = Assert.ThrowsExactly<ArgumentException>(() =>
            MLNetExt.Cli.PretrainedOption.Resolve(new MLNetExt.Cli.ModelOptions.Choice("smt_t", null, null), new FileInfo(file), "default", TextWriter.Null));
        StringAssert.Contains(both.Message, "not both");
    }

    /// <summary>samples/FineTuneAndServe with its documented command line: official weights fetched by name, fine-tuned,
    /// the output folder written, and model.zip serving every validation image through ML.NET.</summary>
    [TestMethod, TestCategory("Slow")]
    public void FineTuneAndServeSample_FetchesFineTunesWritesAndServes()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        using var files = new MLNetExt.Tests.MLNet.ColourFiles(trainPerClass: 6, valPerClass: 2);
        var output = Path.Combine(files.Dir.FullName, "out");
        var sample = MLNetExt.Tests.Samples.MLNetSamplesTests.Built("FineTuneAndServe");
        var (code, text) = ChildProcess.Run("dotnet", $"\"{sample}\" --data \"{Path.Combine(files.Dir.FullName, "train")}\" " +
            $"--val \"{Path.Combine(files.Dir.FullName, "val")}\" --variant mixformer_b1 --epochs 1 --image-size 32 --output \"{output}\"",
            files.Dir.FullName, 300, new Dictionary<string, string?> { ["MLNETEXT_CACHE"] = cache.FullName, ["MLNETEXT_WEIGHTS_MIRROR"] = server.Root });
        Assert.AreEqual(0, code, text);
        Assert.AreEqual(1, server.Requests.Count(r => r.Path == PathOf("mixformer_b1")), "downloaded once");
        StringAssert.Contains(text, "starts fresh for 3 classes");
        StringAssert.Contains(text, "epoch 1: train loss");
        StringAssert.Contains(text, $"served: ");
        StringAssert.Contains(text, $"of {files.Val.Count} images predicted right through ML.NET");
        foreach (var f in new[] { ModelFolder.ModelFileName, ModelFolder.OnnxFileName, ModelFolder.MLNetFileName, ModelFolder.MetricsFileName,
                     ModelFolder.ReportFileName, ModelFolder.ConsumptionCodeFileName })
            Assert.IsTrue(File.Exists(Path.Combine(output, f)), f);
        Assert.HasCount(files.Val.Count, text.Split('\n').Where(l => l.Split('\t').Length == 4));
    }

    /// <summary>The ML.NET featurizer takes weights by name: fetched once, opened by the checkpoint's own loader.</summary>
    [TestMethod, TestCategory("Slow")]
    public void Featurizer_Pretrained_FetchesAndExports()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        var featurizer = new Microsoft.ML.MLContext().Transforms.BackboneFeaturizeImage("F", "mixformer_b1", pretrained: "default", imageSize: 64);
        using (var model = Backbones.Create("mixformer_b1")) Assert.AreEqual(model.NumFeatures, featurizer.FeatureSize);
        Assert.HasCount(1, server.Requests);
        var both = Assert.ThrowsExactly<ArgumentException>(() =>
            new Microsoft.ML.MLContext().Transforms.BackboneFeaturizeImage("F", "mixformer_b1", "w.pth", pretrained: "default"));
        StringAssert.Contains(both.Message, "not both");
    }

    [TestMethod]
    public void Options_Pretrained_ResolvesToTheCachedFile_AndTheWeightsResolution()
    {
        server.Files[PathOf("mixformer_b1")] = b1;
        var messages = new List<string>();
        var o = ImageClassificationEstimator.WithPretrained(new ImageClassificationOptions
        {
            Model = "mixformer_b1", Pretrained = "default", Progress = p => { if (p.Message is { } m) messages.Add(m); },
        }, default);
        Assert.AreEqual(PretrainedWeights.CachePath(PretrainedCatalog.Find("mixformer_b1")), o.WeightsPath);
        Assert.AreEqual(224, o.ImageSize);
        Assert.IsTrue(messages.Any(m => m.StartsWith("Pretrained weights mixformer_b1.in1k", StringComparison.Ordinal)), string.Join("\n", messages));
        // weights built for another size of the variant become a custom configuration with the checkpoint's overrides
        var file = PretrainedWeights.CachePath(PretrainedCatalog.Find("transnext_small.in1k_384"));
        File.WriteAllBytes(file, [0]);   // already cached: used as is
        var at384 = ImageClassificationEstimator.WithPretrained(new ImageClassificationOptions { Model = "transnext_small", Pretrained = "transnext_small.in1k_384" }, default);
        Assert.AreEqual(file, at384.WeightsPath);
        Assert.AreEqual(384, at384.ImageSize);
        Assert.AreEqual("transnext", at384.Model);
        Assert.AreEqual(384, (int)at384.CustomKwargs!["img_size"]!);
        Assert.AreEqual(224, (int)at384.CustomKwargs!["pretrain_size"]!);
        CollectionAssert.AreEqual(new[] { 5, 5, 22, 5 }, at384.CustomKwargs!["depths"]!.AsArray().Select(d => (int)d!).ToArray(), "the variant's own arguments kept");

        var wrong = Assert.ThrowsExactly<ArgumentException>(() =>
            ImageClassificationEstimator.WithPretrained(new ImageClassificationOptions { Model = "smt_t", Pretrained = "mixformer_b1.in1k" }, default));
        StringAssert.Contains(wrong.Message, "mixformer_b1.in1k are mixformer_b1 weights, not smt_t's");
    }
}

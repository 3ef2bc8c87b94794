using System.Diagnostics;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.Tests.MLNet;
using MLNetExt.Transforms;
using MLNetExt.Inference;

namespace MLNetExt.Tests.Export;

/// <summary>The generated consumption code compiles against the real Microsoft.ML packages (Roslyn, in process), and the
/// generated console project builds and runs as its own process — referencing only the four ML.NET/ONNX Runtime
/// packages, not MLNetExt — predicting what MLNetExt predicts.</summary>
[TestClass]
public sealed class ConsumptionCodeTests
{
    // Labels that break naive code generation: quotes, backslashes, a line break, a tab, braces (interpolation),
    // comment and XML markers, non-ASCII (accents, CJK, an emoji outside the BMP), a C# keyword.
    static readonly string[] AwkwardLabels =
    {
        "say \"cheese\"", @"C:\path\n", "line\nbreak", "tab\there", "{braces} {0}", "*/ // <b>&amp;</b>", "naïve café",
        "猫", "🐝 bee", "class",
    };

    static ConsumptionCodeOptions Options(IReadOnlyList<string> labels, string ns = "Acme.Vision.Models", string cls = "BeeClassifier") => new()
    {
        ModelFileName = "my \"model\".zip",
        Labels = labels,
        InputHeight = 112,
        InputWidth = 112,
        CropPct = 0.9,
        Namespace = ns,
        ClassName = cls,
        LibraryVersion = "9.9.9-test\n// not a comment break",
    };

    /// <summary>Every assembly of the running framework plus Microsoft.ML's (not MLNetExt: the code must not need it).</summary>
    static List<MetadataReference> References()
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.Length > 0 && !Path.GetFileName(p).StartsWith("MLNetExt", StringComparison.Ordinal)).ToList();
        foreach (var t in new[] { typeof(MLContext), typeof(Microsoft.ML.Data.VBuffer<>), typeof(Microsoft.ML.IDataView) })
            if (!paths.Contains(t.Assembly.Location)) paths.Add(t.Assembly.Location);
        return paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToList();
    }

    static (byte[]? Image, List<Diagnostic> Problems) Compile(string source)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        var compilation = CSharpCompilation.Create($"Generated{Guid.NewGuid():N}", [CSharpSyntaxTree.ParseText(source, parse)], References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        using var ms = new MemoryStream();
        var result = compilation.Emit(ms);
        var problems = result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();
        return (result.Success ? ms.ToArray() : null, problems);
    }

    static string Describe(IEnumerable<Diagnostic> problems, string source) =>
        string.Join("\n", problems.Select(d => $"{d}  [line: {source.Split('\n')[d.Location.GetLineSpan().StartLinePosition.Line].Trim()}]"));

    [TestMethod]
    public void GeneratedCode_CompilesAgainstMicrosoftML_WithoutWarnings_WithAwkwardLabelsAndNames()
    {
        var source = ConsumptionCode.Generate(Options(AwkwardLabels));
        var (image, problems) = Compile(source);
        Assert.IsNotNull(image, Describe(problems, source));
        Assert.HasCount(0, problems, Describe(problems, source));
        Assert.IsTrue(source.All(c => c < 128), "the file is pure ASCII (non-ASCII labels are \\u escapes)");
        Assert.IsFalse(source.Contains("using MLNetExt", StringComparison.Ordinal), "no MLNetExt dependency");

        // The labels survive exactly: read them back from the compiled class.
        var asm = AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(image!));
        var type = asm.GetType("Acme.Vision.Models.BeeClassifier", throwOnError: true)!;
        var labels = (IReadOnlyList<string>)type.GetField("Labels")!.GetValue(null)!;
        CollectionAssert.AreEqual(AwkwardLabels, labels.ToArray());
        StringAssert.EndsWith((string)type.GetProperty("MLNetModelPath")!.GetValue(null)!, "my \"model\".zip");
        foreach (var member in new[] { "PredictAllLabels", "GetSortedScoresWithLabels", "LoadModel" })
            Assert.IsNotNull(type.GetMethod(member), member);
        Assert.HasCount(4, type.GetMethods().Where(m => m.Name == "Predict"), "Predict takes a ModelInput, bytes, a stream or an MLImage");
        Assert.IsNotNull(type.GetField("PredictEngine"), "a lazily created PredictionEngine, as in Model Builder's code");
        StringAssert.Contains(source, "ResizeImages(IsoCrop, Center) to 124x124");
        StringAssert.Contains(source, "Microsoft.ML.OnnxRuntime 1.32.0");
    }

    /// <summary>The generated class predicts images in memory — encoded bytes, a stream, a decoded MLImage — exactly as
    /// from the file (the same ML.NET decode, the same chain from ResizeImages on), and refuses what is not an image,
    /// and a decompression bomb from its header, with the reason.</summary>
    [TestMethod]
    public void GeneratedCode_PredictsImagesInMemory_AsFromTheFile_AndRefusesBadBytes()
    {
        using var model = new ExportedClassifier();
        var source = ConsumptionCode.Generate(ConsumptionCodeOptions.FromOnnxModel(model.Onnx));
        var (image, problems) = Compile(source);
        Assert.IsNotNull(image, Describe(problems, source));
        var type = AssemblyLoadContext.Default.LoadFromStream(new MemoryStream(image!)).GetType("MLNetExtModel.ImageClassifier", throwOnError: true)!;
        type.GetProperty("MLNetModelPath")!.SetValue(null, model.Zip);
        var inputType = type.GetNestedType("ModelInput")!;
        MethodInfo Predict(Type parameter) => type.GetMethod("Predict", [parameter])!;
        float[] Scores(object? output) => (float[])output!.GetType().GetProperty("Score")!.GetValue(output)!;
        object? Call(Type parameter, object argument)
        {
            try { return Predict(parameter).Invoke(null, [argument]); }
            catch (TargetInvocationException e) { throw e.InnerException!; }
        }

        foreach (var path in new[] { model.Picture("wide.png", 260, 150, 8), model.Picture("tall.png", 90, 200, 9) })
        {
            var input = Activator.CreateInstance(inputType)!;
            inputType.GetProperty("ImagePath")!.SetValue(input, path);
            var fromFile = Scores(Call(inputType, input));
            var bytes = File.ReadAllBytes(path);
            CollectionAssert.AreEqual(fromFile, Scores(Call(typeof(byte[]), bytes)), "encoded bytes score as the file");
            CollectionAssert.AreEqual(fromFile, Scores(Call(typeof(Stream), new MemoryStream(bytes))), "a stream scores as the file");
            using var decoded = MLImage.CreateFromFile(path);
            CollectionAssert.AreEqual(fromFile, Scores(Call(typeof(MLImage), decoded)), "a decoded image scores as the file");
        }

        var empty = Assert.ThrowsExactly<InvalidDataException>(() => Call(typeof(byte[]), Array.Empty<byte>()));
        StringAssert.Contains(empty.Message, "empty");
        var html = Assert.ThrowsExactly<InvalidDataException>(() => Call(typeof(byte[]), "<html>not found</html>"u8.ToArray()));
        StringAssert.Contains(html.Message, "not an image ML.NET can decode");
        foreach (var length in new[] { 100, 400, 1200 })   // a JPEG cut short: refused or decoded in part, never another exception
        {
            var start = File.ReadAllBytes(Fixtures.Path("data/images/rgb.jpg"))[..length];
            try { Assert.HasCount(ExportedClassifier.Labels.Length, Scores(Call(typeof(byte[]), start))); }
            catch (InvalidDataException e) { StringAssert.Contains(e.Message, $"{length} bytes"); }
        }
        var bomb = Assert.ThrowsExactly<InvalidDataException>(() => Call(typeof(byte[]), MLNetExt.Tests.Data.HostileInputTests.PngBomb(60000, 60000)));
        StringAssert.Contains(bomb.Message, "60000x60000");
        StringAssert.Contains(bomb.Message, "MaxImagePixels");
    }

    [TestMethod]
    [DataRow("Namespace", "My-Models", "dot-separated C# identifiers")]
    [DataRow("Namespace", "A..B", "dot-separated C# identifiers")]
    [DataRow("ClassName", "class", "a C# identifier")]
    [DataRow("ClassName", "1Model", "a C# identifier")]
    public void InvalidNames_AreRejectedWithTheOptionNamed(string option, string value, string expected)
    {
        var o = option == "Namespace" ? Options(new[] { "a" }, ns: value) : Options(new[] { "a" }, cls: value);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ConsumptionCode.Generate(o));
        StringAssert.Contains(e.Message, option);
        StringAssert.Contains(e.Message, expected);
        StringAssert.Contains(e.Message, value);
    }

    [TestMethod]
    public void NoLabels_IsAnError()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => ConsumptionCode.Generate(Options(Array.Empty<string>())));
        StringAssert.Contains(e.Message, "Labels");
    }

    /// <summary>Train-side artefacts end to end: the exported model's model.zip, the generated file and console
    /// project; the project is built with the real packages and run as its own process on three images and a missing
    /// file. Its predictions equal ML.NET in this process, and MLNetExt's own scorer on the image that needs no
    /// resampling.</summary>
    [TestMethod, TestCategory("Slow")]
    public void GeneratedProject_BuildsAndRuns_AgainstTheRealPackages_AndAgreesWithMLNetExt()
    {
        using var model = new ExportedClassifier();
        var dir = model.Dir.FullName;
        var options = ConsumptionCodeOptions.FromOnnxModel(model.Onnx);
        Assert.AreEqual(112, options.InputHeight);
        Assert.AreEqual(0.9, options.CropPct, "transxnet's evaluation crop comes from the model's metadata");
        CollectionAssert.AreEqual(ExportedClassifier.Labels, options.Labels.ToArray());
        ConsumptionCode.Write(options, Path.Combine(dir, "ModelConsumption.cs"));
        var project = Path.Combine(dir, ConsumptionCode.ProjectFolder);
        ConsumptionCode.WriteProject(options, project);

        var build = ChildProcess.Run("dotnet", $"build \"{project}\" -c Release -nologo -v q -o \"{Path.Combine(dir, "bin")}\"", dir, 600);
        Assert.AreEqual(0, build.Code, build.Output);
        var images = new[] { model.Picture("exact.png", 124, 124, 7), model.Picture("wide.png", 260, 150, 8), model.Picture("tall.png", 90, 200, 9) };
        var missing = Path.Combine(dir, "missing.jpg");
        var run = ChildProcess.Run("dotnet", $"\"{Path.Combine(dir, "bin", "ConsoleApp.dll")}\" {string.Join(" ", images.Select(i => $"\"{i}\""))} \"{missing}\"", dir, 300);
        Assert.AreEqual(1, run.Code, "one file is missing: " + run.Output);
        StringAssert.Contains(run.Output, "missing.jpg: no such file");
        var lines = run.Output.Split('\n').Where(l => l.Split('\t').Length == 5).Select(l => l.Split('\t')).ToList();
        Assert.HasCount(3, lines, run.Output);
        var deps = File.ReadAllText(Path.Combine(dir, "bin", "ConsoleApp.deps.json"));
        Assert.IsFalse(deps.Contains("MLNetExt", StringComparison.Ordinal), "the console project does not reference MLNetExt");

        // The same model in this process through ML.NET, and MLNetExt's own scorer.
        var ml = new MLContext();
        var loaded = MLNetModelFile.Load(ml, model.Zip, out _);
        var scores = loaded.Transform(ml.Data.LoadFromEnumerable(images.Select(i => new ImageRow { ImagePath = i }).ToList()))
            .GetColumn<float[]>("Score").ToArray();
        using var scorer = new OnnxImageScorer(model.Onnx);
        var ours = scorer.ScoreFiles(images);
        for (int i = 0; i < images.Length; i++)
        {
            Assert.AreEqual(images[i], lines[i][0]);
            int best = Array.IndexOf(scores[i], scores[i].Max());
            Assert.AreEqual(ExportedClassifier.Labels[best], lines[i][1], $"image {i}: the generated program and ML.NET agree");
            var topScore = double.Parse(lines[i][2].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            Assert.AreEqual(scores[i][best], topScore, 1e-6, $"image {i}: top probability");
        }
        var oursBest = Array.IndexOf(ours[0].Scores!, ours[0].Scores!.Max());
        Assert.AreEqual(ExportedClassifier.Labels[oursBest], lines[0][1], "no resampling: MLNetExt and the generated program agree");
        Assert.AreEqual(ours[0].Scores![oursBest], double.Parse(lines[0][2].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), 1e-5);
    }

    /// <summary>The generated web API builds against the real packages, runs as its own process and serves what ML.NET
    /// predicts in this process: an image as the request body or as a form file, the K best classes, the class list;
    /// a non-image, an empty request, a decompression bomb and an oversized request get a problem-details answer with
    /// the reason, and the service keeps answering.</summary>
    [TestMethod, TestCategory("Slow")]
    public async Task GeneratedWebApi_BuildsAndServes_AsMLNetPredicts_AndAnswersBadRequestsWithTheReason()
    {
        using var model = new ExportedClassifier();
        var dir = model.Dir.FullName;
        var options = ConsumptionCodeOptions.FromOnnxModel(model.Onnx);
        ConsumptionCode.Write(options, Path.Combine(dir, "ModelConsumption.cs"));
        var project = Path.Combine(dir, ConsumptionCode.WebApiFolder);
        ConsumptionCode.WriteWebApi(options, project);
        var bin = Path.Combine(dir, "webbin");
        var build = ChildProcess.Run("dotnet", $"build \"{project}\" -c Release -nologo -v q -o \"{bin}\"", dir, 600);
        Assert.AreEqual(0, build.Code, build.Output);
        Assert.IsFalse(File.ReadAllText(Path.Combine(bin, "WebApi.deps.json")).Contains("MLNetExt", StringComparison.Ordinal),
            "the web API does not reference MLNetExt");

        var psi = new ProcessStartInfo("dotnet", $"\"{Path.Combine(bin, "WebApi.dll")}\" --urls http://127.0.0.1:0")
        {
            WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var server = Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        server.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
            var at = e.Data.IndexOf("Now listening on: ", StringComparison.Ordinal);
            if (at >= 0) listening.TrySetResult(new Uri(e.Data[(at + "Now listening on: ".Length)..].Trim()));
        };
        server.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            var started = await Task.WhenAny(listening.Task, server.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(120)));
            Assert.AreSame(listening.Task, started, $"the web API did not start listening (exited: {server.HasExited}):\n{log}");
            using var http = new HttpClient { BaseAddress = listening.Task.Result, Timeout = TimeSpan.FromSeconds(120) };

            var labels = System.Text.Json.JsonSerializer.Deserialize<string[]>(await http.GetStringAsync("/labels"));
            CollectionAssert.AreEqual(ExportedClassifier.Labels, labels);

            var picture = model.Picture("wide.png", 260, 150, 8);
            var ml = new MLContext();
            var expected = MLNetModelFile.Load(ml, model.Zip, out _).Transform(ml.Data.LoadFromEnumerable(new[] { new ImageRow { ImagePath = picture } }))
                .GetColumn<float[]>("Score").Single();
            var bytes = File.ReadAllBytes(picture);

            async Task<System.Text.Json.JsonElement> Answer(HttpResponseMessage response, System.Net.HttpStatusCode status)
            {
                var body = await response.Content.ReadAsStringAsync();
                Assert.AreEqual(status, response.StatusCode, body);
                return System.Text.Json.JsonDocument.Parse(body).RootElement;
            }
            void CheckPrediction(System.Text.Json.JsonElement answer, int count)
            {
                var scores = answer.GetProperty("scores").EnumerateArray().ToList();
                Assert.HasCount(count, scores);
                int best = Array.IndexOf(expected, expected.Max());
                Assert.AreEqual(ExportedClassifier.Labels[best], answer.GetProperty("predictedLabel").GetString());
                float previous = float.PositiveInfinity;
                foreach (var s in scores)
                {
                    int index = Array.IndexOf(ExportedClassifier.Labels, s.GetProperty("label").GetString());
                    float score = s.GetProperty("score").GetSingle();
                    Assert.AreEqual(expected[index], score, $"the score of {ExportedClassifier.Labels[index]} is ML.NET's");
                    Assert.IsLessThanOrEqualTo(previous, score, "best first");
                    previous = score;
                }
            }

            CheckPrediction(await Answer(await http.PostAsync("/predict", new ByteArrayContent(bytes)), System.Net.HttpStatusCode.OK), 10);
            foreach (var contentType in new[] { "image/png", "application/x-www-form-urlencoded" })   // the latter: curl --data-binary
            {
                var content = new ByteArrayContent(bytes);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
                CheckPrediction(await Answer(await http.PostAsync("/predict", content), System.Net.HttpStatusCode.OK), 10);
            }
            using (var form = new MultipartFormDataContent { { new ByteArrayContent(bytes), "image", "wide.png" } })
                CheckPrediction(await Answer(await http.PostAsync("/predict?top=3", form), System.Net.HttpStatusCode.OK), 3);

            async Task BadRequest(HttpContent content, string because, System.Net.HttpStatusCode status = System.Net.HttpStatusCode.BadRequest)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/predict") { Content = content };
                request.Headers.ExpectContinue = true;   // an oversized body is refused before it is sent
                var answer = await Answer(await http.SendAsync(request), status);
                StringAssert.Contains(answer.GetProperty("detail").GetString(), because);
            }
            await BadRequest(new ByteArrayContent("<html>not found</html>"u8.ToArray()), "not an image ML.NET can decode");
            await BadRequest(new ByteArrayContent([]), "has no image");
            await BadRequest(new MultipartFormDataContent { { new StringContent("x"), "note" } }, "form has no file");
            await BadRequest(new ByteArrayContent(MLNetExt.Tests.Data.HostileInputTests.PngBomb(60000, 60000)), "60000x60000");
            await BadRequest(new ByteArrayContent(new byte[ConsumptionCode.WebApiMaxRequestBytes + 1]), "larger than", System.Net.HttpStatusCode.RequestEntityTooLarge);
            var zeroTop = await http.PostAsync("/predict?top=0", new ByteArrayContent(bytes));
            Assert.AreEqual(System.Net.HttpStatusCode.BadRequest, zeroTop.StatusCode);
            // minScore: "sure" says whether the best score reaches it; outside [0, 1] is a bad request
            Assert.IsFalse((await Answer(await http.PostAsync("/predict", new ByteArrayContent(bytes)), System.Net.HttpStatusCode.OK)).TryGetProperty("sure", out _));
            Assert.IsTrue((await Answer(await http.PostAsync("/predict?minScore=0", new ByteArrayContent(bytes)), System.Net.HttpStatusCode.OK)).GetProperty("sure").GetBoolean());
            var over = await Answer(await http.PostAsync("/predict?minScore=1", new ByteArrayContent(bytes)), System.Net.HttpStatusCode.OK);
            Assert.AreEqual(expected.Max() >= 1, over.GetProperty("sure").GetBoolean());
            Assert.AreEqual(10, over.GetProperty("scores").GetArrayLength(), "the scores still given");
            var badMin = await Answer(await http.PostAsync("/predict?minScore=1.5", new ByteArrayContent(bytes)), System.Net.HttpStatusCode.BadRequest);
            StringAssert.Contains(badMin.GetProperty("detail").GetString(), "minScore must lie in [0, 1]; found 1.5");

            CheckPrediction(await Answer(await http.PostAsync("/predict", new ByteArrayContent(bytes)), System.Net.HttpStatusCode.OK), 10);
            Assert.IsFalse(server.HasExited, "the service keeps running after bad requests");
        }
        finally
        {
            if (!server.HasExited) server.Kill(entireProcessTree: true);
            server.WaitForExit(10_000);
        }
    }
}

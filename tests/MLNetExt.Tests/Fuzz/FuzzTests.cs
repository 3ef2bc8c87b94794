using System.Diagnostics;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.OnnxRuntime;
using MLNetExt.Serialization;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Fuzz;

/// <summary>
/// A seeded mutation fuzzer over the readers that parse untrusted bytes: torch.save zips and pickles (including
/// PaddlePaddle's .pdparams), safetensors, image headers and decoders, and the ONNX metadata an exported model carries.
/// Each input from the committed fixtures (the corpus) is mutated (bit flips, interesting integers, deletions,
/// duplications, truncation, random insertions) and read; a finding is any exception other than the reader's
/// documented one, or a read that takes longer than the time limit (a hang). In the suite the run is short (a fixed
/// number of cases per target, seconds); for release checks run it longer:
/// <c>MLNETEXT_FUZZ_SECONDS=600 MLNETEXT_FUZZ_SEED=N ./test.sh --filter FullyQualifiedName~Fuzz</c> (seconds per target).
/// Every case is reproducible from the seed, target and case number printed with a finding.
/// </summary>
[TestClass]
public sealed class FuzzTests
{
    public TestContext TestContext { get; set; } = null!;

    static readonly long[] Interesting = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, int.MaxValue, int.MinValue, uint.MaxValue,
        long.MaxValue, 1L << 32, 1L << 40, 60000];

    static byte[] Mutate(byte[] seed, Random rng)
    {
        var b = new List<byte>(seed);
        int n = 1 + rng.Next(4);
        for (int k = 0; k < n && b.Count > 0; k++)
        {
            int at = rng.Next(b.Count);
            switch (rng.Next(7))
            {
                case 0: b[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: b[at] = (byte)Interesting[rng.Next(6)]; break;
                case 2:
                {
                    long v = Interesting[rng.Next(Interesting.Length)];
                    int width = new[] { 2, 4, 8 }[rng.Next(3)];
                    for (int i = 0; i < width && at + i < b.Count; i++) b[at + i] = (byte)(v >> (8 * i));
                    break;
                }
                case 3: b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.Next(64))); break;
                case 4:
                {
                    int len = Math.Min(b.Count - at, 1 + rng.Next(64));
                    b.InsertRange(rng.Next(b.Count), b.GetRange(at, len));
                    break;
                }
                case 5: b.RemoveRange(at, b.Count - at); break; // truncate
                default:
                {
                    var junk = new byte[1 + rng.Next(16)];
                    rng.NextBytes(junk);
                    b.InsertRange(at, junk);
                    break;
                }
            }
        }
        return b.ToArray();
    }

    sealed record Target(string Name, IReadOnlyList<(string Name, byte[] Bytes)> Corpus, Action<byte[], string> Read, Func<Exception, bool> Expected);

    static IReadOnlyList<(string, byte[])> Files(string folder, params string[] patterns) =>
        patterns.SelectMany(p => Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "fixtures", folder), p)).Where(f => new FileInfo(f).Length < 100_000)
            .Order(StringComparer.Ordinal).Select(f => (Path.GetFileName(f), File.ReadAllBytes(f))).ToList();

    static Target[] Targets(string scratch)
    {
        string Write(byte[] bytes, string name)
        {
            var path = Path.Combine(scratch, name);
            File.WriteAllBytes(path, bytes);
            return path;
        }
        // metadata of a real export: values mutated as text
        var onnxMeta = new Dictionary<string, string>
        {
            ["mlnetext.input_name"] = "image", ["mlnetext.preprocess"] = "mlnet", ["mlnetext.input_size"] = "3,73,73",
            ["mlnetext.crop_pct"] = "0.875", ["mlnetext.crop_in_graph"] = "true", ["mlnetext.crop_size"] = "64,64",
            ["mlnetext.mean"] = "0.485,0.456,0.406", ["mlnetext.std"] = "0.229,0.224,0.225", ["mlnetext.interpolation"] = "bicubic",
            ["mlnetext.num_classes"] = "3", ["mlnetext.labels"] = "ant\nbee\nwasp", ["mlnetext.resize_mode"] = "shorter-side",
        };
        var inputs = new[] { new OnnxNodeInfo("image", OnnxValueKind.Tensor, OnnxElementType.Float32, [-1, 3, 73, 73], ["N", "", "", ""]) };
        var metaCorpus = onnxMeta.Keys.Select(k => (k, System.Text.Encoding.UTF8.GetBytes(onnxMeta[k]))).ToList();
        return
        [
            new("torch.save zip / pickle", Files("checkpoints", "*.pth", "*.pt", "*.tar").Concat(Files("mixformer/pdparams", "*.pdparams")).ToList(),
                (b, n) => { using var c = TorchCheckpoint.Load(Write(b, n)); using var sd = c.ToStateDict(); },
                e => e is IOException),
            new("pickle interpreter", Files("checkpoints", "*.pkl").Concat(Files("mixformer/pdparams", "*.pkl")).ToList(),
                (b, n) => new Unpickler(b, n, "data.pkl").Load(),
                e => e is CheckpointException),
            new("safetensors", Files("nn", "*.safetensors").Concat(Files("checkpoints", "*.safetensors")).ToList(),
                (b, n) => { using var sd = SafeTensors.Load(Write(b, n)); },
                e => e is IOException),
            new("image header and decode", Files("data/images", "*").Where(f => !f.Item1.EndsWith(".bin")).ToList(),
                (b, n) => { try { ImageDecoder.ReadInfo(b); } catch (ImageDecodeException) { } ImageDecoder.Decode(b, 16, 16); },
                e => ImageDecodeException.IsImageProblem(e)),
            new("ONNX metadata", metaCorpus,
                (b, n) => ExportedModelInfo.Parse(new Dictionary<string, string>(onnxMeta) { [n] = System.Text.Encoding.UTF8.GetString(b) }, inputs, "'fuzz.onnx'"),
                e => e is InvalidDataException),
        ];
    }

    [TestMethod, TestCategory("Soak")]
    public void Readers_OfUntrustedBytes_OnlyThrowTheirOwnErrors_AndNeverHang()
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("MLNETEXT_FUZZ_SEED"), out var s) ? s : 20261203;
        double seconds = double.TryParse(Environment.GetEnvironmentVariable("MLNETEXT_FUZZ_SECONDS"), out var t) ? t : 0;
        const int casesInSuite = 400;
        var hangLimit = TimeSpan.FromSeconds(20);
        var scratch = Directory.CreateTempSubdirectory("mlnetext-fuzz-");
        var findings = new List<string>();
        try
        {
            foreach (var target in Targets(scratch.FullName))
            {
                Assert.IsNotEmpty(target.Corpus, target.Name);
                var rng = new Random(HashCode.Combine(seed, target.Name.Length, target.Corpus.Count));
                var clock = Stopwatch.StartNew();
                int cases = 0, rejected = 0;
                while (seconds > 0 ? clock.Elapsed.TotalSeconds < seconds : cases < casesInSuite)
                {
                    var (name, bytes) = target.Corpus[rng.Next(target.Corpus.Count)];
                    var input = Mutate(bytes, rng);
                    cases++;
                    Exception? error = null;
                    var worker = new Thread(() =>
                    {
                        try { using (Torch.TensorScope.Begin()) target.Read(input, name); }
                        catch (Exception e) { error = e; }
                    }, 64 << 20) { IsBackground = true };
                    worker.Start();
                    if (!worker.Join(hangLimit))
                    {
                        findings.Add($"{target.Name}: case {cases} (seed {seed}, from {name}, {input.Length} bytes) did not finish in {hangLimit.TotalSeconds} s");
                        break;
                    }
                    if (error is null) continue;
                    if (target.Expected(error)) { rejected++; continue; }
                    findings.Add($"{target.Name}: case {cases} (seed {seed}, from {name}, {input.Length} bytes): {error.GetType().Name}: {error.Message}");
                    if (findings.Count > 20) break;
                }
                var line = $"fuzz {target.Name}: corpus {target.Corpus.Count} files ({target.Corpus.Sum(c => c.Bytes.Length):N0} bytes), {cases} cases, " +
                           $"{rejected} rejected with the reader's own error, {cases - rejected} read, {clock.Elapsed.TotalSeconds:F1} s";
                TestContext.WriteLine(line);
                Console.WriteLine(line);
            }
        }
        finally { scratch.Delete(recursive: true); }
        Assert.IsEmpty(findings, string.Join("\n", findings));
    }
}

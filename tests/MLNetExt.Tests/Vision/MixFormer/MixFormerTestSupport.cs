using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Vision.MixFormer;

namespace MLNetExt.Tests.Vision.MixFormer;

/// <summary>Fixtures written by tests/fixtures/mixformer/make_mixformer_fixtures.py (our float64 PyTorch reference of
/// the Paddle code, cross-checked against the community PyTorch port).</summary>
internal static class MixFormerFixtures
{
    public static string Path(string name) => Fixtures.Path("mixformer/" + name);

    static JsonObject? s_meta;

    public static JsonObject Meta => s_meta ??= (JsonObject)JsonNode.Parse(File.ReadAllText(Path("small.json")))!;

    /// <summary>The small configuration's official keyword arguments.</summary>
    public static JsonObject SmallKwargs() => (JsonObject)Meta["kwargs"]!.DeepClone();

    public static int SmallClasses => (int)Meta["num_classes"]!;

    public static int Batch => (int)Meta["batch"]!;

    /// <summary>A custom model of the small configuration with its perturbed weights loaded (eval mode).</summary>
    public static MixFormerModel Small(int? numClasses = null)
    {
        var model = (MixFormerModel)Backbones.CreateCustom("mixformer", SmallKwargs(), numClasses ?? SmallClasses);
        using var weights = SafeTensors.Load(Path("small.weights.safetensors"));
        model.LoadPretrained(weights);
        model.Eval();
        return model;
    }

    /// <summary>(size name, height, width, seed) rows of small.json.</summary>
    public static (string Name, int H, int W, int Seed) Size(string name)
    {
        var s = Meta["sizes"]!.AsArray().First(x => (string)x!["name"]! == name)!;
        return (name, (int)s["height"]!, (int)s["width"]!, (int)s["seed"]!);
    }

    /// <summary>element i = ((i * 2654435761 + seed) mod 2^32) / 2^31 - 1, as float32 (exact on both sides).</summary>
    public static Tensor Input(long n, long c, long h, long w, int seed)
    {
        long count = n * c * h * w;
        var data = new float[count];
        for (long i = 0; i < count; i++)
        {
            ulong v = unchecked((ulong)i * 2654435761UL + (ulong)seed) % 4294967296UL;
            data[i] = (float)(v / 2147483648.0 - 1.0);
        }
        return Tensor.FromArray<float>(data, new[] { n, c, h, w });
    }

    static StateDict? s_expected;

    public static StateDict Expected => s_expected ??= SafeTensors.Load(Path("small.expected.safetensors"));

    /// <summary>keys.txt.gz: per variant, the PyTorch-style state_dict lines and total_params.</summary>
    public static (List<string> Lines, long Total) Keys(string variant)
    {
        using var gz = new GZipStream(File.OpenRead(Path("keys.txt.gz")), CompressionMode.Decompress);
        using var reader = new StreamReader(gz);
        var lines = new List<string>();
        bool inside = false;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.StartsWith("variant\t", StringComparison.Ordinal)) { inside = line == "variant\t" + variant; continue; }
            if (!inside) continue;
            if (line.StartsWith("total_params\t", StringComparison.Ordinal)) return (lines, long.Parse(line["total_params\t".Length..]));
            lines.Add(line);
        }
        throw new InvalidDataException($"keys.txt.gz has no complete listing for {variant}");
    }

    public static string DTypeName(DType t) => t.TorchName();

    public static double MaxAbs(Tensor expected, Tensor actual)
    {
        CollectionAssert.AreEqual(expected.Shape, actual.Shape, "shape");
        using var e = expected.To(DType.Float64);
        using var a = actual.To(DType.Float64);
        using var d = (e - a).Abs();
        using var m = d.Max();
        return m.ToDouble();
    }
}

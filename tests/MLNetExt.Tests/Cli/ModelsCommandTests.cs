using System.Text.Json.Nodes;
using MLNetExt.Cli;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Cli;

/// <summary>`mlnetext models`: the variant table, JSON output, family filter and the measured-MACs cache.</summary>
[TestClass]
public sealed class ModelsCommandTests
{
    // The parameter counts recorded in the MixFormer rows (measured on the official code's module tree).
    static readonly (string Name, long Parameters)[] MixFormer =
    {
        ("mixformer_b0", 5_098_767), ("mixformer_b1", 7_887_877), ("mixformer_b2", 9_894_848), ("mixformer_b3", 16_747_808),
        ("mixformer_b4", 34_797_572), ("mixformer_b5", 61_692_403), ("mixformer_b6", 119_505_054),
    };

    static JsonArray RunJson(string family, bool measure, string cache, out string stderr)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.AreEqual(0, ModelsCommand.Run(family, json: true, measure, cache, output, error));
        stderr = error.ToString();
        return (JsonArray)JsonNode.Parse(output.ToString())!;
    }

    [TestMethod]
    public void FamilyMixFormerJson_ListsB0ToB6WithExactParametersAndPaperNumbers()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-models-");
        try
        {
            var rows = RunJson("mixformer", measure: false, Path.Combine(dir.FullName, "macs.json"), out var stderr);
            CollectionAssert.AreEqual(MixFormer.Select(m => m.Name).ToArray(), rows.Select(r => (string)r!["variant"]!).ToArray());
            CollectionAssert.AreEqual(MixFormer.Select(m => m.Parameters).ToArray(), rows.Select(r => (long)r!["parameters"]!).ToArray());
            Assert.IsTrue(rows.All(r => (string)r!["family"]! == "mixformer" && r["macs"] is null));
            // Table 3 of the paper: B1-B4 only
            Assert.AreEqual(78.9, (double)rows[1]!["paper_top1"]!);
            Assert.AreEqual(3.6, (double)rows[4]!["paper_gmacs"]!);
            Assert.IsNull(rows[0]!["paper_top1"]);
            Assert.IsNull(rows[6]!["paper_gmacs"]);
            Assert.AreEqual(224, (int)rows[0]!["input_height"]!);
            Assert.AreEqual(0.875, (double)rows[0]!["crop_pct"]!);
            Assert.AreEqual("", stderr);
            Assert.IsFalse(File.Exists(Path.Combine(dir.FullName, "macs.json")), "--no-macs neither measures nor writes the cache");
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void MeasuredMacs_AreComputedOnlyWhenMissingAndCachedAtomically()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-models-");
        try
        {
            // Seed B1-B6 with recognisable values, so only B0 (the smallest) needs a forward pass.
            var cache = Path.Combine(dir.FullName, "sub", "macs.json");
            var seeded = Backbones.Family("mixformer").Variants.Skip(1).ToDictionary(MacCache.Key, v => 1000L + v.Name[^1]);
            MacCache.Save(cache, seeded, TextWriter.Null);

            var rows = RunJson("mixformer", measure: true, cache, out var stderr);
            StringAssert.Contains(stderr, "measuring MACs of mixformer_b0");
            Assert.AreEqual(1, stderr.Split("measuring").Length - 1, $"only B0 is measured; stderr: {stderr}");
            for (int i = 1; i < 7; i++) Assert.AreEqual(1000L + ('0' + i), (long)rows[i]!["macs"]!, "seeded values come from the cache");
            long b0 = (long)rows[0]!["macs"]!;
            // B0 is not in the paper; the PaddleClas docs of the official code give 0.4 G
            Assert.IsLessThanOrEqualTo(Tolerances.PaperMacsRel, Math.Abs(b0 - 0.4e9) / 0.4e9, $"mixformer_b0 measured {b0}");

            var written = MacCache.Load(cache, TextWriter.Null);
            Assert.HasCount(7, written);
            Assert.AreEqual(b0, written[MacCache.Key(Backbones.Find("mixformer_b0"))]);
            Assert.HasCount(1, Directory.GetFiles(Path.GetDirectoryName(cache)!), "no temporary file left beside the cache");

            var again = RunJson("mixformer", measure: true, cache, out var stderr2);
            Assert.AreEqual("", stderr2, "the second call measures nothing");
            Assert.AreEqual(b0, (long)again[0]!["macs"]!);
        }
        finally { dir.Delete(recursive: true); }
    }

    [TestMethod]
    public void Table_ShowsDashesAndTheSmtLargeFootnote()
    {
        var output = new StringWriter();
        Assert.AreEqual(0, ModelsCommand.Run("SMT", json: false, measure: false, Path.Combine(Path.GetTempPath(), "unused-macs.json"), output, TextWriter.Null));
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        StringAssert.StartsWith(lines[0], "variant");
        StringAssert.Contains(lines[1], "smt_t");
        StringAssert.Contains(lines[1], "11,506,536");
        StringAssert.Contains(lines[1], "82.2");
        StringAssert.Contains(lines[1], "—");              // not measured
        StringAssert.Contains(lines[4], "87.1*");
        Assert.IsTrue(lines.Any(l => l.StartsWith("* smt_l: ImageNet-22K pre-trained", StringComparison.Ordinal)));
    }

    [TestMethod]
    public void UnknownFamily_IsAnErrorListingTheFamilies()
    {
        var error = new StringWriter();
        Assert.AreEqual(2, ModelsCommand.Run("resnet", json: false, measure: false, "unused.json", TextWriter.Null, error));
        StringAssert.StartsWith(error.ToString(), "error: --family: ");
        StringAssert.Contains(error.ToString(), "resnet");
        StringAssert.Contains(error.ToString(), "transxnet, transnext, smt, mixformer");
    }

    [TestMethod]
    public void CorruptCache_IsReportedAndIgnored()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-models-");
        try
        {
            var cache = Path.Combine(dir.FullName, "macs.json");
            File.WriteAllText(cache, "{ not json");
            var error = new StringWriter();
            Assert.HasCount(0, MacCache.Load(cache, error));
            StringAssert.Contains(error.ToString(), "ignoring the MAC cache");
            File.WriteAllText(cache, "[1, 2]");
            error = new StringWriter();
            Assert.HasCount(0, MacCache.Load(cache, error));
            StringAssert.Contains(error.ToString(), "\"entries\"");
        }
        finally { dir.Delete(recursive: true); }
    }
}

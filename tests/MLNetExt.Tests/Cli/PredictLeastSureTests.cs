using System.Text.Json;
using MLNetExt.Cli;
using MLNetExt.Tests.MLNet;
using MLNetExt.Tests.Training;

namespace MLNetExt.Tests.Cli;

/// <summary>`predict --least-sure N`: the N readable images with the smallest gap between the model's two best classes,
/// most doubtful first (the gap computed here from the full scores), then the unreadable files with their reasons.</summary>
[TestClass]
public sealed class PredictLeastSureTests
{
    [TestMethod]
    public void LeastSure_RanksBySmallestGap_ThenListsUnreadableFiles()
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-least-sure-");
        try
        {
            var photos = Directory.CreateDirectory(Path.Combine(dir.FullName, "photos")).FullName;
            for (int i = 0; i < 6; i++) ExportedClassifier.WritePicture(photos, $"p{i}.png", 40 + 3 * i, 36, 7 * i + 1);
            File.WriteAllBytes(Path.Combine(photos, "broken.jpg"), []);
            var file = new FileInfo(Path.Combine(dir.FullName, "model.safetensors"));
            using (var model = TestTimeAugmentationTests.TinyModel()) model.Save(file.FullName);

            static List<JsonElement> Rows(StringWriter w) =>
                w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            var all = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(file, [photos], 3, json: true, all));
            var expected = Rows(all).Where(r => r.GetProperty("error").ValueKind == JsonValueKind.Null)
                .Select(r =>
                {
                    var p = r.GetProperty("top").EnumerateArray().Select(t => t.GetProperty("probability").GetDouble()).OrderDescending().ToList();
                    return (Image: r.GetProperty("image").GetString()!, Gap: p[0] - p[1]);
                })
                .OrderBy(t => t.Gap).ThenBy(t => t.Image, StringComparer.Ordinal).Take(3).ToList();
            Assert.IsFalse(Rows(all).Any(r => r.TryGetProperty("gap", out _)), "no gap without --least-sure");

            var ranked = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(file, [photos], 1, json: true, ranked, leastSure: 3));
            var rows = Rows(ranked);
            Assert.HasCount(4, rows, ranked.ToString());
            for (int i = 0; i < 3; i++)
            {
                Assert.AreEqual(expected[i].Image, rows[i].GetProperty("image").GetString(), $"rank {i}");
                Assert.AreEqual(expected[i].Gap, rows[i].GetProperty("gap").GetDouble(), 2e-6, $"rank {i} gap");
                Assert.AreEqual(1, rows[i].GetProperty("top").GetArrayLength(), "--top-k 1 shown, two classes ranked");
            }
            StringAssert.EndsWith(rows[3].GetProperty("image").GetString(), "broken.jpg");
            StringAssert.Contains(rows[3].GetProperty("error").GetString(), "empty file");

            var text = new StringWriter();
            Assert.AreEqual(0, PredictCommand.Run(file, [photos], 2, json: false, text, leastSure: 2));
            var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.AreEqual("the 2 of 6 images the model is least sure of (smallest gap between its two best classes), most doubtful first:", lines[0]);
            StringAssert.StartsWith(lines[1], expected[0].Image + "\t");
            StringAssert.Contains(lines[1], "(gap ");
            Assert.HasCount(4, lines, "header, two images, the unreadable file");

            var e = Assert.ThrowsExactly<ArgumentException>(() => PredictCommand.Run(file, [photos], 1, json: true, TextWriter.Null, leastSure: 0));
            StringAssert.Contains(e.Message, "--least-sure must be at least 1, got 0");
        }
        finally { dir.Delete(recursive: true); }
    }
}

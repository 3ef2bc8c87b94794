using System.Buffers.Binary;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MLNetExt.Data;
using MLNetExt.Training;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Training;

[TestClass]
public sealed class ReportTests
{
    const string Tricky = "<b>&\"x\"";
    static readonly string[] Classes = ["cat", "dog", Tricky];

    string dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(dir = Path.Combine(Path.GetTempPath(), "mlnetext-report-" + Guid.NewGuid().ToString("N")));

    [TestCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    /// <summary>Deterministic probabilities for <paramref name="n"/> samples of <paramref name="c"/> classes that are
    /// right about <paramref name="skill"/> of the time (a softmax over noisy logits).</summary>
    static (float[] P, int[] Y) Predictions(int n, int c, double skill, int seed)
    {
        var rng = new Random(seed);
        var p = new float[n * c];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = rng.Next(c);
            var logits = new double[c];
            for (int j = 0; j < c; j++) logits[j] = rng.NextDouble() * 2;
            if (rng.NextDouble() < skill) logits[y[i]] += 3;
            double max = logits.Max(), sum = logits.Sum(v => Math.Exp(v - max));
            for (int j = 0; j < c; j++) p[i * c + j] = (float)(Math.Exp(logits[j] - max) / sum);
        }
        return (p, y);
    }

    /// <summary>A 3-epoch run with validation: 12 steps per epoch, a NaN step loss and a NaN epoch train loss (epoch 2),
    /// validation on 40 images per epoch, best epoch 3, two hardest images.</summary>
    static TrainingHistory Sample(IReadOnlyList<string>? classes = null, int epochs = 3, bool validation = true, int stepsPerEpoch = 12)
    {
        classes ??= Classes;
        var h = new TrainingHistory
        {
            Model = "transxnet-t",
            Classes = classes,
            Settings = new Dictionary<string, string> { ["mode"] = "fine-tune", ["lr"] = "0.001", ["note"] = "a < b & c" },
            TrainCount = 480,
            ValCount = validation ? 40 : 0,
            Monitor = "top1",
            StopReason = "completed",
            Duration = TimeSpan.FromSeconds(754.5),
        };
        long step = 0;
        for (int e = 1; e <= epochs; e++)
        {
            for (int s = 0; s < stepsPerEpoch; s++)
            {
                step++;
                double loss = step == 5 ? double.NaN : 2.0 / (1 + 0.1 * step);
                h.StepList.Add(new StepRecord(step, e, loss, 1e-3 * (1 - (double)step / (epochs * stepsPerEpoch))));
            }
            ClassificationMetrics? m = null;
            if (validation)
            {
                var (p, y) = Predictions(40, classes.Count, 0.4 + 0.15 * e, seed: e);
                m = ClassificationMetrics.Compute(p, y, classes);
            }
            h.EpochList.Add(new EpochSummary(e, e == 2 ? double.NaN : 1.5 / e, 1e-3 / e, 250.5 + e, 60.25, validation ? 1.2 / e : null, m));
        }
        if (validation)
        {
            h.BestEpoch = epochs;
            h.Final = h.Epochs[^1].Validation;
            h.HardestList.Add(new Misclassified("val/dogs/d 1.jpg", 1, 2 % classes.Count, 0.9f, 0.01f));
            h.HardestList.Add(new Misclassified("val/<odd> & \"quoted\".png", classes.Count - 1, 0, 0.75f, 0.125f));
        }
        return h;
    }

    static JsonElement Parse(TrainingHistory h) => JsonDocument.Parse(MetricsFile.ToJson(h)).RootElement;

    [TestMethod]
    public void JsonHoldsTheHistory()
    {
        var h = Sample();
        var root = Parse(h);
        Assert.AreEqual("transxnet-t", root.GetProperty("model").GetString());
        CollectionAssert.AreEqual(Classes, root.GetProperty("classes").EnumerateArray().Select(c => c.GetString()).ToArray());
        Assert.AreEqual("a < b & c", root.GetProperty("settings").GetProperty("note").GetString());
        Assert.AreEqual(480, root.GetProperty("train_count").GetInt32());
        Assert.AreEqual(40, root.GetProperty("val_count").GetInt32());
        Assert.AreEqual("top1", root.GetProperty("monitor").GetString());
        Assert.AreEqual(3, root.GetProperty("best_epoch").GetInt32());
        Assert.AreEqual("completed", root.GetProperty("stop_reason").GetString());
        Assert.AreEqual(754.5, root.GetProperty("duration_seconds").GetDouble());

        var epochs = root.GetProperty("epochs");
        Assert.AreEqual(3, epochs.GetArrayLength());
        var e1 = epochs[0];
        Assert.AreEqual(1, e1.GetProperty("epoch").GetInt32());
        Assert.AreEqual(1.5, e1.GetProperty("train_loss").GetDouble());
        Assert.AreEqual(1e-3, e1.GetProperty("lr").GetDouble());
        Assert.AreEqual(251.5, e1.GetProperty("images_per_second").GetDouble());
        Assert.AreEqual(60.25, e1.GetProperty("seconds").GetDouble());
        Assert.AreEqual(1.2, e1.GetProperty("val_loss").GetDouble());
        Assert.AreEqual(JsonValueKind.Null, epochs[1].GetProperty("train_loss").ValueKind, "NaN is written as null");

        for (int e = 0; e < 3; e++) AssertMetrics(h.Epochs[e].Validation!, epochs[e].GetProperty("val"));
        AssertMetrics(h.Final!, root.GetProperty("final"));

        var hardest = root.GetProperty("hardest");
        Assert.AreEqual(2, hardest.GetArrayLength());
        Assert.AreEqual("val/dogs/d 1.jpg", hardest[0].GetProperty("source").GetString());
        Assert.AreEqual("dog", hardest[0].GetProperty("true").GetString());
        Assert.AreEqual(Tricky, hardest[0].GetProperty("predicted").GetString());
        Assert.AreEqual(1, hardest[0].GetProperty("true_index").GetInt32());
        Assert.AreEqual(2, hardest[0].GetProperty("predicted_index").GetInt32());
        Assert.AreEqual(0.9f, hardest[0].GetProperty("confidence").GetSingle());
        Assert.AreEqual(0.01f, hardest[0].GetProperty("true_probability").GetSingle());
        Assert.AreEqual("cat", hardest[1].GetProperty("predicted").GetString());

        Assert.AreEqual(36, root.GetProperty("step_count").GetInt32());
        var steps = root.GetProperty("steps");
        Assert.AreEqual(36, steps.GetArrayLength());
        Assert.AreEqual(13, steps[12].GetProperty("step").GetInt64());
        Assert.AreEqual(2, steps[12].GetProperty("epoch").GetInt32());
        Assert.AreEqual(h.Steps[12].Loss, steps[12].GetProperty("loss").GetDouble());
        Assert.AreEqual(h.Steps[12].LearningRate, steps[12].GetProperty("lr").GetDouble());
        Assert.AreEqual(JsonValueKind.Null, steps[4].GetProperty("loss").ValueKind, "the NaN step loss");

        // readable layout: one step record and one confusion row per line
        var lines = MetricsFile.ToJson(h).Split('\n').Select(l => l.Trim()).ToList();
        Assert.AreEqual(36, lines.Count(l => l.StartsWith("{\"step\":")));
        Assert.AreEqual(4 * 3, lines.Count(l => l.StartsWith('[') && l.Length > 1 && char.IsDigit(l[1])), "3 rows in each of 4 confusion matrices");
    }

    static void AssertMetrics(ClassificationMetrics m, JsonElement j)
    {
        Assert.AreEqual(m.Count, j.GetProperty("count").GetInt32());
        Assert.AreEqual(m.Top1, j.GetProperty("top1").GetDouble());
        Assert.AreEqual(m.Top5, j.GetProperty("top5").GetDouble());
        Assert.AreEqual(m.TopK, j.GetProperty("top_k").GetInt32());
        Assert.AreEqual(m.MacroF1, j.GetProperty("macro_f1").GetDouble());
        Assert.AreEqual(m.LogLoss, j.GetProperty("log_loss").GetDouble());
        Assert.AreEqual(m.ExpectedCalibrationError!.Value, j.GetProperty("ece").GetDouble());
        Assert.AreEqual(ClassificationMetrics.CalibrationBins, j.GetProperty("calibration").GetArrayLength());
        Assert.AreEqual(m.Count, j.GetProperty("calibration").EnumerateArray().Sum(b => b.GetProperty("count").GetInt32()));
        var pc = j.GetProperty("per_class");
        Assert.AreEqual(m.PerClass.Count, pc.GetArrayLength());
        for (int i = 0; i < m.PerClass.Count; i++)
        {
            Assert.AreEqual(m.PerClass[i].Class, pc[i].GetProperty("class").GetString());
            Assert.AreEqual(m.PerClass[i].Precision, pc[i].GetProperty("precision").GetDouble());
            Assert.AreEqual(m.PerClass[i].Recall, pc[i].GetProperty("recall").GetDouble());
            Assert.AreEqual(m.PerClass[i].F1, pc[i].GetProperty("f1").GetDouble());
            Assert.AreEqual(m.PerClass[i].Support, pc[i].GetProperty("support").GetInt32());
        }
        var conf = j.GetProperty("confusion");
        Assert.AreEqual(m.Confusion.Length, conf.GetArrayLength());
        for (int i = 0; i < m.Confusion.Length; i++)
            CollectionAssert.AreEqual(m.Confusion[i], conf[i].EnumerateArray().Select(v => v.GetInt32()).ToArray(), $"confusion row {i}");
    }

    [TestMethod]
    public void JsonWithoutValidationHasNulls()
    {
        var root = Parse(Sample(epochs: 1, validation: false));
        Assert.AreEqual(JsonValueKind.Null, root.GetProperty("best_epoch").ValueKind);
        Assert.AreEqual(JsonValueKind.Null, root.GetProperty("final").ValueKind);
        Assert.AreEqual(JsonValueKind.Null, root.GetProperty("epochs")[0].GetProperty("val").ValueKind);
        Assert.AreEqual(JsonValueKind.Null, root.GetProperty("epochs")[0].GetProperty("val_loss").ValueKind);
        Assert.AreEqual(0, root.GetProperty("hardest").GetArrayLength());
    }

    [TestMethod]
    public void LongStepCurvesAreThinnedEvenly()
    {
        var h = Sample(epochs: 2, validation: false, stepsPerEpoch: 2500);
        var root = Parse(h);
        Assert.AreEqual(5000, root.GetProperty("step_count").GetInt32());
        var steps = root.GetProperty("steps").EnumerateArray().Select(s => s.GetProperty("step").GetInt64()).ToArray();
        Assert.HasCount(MetricsFile.MaxSteps, steps);
        Assert.AreEqual(1, steps[0]);
        Assert.AreEqual(5000, steps[^1]);
        var gaps = steps.Zip(steps.Skip(1), (a, b) => b - a).ToArray();
        Assert.IsTrue(gaps.All(g => g is 2 or 3), "evenly spaced: 4999 intervals over 1999 gaps are 2 or 3 steps each");
    }

    [TestMethod]
    public void InconsistentHistoryIsRejected()
    {
        var h = Sample();
        h.HardestList.Add(new Misclassified("x.jpg", 5, 0, 0.5f, 0.1f));
        var ex = Assert.ThrowsExactly<ArgumentException>(() => MetricsFile.ToJson(h));
        StringAssert.Contains(ex.Message, "Hardest[2]");
        StringAssert.Contains(ex.Message, "0..2");
        Assert.ThrowsExactly<ArgumentException>(() => HtmlReport.ToHtml(h));

        var other = Sample();
        other.Final = Sample(classes: ["a", "b"]).Final;
        var mismatch = Assert.ThrowsExactly<ArgumentException>(() => HtmlReport.ToHtml(other));
        StringAssert.Contains(mismatch.Message, "2 classes");
    }

    /// <summary>Parses the report as XML (it is written to be well-formed) after the HTML doctype.</summary>
    static XDocument ParseHtml(string html)
    {
        Assert.StartsWith("<!DOCTYPE html>\n", html);
        return XDocument.Parse(html["<!DOCTYPE html>\n".Length..]);
    }

    static void AssertSelfContained(string html)
    {
        // every src/href is a data URI or an in-document reference; base64 payloads are left out of the URL scan
        foreach (Match m in Regex.Matches(html, @"\b(src|href)=""([^""]*)"""))
            Assert.IsTrue(m.Groups[2].Value.StartsWith("data:image/png;base64,") || m.Groups[2].Value.StartsWith('#'), m.Value[..Math.Min(80, m.Value.Length)]);
        string text = Regex.Replace(html, @"data:image/png;base64,[A-Za-z0-9+/=]*", "data:");
        var urls = Regex.Matches(text, @"(https?:|ftp:|file:|//[a-z])[^""\s<]*", RegexOptions.IgnoreCase).Select(m => m.Value)
            .Where(u => u != "http://www.w3.org/2000/svg").ToList();
        Assert.IsEmpty(urls, "external references: " + string.Join(", ", urls));
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain("@import", html);
        Assert.AreEqual(Regex.Matches(html, "<svg[ >]").Count, Regex.Matches(html, "</svg>").Count, "every <svg> closes");
    }

    [TestMethod]
    public void HtmlIsWellFormedSelfContainedAndEscaped()
    {
        var h = Sample();
        string html = HtmlReport.ToHtml(h);
        var doc = ParseHtml(html);
        AssertSelfContained(html);

        // the tricky class name appears only escaped in the markup, and as itself in the parsed text
        Assert.DoesNotContain(Tricky, html);
        StringAssert.Contains(html, "&lt;b&gt;&amp;&quot;x&quot;");
        var texts = doc.Descendants().Where(e => !e.HasElements).Select(e => e.Value).ToHashSet();
        Assert.Contains(Tricky, texts, "class name in the per-class table / class list");
        Assert.Contains("a < b & c", texts, "setting value");
        Assert.IsTrue(doc.Descendants().Any(e => e.Attribute("title")?.Value == "val/<odd> & \"quoted\".png"), "source in a title attribute");

        XNamespace svg = "http://www.w3.org/2000/svg";
        var charts = doc.Descendants(svg + "svg").ToList();
        Assert.HasCount(6, charts, "loss, validation metrics, learning rate, throughput, confusion matrix, reliability diagram");
        // the loss chart: per-step line broken at the NaN step (two runs), epoch curves, best-epoch marker
        var loss = charts[0];
        Assert.IsTrue(loss.Descendants(svg + "path").Any(p => Regex.Matches(p.Attribute("d")!.Value, "M").Count == 2), "per-step line broken at the NaN step");
        Assert.IsTrue(loss.Descendants(svg + "text").Any(t => t.Value == "best: epoch 3"));
        // validation chart: 3 series × 3 epochs of dots
        Assert.HasCount(9, charts[1].Descendants(svg + "circle"));
        // confusion matrix: 3×3 cells with counts that add up to the 40 validation images
        var conf = charts[4];
        var counts = conf.Descendants(svg + "text").Where(t => t.Attribute("class")?.Value == "count").Select(t => int.Parse(t.Value)).ToList();
        Assert.AreEqual(40, counts.Sum());
        Assert.HasCount(9, conf.Descendants(svg + "rect").Where(r => r.Element(svg + "title") is not null));
        // reliability diagram: one bar per non-empty confidence bin, their counts adding up to the validation images
        var bars = charts[5].Descendants(svg + "rect").Where(r => r.Element(svg + "title") is not null).ToList();
        Assert.HasCount(h.Final!.Calibration!.Count(b => b.Count > 0), bars);
        Assert.AreEqual(40, bars.Sum(b => int.Parse(Regex.Match(b.Element(svg + "title")!.Value, @": (\d+) images").Groups[1].Value)));
        StringAssert.Contains(html, "expected calibration error " + (h.Final!.ExpectedCalibrationError!.Value * 100).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + "%");

        // header values
        StringAssert.Contains(html, (h.Final!.Top1 * 100).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + "%");
        StringAssert.Contains(html, "12 min 34 s");
    }

    [TestMethod]
    public void NoValidationAndASingleEpoch()
    {
        var h = Sample(epochs: 1, validation: false);
        string html = HtmlReport.ToHtml(h);
        var doc = ParseHtml(html);
        AssertSelfContained(html);
        StringAssert.Contains(html, "no validation set");
        XNamespace svg = "http://www.w3.org/2000/svg";
        var charts = doc.Descendants(svg + "svg").ToList();
        Assert.HasCount(3, charts, "loss, learning rate, throughput");
        // the single epoch mean is a dot, not a line
        Assert.HasCount(1, charts[0].Descendants(svg + "circle"));
    }

    [TestMethod]
    public void EmptyAndTwoClassHistories()
    {
        var empty = new TrainingHistory { Model = "smt-t", Classes = ["a", "b"], Settings = new Dictionary<string, string>(), StopReason = "interrupted" };
        string html = HtmlReport.ToHtml(empty);
        ParseHtml(html);
        AssertSelfContained(html);
        StringAssert.Contains(html, "no data");
        var root = Parse(empty);
        Assert.AreEqual(0, root.GetProperty("epochs").GetArrayLength());
        Assert.AreEqual(0, root.GetProperty("steps").GetArrayLength());
        Assert.AreEqual("interrupted", root.GetProperty("stop_reason").GetString());

        var two = Sample(classes: ["neg", "pos"]);
        html = HtmlReport.ToHtml(two);
        ParseHtml(html);
        StringAssert.Contains(html, "top-2 accuracy");
        Assert.AreEqual(2, Parse(two).GetProperty("final").GetProperty("top_k").GetInt32());
    }

    [TestMethod]
    public void ManyClassesShrinkTheConfusionMatrix()
    {
        var classes = Enumerable.Range(0, 100).Select(i => $"class_{i:000}").ToArray();
        var h = Sample(classes, epochs: 2);
        var (p, y) = Predictions(1000, 100, 0.7, seed: 9);
        h.Final = ClassificationMetrics.Compute(p, y, classes);
        string html = HtmlReport.ToHtml(h);
        var doc = ParseHtml(html);
        XNamespace svg = "http://www.w3.org/2000/svg";
        var conf = doc.Descendants(svg + "svg").Single(s => s.Attribute("class")?.Value == "confusion");
        Assert.IsFalse(conf.Descendants(svg + "text").Any(t => t.Attribute("class")?.Value == "count"), "no counts in 6 px cells");
        Assert.AreEqual(200, conf.Descendants(svg + "text").Count(t => t.Value.StartsWith("class_")), "row and column labels");
        Assert.IsLessThan(1000.0, double.Parse(conf.Attribute("width")!.Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.IsLessThan(3_000_000, html.Length);
    }

    static RgbImage Gradient(int w, int hgt)
    {
        var px = new byte[w * hgt * 3];
        for (int y = 0; y < hgt; y++)
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * 3;
                px[i] = (byte)(x * 255 / w);
                px[i + 1] = (byte)(y * 255 / hgt);
                px[i + 2] = 128;
            }
        return new RgbImage(w, hgt, px);
    }

    [TestMethod]
    public void ThumbnailsAreEmbeddedAsPngDataUris()
    {
        var h = Sample();
        h.HardestList.Add(new Misclassified("tiny.png", 0, 1, 0.6f, 0.2f));
        h.HardestList.Add(new Misclassified("missing.png", 0, 1, 0.55f, 0.25f));
        string html = HtmlReport.ToHtml(h, source => source switch
        {
            "val/dogs/d 1.jpg" => Gradient(300, 200),
            "tiny.png" => Gradient(32, 32),
            "missing.png" => throw new FileNotFoundException("boom: missing.png is gone"),
            _ => null,
        });
        var doc = ParseHtml(html);
        var imgs = doc.Descendants("img").ToList();
        Assert.HasCount(2, imgs);

        // a large image is shrunk to fit 128 px (300×200 → 128×85), a small one embedded as is and shown pixelated
        var (w0, h0) = PngSize(imgs[0]);
        Assert.AreEqual((128, 85), (w0, h0));
        Assert.AreEqual("128", imgs[0].Attribute("width")!.Value);
        var (w1, h1) = PngSize(imgs[1]);
        Assert.AreEqual((32, 32), (w1, h1));
        Assert.AreEqual("pix", imgs[1].Attribute("class")!.Value);
        Assert.AreEqual("128", imgs[1].Attribute("height")!.Value);

        StringAssert.Contains(html, "could not load: boom: missing.png is gone");
        StringAssert.Contains(html, "no image"); // the source for which loadImage returned null
        AssertSelfContained(html);
    }

    /// <summary>With an explainer, each hardest image that loads gets a second picture: the explainer's, asked for the
    /// class the model predicted; an explainer that fails shows its error in that place and the report is still written.</summary>
    [TestMethod]
    public void HardestImages_AreShownBesideTheirExplanation_WhenAnExplainerIsGiven()
    {
        var h = Sample();
        h.HardestList.Add(new Misclassified("tiny.png", 0, 1, 0.6f, 0.2f));
        var asked = new List<int>();
        string html = HtmlReport.ToHtml(h, source => source == "tiny.png" ? Gradient(32, 32) : Gradient(300, 200), (image, predicted) =>
        {
            asked.Add(predicted);
            if (image.Width == 32) throw new InvalidOperationException("boom: no gradient");
            return Gradient(64, 64);
        });
        var doc = ParseHtml(html);
        CollectionAssert.AreEqual(h.Hardest.Select(m => m.PredictedLabel).ToArray(), asked.ToArray(), "the predicted class of each, in order");
        var figures = doc.Descendants("figure").ToList();
        Assert.HasCount(h.Hardest.Count, figures);
        Assert.HasCount(2, figures[0].Descendants("img").ToList(), "the image and its explanation");
        Assert.AreEqual((64, 64), PngSize(figures[0].Descendants("img").Last()));
        Assert.HasCount(1, figures[^1].Descendants("img").ToList(), "the image; the failed explanation says why");
        StringAssert.Contains(html, "could not explain: boom: no gradient");
        StringAssert.Contains(html, "Grad-CAM");
        Assert.IsFalse(HtmlReport.ToHtml(h, _ => Gradient(32, 32)).Contains("Grad-CAM", StringComparison.Ordinal), "no explainer, no note");
        AssertSelfContained(html);
    }

    static (int, int) PngSize(XElement img)
    {
        string src = img.Attribute("src")!.Value;
        const string prefix = "data:image/png;base64,";
        Assert.StartsWith(prefix, src);
        var bytes = Convert.FromBase64String(src[prefix.Length..]);
        CollectionAssert.AreEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    [TestMethod]
    public void WritesReplaceExistingFilesAndLeaveNoTemporaries()
    {
        string json = Path.Combine(dir, "metrics.json"), html = Path.Combine(dir, "report.html");
        File.WriteAllText(json, "old");
        File.WriteAllText(html, "old");
        var h = Sample();
        MetricsFile.Write(json, h);
        HtmlReport.Write(html, h);
        Assert.AreEqual(MetricsFile.ToJson(h), File.ReadAllText(json));
        Assert.AreEqual(HtmlReport.ToHtml(h), File.ReadAllText(html));
        CollectionAssert.AreEquivalent(new[] { "metrics.json", "report.html" }, Directory.GetFiles(dir).Select(Path.GetFileName).ToArray());

        var missing = Path.Combine(dir, "no-such-folder", "report.html");
        var ex = Assert.ThrowsExactly<DirectoryNotFoundException>(() => HtmlReport.Write(missing, h));
        StringAssert.Contains(ex.Message, "no-such-folder");

        // a history that fails validation leaves the existing file untouched
        h.HardestList.Add(new Misclassified("x", 9, 0, 1, 0));
        Assert.ThrowsExactly<ArgumentException>(() => MetricsFile.Write(json, h));
        Assert.AreEqual(MetricsFile.ToJson(Sample()), File.ReadAllText(json));
        Assert.HasCount(2, Directory.GetFiles(dir));

        // a sample for looking at in a browser (set MLNETEXT_SAMPLE_REPORT to a path)
        if (Environment.GetEnvironmentVariable("MLNETEXT_SAMPLE_REPORT") is { Length: > 0 } sample)
        {
            HtmlReport.Write(sample, RichSample(), s => s.EndsWith("missing.jpg") ? null : Gradient(160 + s.Length, 120));
            MetricsFile.Write(Path.ChangeExtension(sample, ".json"), RichSample());
            HtmlReport.Write(Path.ChangeExtension(sample, ".single.html"), Sample(epochs: 1, validation: false));
            var classes = Enumerable.Range(0, 100).Select(i => $"class_{i:000}").ToArray();
            var many = Sample(classes, epochs: 2);
            var (p, y) = Predictions(1000, 100, 0.7, seed: 9);
            many.Final = ClassificationMetrics.Compute(p, y, classes);
            HtmlReport.Write(Path.ChangeExtension(sample, ".many.html"), many);
        }
    }

    /// <summary>A realistic-looking run for viewing: 10 classes, 12 epochs of 150 noisy steps with warmup and cosine
    /// decay, improving validation, early stop.</summary>
    static TrainingHistory RichSample()
    {
        string[] classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck & trailer <big>"];
        var rng = new Random(1);
        var h = new TrainingHistory
        {
            Model = "transnext-tiny",
            Classes = classes,
            Settings = new Dictionary<string, string>
            {
                ["mode"] = "fine-tune", ["epochs"] = "15", ["batch size"] = "64", ["learning rate"] = "0.0005", ["weight decay"] = "0.05",
                ["schedule"] = "cosine, 1 warmup epoch", ["image size"] = "224", ["augmentation"] = "random resized crop, flip, rand-augment",
                ["data"] = "/data/cifar10-subset",
            },
            TrainCount = 9600, ValCount = 2000, Monitor = "top1", StopReason = "early stop at epoch 12 (top1 did not improve for 3 epochs)",
            Duration = TimeSpan.FromSeconds(1234),
        };
        int steps = 150, epochs = 12;
        long g = 0;
        for (int e = 1; e <= epochs; e++)
        {
            double sum = 0;
            for (int s = 0; s < steps; s++)
            {
                g++;
                double t = (double)g / (15 * steps);
                double lr = g <= steps ? 5e-4 * g / steps : 5e-4 * 0.5 * (1 + Math.Cos(Math.PI * (g - steps) / (14.0 * steps)));
                double loss = 0.25 + 2.1 * Math.Exp(-6 * t) + 0.25 * (rng.NextDouble() - 0.5) + (g < 5 ? 3 : 0);
                sum += loss;
                h.StepList.Add(new StepRecord(g, e, loss, lr));
            }
            var (p, y) = Predictions(2000, classes.Length, Math.Min(0.95, 0.45 + 0.06 * e), seed: 100 + e);
            var m = ClassificationMetrics.Compute(p, y, classes);
            h.EpochList.Add(new EpochSummary(e, sum / steps, h.Steps[^1].LearningRate, 310 + rng.Next(20), 95 + rng.Next(10), m.LogLoss, m));
        }
        int best = 1 + Enumerable.Range(0, epochs).MaxBy(i => h.Epochs[i].Validation!.Top1);
        h.BestEpoch = best;
        h.Final = h.Epochs[best - 1].Validation;
        for (int i = 0; i < 30; i++)
            h.HardestList.Add(new Misclassified(i == 3 ? "val/cat/missing.jpg" : $"val/{classes[i % 10].Split(' ')[0]}/img_{i:0000}.png", i % 10, (i * 3 + 1) % 10,
                0.99f - i * 0.01f, 0.001f + i * 0.002f));
        return h;
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.OnnxRuntime;
using MLNetExt.Transforms;
using MLNetExt.Imaging;
using MLNetExt.Inference;

// MLNetBench agreement --model DIR --data DIR
//   DIR holds model.onnx and model.zip (a `train` output folder). On every image of --data: the mean absolute difference
//   between the pixels ML.NET feeds the network (model.zip's centre crop) and MLNetExt's evaluation crop, and the same
//   for a plain ML.NET resize to the network size (no crop: the framing before the crop moved into the graph); top-1
//   agreement between ML.NET (model.zip) and MLNetExt's own scorer (model.onnx, training-exact preprocessing).
// MLNetBench speed --model DIR --data DIR [--images N] [--rounds R] [--threads T]
//   images/s on the same N images, alternating rounds: ML.NET PredictionEngine (one image per call), ML.NET batch
//   Transform, MLNetExt's OnnxImageScorer (batches of 16); ratios against the PredictionEngine. One JSON line each.
string mode = args.Length > 0 ? args[0] : "";
string dir = Opt("--model", "");
string data = Opt("--data", "");
if (mode is not ("agreement" or "speed") || dir.Length == 0 || data.Length == 0)
{
    Console.Error.WriteLine("usage: MLNetBench agreement|speed --model DIR(model.onnx, model.zip) --data IMAGES_DIR [--images N] [--rounds R] [--threads T]");
    return 2;
}
var onnx = Path.Combine(dir, "model.onnx");
var zip = Path.Combine(dir, "model.zip");
var files = Directory.EnumerateFiles(data, "*", SearchOption.AllDirectories)
    .Where(f => ImageDataset.HeaderProblem(f) is null).Order(StringComparer.Ordinal).ToList();
Console.Error.WriteLine($"{files.Count} images under {data}");
int threads = int.Parse(Opt("--threads", "0"), CultureInfo.InvariantCulture);
var ml = new MLContext(seed: 0);
using var scorer = new OnnxImageScorer(onnx, new OnnxSessionOptions { IntraOpThreads = threads }, batchSize: 16);
using var mlnet = new MLNetImageScorer(zip, ml);
return mode == "agreement" ? Agreement() : Speed();

int Agreement()
{
    var info = scorer.Info;
    var crop = EvalCrop.For(info.CropHeight, info.CropWidth, info.CropPct);
    // ML.NET's pixels with the crop in the graph (the preparation model.zip's chain runs; the chain drops that column)
    // and without (straight to the network size).
    var rows = ml.Data.LoadFromEnumerable(files.Select(f => new Row { ImagePath = f }).ToList());
    var inGraph = ImageColumn.Of(rows.Schema, "ImagePath", null).Preparation(ml, info, "px").Fit(rows).Transform(rows).GetColumn<float[]>("px").ToArray();
    var noCrop = ml.Transforms.LoadImages("img", "", "ImagePath")
        .Append(ml.Transforms.ResizeImages("img", info.CropWidth, info.CropHeight, "img", ImageResizingEstimator.ResizingKind.IsoCrop, ImageResizingEstimator.Anchor.Center))
        .Append(ml.Transforms.ExtractPixels("px", "img", interleavePixelColors: false, outputAsFloatArray: true))
        .Fit(rows).Transform(rows).GetColumn<float[]>("px").ToArray();
    double diffCrop = 0, diffNoCrop = 0;
    long n = 0;
    var ours = new float[3 * scorer.Height * scorer.Width];
    for (int i = 0; i < files.Count; i++)
    {
        scorer.Prepare(ImageDecoder.DecodeFile(files[i]), ours);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < crop.Height; y++)
                for (int x = 0; x < crop.Width; x++)
                {
                    float v = ours[(c * crop.ResizeHeight + crop.Top + y) * crop.ResizeWidth + crop.Left + x];
                    diffCrop += Math.Abs(inGraph[i][(c * crop.ResizeHeight + crop.Top + y) * crop.ResizeWidth + crop.Left + x] - v);
                    diffNoCrop += Math.Abs(noCrop[i][(c * crop.Height + y) * crop.Width + x] - v);
                    n++;
                }
    }
    var a = scorer.ScoreFiles(files);
    var b = mlnet.ScoreFiles(files);
    int agree = 0, scored = 0;
    double maxProbDiff = 0;
    for (int i = 0; i < files.Count; i++)
    {
        if (a[i].Scores is null || b[i].Scores is null) continue;
        scored++;
        if (Best(a[i].Scores!) == Best(b[i].Scores!)) agree++;
        else Console.Error.WriteLine($"disagree: {files[i]}: MLNetExt {scorer.Labels[Best(a[i].Scores!)]} {a[i].Scores!.Max():F3}, ML.NET {mlnet.Labels[Best(b[i].Scores!)]} {b[i].Scores!.Max():F3}");
        maxProbDiff = Math.Max(maxProbDiff, a[i].Scores!.Zip(b[i].Scores!, (p, q) => Math.Abs(p - q)).Max());
    }
    Console.WriteLine(JsonSerializer.Serialize(new
    {
        bench = "mlnet-agreement", images = files.Count, scored, network = $"{info.CropHeight}x{info.CropWidth}", resize = $"{crop.ResizeHeight}x{crop.ResizeWidth}",
        mean_abs_pixel_diff_crop_in_graph = Math.Round(diffCrop / n, 3), mean_abs_pixel_diff_resize_to_network = Math.Round(diffNoCrop / n, 3),
        top1_agreement = Math.Round((double)agree / scored, 4), agree, max_probability_diff = Math.Round(maxProbDiff, 4),
    }));
    return 0;
}

int Speed()
{
    int count = Math.Min(files.Count, int.Parse(Opt("--images", "64"), CultureInfo.InvariantCulture));
    int rounds = int.Parse(Opt("--rounds", "3"), CultureInfo.InvariantCulture);
    var subset = files.Take(count).ToList();
    var modes = new (string Name, Action Run)[]
    {
        ("mlnet_prediction_engine", () => { foreach (var f in subset) mlnet.ScoreFile(f); }),
        ("mlnet_batch_transform", () => mlnet.ScoreFiles(subset, subset.Count)),
        ("mlnetext_onnx_scorer", () => scorer.ScoreFiles(subset)),
    };
    foreach (var m in modes) m.Run(); // warm-up: sessions, engines, caches
    var best = modes.ToDictionary(m => m.Name, _ => double.MaxValue);
    for (int r = 0; r < rounds; r++)
        foreach (var m in modes)
        {
            var sw = Stopwatch.StartNew();
            m.Run();
            best[m.Name] = Math.Min(best[m.Name], sw.Elapsed.TotalSeconds);
        }
    var rate = best.ToDictionary(kv => kv.Key, kv => Math.Round(count / kv.Value, 2));
    Console.WriteLine(JsonSerializer.Serialize(new
    {
        bench = "mlnet-speed", images = count, rounds, threads = threads == 0 ? Environment.ProcessorCount : threads, images_per_second = rate,
        ratio_vs_prediction_engine = rate.ToDictionary(kv => kv.Key, kv => Math.Round(kv.Value / rate["mlnet_prediction_engine"], 2)),
        load_average = File.ReadAllText("/proc/loadavg").Split(' ')[0],
    }));
    return 0;
}

static int Best(float[] s) => Array.IndexOf(s, s.Max());

string Opt(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

sealed class Row
{
    public string ImagePath { get; set; } = "";
}

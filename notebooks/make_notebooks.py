#!/usr/bin/python3
"""Writes the notebooks' sources (cells without outputs); tools/run-notebooks.sh executes them. Edit here, not in
the .ipynb files, then run `tools/run-notebooks.sh --update` to store the executed notebooks with their outputs."""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))

REFERENCES = '''// Packages first, then MLNetExt as the repository builds it (./tools/setup.sh); from a project you would
// reference the MLNetExt package instead (see the README's "Use it from your project").
#r "nuget: Microsoft.ML, 6.0.0"
#r "nuget: Microsoft.ML.ImageAnalytics, 6.0.0"
#r "nuget: Microsoft.ML.OnnxTransformer, 6.0.0"
#r "nuget: Microsoft.ML.OnnxRuntime, 1.32.0"
#r "nuget: Google.Protobuf, 3.30.2"
#r "../artifacts/bin/MLNetExt/release/MLNetExt.dll"'''

# small drawing helpers shared by the notebooks: an SVG line chart, a heat-map table, image thumbnails
HELPERS = '''using System.Globalization;
using System.IO;
using System.Text;
using Microsoft.DotNet.Interactive.Formatting;
using SkiaSharp;

static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);

/// An SVG line chart of one or more series (x, y), with the y range and a legend.
static string LineChart(string title, params (string Name, string Colour, IReadOnlyList<(double X, double Y)> Points)[] series)
{
    var all = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Y)).ToList();
    double x0 = all.Min(p => p.X), x1 = Math.Max(all.Max(p => p.X), x0 + 1), y0 = Math.Min(0, all.Min(p => p.Y)), y1 = all.Max(p => p.Y) * 1.05;
    const int W = 420, H = 220, L = 45, B = 25;
    var svg = new StringBuilder($"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H + 30}' font-family='sans-serif' font-size='11'>");
    svg.Append($"<text x='{L}' y='12' font-weight='bold'>{title}</text>");
    svg.Append($"<line x1='{L}' y1='{H - B + 20}' x2='{W}' y2='{H - B + 20}' stroke='#888'/><line x1='{L}' y1='20' x2='{L}' y2='{H - B + 20}' stroke='#888'/>");
    svg.Append($"<text x='2' y='26'>{F(y1)}</text><text x='2' y='{H - B + 20}'>{F(y0)}</text><text x='{W - 40}' y='{H + 10}'>{F(x1)}</text>");
    int row = 0;
    foreach (var (name, colour, points) in series)
    {
        var pts = string.Join(" ", points.Where(p => double.IsFinite(p.Y)).Select(p =>
            $"{F(L + (p.X - x0) / (x1 - x0) * (W - L - 5))},{F(20 + (1 - (p.Y - y0) / (y1 - y0)) * (H - B))}"));
        svg.Append($"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{pts}'/>");
        svg.Append($"<text x='{W - 130}' y='{30 + 14 * row++}' fill='{colour}'>{name}</text>");
    }
    return svg.Append("</svg>").ToString();
}

/// A confusion matrix as an SVG heat map: rows are the true classes, columns the predicted ones, each cell shaded by
/// its share of the row and labelled with its count.
static string ConfusionChart(IReadOnlyList<string> classes, int[][] counts)
{
    int n = classes.Count, cell = Math.Max(36, 240 / n), left = 90, top = 40;
    var svg = new StringBuilder($"<svg xmlns='http://www.w3.org/2000/svg' width='{left + n * cell + 10}' height='{top + n * cell + 30}' font-family='sans-serif' font-size='12'>");
    svg.Append($"<text x='{left}' y='14' font-weight='bold'>predicted →</text><text x='4' y='{top - 6}' font-weight='bold'>true ↓</text>");
    for (int i = 0; i < n; i++)
    {
        svg.Append($"<text x='{left + i * cell + 4}' y='{top - 6}'>{classes[i]}</text><text x='4' y='{top + i * cell + cell / 2 + 4}'>{classes[i]}</text>");
        int total = Math.Max(1, counts[i].Sum());
        for (int j = 0; j < n; j++)
        {
            double share = (double)counts[i][j] / total;
            int shade = 255 - (int)(200 * share);
            svg.Append($"<rect x='{left + j * cell}' y='{top + i * cell}' width='{cell}' height='{cell}' fill='rgb({shade},{shade},255)' stroke='white'/>");
            svg.Append($"<text x='{left + j * cell + cell / 2}' y='{top + i * cell + cell / 2 + 4}' text-anchor='middle' fill='{(share > 0.6 ? "white" : "black")}'>{counts[i][j]}</text>");
        }
    }
    return svg.Append("</svg>").ToString();
}

/// An image file as a small inline JPEG.
static string Thumbnail(string path, int size = 128)
{
    using var bitmap = SKBitmap.Decode(path);
    double scale = (double)size / Math.Max(bitmap.Width, bitmap.Height);
    using var small = bitmap.Resize(new SKImageInfo(Math.Max(1, (int)(bitmap.Width * scale)), Math.Max(1, (int)(bitmap.Height * scale))), new SKSamplingOptions(SKFilterMode.Linear));
    using var data = SKImage.FromBitmap(small).Encode(SKEncodedImageFormat.Jpeg, 80);
    return $"<img src='data:image/jpeg;base64,{Convert.ToBase64String(data.ToArray())}'/>";
}

static void Show(string html) => html.DisplayAs("text/html");'''

def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}

def code(text):
    return {"cell_type": "code", "execution_count": None, "metadata": {"dotnet_interactive": {"language": "csharp"}},
            "outputs": [], "source": text.strip("\n")}

def write(name, cells):
    nb = {"cells": cells,
          "metadata": {"kernelspec": {"display_name": ".NET (C#)", "language": "C#", "name": ".net-csharp"},
                       "language_info": {"file_extension": ".cs", "mimetype": "text/x-csharp", "name": "C#", "pygments_lexer": "csharp"}},
          "nbformat": 4, "nbformat_minor": 5}
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")

PHOTOS = '''var photos = Path.GetFullPath("../../shared/data/hymenoptera");   // 245 training and 153 validation photos of ants and bees'''

write("01-quick-start.ipynb", [
    md('''# Quick start: fine-tune a backbone on real photos

A small backbone (MixFormer B0, 3.5 M parameters) is trained on the hymenoptera photos — ants and bees, one folder
per class — then the curves, the confusion matrix and a few predictions are drawn. Without internet there are no
ImageNet weights here, so it starts from random weights and trains at 96×96 for speed; with weights
(`Pretrained = "default"`) the same code reaches far higher accuracy.'''),
    code(REFERENCES),
    code(HELPERS),
    code('''using MLNetExt.Data;
using MLNetExt.MLNet;
using MLNetExt.Training;

''' + PHOTOS + '''

var (train, val) = ImageDataset.FromFolders(Path.Combine(photos, "train"), Path.Combine(photos, "val"));
Console.WriteLine($"{train.Count} training and {val!.Count} validation photos; classes: {string.Join(", ", train.Classes)}");'''),
    code('''var options = new ImageClassificationOptions
{
    Model = "mixformer_b0", ImageSize = 96, Epochs = 6, BatchSize = 16, LearningRate = 2e-3, Seed = 1,
    Progress = p => { if (p.EpochEnd is { } e) Console.WriteLine($"epoch {e.Epoch}: train loss {e.TrainLoss:F3}, validation top-1 {e.Validation!.Top1:P1} ({e.Seconds:F0} s)"); },
};
var model = new ImageClassificationEstimator(options).Fit(train, val);
var history = model.History!;
Console.WriteLine($"kept epoch {history.BestEpoch}: top-1 {history.Final!.Top1:P1}, macro-F1 {history.Final.MacroF1:F3}");'''),
    md('''## Curves

The training loss at every optimizer step and the validation accuracy at the end of each epoch.'''),
    code('''Show(LineChart("training loss per step", ("loss", "#1f77b4", history.Steps.Select(s => ((double)s.Step, s.Loss)).ToList()))
   + LineChart("validation top-1 per epoch", ("top-1", "#d62728", history.Epochs.Select(e => ((double)e.Epoch, e.Validation!.Top1)).ToList())));'''),
    md('''## Confusion matrix of the kept model'''),
    code('''Show(ConfusionChart(train.Classes, history.Final!.Confusion.Select(r => r.ToArray()).ToArray()));'''),
    md('''## Answering only when sure

An application can take the model's answer only when its probability reaches a minimum, and say "not sure" otherwise
(`mlnetext predict --min-score` does). On the validation photos: how many each minimum answers, and how often it is right.'''),
    code('''Show("<table><tr><th>minimum score</th><th>answered</th><th>right among the answered</th></tr>" + string.Join("", history.Final!.Selective!.Select(p =>
    $"<tr><td>{p.MinScore:0.##}</td><td>{p.Answered:P0}</td><td>{(double.IsNaN(p.Accuracy) ? "—" : p.Accuracy.ToString("P1"))}</td></tr>")) + "</table>");'''),
    md('''## A few predictions'''),
    code('''var some = val.Items.Where((_, i) => i % 38 == 0).Take(4).ToList();
var predictions = model.Predict(some.Select(i => i.Path!).ToList(), topK: 2);
Show("<table><tr>" + string.Join("", some.Zip(predictions, (item, p) =>
    $"<td style='text-align:center;padding:6px'>{Thumbnail(item.Path!)}<br/>true: {train.Classes[item.Label]}<br/>predicted: <b>{p.Label}</b> ({p.Score:P0})</td>")) + "</tr></table>");'''),
    md('''## Where the model looks

`Explain` computes Grad-CAM: for each photo, the network's view of it beside the evidence it found there for its
prediction (red the strongest, blue none). The report `mlnetext train` writes shows the same beside each mistake.'''),
    code('''var views = some.Select((item, k) =>
{
    var map = model.Explain(MLNetExt.Imaging.ImageDecoder.DecodeFile(item.Path!));
    var file = Path.Combine(Path.GetTempPath(), $"mlnetext-quick-start-cam-{k}.png");
    map.SavePng(file);
    return $"<td style='text-align:center;padding:6px'>{Thumbnail(file, 200)}<br/>evidence for <b>{map.Label}</b></td>";
});
Show("<table><tr>" + string.Join("", views) + "</tr></table>");'''),
    md('''The model is saved, exported and packaged for ML.NET in one call — what `mlnetext train` writes:'''),
    code('''var output = Path.Combine(Path.GetTempPath(), "mlnetext-quick-start");
var failed = ModelFolder.Write(model, output);
Console.WriteLine(failed.Count == 0 ? string.Join(", ", Directory.GetFiles(output).Select(Path.GetFileName).Order()) : string.Join("; ", failed));'''),
])

write("02-mlnet-pipelines.ipynb", [
    md('''# ML.NET pipelines: the trainer and the featurizer

MLNetExt's backbones are ML.NET components: a trainer in `MulticlassClassification.Trainers` and a featurizer in
`Transforms`. Both compose with ML.NET's own transforms, evaluate with ML.NET's evaluator, and save as a model.zip that
`mlContext.Model.Load` reads back.'''),
    code(REFERENCES),
    code('''using System.IO;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.MLNet;
using MLNetExt.Training;

''' + PHOTOS + '''

public sealed class ImageRow { public string ImagePath { get; set; } = ""; public string Label { get; set; } = ""; }
public sealed class Prediction { public string PredictedLabel { get; set; } = ""; public float[] Score { get; set; } = []; }

static List<ImageRow> Rows(string folder) => Directory.GetDirectories(folder).Order()
    .SelectMany(d => Directory.GetFiles(d).Order().Select(f => new ImageRow { ImagePath = f, Label = Path.GetFileName(d) })).ToList();

var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadFromEnumerable(Rows(Path.Combine(photos, "train")));
IDataView test = ml.Data.LoadFromEnumerable(Rows(Path.Combine(photos, "val")));
Console.WriteLine($"{train.GetColumn<string>("Label").Count()} training rows, {test.GetColumn<string>("Label").Count()} test rows");'''),
    md('''## The trainer in a pipeline

`MapValueToKey` makes the label a key, the backbone trains on the image paths, `MapKeyToValue` turns the predicted key
back into a class name.'''),
    code('''var trainer = ml.MulticlassClassification.Trainers.BackboneImageClassification(new ImageClassificationOptions
{
    Model = "mixformer_b0", ImageSize = 64, Epochs = 6, BatchSize = 16, LearningRate = 2e-3,
});
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(trainer)
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var model = pipeline.Fit(train);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
Console.WriteLine($"micro-accuracy {metrics.MicroAccuracy:P1}, log-loss {metrics.LogLoss:F3}");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());'''),
    md('''## Save, load, score

The saved chain is made of ML.NET's own transformers (image loading and resizing, `ApplyOnnxModel` with the exported
network inside, ML.NET's multiclass scorer), so a program with only the Microsoft.ML packages loads it.'''),
    code('''var zip = Path.Combine(Path.GetTempPath(), "mlnetext-pipeline.zip");
ml.Model.Save(model, train.Schema, zip);
var loaded = ml.Model.Load(zip, out var inputSchema);
var engine = ml.Model.CreatePredictionEngine<ImageRow, Prediction>(loaded);
foreach (var row in Rows(Path.Combine(photos, "val")).Where((_, i) => i % 40 == 0))
{
    var p = engine.Predict(row);
    Console.WriteLine($"{Path.GetFileName(row.ImagePath),-28} true {row.Label,-5} predicted {p.PredictedLabel,-5} ({p.Score.Max():P0})");
}
Console.WriteLine($"saved and loaded {new FileInfo(zip).Length / 1024:N0} KB; input columns: {string.Join(", ", inputSchema.Select(c => c.Name))}");'''),
    md('''## The featurizer: a backbone's features for any ML.NET trainer

The backbone the pipeline just trained becomes a feature extractor (every stage pooled and concatenated), and ML.NET's
L-BFGS maximum-entropy trainer learns the classes on top — transfer learning the ML.NET way.'''),
    code('''var trained = model.OfType<ImageClassificationTransformer>().Single();   // the chain's fitted trainer
var weights = Path.Combine(Path.GetTempPath(), "mlnetext-pipeline.safetensors");
trained.Model.Save(weights);
var features = ml.Transforms.BackboneFeaturizeImage("Features", "mixformer_b0", weights, inputColumnName: "ImagePath",
        features: BackboneFeatures.PooledStages, imageSize: 64)
    .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
    .Append(ml.Transforms.NormalizeMeanVariance("Features"))
    .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy())
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var featureModel = features.Fit(train);
var featureMetrics = ml.MulticlassClassification.Evaluate(featureModel.Transform(test));
Console.WriteLine($"features + L-BFGS: micro-accuracy {featureMetrics.MicroAccuracy:P1}, log-loss {featureMetrics.LogLoss:F3}");'''),
])

write("03-inside-a-backbone.ipynb", [
    md('''# Inside a backbone

The four families side by side — parameters, multiply-accumulates and CPU latency of their smallest variants — then
the stage feature maps of one photo, and an export to ONNX checked against libtorch in ONNX Runtime.'''),
    code(REFERENCES),
    code(HELPERS),
    code('''using System.Diagnostics;
using MLNetExt.Torch;
using MLNetExt.Vision;
using MLNetExt.Export;

var rows = new List<string>();
foreach (var name in new[] { "transxnet_t", "transnext_micro", "smt_t", "mixformer_b0" })
{
    using var scope = TensorScope.Begin();
    using var m = Backbones.Create(name);
    m.Eval();
    long macs = MacCounter.Count(m, 224, 224);
    var x = Tensor.Randn([1, 3, 224, 224]);
    using (Autograd.NoGrad())
    {
        m.Call(x);                                         // warm-up
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 3; i++) m.Call(x);
        rows.Add($"<tr><td>{name}</td><td>{m.Family}</td><td>{m.ParameterCount() / 1e6:F2} M</td><td>{macs / 1e9:F2} G</td>" +
                 $"<td>{clock.Elapsed.TotalMilliseconds / 3:F0} ms</td><td>{string.Join(" → ", m.FeatureInfo.Select(f => $"{f.Channels}@/{f.Reduction}"))}</td></tr>");
    }
}
Show("<table><tr><th>variant</th><th>family</th><th>parameters</th><th>MACs at 224</th><th>CPU latency (batch 1, " +
     $"{TorchRuntime.Threads} threads)</th><th>stages (channels@stride)</th></tr>" + string.Join("", rows) + "</table>");'''),
    md('''## Stage feature maps of one photo

The photo is resized to 224×224 and normalised with the weights' statistics; each stage's output is drawn as its energy
(the mean square over channels: the stages end in a normalisation, so their plain channel mean is zero), then its
first three channels, brighter where the activation is higher. The resolution halves from stage to stage (strides 4,
8, 16, 32). Offline there are no ImageNet weights, so these are a randomly initialised network's maps: texture
responses, not yet object parts — load official weights (`Backbones.Load("smt_t", "smt_tiny.pth")`) to see the bee.'''),
    code('''var photo = Directory.GetFiles(Path.GetFullPath("../../shared/data/hymenoptera/val/bees")).Order().First();
var backbone = Backbones.Create("smt_t");
backbone.Eval();
var cfg = backbone.PretrainedConfig;

// decode and resize with SkiaSharp, then the network's normalisation, as a [1, 3, 224, 224] tensor
var bitmap = SKBitmap.Decode(photo).Resize(new SKImageInfo(224, 224), new SKSamplingOptions(SKFilterMode.Linear));
var pixels = new float[3 * 224 * 224];
for (int y = 0; y < 224; y++)
    for (int x = 0; x < 224; x++)
    {
        var c = bitmap.GetPixel(x, y);
        byte[] rgb = [c.Red, c.Green, c.Blue];
        for (int k = 0; k < 3; k++) pixels[k * 224 * 224 + y * 224 + x] = (float)((rgb[k] / 255.0 - cfg.Mean[k]) / cfg.Std[k]);
    }

static string MapImage(float[] values, int h, int w, int scale)
{
    var sorted = values.Order().ToArray();                  // 2nd to 98th percentile: a few outliers would wash it out
    float lo = sorted[sorted.Length / 50], hi = sorted[sorted.Length - 1 - sorted.Length / 50];
    using var image = new SKBitmap(w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            byte v = (byte)(255 * Math.Clamp((values[y * w + x] - lo) / Math.Max(1e-6f, hi - lo), 0, 1));
            image.SetPixel(x, y, new SKColor(v, (byte)(v / 2), (byte)(255 - v)));
        }
    using var big = image.Resize(new SKImageInfo(w * scale, h * scale), new SKSamplingOptions(SKFilterMode.Nearest));
    using var png = SKImage.FromBitmap(big).Encode(SKEncodedImageFormat.Png, 100);
    return $"<img src='data:image/png;base64,{Convert.ToBase64String(png.ToArray())}'/>";
}

var html = new StringBuilder($"<p>{Thumbnail(photo, 160)}</p><table>");
using (var scope = TensorScope.Begin())
using (Autograd.NoGrad())
{
    var stages = backbone.ForwardStages(Tensor.FromArray(pixels, [1, 3, 224, 224]));
    foreach (var (stage, i) in stages.Select((s, i) => (s, i)))
    {
        int c = (int)stage.Shape[1], h = (int)stage.Shape[2], w = (int)stage.Shape[3], scale = 112 / h;
        html.Append($"<tr><td>stage {i + 1}<br/>{c}×{h}×{w}</td><td>{MapImage((stage * stage).Mean([1]).ToArray<float>(), h, w, scale)}</td>");
        for (int k = 0; k < 3; k++) html.Append($"<td>{MapImage(stage.Select(1, k).ToArray<float>(), h, w, scale)}</td>");
        html.Append("</tr>");
    }
}
Show(html.Append("</table>").ToString());'''),
    md('''## Export to ONNX and check it

The exporter traces the network and writes an ONNX graph; ONNX Runtime runs it on the same input, and the logits must
agree with libtorch's to float precision. (The ML.NET layout, with resizing, cropping and normalisation inside the
graph, is the default; here the graph takes the normalised tensor.)'''),
    code('''using Microsoft.ML.OnnxRuntime;

var onnxPath = Path.Combine(Path.GetTempPath(), "smt_t.onnx");
var export = OnnxExporter.Export(backbone, onnxPath, new OnnxExportOptions { Preprocess = OnnxPreprocess.None });
float[] torchLogits;
using (var scope = TensorScope.Begin())
using (Autograd.NoGrad())
    torchLogits = backbone.Call(Tensor.FromArray(pixels, [1, 3, 224, 224])).ToArray<float>();
var session = new InferenceSession(onnxPath);
var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExporter.NormalizedInput, new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(pixels, new int[] { 1, 3, 224, 224 }))]);
var ortLogits = results.First(r => r.Name == "logits").AsEnumerable<float>().ToArray();
double maxDiff = torchLogits.Zip(ortLogits, (a, b) => Math.Abs(a - b)).Max();
Console.WriteLine($"exported {new FileInfo(onnxPath).Length / 1e6:F1} MB in {export.Elapsed.TotalSeconds:F1} s; " +
                  $"{ortLogits.Length} logits, largest difference ONNX Runtime vs libtorch {maxDiff:E1}");
if (maxDiff > 1e-3) throw new Exception("the exported graph disagrees with libtorch");'''),
])
print("wrote", sorted(f for f in os.listdir(HERE) if f.endswith(".ipynb")))

// Fine-tunes a backbone from its official ImageNet weights with the C# API, writes everything a deployment needs,
// and serves the result through ML.NET:
//   dotnet run --project samples/FineTuneAndServe -c Release -- --data TRAIN_DIR [--val VAL_DIR] --variant NAME
//       [--pretrained TAG] [--epochs N] [--image-size S] --output DIR
// 1. the official weights (--pretrained: a tag from `mlnetext models`, default the variant's own) are downloaded once
//    into the cache and verified;
// 2. they are fine-tuned on TRAIN_DIR (one sub-folder of images per class), validated on VAL_DIR or on 20 % held out;
// 3. DIR gets what `mlnetext train` writes: model.safetensors, metrics.json, report.html, model.onnx, model.zip and
//    the C# consumption code;
// 4. DIR/model.zip is loaded with ML.NET alone and serves predictions, one PredictionEngine call per image.
using Microsoft.ML;
using MLNetExt.MLNet;
using MLNetExt.Samples;
using MLNetExt.Training;

const string Usage = "usage: FineTuneAndServe --data TRAIN_DIR [--val VAL_DIR] --variant NAME [--pretrained TAG] [--epochs N] [--image-size S] --output DIR";
return Samples.Run(() =>
{
    var a = Samples.ParseArgs(args, Usage, ["--data", "--variant", "--output"],
        ["--data", "--val", "--variant", "--pretrained", "--epochs", "--image-size", "--output"]);
    var options = new ImageClassificationOptions
    {
        Model = a["--variant"],
        Pretrained = a.GetValueOrDefault("--pretrained", "default"),
        Epochs = Samples.Int(a, "--epochs") ?? 5,
        ImageSize = Samples.Int(a, "--image-size"),
        Progress = p =>
        {
            if (p.EpochEnd is { } e) Console.WriteLine($"epoch {e.Epoch}: train loss {e.TrainLoss:F4}" + (e.Validation is { } v ? $", validation top-1 {v.Top1:P1}" : ""));
            else if (p.Phase == TrainingPhase.Info) Console.WriteLine(p.Message);
        },
    };

    // 1-2: fine-tune
    using var model = new ImageClassificationEstimator(options).Fit(a["--data"], a.GetValueOrDefault("--val"));
    if (model.History!.Final is { } m) Console.WriteLine($"kept epoch {model.History.BestEpoch}: top-1 {m.Top1:P1} on {m.Count} validation images");

    // 3: the output folder
    var output = a["--output"];
    var failed = ModelFolder.Write(model, output, log: Console.Out);
    if (failed.Count > 0) throw new IOException($"could not write {string.Join("; ", failed)}");

    // 4: serve with ML.NET: the model.zip's PredictedLabel is a key; MapKeyToValue turns it into the class name
    var ml = new MLContext();
    var served = ml.Model.Load(Path.Combine(output, ModelFolder.MLNetFileName), out _);
    var rows = Samples.ReadClassFolders(a.GetValueOrDefault("--val") ?? a["--data"]);
    var toName = ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(served.Transform(ml.Data.LoadFromEnumerable(rows.Take(1))));
    var engine = ml.Model.CreatePredictionEngine<ImageRow, Prediction>(served.Append(toName));
    int right = 0;
    foreach (var row in rows)
    {
        var p = engine.Predict(row);
        right += p.PredictedLabel == row.Label ? 1 : 0;
        Console.WriteLine($"{row.ImagePath}\t{row.Label}\t{p.PredictedLabel}\t{p.Score.Max():F4}");
    }
    Console.WriteLine($"served: {right} of {rows.Count} images predicted right through ML.NET");
    return 0;
});

/// <summary>The served model's outputs: the class name and the probability of each class.</summary>
sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";
    public float[] Score { get; set; } = [];
}

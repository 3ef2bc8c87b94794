// Transfer learning the ML.NET way: a backbone featurizes every image once, then an ML.NET trainer learns on the
// features; the fitted pipeline is saved as an ML.NET model.zip:
//   dotnet run --project samples/MLNetFeatures -c Release -- --data TRAIN_DIR [--val VAL_DIR] --variant NAME
//       [--weights FILE] [--image-size S] [--features prelogits|stages] [--trainer lbfgs|sdca|lightgbm] --output DIR
// --weights takes the official pretrained checkpoint of the variant (or a model MLNetExt trained). Without --val, 20 %
// of TRAIN_DIR is held out for the metrics. DIR/model.zip loads with the Microsoft.ML packages alone (samples/MLNetConsume).
using Microsoft.ML;
using MLNetExt.MLNet;   // the catalog extension methods
using MLNetExt.Samples;

const string Usage = "usage: MLNetFeatures --data TRAIN_DIR [--val VAL_DIR] --variant NAME [--weights FILE] [--image-size S] " +
                     "[--features prelogits|stages] [--trainer lbfgs|sdca|lightgbm] --output DIR";
return Samples.Run(() =>
{
    var a = Samples.ParseArgs(args, Usage, ["--data", "--variant", "--output"],
        ["--data", "--val", "--variant", "--weights", "--image-size", "--features", "--trainer", "--output"]);
    var features = a.GetValueOrDefault("--features", "prelogits") switch
    {
        "prelogits" => BackboneFeatures.PreLogits,
        "stages" => BackboneFeatures.PooledStages,
        var f => throw new UsageException($"--features expects prelogits or stages, got '{f}'."),
    };
    var ml = new MLContext(seed: 0);
    ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning && e.Source.StartsWith("MLNetExt")) Console.WriteLine("warning: " + e.RawMessage); };
    IEstimator<ITransformer> trainer = a.GetValueOrDefault("--trainer", "lbfgs") switch
    {
        "lbfgs" => ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(),
        "sdca" => ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(),
        "lightgbm" => ml.MulticlassClassification.Trainers.LightGbm(),
        var t => throw new UsageException($"--trainer expects lbfgs, sdca or lightgbm, got '{t}'."),
    };

    var (train, test, testName) = Samples.TrainAndTest(ml, a);

    var pipeline = ml.Transforms.BackboneFeaturizeImage("Features", a["--variant"], a.GetValueOrDefault("--weights"),
            features: features, imageSize: Samples.Int(a, "--image-size"))
        .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
        .Append(ml.Transforms.NormalizeMeanVariance("Features"))
        .Append(trainer)
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    var model = pipeline.Fit(train);

    Samples.Print(ml.MulticlassClassification.Evaluate(model.Transform(test)), testName);
    var zip = Path.Combine(Directory.CreateDirectory(a["--output"]).FullName, "model.zip");
    ml.Model.Save(model, train.Schema, zip);
    Console.WriteLine($"saved {zip}");
    return 0;
});

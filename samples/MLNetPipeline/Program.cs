// Fine-tunes a backbone inside an ML.NET pipeline and saves it as an ML.NET model.zip:
//   dotnet run --project samples/MLNetPipeline -c Release -- --data TRAIN_DIR [--val VAL_DIR] --variant NAME
//       [--weights FILE] [--epochs N] [--image-size S] --output DIR
// TRAIN_DIR and VAL_DIR hold one sub-folder of images per class. Without --val, 20 % of TRAIN_DIR is held out for the
// metrics. DIR/model.zip loads with mlContext.Model.Load in a program that references only the Microsoft.ML packages
// (see samples/MLNetConsume) and scores rows with ImagePath and Label columns.
using Microsoft.ML;
using MLNetExt.MLNet;   // the catalog extension methods
using MLNetExt.Samples;
using MLNetExt.Training;

const string Usage = "usage: MLNetPipeline --data TRAIN_DIR [--val VAL_DIR] --variant NAME [--weights FILE] [--epochs N] [--image-size S] --output DIR";
return Samples.Run(() =>
{
    var a = Samples.ParseArgs(args, Usage, ["--data", "--variant", "--output"],
        ["--data", "--val", "--variant", "--weights", "--epochs", "--image-size", "--output"]);
    var ml = new MLContext(seed: 0);
    ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Info && e.Source.StartsWith("MLNetExt")) Console.WriteLine(e.RawMessage); };

    var (train, test, testName) = Samples.TrainAndTest(ml, a);

    var options = new ImageClassificationOptions
    {
        Model = a["--variant"],
        WeightsPath = a.GetValueOrDefault("--weights"),
        Epochs = Samples.Int(a, "--epochs") ?? 10,
        ImageSize = Samples.Int(a, "--image-size"),
    };
    var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
        .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification(options))
        .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    var model = pipeline.Fit(train);

    Samples.Print(ml.MulticlassClassification.Evaluate(model.Transform(test)), testName);
    var output = Directory.CreateDirectory(a["--output"]).FullName;
    var zip = Path.Combine(output, "model.zip");
    ml.Model.Save(model, train.Schema, zip);
    Console.WriteLine($"saved {zip}");
    return 0;
});

// Scores images with a saved ML.NET model.zip in a program that references only the Microsoft.ML packages (no
// MLNetExt): what a deployed application does with a model from samples/MLNetPipeline or samples/MLNetFeatures.
//   dotnet run --project samples/MLNetConsume -c Release -- --model DIR/model.zip --data FOLDER
// FOLDER holds one sub-folder of images per class; every image is predicted and ML.NET's metrics are printed.
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Samples;

const string Usage = "usage: MLNetConsume --model MODEL.zip --data FOLDER";
return Samples.Run(() =>
{
    var a = Samples.ParseArgs(args, Usage, ["--model", "--data"], ["--model", "--data"]);
    var ml = new MLContext();
    var model = ml.Model.Load(a["--model"], out _);
    var rows = Samples.ReadClassFolders(a["--data"]);
    var scored = model.Transform(ml.Data.LoadFromEnumerable(rows));
    var predicted = scored.GetColumn<string>("PredictedLabel").ToArray();
    var scores = scored.GetColumn<float[]>("Score").ToArray();
    for (int i = 0; i < rows.Count; i++)
        Console.WriteLine($"{rows[i].ImagePath}\t{rows[i].Label}\t{predicted[i]}\t{scores[i].Max():F6}");
    Samples.Print(ml.MulticlassClassification.Evaluate(scored), "metrics");
    return 0;
});

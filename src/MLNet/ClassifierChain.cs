using Microsoft.ML;
using MLNetExt.Export;

namespace MLNetExt.MLNet;

/// <summary>
/// The fitted classifier as standard ML.NET transformers, the same for a model.zip written from an ONNX file and for
/// the trainer's fitted model: the image column prepared as the export says (<see cref="ImageColumn.Preparation"/>),
/// <c>ApplyOnnxModel</c> with the ONNX bytes held in the chain, ML.NET's own multiclass scorer over the logits
/// (<see cref="MLNetScorerFactory"/>), and the intermediate columns dropped, so the output is the input plus
/// <c>Score</c> (slot names = classes) and <c>PredictedLabel</c> (a key whose values are the classes).
/// </summary>
internal static class ClassifierChain
{
    /// <summary>How a trained model's ONNX for a chain is exported at <paramref name="precision"/>: INT8 static,
    /// calibrated on an even sample of up to <see cref="Training.ImageClassificationOptions.MaxCalibrationImages"/>
    /// images of <paramref name="calibration"/> (the training set), or dynamic without it.</summary>
    public static OnnxExportOptions ExportOptions(OnnxPrecision precision, Data.ImageDataset? calibration) => new()
    {
        Precision = precision,
        CalibrationItems = precision == OnnxPrecision.Int8 ? calibration?.EvenSample(Training.ImageClassificationOptions.MaxCalibrationImages) : null,
    };

    /// <summary>Builds the chain over <paramref name="source"/>, whose <paramref name="labelColumn"/> is a key with the
    /// classes as key values (its key type becomes PredictedLabel's) and whose image column is <paramref name="image"/>.</summary>
    public static ITransformer Build(MLContext ml, IDataView source, ImageColumn image, string labelColumn, byte[] onnx, ExportedModelInfo info,
        string logitsColumn, string scoreColumn, string predictedLabelColumn, int? gpuDeviceId)
    {
        var features = image.Preparation(ml, info, info.InputName)
            .Append(ml.Transforms.ApplyOnnxModel([logitsColumn], [info.InputName], new MemoryStream(onnx), gpuDeviceId, fallbackToCpu: false))
            .Fit(source);
        var featured = features.Transform(source);
        var scorer = MLNetScorerFactory.Create(ml, featured.Schema, logitsColumn, labelColumn, info.Labels, scoreColumn, predictedLabelColumn,
            info.ScoreTemperature);
        var drop = ml.Transforms.DropColumns([.. image.Intermediates, info.InputName, logitsColumn]).Fit(scorer.Transform(featured));
        return features.Append(scorer).Append(drop);
    }
}

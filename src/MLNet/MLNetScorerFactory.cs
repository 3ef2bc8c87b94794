using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Trainers;

namespace MLNetExt.MLNet;

/// <summary>
/// Makes ML.NET's own multiclass scorer over a logits column: <c>MulticlassPredictionTransformer&lt;MaximumEntropyModelParameters&gt;</c>
/// with weights 1/T times the identity and zero bias, so <c>Score = softmax(logits / T)</c> (the model's score temperature,
/// 1 unless training calibrated the scores) and <c>PredictedLabel</c> is a scalar key whose key
/// values are the classes (what ML.NET's trainers give). Both constructors are internal in ML.NET, so they are reached by
/// reflection, pinned to the signatures of Microsoft.ML 6.0.0 and tested; the saved model needs no reflection to load.
/// Fallback if a later ML.NET changes them: the ONNX model's own <c>Score</c> output (its slot names are the classes) with
/// the argmax taken by the caller.
/// </summary>
internal static class MLNetScorerFactory
{
    const BindingFlags NonPublic = BindingFlags.Instance | BindingFlags.NonPublic;

    internal static readonly Type[] ModelConstructor =
        [typeof(IHostEnvironment), typeof(VBuffer<float>[]), typeof(float[]), typeof(int), typeof(int), typeof(string[]), typeof(ModelStatisticsBase)];

    internal static readonly Type[] TransformerConstructor =
        [typeof(IHostEnvironment), typeof(MaximumEntropyModelParameters), typeof(DataViewSchema), typeof(string), typeof(string), typeof(string), typeof(string)];

    public static MulticlassPredictionTransformer<MaximumEntropyModelParameters> Create(MLContext mlContext, DataViewSchema trainSchema,
        string featureColumn, string labelColumn, IReadOnlyList<string> classes, string scoreColumn = MLNetModelFile.ScoreColumn,
        string predictedLabelColumn = MLNetModelFile.PredictedLabelColumn, double temperature = 1)
    {
        int k = classes.Count;
        var weights = new VBuffer<float>[k];
        for (int i = 0; i < k; i++)
        {
            var row = new float[k];
            row[i] = (float)(1 / temperature);
            weights[i] = new VBuffer<float>(k, row);
        }
        var model = (MaximumEntropyModelParameters)Constructor(typeof(MaximumEntropyModelParameters), ModelConstructor)
            .Invoke([mlContext, weights, new float[k], k, k, classes.ToArray(), null]);
        return (MulticlassPredictionTransformer<MaximumEntropyModelParameters>)Constructor(typeof(MulticlassPredictionTransformer<MaximumEntropyModelParameters>), TransformerConstructor)
            .Invoke([mlContext, model, trainSchema, featureColumn, labelColumn, scoreColumn, predictedLabelColumn]);
    }

    static ConstructorInfo Constructor(Type type, Type[] parameters) =>
        type.GetConstructor(NonPublic, null, parameters, null)
        ?? throw new NotSupportedException($"Microsoft.ML {type.Assembly.GetName().Version} has no constructor {type.Name}({string.Join(", ", parameters.Select(p => p.Name))}): " +
            "MLNetExt writes ML.NET models with Microsoft.ML 6.0.0's multiclass scorer. Use Microsoft.ML 6.0.0, or score with the ONNX model's Score output.");
}

using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetExt.Data;
using MLNetExt.Training;
using MLNetExt.Inference;

namespace MLNetExt.MLNet;

/// <summary>
/// A fitted <see cref="ImageClassificationEstimator"/> in an ML.NET pipeline: it adds <c>Score</c> (class
/// probabilities, slot names = classes) and <c>PredictedLabel</c> (a key whose values are the classes) to rows with the
/// training image column. Scoring runs the trained network as ONNX inside standard ML.NET transformers
/// (image preparation, <c>ApplyOnnxModel</c>, ML.NET's multiclass scorer), and <c>mlContext.Model.Save</c> writes that
/// standard chain: for path and MLImage image columns the saved model loads with the Microsoft.ML packages alone; for
/// encoded bytes it needs MLNetExt referenced and registered (see <see cref="MLNet.ImageBytesDecoder"/>).
/// The libtorch model, the training history and the final validation metrics stay available here.
/// </summary>
public sealed class ImageClassificationTransformer : ITransformer, IDisposable
{
    readonly ITransformer _chain;

    internal ImageClassificationTransformer(ImageClassificationModel model, ITransformer chain, IReadOnlyList<DatasetIssue> skipped)
    {
        Model = model;
        _chain = chain;
        Skipped = skipped;
    }

    /// <summary>The trained libtorch model: predict, evaluate, save as safetensors, export ONNX, fine-tune further.</summary>
    public ImageClassificationModel Model { get; }

    /// <summary>Class names in key (score) order.</summary>
    public IReadOnlyList<string> Classes => Model.Classes;

    /// <summary>Losses, learning rates and metrics of every epoch, the best epoch and why training stopped.</summary>
    public TrainingHistory History => Model.History!;

    /// <summary>The validation metrics of the kept (best) epoch; null when nothing was held out.</summary>
    public ClassificationMetrics? Metrics => History.Final;

    /// <summary>Training and validation rows that were not used (no label, unreadable image), with row and reason.</summary>
    public IReadOnlyList<DatasetIssue> Skipped { get; }

    /// <summary>The standard ML.NET transformers that score (what <c>mlContext.Model.Save</c> writes).</summary>
    public ITransformer ScoringChain => _chain;

    /// <inheritdoc/>
    public bool IsRowToRowMapper => _chain.IsRowToRowMapper;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _chain.GetOutputSchema(inputSchema);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => _chain.GetRowToRowMapper(inputSchema);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => _chain.Transform(input);

    /// <summary>Saves the standard chain in its place, so loading gives ML.NET's own transformers, not this type.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => _chain.Save(ctx);

    /// <summary>Frees the libtorch network and the ONNX session.</summary>
    public void Dispose()
    {
        Model.Dispose();
        (_chain as IDisposable)?.Dispose();
    }
}

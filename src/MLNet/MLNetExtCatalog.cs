using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNetExt.Training;

namespace MLNetExt.MLNet;

/// <summary>
/// MLNetExt in the MLContext catalogs: a trainer in <c>mlContext.MulticlassClassification.Trainers</c> and a featurizer
/// in <c>mlContext.Transforms</c>. Both read the context's seed, <c>GpuDeviceId</c>/<c>FallbackToCpu</c> and report to
/// <c>MLContext.Log</c>.
/// </summary>
public static class MLNetExtCatalog
{
    /// <summary>
    /// Fine-tunes backbone <paramref name="model"/> (an official variant, e.g. "transxnet_t", "transnext_tiny", "smt_s",
    /// "mixformer_b1"; see <c>mlnetext models</c>) into an image classifier. The label column must be a key (from
    /// <c>MapValueToKey</c>); the image column a path (read from <paramref name="imageFolder"/>), an MLImage (from
    /// <c>LoadImages</c>) or encoded bytes (from <c>LoadRawImageBytes</c>). Outputs <c>Score</c> and <c>PredictedLabel</c>.
    /// Every other setting has the default of <see cref="ImageClassificationOptions"/>; use the options overload for them.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="model">Backbone variant name.</param>
    /// <param name="labelColumnName">Key-typed label column.</param>
    /// <param name="imageColumnName">Image column: path, MLImage or encoded bytes.</param>
    /// <param name="imageFolder">Folder relative paths are read from (path columns only).</param>
    /// <param name="weightsPath">Pretrained weights of the official code (.pth/.pt/.safetensors/.pdparams). Null: random initialisation.</param>
    /// <param name="epochs">Passes over the training data. Null: 10.</param>
    /// <param name="pretrained">Official weights by name instead of <paramref name="weightsPath"/>: a tag (<c>smt_t.in1k</c>)
    /// or "default"; downloaded once into the cache (see <see cref="Pretrained.PretrainedWeights"/>).</param>
    public static ImageClassificationEstimator BackboneImageClassification(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string model, string labelColumnName = "Label", string imageColumnName = "ImagePath", string? imageFolder = null, string? weightsPath = null,
        int? epochs = null, string? pretrained = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        var options = new ImageClassificationOptions
        {
            Model = model, LabelColumnName = labelColumnName, ImageColumnName = imageColumnName, ImageFolder = imageFolder, WeightsPath = weightsPath,
            Pretrained = pretrained,
        };
        return BackboneImageClassification(catalog, epochs is int e ? options with { Epochs = e } : options);
    }

    /// <summary>Fine-tunes a backbone with every setting of <paramref name="options"/> (mode, schedule, EMA, augmentation,
    /// early stopping, device, checkpoints, validation set, progress callback, cancellation...).</summary>
    public static ImageClassificationEstimator BackboneImageClassification(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        ImageClassificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new ImageClassificationEstimator(MLNetEnvironment.Of(catalog), options);
    }

    /// <summary>
    /// Features of each image from backbone <paramref name="model"/> with the weights in <paramref name="weightsPath"/>:
    /// a float vector in <paramref name="outputColumnName"/> for any ML.NET trainer to learn on. The input column is a
    /// path (read from <paramref name="imageFolder"/>), an MLImage or encoded bytes; images are resized as the network
    /// was evaluated (shorter side to the resize size, centre crop in the graph) and normalised inside the ONNX graph.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">Column of the feature vectors.</param>
    /// <param name="model">Backbone variant name.</param>
    /// <param name="weightsPath">Pretrained weights (official checkpoint or an MLNetExt model). Null: random initialisation (a warning is logged).</param>
    /// <param name="inputColumnName">Image column: path, MLImage or encoded bytes.</param>
    /// <param name="imageFolder">Folder relative paths are read from (path columns only).</param>
    /// <param name="features">Pre-logits features, or every stage pooled.</param>
    /// <param name="imageSize">Network input size (square). Null: the variant's pretrained size (or the weights' resolution).</param>
    /// <param name="pretrained">Official weights by name instead of <paramref name="weightsPath"/>: a tag (<c>smt_t.in1k</c>)
    /// or "default"; downloaded once into the cache (see <see cref="Pretrained.PretrainedWeights"/>).</param>
    public static BackboneFeaturizer BackboneFeaturizeImage(this TransformsCatalog catalog, string outputColumnName, string model, string? weightsPath = null,
        string inputColumnName = "ImagePath", string? imageFolder = null, BackboneFeatures features = BackboneFeatures.PreLogits, int? imageSize = null,
        string? pretrained = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(model);
        Pretrained.PretrainedCheckpoint? checkpoint = null;
        if (pretrained is not null)
        {
            if (weightsPath is not null) throw new ArgumentException("Give weightsPath or pretrained, not both.", nameof(pretrained));
            checkpoint = Pretrained.PretrainedCatalog.For(model, pretrained);
            weightsPath = Pretrained.PretrainedWeights.Fetch(checkpoint);
            imageSize ??= checkpoint.Resolution;
        }
        return new BackboneFeaturizer(MLNetEnvironment.Of(catalog), outputColumnName, model, weightsPath, inputColumnName, imageFolder, features, imageSize, checkpoint);
    }

    /// <summary>Makes MLNetExt's saved components loadable in this context: needed before <c>mlContext.Model.Load</c> of a
    /// model whose image column held encoded bytes (the <see cref="ImageBytesDecoder"/> mapping); path and MLImage models
    /// need nothing.</summary>
    public static void RegisterMLNetExt(this ComponentCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        catalog.RegisterAssembly(typeof(MLNetExtCatalog).Assembly);
    }
}

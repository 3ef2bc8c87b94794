using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNetExt.Export;
using MLNetExt.Pretrained;
using MLNetExt.Serialization;
using MLNetExt.Vision;

namespace MLNetExt.MLNet;

/// <summary>Which features <see cref="BackboneFeaturizer"/> gives.</summary>
public enum BackboneFeatures
{
    /// <summary>The pooled features the classifier sees (after the final norm where the family has one):
    /// <see cref="Backbone.NumFeatures"/> values.</summary>
    PreLogits,
    /// <summary>Every stage's map (strides 4, 8, 16, 32) global-average-pooled and concatenated: the sum of the stage
    /// widths, coarse and fine detail together.</summary>
    PooledStages,
}

/// <summary>
/// A backbone as an image featurizer, ML.NET's transfer-learning way (like <c>DnnFeaturizeImage</c>, with these four
/// families): a float vector per image, on which any ML.NET trainer learns (SdcaMaximumEntropy, LbfgsMaximumEntropy,
/// LightGbm...). The network is exported to ONNX once, when the estimator is made, and runs inside ML.NET's
/// <c>ApplyOnnxModel</c> behind the standard image transforms, so the fitted transformer saves and loads like any ML.NET
/// transform (with the Microsoft.ML packages alone for path and MLImage input). Made with
/// <see cref="MLNetExtCatalog.BackboneFeaturizeImage"/>.
/// </summary>
public sealed class BackboneFeaturizer : IEstimator<ITransformer>
{
    readonly string _outputColumn, _inputColumn;
    readonly string? _imageFolder;
    readonly byte[] _onnx;
    readonly ExportedModelInfo _info;
    readonly int? _gpu;

    /// <summary>Length of the feature vector. The column's type is ONNX Runtime's row shape, <c>Vector&lt;Single, 1, FeatureSize&gt;</c>,
    /// which every ML.NET trainer and <c>Concatenate</c> take as a vector of FeatureSize values.</summary>
    public int FeatureSize { get; }

    internal BackboneFeaturizer(MLNetEnvironment env, string outputColumnName, string model, string? weightsPath, string inputColumnName,
        string? imageFolder, BackboneFeatures features, int? imageSize, PretrainedCheckpoint? checkpoint = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputColumnName);
        ArgumentException.ThrowIfNullOrEmpty(model);
        ArgumentException.ThrowIfNullOrEmpty(inputColumnName);
        _outputColumn = outputColumnName;
        _inputColumn = inputColumnName;
        _imageFolder = imageFolder;
        var host = env.Host.Register("MLNetExt.BackboneFeaturizer");
        using var ch = host.Start("Export");
        void Warn(string w) => ch.Warning(MessageSensitivity.None, w);
        _gpu = env.OnnxGpu(Warn);
        double? cropPct = null;
        if (weightsPath is null) Warn($"No weights for {model}: the features come from a randomly initialised network. Pass the official pretrained weights file.");
        using var backbone = checkpoint is not null ? PretrainedWeights.Load(checkpoint, weightsPath!).Model : Open(model, weightsPath, ref imageSize, out cropPct);
        FeatureSize = features == BackboneFeatures.PreLogits ? backbone.NumFeatures : backbone.FeatureInfo.Sum(f => f.Channels);
        var size = imageSize is int s ? (s, s) : ((int, int)?)null;
        (_onnx, _info) = InMemoryExport.Run(path => OnnxExporter.Export(backbone, path, new OnnxExportOptions
        {
            ImageSize = size, CropPct = cropPct, InputName = ImageColumn.PixelsColumn, OutputName = outputColumnName,
            Head = features == BackboneFeatures.PreLogits ? OnnxHead.PreLogits : OnnxHead.PooledStages,
        }), $"the {model} feature export");
        ch.Info(MessageSensitivity.None, $"{model}: {FeatureSize} {features} features of {_info.CropWidth}x{_info.CropHeight} images (resized to {_info.InputWidth}x{_info.InputHeight}).");
    }

    /// <summary>The backbone with its weights (official checkpoints by name are opened by <see cref="PretrainedWeights.Load"/>,
    /// with the build they need): an official variant with the official code's weights (or none), or a model MLNetExt trained (its own size, custom configuration and evaluation geometry, taken from the file).</summary>
    static Backbone Open(string model, string? weightsPath, ref int? imageSize, out double? cropPct)
    {
        cropPct = null;
        // an official variant at another size: built for it (TransNeXt), as training builds it
        JsonObject? Sized(int? size) => size is int s ? Backbones.InputSizeKwargs(model, null, s, s) : null;
        if (weightsPath is null) return Backbones.Create(model, null, Sized(imageSize));
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"Weights file '{Path.GetFullPath(weightsPath)}' does not exist.", weightsPath);
        if (SafeTensors.IsSafeTensorsFile(weightsPath) && SafeTensors.ReadMetadata(weightsPath).ContainsKey(Training.ModelDescriptor.MetadataKey))
        {
            var trained = Inference.ImageClassificationModel.Load(weightsPath);
            var d = trained.Descriptor;
            if (!string.Equals(d.Model, model, StringComparison.OrdinalIgnoreCase) && !string.Equals(trained.Backbone.Family, model, StringComparison.OrdinalIgnoreCase))
            {
                trained.Dispose();
                throw new ArgumentException($"'{weightsPath}' is an MLNetExt {d.Model} model, not {model}; pass model \"{d.Model}\".", nameof(model));
            }
            imageSize ??= d.ImageSize;
            cropPct = d.CropPct;
            return trained.Backbone;
        }
        return Backbones.Load(model, weightsPath, overrides: Sized(imageSize)).Model;
    }

    /// <summary>Builds the standard chain for the kind of image column <paramref name="input"/> has (path, MLImage or
    /// encoded bytes); the output is the input plus the feature column.</summary>
    public ITransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var image = ImageColumn.Of(input.Schema, _inputColumn, _imageFolder);
        var ml = new MLContext();
        var features = image.Preparation(ml, _info, _info.InputName)
            .Append(ml.Transforms.ApplyOnnxModel([_outputColumn], [_info.InputName], new MemoryStream(_onnx), _gpu, fallbackToCpu: false))
            .Fit(input);
        var drop = ml.Transforms.DropColumns([.. image.Intermediates, _info.InputName]).Fit(features.Transform(input));
        return features.Append(drop);
    }

    /// <summary>The input columns plus the feature vector; checks the image column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        ImageColumn.Of(inputSchema, _inputColumn, _imageFolder);
        return MLNetSchemas.WithFeatures(inputSchema, _outputColumn);
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.MLNet;
using MLNetExt.OnnxRuntime;
using MLNetExt.Training;
using MLNetExt.Inference;

namespace MLNetExt.MLNet;

/// <summary>
/// Fine-tunes a backbone into an image classifier. It is an ML.NET trainer: made through the multiclass catalog
/// (<see cref="MLNetExtCatalog.BackboneImageClassification(MulticlassClassificationCatalog.MulticlassClassificationTrainers, string, string, string, string?, string?, int?, string?)"/>),
/// it fits on an IDataView with a key label column and an image column (path, MLImage or encoded bytes) and gives an
/// <see cref="ImageClassificationTransformer"/> with <c>Score</c> and <c>PredictedLabel</c>:
/// <code>
/// var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
///     .Append(ml.MulticlassClassification.Trainers.BackboneImageClassification("transxnet_t", weightsPath: "transx-t.pth.tar"))
///     .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
/// var model = pipeline.Fit(data);                       // data: ImagePath (string), Label (string)
/// ml.Model.Save(model, data.Schema, "model.zip");       // loads with the Microsoft.ML packages alone
/// </code>
/// Outside ML.NET, <see cref="Fit(ImageDataset, ImageDataset?, CancellationToken)"/> trains on an
/// <see cref="ImageDataset"/> (or a folder) and gives the libtorch <see cref="ImageClassificationModel"/> directly.
/// </summary>
public sealed class ImageClassificationEstimator : IEstimator<ImageClassificationTransformer>
{
    /// <summary>The name the fitted chain's ONNX model gives the logits (a column that never reaches the output).</summary>
    internal const string LogitsColumn = "MLNetExt.Logits";

    readonly Lazy<MLNetEnvironment> _env;
    readonly Lazy<(IHost Host, ulong Seed)> _host;

    /// <summary>The settings every <c>Fit</c> uses.</summary>
    public ImageClassificationOptions Options { get; }

    /// <summary>Creates the estimator (null: all defaults). In an ML.NET pipeline prefer the catalog method, which
    /// also takes the MLContext's seed, GPU and log.</summary>
    public ImageClassificationEstimator(ImageClassificationOptions? options = null) : this(null, options) { }

    internal ImageClassificationEstimator(MLNetEnvironment? env, ImageClassificationOptions? options)
    {
        Options = options ?? new ImageClassificationOptions();
        _env = new(() => env ?? MLNetEnvironment.Default());
        // registered as ML.NET trainers register theirs, so the seed is the context's next draw in creation order
        _host = new(() =>
        {
            var host = _env.Value.Host.Register("MLNetExt.ImageClassification");
            return (host, env is null ? 0UL : (ulong)(uint)host.Rand.Next());
        });
        if (env is not null) _ = _host.Value;
    }

    /// <summary>Trains on the rows of <paramref name="input"/>: the label column (<see cref="ImageClassificationOptions.LabelColumnName"/>)
    /// must be a key, whose key values name the classes in order; the image column (<see cref="ImageClassificationOptions.ImageColumnName"/>)
    /// a path, an MLImage or encoded bytes. Rows without a label or with an unreadable image are left out and reported
    /// (row and path) through <c>MLContext.Log</c>, the progress callback and <see cref="ImageClassificationTransformer.Skipped"/>.
    /// Validation: <see cref="ImageClassificationOptions.ValidationSet"/>, else a held-out fraction.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A missing column or one of the wrong type (named, with what was expected and found).</exception>
    /// <exception cref="DatasetException">No usable rows, or images of fewer than two classes.</exception>
    /// <exception cref="TrainingInterruptedException"><see cref="ImageClassificationOptions.Cancellation"/> was cancelled.</exception>
    public ImageClassificationTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = Options;
        var label = LabelColumn.Of(input.Schema, o.LabelColumnName);
        var image = ImageColumn.Of(input.Schema, o.ImageColumnName, o.ImageFolder);
        var (host, seed) = _host.Value;
        using var ch = host.Start("Training");
        var train = image.ReadDataset(input, label, "training data");
        ImageDataset? val = null;
        if (o.ValidationSet is { } validation)
        {
            var valLabel = LabelColumn.Of(validation.Schema, o.LabelColumnName);
            valLabel.CheckSameAs(label, "validation set");
            var valImage = ImageColumn.Of(validation.Schema, o.ImageColumnName, o.ImageFolder);
            val = valImage.ReadDataset(validation, valLabel, "validation set");
        }
        // both devices are settled before training, so a GPU the context cannot have fails at once
        var device = o.Device ?? _env.Value.TorchDevice(w => ch.Warning(MessageSensitivity.None, w));
        var onnxGpu = _env.Value.OnnxGpu(w => ch.Warning(MessageSensitivity.None, w));
        var log = new TrainingLog(ch, o.Progress);
        var skipped = train.Issues.Concat(val?.Issues ?? []).ToList();
        foreach (var issue in skipped) log.Warn($"Not used for training: {issue}");
        var model = Fit(o with { Seed = o.Seed ?? seed, Device = device, Progress = log.Report }, train, val, o.Cancellation);
        try
        {
            var chain = BuildChain(model, input, image, label.Name, onnxGpu, train);
            return new ImageClassificationTransformer(model, chain, skipped);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The standard ML.NET chain of a trained model: its ONNX export (input and output named so no user column
    /// is hidden; at <see cref="ImageClassificationOptions.ScoringPrecision"/>, INT8 calibrated on training images)
    /// behind the preparation of this image column, ML.NET's scorer and the intermediate columns dropped.</summary>
    ITransformer BuildChain(ImageClassificationModel model, IDataView input, ImageColumn image, string labelColumn, int? gpu, ImageDataset train)
    {
        var export = ClassifierChain.ExportOptions(Options.ScoringPrecision, train) with { InputName = ImageColumn.PixelsColumn, OutputName = LogitsColumn };
        var (onnx, info) = InMemoryExport.Run(path => model.ExportOnnx(path, export), "the trained model's export");
        return ClassifierChain.Build(new MLContext(), input, image, labelColumn, onnx, info, LogitsColumn, Options.ScoreColumnName, Options.PredictedLabelColumnName, gpu);
    }

    /// <summary>The input columns plus <c>Score</c> (a vector of floats, slot names = classes) and <c>PredictedLabel</c>
    /// (the label's key type); checks the label and image columns first.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var label = LabelColumn.Check(inputSchema, Options.LabelColumnName);
        ImageColumn.Of(inputSchema, Options.ImageColumnName, Options.ImageFolder);
        return MLNetSchemas.WithClassifierOutputs(inputSchema, label, Options.ScoreColumnName, Options.PredictedLabelColumnName);
    }

    /// <summary>Trains on <paramref name="train"/>; validates every epoch on <paramref name="validation"/> or, when it is
    /// null, on a stratified <see cref="ImageClassificationOptions.ValidationFraction"/> of the training set.
    /// Cancelling <paramref name="cancel"/> finishes the current step, writes a checkpoint (when a checkpoint folder
    /// is set) and throws <see cref="TrainingInterruptedException"/>.</summary>
    /// <exception cref="TrainingException">A non-finite loss, or a resume whose settings differ from the checkpoint's.</exception>
    public ImageClassificationModel Fit(ImageDataset train, ImageDataset? validation = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        return Fit(Options, train, validation, cancel);
    }

    static ImageClassificationModel Fit(ImageClassificationOptions options, ImageDataset train, ImageDataset? validation, CancellationToken cancel)
    {
        var outcome = Trainer.Run(WithPretrained(options, cancel), train, validation, cancel);
        return new ImageClassificationModel(outcome.Model, outcome.Descriptor, outcome.History);
    }

    /// <summary><paramref name="o"/> with <see cref="ImageClassificationOptions.Pretrained"/> resolved to the cached file
    /// (downloaded first when needed, reported through the progress callback) and the input size defaulted to the
    /// weights' resolution.</summary>
    internal static ImageClassificationOptions WithPretrained(ImageClassificationOptions o, CancellationToken cancel)
    {
        if (o.Pretrained is not { } name) return o;
        if (o.WeightsPath is not null) throw new TrainingOptionException("Pretrained", $"and WeightsPath were both given ('{name}', '{o.WeightsPath}'); give one");
        var checkpoint = Pretrained.PretrainedCatalog.For(o.Model, name);
        void Say(string text) => o.Progress?.Invoke(TrainingProgress.Note(text, o.Epochs));
        var path = Pretrained.PretrainedWeights.Fetch(checkpoint, Pretrained.PretrainedWeights.EveryTenth(line => Say("Downloading " + line)), Say, cancel);
        Say($"Pretrained weights {checkpoint.Tag}: {path}");
        o = o with { WeightsPath = path, ImageSize = o.ImageSize ?? checkpoint.Resolution };
        // weights made for another build of the variant (TransNeXt's 384 fine-tunes) train as a custom configuration
        return checkpoint.CustomBuild() is { } custom ? o with { Model = custom.Family, CustomKwargs = custom.Kwargs } : o;
    }

    /// <summary>K-fold cross-validation with these options: <paramref name="data"/> is split into <paramref name="folds"/>
    /// stratified parts (seeded by <see cref="ImageClassificationOptions.Seed"/>); for each, a model is trained on the
    /// others for every epoch (the last is kept) and scores the part held out, so every image is scored once by a model
    /// that never trained on it. The result pools those scores (the steadiest estimate on a small dataset), gives the
    /// spread over folds, the mean held-out score after each epoch and the images whose labels the scores doubt. With
    /// <paramref name="resultsFolder"/>, each finished fold is written there and reused by a later call with the same
    /// settings and images (an interrupted run continues), and <c>crossval.json</c> and <c>out-of-fold.csv</c> are
    /// written at the end. The fold models are not kept: train the final model on all the data with <c>Fit</c>.</summary>
    /// <exception cref="TrainingOptionException">Early stopping or score calibration is set (each would choose on the
    /// held-out images), or an option is out of range.</exception>
    /// <exception cref="DatasetException">A class with fewer than two images.</exception>
    /// <exception cref="TrainingInterruptedException"><paramref name="cancel"/> was cancelled (finished folds stay in
    /// <paramref name="resultsFolder"/>).</exception>
    public CrossValidationResult CrossValidate(ImageDataset data, int folds = 5, string? resultsFolder = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var o = WithPretrained(Options, cancel);
        return CrossValidator.Run(o, data, folds, resultsFolder, (fo, train, heldOut, c) => Trainer.Run(fo, train, heldOut, c), cancel);
    }

    /// <summary>Trains on a folder of class sub-folders (or one with <c>train/</c> and <c>val/</c> inside); see
    /// <see cref="ImageDataset.FromFolders"/>.</summary>
    public ImageClassificationModel Fit(string dataFolder, string? validationFolder = null, CancellationToken cancel = default)
    {
        var (train, val) = ImageDataset.FromFolders(dataFolder, validationFolder);
        return Fit(train, val, cancel);
    }

    /// <summary>Progress to the caller's callback and to MLContext.Log: messages and epoch summaries as Info, steps as Trace.</summary>
    sealed class TrainingLog(IChannel channel, Action<TrainingProgress>? callback)
    {
        public void Warn(string text)
        {
            channel.Warning(MessageSensitivity.None, text);
            callback?.Invoke(TrainingProgress.Note(text));
        }

        public void Report(TrainingProgress p)
        {
            callback?.Invoke(p);
            if (p.Message is { } m) channel.Info(MessageSensitivity.None, m);
            else if (p.EpochEnd is { } e)
                channel.Info(MessageSensitivity.None, $"Epoch {e.Epoch}/{p.Epochs}: train loss {e.TrainLoss:F4}" +
                    (e.Validation is { } v ? $", validation loss {e.ValLoss:F4}, top-1 {v.Top1:P1}" : "") + $", {e.ImagesPerSecond:F1} images/s, {e.Seconds:F0} s");
            else if (p.Phase == TrainingPhase.Training)
                channel.Trace(MessageSensitivity.None, $"Epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.StepsPerEpoch}: loss {p.Loss:F4}, lr {p.LearningRate:G3}");
        }
    }
}

using MLNetExt.Data;
using MLNetExt.Training;

namespace MLNetExt.Estimators;

/// <summary>Fine-tunes a backbone into an image classifier, in ML.NET's estimator style: configure with
/// <see cref="ImageClassificationOptions"/>, call <see cref="Fit(ImageDataset, ImageDataset?, CancellationToken)"/>,
/// get an <see cref="ImageClassificationModel"/> that predicts, evaluates, saves and exports to ONNX.
/// <code>
/// var estimator = new ImageClassificationEstimator(new ImageClassificationOptions { Model = "transxnet_t", WeightsPath = "transx-t.pth.tar", Epochs = 10 });
/// using var model = estimator.Fit("photos/");            // class sub-folders; 20 % held out for validation
/// Console.WriteLine(model.History!.Final!.Top1);
/// model.ExportOnnx("model.onnx");                        // for ML.NET's ApplyOnnxModel or any ONNX Runtime host
/// </code></summary>
public sealed class ImageClassificationEstimator
{
    /// <summary>The settings every <c>Fit</c> uses.</summary>
    public ImageClassificationOptions Options { get; }

    /// <summary>Creates the estimator (null: all defaults).</summary>
    public ImageClassificationEstimator(ImageClassificationOptions? options = null) => Options = options ?? new ImageClassificationOptions();

    /// <summary>Trains on <paramref name="train"/>; validates every epoch on <paramref name="validation"/> or, when it is
    /// null, on a stratified <see cref="ImageClassificationOptions.ValidationFraction"/> of the training set.
    /// Cancelling <paramref name="cancel"/> finishes the current step, writes a checkpoint (when a checkpoint folder
    /// is set) and throws <see cref="TrainingInterruptedException"/>.</summary>
    /// <exception cref="TrainingException">A non-finite loss, or a resume whose settings differ from the checkpoint's.</exception>
    public ImageClassificationModel Fit(ImageDataset train, ImageDataset? validation = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        var outcome = Trainer.Run(Options, train, validation, cancel);
        return new ImageClassificationModel(outcome.Model, outcome.Descriptor, outcome.History);
    }

    /// <summary>Trains on a folder of class sub-folders (or one with <c>train/</c> and <c>val/</c> inside); see
    /// <see cref="ImageDataset.FromFolders"/>.</summary>
    public ImageClassificationModel Fit(string dataFolder, string? validationFolder = null, CancellationToken cancel = default)
    {
        var (train, val) = ImageDataset.FromFolders(dataFolder, validationFolder);
        return Fit(train, val, cancel);
    }
}

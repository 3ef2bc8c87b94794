using MLNetExt.Data;
using MLNetExt.Export;
using MLNetExt.Nn;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Training;
using MLNetExt.Transforms;
using MLNetExt.Vision;
using MLNetExt.Inference;
using MLNetExt.Imaging;

namespace MLNetExt.Inference;

/// <summary>One image's prediction: the best class and its probability, the top classes, or why it failed.</summary>
public sealed record ImagePrediction(string Source, string? Label, int Index, float Score,
    IReadOnlyList<(string Label, float Probability)> Top, string? Error = null)
{
    /// <summary>The prediction of class probabilities <paramref name="scores"/>: the <paramref name="topK"/> most
    /// probable classes (ties in class order), see <see cref="ImageScore.Top"/>.</summary>
    internal static ImagePrediction FromScores(string source, float[] scores, IReadOnlyList<string> labels, int topK)
    {
        var top = new ImageScore(source, scores, null).Top(Math.Max(1, topK), labels);
        return new ImagePrediction(source, top[0].Label, top[0].Index, top[0].Probability, top.Select(t => (t.Label, t.Probability)).ToList());
    }
}

/// <summary>A trained classifier: a backbone with its classes and evaluation geometry. Predicts with libtorch,
/// evaluates on a labelled dataset, saves to one safetensors file (weights + description) and exports ONNX.</summary>
public sealed class ImageClassificationModel : IDisposable
{
    readonly ImagePipeline _pipeline;

    /// <summary>The network (in eval mode).</summary>
    public Backbone Backbone { get; }

    /// <summary>Backbone, classes, input geometry, score temperature and test-time augmentation.</summary>
    public ModelDescriptor Descriptor { get; private set; }

    /// <summary>The views every prediction of this model averages (the descriptor's): setting it changes what
    /// <see cref="Predict(RgbImage, int, string)"/>, <see cref="Evaluate"/>, <see cref="Save"/> and
    /// <see cref="ExportOnnx"/> give from then on.</summary>
    public TestTimeAugmentation TestTimeAugmentation
    {
        get => Descriptor.TestTimeAugmentation;
        set => Descriptor = Descriptor with { TestTimeAugmentation = value };
    }

    /// <summary>Class names in label order.</summary>
    public IReadOnlyList<string> Classes => Descriptor.Classes;

    /// <summary>The training record when this model came from <c>Fit</c>; null after <see cref="Load"/>.</summary>
    public TrainingHistory? History { get; }

    internal ImageClassificationModel(Backbone backbone, ModelDescriptor descriptor, TrainingHistory? history)
    {
        Backbone = backbone;
        Descriptor = descriptor;
        History = history;
        Backbone.Eval();
        _pipeline = ImagePipeline.Eval(descriptor.ImageSize, descriptor.ImageSize, descriptor.Mean, descriptor.Std, descriptor.CropPct,
            Resampler.Parse(descriptor.Interpolation));
    }

    /// <summary>Class probabilities of already-prepared images (float32 [N, 3, S, S], normalised), as [N, classes]:
    /// <c>softmax(logits / T)</c> with the descriptor's <see cref="ModelDescriptor.ScoreTemperature"/>, the logits
    /// averaged over the views of its <see cref="TestTimeAugmentation"/>.</summary>
    public float[] Probabilities(Tensor images)
    {
        using var scope = TensorScope.Begin();
        using var _ = Autograd.NoGrad();
        var device = Backbone.Parameters().First().Device;
        return Tempered(TestTimeViews.Logits(Backbone.Call, images.To(device), TestTimeAugmentation).To(DType.Float32))
            .Softmax(1).To(Device.Cpu).ToArray<float>();
    }

    /// <summary>Logits divided by the score temperature (the same tensor when it is 1).</summary>
    Tensor Tempered(Tensor logits) => Descriptor.ScoreTemperature == 1 ? logits : logits.Mul(1 / Descriptor.ScoreTemperature);

    /// <summary>Predicts one decoded image.</summary>
    public ImagePrediction Predict(RgbImage image, int topK = 5, string source = "image") => PredictEach(1, _ => image, _ => source, topK, 1)[0]!;

    /// <summary>Where the model found the evidence for class <paramref name="classIndex"/> (default: the class it
    /// predicts) in <paramref name="image"/>: Grad-CAM over the last stage's feature map, on the image as the evaluation
    /// pipeline crops it (see <see cref="ClassActivationMap"/>), the image alone whatever the model's
    /// <see cref="TestTimeAugmentation"/>. Needs gradients, so only this libtorch model explains (not its ONNX export); its
    /// parameters and their gradients are left as they were.</summary>
    public ClassActivationMap Explain(RgbImage image, int? classIndex = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (classIndex is int wanted && (wanted < 0 || wanted >= Classes.Count))
            throw new ArgumentOutOfRangeException(nameof(classIndex), wanted, $"The model has {Classes.Count} classes (0..{Classes.Count - 1}).");
        int size = Descriptor.ImageSize;
        var crop = _pipeline.ProcessToImage(image, Rng.For(0, 0));   // the evaluation pipeline: geometry, then normalisation
        var data = new float[_pipeline.SampleLength];
        _pipeline.Normalize.Apply(crop, data);

        using var scope = TensorScope.Begin();
        var device = Backbone.Parameters().First().Device;
        Tensor leaf;
        using (Autograd.NoGrad())
            leaf = Backbone.ForwardFeatures(Tensor.FromArray(data, [1, 3, size, size]).To(device)).To(DType.Float32).Detach();
        leaf.RequiresGrad = true;
        // Only the feature map's gradient is wanted: no parameter takes part in the backward pass or gets a gradient.
        var trainable = Backbone.Parameters().Where(p => p.RequiresGrad).ToList();
        foreach (var p in trainable) p.RequiresGrad = false;
        try
        {
            using var grad = Autograd.EnableGrad();
            var logits = Backbone.ForwardHead(leaf);
            var probabilities = Tempered(logits.Detach().To(DType.Float32)).Softmax(1).To(Device.Cpu).ToArray<float>();
            int c = classIndex ?? Array.IndexOf(probabilities, probabilities.Max());
            var oneHot = new float[Classes.Count];
            oneHot[c] = 1;
            logits.Backward(Tensor.FromArray(oneHot, [1, Classes.Count]).To(logits.Device).To(logits.DType));
            int channels = (int)leaf.Size(1), height = (int)leaf.Size(2), width = (int)leaf.Size(3);
            var cam = ClassActivationMap.GradCam(leaf.Detach().To(Device.Cpu).ToArray<float>(), leaf.Grad!.To(DType.Float32).To(Device.Cpu).ToArray<float>(),
                channels, height, width);
            return new ClassActivationMap(crop, ClassActivationMap.Upsample(cam, height, width, crop.Height, crop.Width), c, Classes[c],
                probabilities[c], height, width);
        }
        finally
        {
            foreach (var p in trainable) p.RequiresGrad = true;
        }
    }

    /// <summary>Predicts image files in batches; unreadable files get a prediction with <see cref="ImagePrediction.Error"/> set.</summary>
    public IReadOnlyList<ImagePrediction> Predict(IReadOnlyList<string> paths, int topK = 5, int batchSize = 16)
    {
        var reasons = new string?[paths.Count];
        var predictions = PredictEach(paths.Count, i => ImageDecoder.TryDecodeFile(paths[i], out reasons[i]), i => paths[i], topK, batchSize);
        return predictions.Select((p, i) => p ?? new ImagePrediction(paths[i], null, -1, 0, [], reasons[i] ?? "could not be decoded")).ToArray();
    }

    /// <summary>Predicts images <c>0..count-1</c> in batches (null where <paramref name="imageAt"/> gives none). Each image
    /// goes through the evaluation pipeline as soon as it is given, so at most one decoded image is held at a time.</summary>
    ImagePrediction?[] PredictEach(int count, Func<int, RgbImage?> imageAt, Func<int, string> sourceAt, int topK, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var results = new ImagePrediction?[count];
        int len = _pipeline.SampleLength, c = Classes.Count;
        var data = new float[batchSize * len];
        var where = new List<int>(batchSize);
        void Flush()
        {
            if (where.Count == 0) return;
            float[] probs;
            using (var scope = TensorScope.Begin())
                probs = Probabilities(Tensor.FromArray(where.Count == batchSize ? data : data[..(where.Count * len)],
                    [where.Count, 3, Descriptor.ImageSize, Descriptor.ImageSize]));
            for (int k = 0; k < where.Count; k++)
                results[where[k]] = ImagePrediction.FromScores(sourceAt(where[k]), probs.AsSpan(k * c, c).ToArray(), Classes, topK);
            where.Clear();
        }
        for (int i = 0; i < count; i++)
        {
            if (imageAt(i) is not { } image) continue;
            _pipeline.Process(image, Rng.For(0, where.Count), data.AsSpan(where.Count * len, len));
            where.Add(i);
            if (where.Count == batchSize) Flush();
        }
        Flush();
        return results;
    }

    /// <summary>Metrics on a labelled dataset whose classes are this model's (same names, same order).</summary>
    public ClassificationMetrics Evaluate(ImageDataset data, int batchSize = 32) => EvaluateDetailed(data, batchSize).Metrics;

    /// <summary>Metrics, misclassified images (most confident mistakes first) and unreadable images on a labelled
    /// dataset whose classes are this model's; <paramref name="progress"/> gets (batches done, batches). With a
    /// <see cref="TestTimeAugmentation"/>, <see cref="EvaluationResult.SingleView"/> holds the metrics of the image alone,
    /// from the same pass.</summary>
    public EvaluationResult EvaluateDetailed(ImageDataset data, int batchSize = 32, Action<int, int>? progress = null)
    {
        data.RequireClasses(Classes);
        var loader = new DataLoader(data, _pipeline, new LoaderOptions { BatchSize = batchSize, Shuffle = false });
        var device = Backbone.Parameters().First().Device;
        IEnumerable<(Tensor, Tensor, int[])> Batches()
        {
            foreach (var b in loader.GetEpoch(0))
                using (b)
                using (var y = b.Labels.To(device))
                    yield return (b.Images, y, b.Indices);
        }
        var tta = TestTimeAugmentation;
        Tensor[] Logits(Tensor x)
        {
            var all = Backbone.Call(TestTimeViews.Expand(x.To(device), tta)).To(DType.Float32);
            return tta == TestTimeAugmentation.None ? [Tempered(all)] : [Tempered(TestTimeViews.Merge(all, tta)), Tempered(all.Slice(0, 0, x.Size(0)))];
        }
        var r = Evaluator.Run(Batches(), Logits, data, done => progress?.Invoke(done, loader.BatchesPerEpoch));
        return new EvaluationResult(r[0].Metrics(Classes), r[0].Misclassified(), loader.Skipped, r.Length > 1 ? r[1].Metrics(Classes) : null);
    }

    /// <summary>Writes the model as one safetensors file: the backbone's state_dict under its official names plus
    /// the description (backbone, classes, geometry) in the metadata. Written atomically.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        SafeTensors.Save(path, Backbone.StateDict(), new Dictionary<string, string> { [ModelDescriptor.MetadataKey] = Descriptor.ToJson() });
    }

    /// <summary>Loads a model written by <see cref="Save"/>, or the current weights of a training checkpoint.</summary>
    public static ImageClassificationModel Load(string path)
    {
        var (backbone, descriptor) = TrainedModelFile.Load(path);
        return new ImageClassificationModel(backbone, descriptor, null);
    }

    /// <summary>Exports to ONNX for ML.NET (input <c>image</c>: RGB planar 0–255 at the evaluation resize size, the
    /// centre crop and normalisation inside the graph; outputs <c>Score</c> and <c>logits</c>; the class names in the
    /// metadata). See <see cref="OnnxExporter"/>.</summary>
    public OnnxExportResult ExportOnnx(string path, OnnxExportOptions? options = null)
    {
        var o = (options ?? new OnnxExportOptions()) with
        {
            Labels = Classes, ImageSize = (Descriptor.ImageSize, Descriptor.ImageSize), CropPct = options?.CropPct ?? Descriptor.CropPct,
            ScoreTemperature = Descriptor.ScoreTemperature, TestTimeAugmentation = Descriptor.TestTimeAugmentation,
        };
        return OnnxExporter.Export(Backbone, path, o);
    }

    /// <summary>Frees the network.</summary>
    public void Dispose() => Backbone.Dispose();
}

using MLNetExt.Data;
using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Training;

/// <summary>A labelled set scored by a model: row-major class probabilities [Labels.Length, classes], the true labels,
/// each image's source, and the mean cross-entropy.</summary>
internal sealed record EvalResult(float[] Probabilities, int[] Labels, string[] Sources, double Loss)
{
    public ClassificationMetrics Metrics(IReadOnlyList<string> classes) => ClassificationMetrics.Compute(Probabilities, Labels, classes);

    /// <summary>The misclassified images, hardest first.</summary>
    public List<Misclassified> Misclassified() => Training.Misclassified.Rank(Probabilities, Labels, Sources);

    /// <summary>The same images with other probabilities (same shape, e.g. recalibrated); the loss follows from them.</summary>
    public EvalResult Rescored(float[] probabilities)
    {
        int classes = probabilities.Length / Labels.Length;
        return this with { Probabilities = probabilities, Loss = Labels.Select((y, i) => CrossEntropy(probabilities[i * classes + y])).Average() };
    }

    /// <summary>−log p(true class), a probability of 0 (float32 underflow) read as the smallest positive float.</summary>
    public static double CrossEntropy(float trueClassProbability) => -Math.Log(Math.Max(trueClassProbability, float.Epsilon));
}

/// <summary>
/// The one evaluation loop: the trainer's validation, <c>ImageClassificationModel.Evaluate</c> and the CLI's
/// <c>evaluate</c> of ONNX and ML.NET models all gather their scores here, so metrics, loss and the ranking of
/// mistakes are computed one way.
/// </summary>
internal sealed class Evaluator
{
    readonly List<float> _probabilities = new();
    readonly List<int> _labels = new();
    readonly List<string> _sources = new();
    double _lossSum;

    /// <summary>Images scored so far.</summary>
    public int Count => _labels.Count;

    /// <summary>Adds a batch: its probabilities (row-major), labels, sources and summed cross-entropy.</summary>
    public void Add(ReadOnlySpan<float> probabilities, IEnumerable<int> labels, IEnumerable<string> sources, double lossSum)
    {
        _probabilities.AddRange(probabilities);
        _labels.AddRange(labels);
        _sources.AddRange(sources);
        _lossSum += lossSum;
    }

    /// <summary>Adds one image scored elsewhere (an ONNX Runtime session): its loss is −log p(true class).</summary>
    public void Add(float[] probabilities, int label, string source) =>
        Add(probabilities, [label], [source], EvalResult.CrossEntropy(probabilities[label]));

    /// <summary>The result; <paramref name="what"/> names the data in the error when nothing could be scored.</summary>
    public EvalResult Result(string what)
    {
        if (Count == 0) throw new DatasetException($"No image of {what} could be decoded.");
        return new EvalResult(_probabilities.ToArray(), _labels.ToArray(), _sources.ToArray(), _lossSum / Count);
    }

    /// <summary>Scores batches of (images, labels on the model's device, dataset indices) with <paramref name="logits"/>:
    /// float32 softmax probabilities and summed cross-entropy, without gradients. <paramref name="afterBatch"/> sees the
    /// batches done.</summary>
    public static EvalResult Run(IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> batches, Func<Tensor, Tensor> logits,
        ImageDataset data, Action<int>? afterBatch = null) => Run(batches, x => [logits(x)], data, afterBatch)[0];

    /// <summary>As <see cref="Run(IEnumerable{ValueTuple{Tensor, Tensor, int[]}}, Func{Tensor, Tensor}, ImageDataset, Action{int}?)"/>
    /// with several scorings of each batch in one pass (e.g. with and without test-time augmentation): one result each,
    /// in the order <paramref name="logits"/> gives them.</summary>
    public static EvalResult[] Run(IEnumerable<(Tensor Images, Tensor Labels, int[] Indices)> batches, Func<Tensor, Tensor[]> logits,
        ImageDataset data, Action<int>? afterBatch = null)
    {
        var evaluators = new List<Evaluator>();
        int done = 0;
        using (Autograd.NoGrad())
        {
            foreach (var (x, y, idx) in batches)
            {
                using var scope = TensorScope.Begin();
                var all = logits(x);
                while (evaluators.Count < all.Length) evaluators.Add(new Evaluator());
                for (int k = 0; k < all.Length; k++)
                {
                    var l = all[k].To(DType.Float32);
                    double loss = F.CrossEntropy(l, y, reduction: Reduction.Sum).ToDouble();
                    using var cpu = l.Softmax(1).To(Device.Cpu);
                    evaluators[k].Add(cpu.ToArray<float>(), idx.Select(i => data.Items[i].Label), idx.Select(i => data.Items[i].Source), loss);
                }
                afterBatch?.Invoke(++done);
            }
        }
        if (evaluators.Count == 0) evaluators.Add(new Evaluator());
        return evaluators.Select(e => e.Result($"'{data.Source}'")).ToArray();
    }
}

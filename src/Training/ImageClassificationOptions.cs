using System.Text.Json.Nodes;
using MLNetExt.Export;

namespace MLNetExt.Training;

/// <summary>How much of the backbone is trained.</summary>
public enum TrainingMode
{
    /// <summary>Every parameter is trained (layer-wise LR decay optional).</summary>
    FineTune,
    /// <summary>The stem and the first <see cref="ImageClassificationOptions.FrozenStages"/> stages keep their weights
    /// (and their batch-norm statistics); the rest is trained.</summary>
    FreezeStages,
    /// <summary>Only the classifier is trained, on features of the frozen backbone that are computed once and cached
    /// (ML.NET's "bottleneck" idea), so each epoch costs a matrix product instead of a forward pass.</summary>
    LinearProbe,
}

/// <summary>How class imbalance is weighed in the loss.</summary>
public enum ClassWeighting
{
    /// <summary>Every sample counts the same.</summary>
    None,
    /// <summary>Weight of class c = N / (classes · count_c) (scikit-learn's "balanced"), so rare classes count more.</summary>
    Balanced,
}

/// <summary>Settings of <see cref="MLNet.ImageClassificationEstimator"/>. Every field has a default that suits fine-tuning
/// a pretrained backbone on a few hundred to a few thousand photos; the values follow the official recipes of the
/// four families (AdamW, warm-up + cosine, label smoothing 0.1, no decay on norms/biases/tables).</summary>
public sealed record ImageClassificationOptions
{
    // ---- model ----

    /// <summary>Official variant name (see <c>mlnetext models</c>), or a family name when <see cref="CustomKwargs"/>
    /// gives a custom size. Default: transxnet_t.</summary>
    public string Model { get; init; } = "transxnet_t";

    /// <summary>The family's official constructor keyword arguments for a custom size (null: the variant's).</summary>
    public JsonObject? CustomKwargs { get; init; }

    /// <summary>Pretrained weights to start from (.pth/.pt/.safetensors/.pdparams of the official code, or an
    /// MLNetExt model). The classifier is re-initialised when its class count differs. Null: random initialisation.</summary>
    public string? WeightsPath { get; init; }

    /// <summary>Official pretrained weights by name, downloaded once into the cache and verified (see
    /// <see cref="MLNetExt.Pretrained.PretrainedWeights"/>): a tag such as <c>smt_t.in1k</c> or
    /// <c>smt_l.in22k_ft_in1k_384</c>, or <c>"default"</c> for the variant's default weights. Instead of
    /// <see cref="WeightsPath"/>; the input size defaults to the weights' resolution. Null: none.</summary>
    public string? Pretrained { get; init; }

    /// <summary>Training and evaluation input size (square). Null: the variant's pretrained size (224 mostly). A model
    /// built for one resolution (TransNeXt) is built for this one (see <see cref="Vision.Backbones.InputSizeKwargs"/>).</summary>
    public int? ImageSize { get; init; }

    /// <summary>Stochastic depth rate. Null: the variant's official rate for fine-tuning, capped at 0.1 (small
    /// datasets), and 0 for a linear probe.</summary>
    public double? DropPathRate { get; init; }

    // ---- what is trained ----

    /// <summary>Full fine-tune, frozen first stages, or linear probe. Default: FineTune.</summary>
    public TrainingMode Mode { get; init; } = TrainingMode.FineTune;

    /// <summary>Stages kept frozen in <see cref="TrainingMode.FreezeStages"/> (1..stages). Default 2.</summary>
    public int FrozenStages { get; init; } = 2;

    /// <summary>Linear probe only: compute the frozen features once (true, fast) or run the frozen backbone on every
    /// batch (false; the same result, kept for checking).</summary>
    public bool CacheFeatures { get; init; } = true;

    // ---- optimisation ----

    /// <summary>Passes over the training set. Default 10.</summary>
    public int Epochs { get; init; } = 10;

    /// <summary>Images per step. Default 32.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Micro-batches accumulated per optimizer step (effective batch = BatchSize × this). Default 1.</summary>
    public int AccumulationSteps { get; init; } = 1;

    /// <summary>"adamw" (decoupled weight decay, the families' recipe) or "sgd" (momentum 0.9, Nesterov, L2 weight
    /// decay). Default adamw.</summary>
    public string Optimizer { get; init; } = "adamw";

    /// <summary>Learning-rate schedule after the warm-up: "cosine" (down to LearningRate × MinLearningRateFactor),
    /// "step" (×0.1 at each third), "one-cycle" (PyTorch's OneCycleLR, the warm-up as its rise) or "constant".
    /// Default cosine.</summary>
    public string Schedule { get; init; } = "cosine";

    /// <summary>Peak learning rate. Null: 2e-4 when fine-tuning pretrained weights, 1e-3 from scratch,
    /// 1e-2 for a linear probe (50 times these with SGD) — each scaled by effective batch / 32 (linear scaling).</summary>
    public double? LearningRate { get; init; }

    /// <summary>Decoupled weight decay (not applied to norms, biases and the tables each family exempts). Default 0.05.</summary>
    public double WeightDecay { get; init; } = 0.05;

    /// <summary>Linear warm-up length in epochs (may be fractional). Default 1 (0 when training one epoch).</summary>
    public double WarmupEpochs { get; init; } = 1;

    /// <summary>The cosine schedule ends at LearningRate × this. Default 0.01.</summary>
    public double MinLearningRateFactor { get; init; } = 0.01;

    /// <summary>Layer-wise LR decay: the head trains at the full rate, each earlier depth group at this factor more
    /// (e.g. 0.75). Null: off.</summary>
    public double? LayerDecay { get; init; }

    /// <summary>Clip the global gradient norm to this value. Null: no clipping. Default 5.</summary>
    public double? GradClipNorm { get; init; } = 5.0;

    /// <summary>Label smoothing of the cross-entropy. Default 0.1.</summary>
    public double LabelSmoothing { get; init; } = 0.1;

    /// <summary>Class weights for imbalanced data. Default None.</summary>
    public ClassWeighting ClassWeighting { get; init; } = ClassWeighting.None;

    /// <summary>Knowledge distillation: a model written by training (its <c>model.safetensors</c>, or a checkpoint) with the
    /// data's classes in order, typically a larger backbone, whose scores the model also learns to match: the loss becomes
    /// (1 − <see cref="DistillationWeight"/>) · cross-entropy + <see cref="DistillationWeight"/> · T² · KL(teacher ‖
    /// student) at temperature T = <see cref="DistillationTemperature"/>, the teacher scoring the very images (augmented,
    /// mixed) the student trains on. Null: no teacher. Not with a linear probe on cached features (the teacher needs
    /// the images; set <see cref="CacheFeatures"/> false), nor in cross-validation.</summary>
    public string? TeacherPath { get; init; }

    /// <summary>With a <see cref="TeacherPath"/>: the weight α of the teacher's term, in (0, 1] (1: the labels are not
    /// used). Default 0.5.</summary>
    public double DistillationWeight { get; init; } = 0.5;

    /// <summary>With a <see cref="TeacherPath"/>: the temperature T both models' scores are softened by in the teacher's
    /// term (above 1 the teacher's ranking of the wrong classes counts more). Default 1.</summary>
    public double DistillationTemperature { get; init; } = 1;

    /// <summary>Keep an exponential moving average of the weights and evaluate/export it. Default false.</summary>
    public bool Ema { get; init; }

    /// <summary>EMA decay; the first updates use min(decay, (1 + t)/(10 + t)) so short runs still average. Default 0.999.</summary>
    public double EmaDecay { get; init; } = 0.999;

    /// <summary>Stop when the monitored validation metric has not improved for this many epochs. Null: never.</summary>
    public int? EarlyStoppingPatience { get; init; }

    /// <summary>The validation metric that picks the best epoch: top1, top5, macro_f1 or log_loss. Default top1.</summary>
    public string Monitor { get; init; } = "top1";

    // ---- data ----

    /// <summary>After training, fit one temperature T on the validation set so that the model's probabilities
    /// (<c>Score = softmax(logits / T)</c>, in every scorer and export) are as sure as its accuracy supports (temperature
    /// scaling, Guo et al. 2017); the predicted classes do not change. The validation metrics recorded for the kept model
    /// are then the calibrated ones — measured on the images T was fitted on, so optimistic. Default false.</summary>
    public bool CalibrateScores { get; init; }

    /// <summary>The views the trained model averages when it predicts, in every scorer and export (see
    /// <see cref="Export.TestTimeAugmentation"/>): with <see cref="TestTimeAugmentation.Flip"/> the kept model is
    /// validated both ways, the run says what the mirror image brings, and the recorded validation metrics are the
    /// averaged ones (a calibrated temperature is fitted on those). Default None.</summary>
    public TestTimeAugmentation TestTimeAugmentation { get; init; }

    /// <summary>Fraction of the training set held out for validation when no validation set is given. Default 0.2.</summary>
    public double ValidationFraction { get; init; } = 0.2;

    /// <summary>Augmentation: "light" (random resized crop, flip, colour jitter 0.3), "trivial" (random resized crop,
    /// flip, TrivialAugmentWide) or "none" (the evaluation geometry: resize and centre crop). Default light.</summary>
    public string Augment { get; init; } = "light";

    /// <summary>Smallest crop scale of the random resized crop. Default 0.35 (small datasets need objects to stay visible).</summary>
    public double CropScaleMin { get; init; } = 0.35;

    /// <summary>Random erasing probability. Default 0.</summary>
    public double RandomErasing { get; init; }

    /// <summary>Mixup alpha (0: off). Default 0.</summary>
    public double MixupAlpha { get; init; }

    /// <summary>CutMix alpha (0: off). Default 0.</summary>
    public double CutmixAlpha { get; init; }

    /// <summary>Decode/augment threads. Null: the processor count.</summary>
    public int? Workers { get; init; }

    // ---- run ----

    /// <summary>Seed of every random choice (initialisation, split, order, augmentation, dropout). Same seed, same
    /// data and settings: the same model. Null: 0; in an ML.NET pipeline, drawn from the MLContext's seeded random
    /// source as ML.NET's own trainers do (so <c>new MLContext(seed: 1)</c> makes the run reproducible).</summary>
    public ulong? Seed { get; init; }

    /// <summary>"cpu", "cuda" or "cuda:N". Null: CUDA when available, else CPU; in an ML.NET pipeline, the MLContext's
    /// <c>GpuDeviceId</c> (CPU when it is null, as ML.NET does; <c>FallbackToCpu</c> honoured).</summary>
    public string? Device { get; init; }

    /// <summary>bfloat16 autocast for forward and loss. Null: on for CUDA, off for CPU. On a CPU with native bfloat16
    /// instructions (AVX512-BF16, AMX) true trained 1.3-1.65x faster than float32 in the project's measurements; on a
    /// CPU without them libtorch emulates bfloat16 (13-32x slower). Training on the CPU, the run says at the start which
    /// applies when the setting does not suit the processor
    /// (<see cref="MLNetExt.Torch.TorchRuntime.NativeBfloat16Flag"/> tells which the processor is).</summary>
    public bool? MixedPrecision { get; init; }

    /// <summary>Folder for checkpoints (checkpoint-last/-best.safetensors). Null: no checkpoints.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>A training checkpoint to continue from (the run's other settings must match it).</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>Data-parallel training: the group this process trains in (<see cref="Distributed.ProcessGroup.FromEnvironment(TimeSpan?)"/>
    /// under torchrun's variables, or <c>mlnetext train --nproc N</c>). <see cref="BatchSize"/> is then the global batch,
    /// split evenly over the ranks (it must be a multiple of the world size); gradients are averaged over the ranks
    /// before every optimizer step, so a step equals one process's step on the whole global batch; rank 0's weights
    /// start every rank; only rank 0 writes checkpoints. BatchNorm statistics stay per process unless
    /// <see cref="SyncBatchNorm"/>. Null: one process.</summary>
    public Distributed.ProcessGroup? ProcessGroup { get; init; }

    /// <summary>Data-parallel runs: BatchNorm layers normalise with the statistics of the whole global batch (every
    /// rank's shard; PyTorch's SyncBatchNorm), so a run on N processes equals one process for BatchNorm models too, at
    /// the cost of one all-reduce per BatchNorm layer forward and one backward. Default false (per-process statistics, as
    /// DistributedDataParallel). No effect on one process.</summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>Receives progress after every step, during caching/validation, and at every epoch end. In an ML.NET
    /// pipeline the messages and epoch summaries also go to <c>MLContext.Log</c>.</summary>
    public Action<TrainingProgress>? Progress { get; init; }

    // ---- ML.NET pipeline (Fit(IDataView)) ----

    /// <summary>The label column: a key (from <c>MapValueToKey</c>) whose key order is the class order. Default "Label".</summary>
    public string LabelColumnName { get; init; } = "Label";

    /// <summary>The image column: a string path (relative to <see cref="ImageFolder"/>), an <c>MLImage</c> (from
    /// <c>LoadImages</c>) or encoded bytes (from <c>LoadRawImageBytes</c>). Default "ImagePath".</summary>
    public string ImageColumnName { get; init; } = "ImagePath";

    /// <summary>Folder that relative paths of a path image column are read from, as in <c>LoadImages</c>. Null: as given.</summary>
    public string? ImageFolder { get; init; }

    /// <summary>Validation rows with the same columns (and the same fitted label key) as the training data, like
    /// ML.NET's <c>ImageClassificationTrainer.Options.ValidationSet</c>. Null: <see cref="ValidationFraction"/> is held out.</summary>
    public Microsoft.ML.IDataView? ValidationSet { get; init; }

    /// <summary>Output column of class probabilities (slot names = classes). Default "Score".</summary>
    public string ScoreColumnName { get; init; } = "Score";

    /// <summary>Output key column of the most probable class (key values = classes). Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName { get; init; } = "PredictedLabel";

    /// <summary>The arithmetic of the fitted transformer's ONNX scoring, and so of the model <c>mlContext.Model.Save</c>
    /// writes (and of model.onnx and model.zip from <c>mlnetext train --precision</c>): <see cref="Export.OnnxPrecision.Float32"/> (default, exact), <see cref="Export.OnnxPrecision.Int8"/> for
    /// CPU serving (static INT8 calibrated on up to <see cref="MaxCalibrationImages"/> of the training images; speed-up
    /// and agreement per family in bench/README.md), <see cref="Export.OnnxPrecision.Float16"/> for GPU serving. Inputs
    /// and outputs stay float32; the libtorch model on the transformer is unchanged.</summary>
    public Export.OnnxPrecision ScoringPrecision { get; init; } = Export.OnnxPrecision.Float32;

    /// <summary>How many training images, spread evenly over the set, calibrate <see cref="ScoringPrecision"/> INT8.</summary>
    public const int MaxCalibrationImages = 128;

    /// <summary>Stops <c>Fit(IDataView)</c> as <c>Fit(dataset, validation, cancel)</c>'s token does: the current step
    /// finishes, a checkpoint is written (when <see cref="CheckpointDirectory"/> is set) and
    /// <see cref="Training.TrainingInterruptedException"/> is thrown.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Set by cross-validation on each fold's run: the last epoch is kept (no epoch is chosen on the images it
    /// is scored on) and no note on the held-out set's size is given.</summary>
    internal bool CrossValidationFold { get; init; }
}

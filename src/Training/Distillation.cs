using System.Security.Cryptography;
using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Training;

/// <summary>The training loss, written once for the trainer and the tests that check it against PyTorch.</summary>
internal static class TrainingLoss
{
    /// <summary>Cross-entropy with label smoothing and class weights; with soft targets (Mixup/CutMix, smoothing already
    /// inside) −Σ w_c t_c log p_c / Σ w_c t_c over the batch, which is torch's weighted cross-entropy for one-hot targets.
    /// With <paramref name="teacherLogits"/> (knowledge distillation, Hinton et al. 2015): (1 − α) · that + α · T² ·
    /// the batch mean of KL(softmax(teacher / T) ‖ softmax(student / T)), the student seeing the teacher's scores of
    /// the very images (augmented, mixed) it trains on. All in float32.</summary>
    public static Tensor Compute(Tensor logits, Tensor labels, Tensor? targets, Tensor? classWeights, double labelSmoothing,
        Tensor? teacherLogits = null, double alpha = 0, double temperature = 1)
    {
        var student = logits.DType == DType.Float32 ? logits : logits.To(DType.Float32);
        Tensor supervised;
        if (targets is null) supervised = F.CrossEntropy(student, labels, classWeights, labelSmoothing: labelSmoothing);
        else
        {
            var logp = student.LogSoftmax(1);
            var weighted = classWeights is null ? targets : targets.Mul(classWeights);
            supervised = weighted.Mul(logp).Sum().Neg().Div(classWeights is null ? (double)targets.Shape[0] : weighted.Sum().ToDouble());
        }
        if (teacherLogits is null) return supervised;
        var teacher = (teacherLogits.DType == DType.Float32 ? teacherLogits : teacherLogits.To(DType.Float32)).Detach();
        var logpTeacher = teacher.Div(temperature).LogSoftmax(1);
        var logpStudent = student.Div(temperature).LogSoftmax(1);
        // KL(t ‖ s) per image = Σ_c t_c (log t_c − log s_c); the batch mean, scaled by T² so its gradients keep their size
        var kl = logpTeacher.Exp().Mul(logpTeacher.Sub(logpStudent)).Sum().Div((double)student.Shape[0]);
        return supervised.Mul(1 - alpha).Add(kl.Mul(alpha * temperature * temperature));
    }
}

/// <summary>
/// The teacher of knowledge distillation: a classifier `train` wrote (model.safetensors, or a checkpoint), frozen in
/// eval mode, scoring each training batch as the student sees it. Its classes must be the data's, in order. A teacher
/// trained at another image size or normalisation gets the batch resized (bilinear) and renormalised to its own.
/// </summary>
internal sealed class DistillationTeacher : IDisposable
{
    readonly Backbone _network;
    readonly Tensor? _scale, _shift;   // student normalisation → teacher normalisation, per channel
    readonly int _size;
    readonly bool _resize, _autocast;
    readonly Device _device;

    /// <summary>What the teacher is, for the run's notes and settings.</summary>
    public ModelDescriptor Descriptor { get; }

    DistillationTeacher(Backbone network, ModelDescriptor descriptor, int studentSize, IReadOnlyList<double> mean, IReadOnlyList<double> std,
        Device device, bool autocast)
    {
        (_network, Descriptor, _size, _device, _autocast) = (network, descriptor, descriptor.ImageSize, device, autocast);
        _resize = descriptor.ImageSize != studentSize;
        if (!descriptor.Mean.SequenceEqual(mean) || !descriptor.Std.SequenceEqual(std))
        {
            // x_t = (x_s · std_s + mean_s − mean_t) / std_t
            _scale = Tensor.FromArray(std.Zip(descriptor.Std, (s, t) => (float)(s / t)).ToArray(), [1, 3, 1, 1]).To(device).DetachFromScope();
            _shift = Tensor.FromArray(Enumerable.Range(0, 3).Select(c => (float)((mean[c] - descriptor.Mean[c]) / descriptor.Std[c])).ToArray(), [1, 3, 1, 1])
                .To(device).DetachFromScope();
        }
        _network.Eval();
        foreach (var p in _network.Parameters()) p.RequiresGrad = false;
    }

    /// <summary>Loads the teacher at <paramref name="path"/> for a student of <paramref name="classes"/> trained at
    /// <paramref name="studentSize"/> with the normalisation <paramref name="mean"/>/<paramref name="std"/>.</summary>
    /// <exception cref="TrainingOptionException">The file is missing, not a trained model, or has other classes.</exception>
    public static DistillationTeacher Load(string path, IReadOnlyList<string> classes, int studentSize, IReadOnlyList<double> mean,
        IReadOnlyList<double> std, Device device, bool autocast)
    {
        if (!File.Exists(path)) throw new TrainingOptionException("TeacherPath", $"names '{path}', which does not exist");
        ModelDescriptor descriptor;
        try { descriptor = ModelDescriptor.TryRead(path) ?? throw new InvalidDataException("it holds no model description"); }
        catch (Exception e) when (e is InvalidDataException or Serialization.CheckpointException)
        {
            throw new TrainingOptionException("TeacherPath", $"must be a model written by training (model.safetensors or a checkpoint); '{path}' is not: {e.Message}");
        }
        if (!descriptor.Classes.SequenceEqual(classes))
            throw new TrainingOptionException("TeacherPath", $"must have the data's classes in order [{string.Join(", ", classes)}]; '{path}' has " +
                                                             $"[{string.Join(", ", descriptor.Classes)}]");
        var (network, _) = TrainedModelFile.Load(path);
        network.To(device);
        return new DistillationTeacher(network, descriptor, studentSize, mean, std, device, autocast);
    }

    /// <summary>The SHA-256 of the teacher file (hex), for the resume fingerprint: another teacher is another run.</summary>
    public static string Fingerprint(string path)
    {
        if (!File.Exists(path)) return "missing";
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    /// <summary>The teacher's logits of a student batch (normalised [N,3,S,S] on the training device), without gradients.</summary>
    public Tensor Logits(Tensor images)
    {
        using var _ = Autograd.NoGrad();
        using var cast = _autocast ? Autocast.Enable(_device.Type) : null;
        var x = images;
        if (_scale is not null) x = x.Mul(_scale).Add(_shift!);
        if (_resize) x = F.Interpolate(x, _size, _size, InterpolationMode.Bilinear);
        return _network.Call(x).To(DType.Float32);
    }

    /// <summary>"a transnext_base model at 224 px (teacher.safetensors)" for notes.</summary>
    public string Describe(string path) =>
        $"{Descriptor.Model}{(Descriptor.CustomKwargs is null ? "" : " (custom)")} at {_size} px ({Path.GetFileName(path)})" +
        (_resize ? ", each batch resized to its size" : "") + (_scale is null ? "" : ", renormalised to its mean and std");

    public void Dispose()
    {
        _network.Dispose();
        _scale?.Dispose();
        _shift?.Dispose();
    }
}

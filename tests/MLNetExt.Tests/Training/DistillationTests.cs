using MLNetExt.Data;
using MLNetExt.Inference;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Tests.Training;

/// <summary>Knowledge distillation: the loss and its gradient against PyTorch (tests/fixtures/make_loss_fixtures.py), a
/// student that learns what its teacher says rather than the labels when told to, and the teacher's checks.</summary>
[TestClass]
public sealed class DistillationTests
{
    /// <summary>Every case of the fixture: hard labels with smoothing, class weights, Mixup-style soft targets, with and
    /// without the teacher's term at several weights and temperatures; the loss and d loss / d student logits.</summary>
    [TestMethod]
    [DataRow("plain")]
    [DataRow("kd_hard")]
    [DataRow("kd_weighted_t4")]
    [DataRow("kd_soft_t2")]
    [DataRow("kd_soft_weighted")]
    [DataRow("kd_only")]
    public void Loss_AndItsGradient_MatchPyTorch(string name)
    {
        using var scope = TensorScope.Begin();
        using var f = SafeTensors.Load(Fixtures.Path("training/loss.safetensors"));
        var config = f[$"{name}.config"].ToArray<double>();
        var (soft, weighted, smoothing, alpha, temperature) = (config[0] == 1, config[1] == 1, config[2], config[3], config[4]);
        var student = f["student"].Clone();
        student.RequiresGrad = true;
        var loss = TrainingLoss.Compute(student, f["labels"], soft ? f["targets"] : null, weighted ? f["weights"] : null, smoothing,
            alpha > 0 ? f["teacher"] : null, alpha, temperature);
        loss.Backward();
        Assert.AreEqual(f[$"{name}.loss"].ToArray<float>()[0], loss.ToDouble(), Tolerances.Float32Abs, "loss");
        TensorAssert.Close(f[$"{name}.grad"], student.Grad!, Tolerances.GradAbs, Tolerances.GradRel, "gradient");
    }

    static ImageDataset Rotated(ImageDataset d) =>
        ImageDataset.FromList(d.Classes, d.Items.Select(i => i with { Label = (i.Label + 1) % d.Classes.Count }).ToList(), d.Source + " (rotated)");

    static int[] Predicted(ImageClassificationModel m, ImageDataset d)
    {
        using var scope = TensorScope.Begin();
        return d.Items.Select(i => m.Predict(i.Image!).Index).ToArray();
    }

    /// <summary>A teacher trained to call every colour the next one: a student distilled from it with weight 1 (labels
    /// unused) agrees with it far more than a student trained on the labels, and gets the labels wrong; at weight 0.5 it
    /// lies between. The run says what it distils from, the settings record it, and a resume with another teacher is
    /// refused.</summary>
    [TestMethod, TestCategory("Slow")]
    public void Student_LearnsWhatTheTeacherSays()
    {
        var train = TrainerTests.ColorData(16, 1);
        var val = TrainerTests.ColorData(6, 2, "val");
        var dir = Directory.CreateTempSubdirectory("mlnetext-distill-");
        try
        {
            var teacherFile = Path.Combine(dir.FullName, "teacher.safetensors");
            var options = TrainerTests.Tiny() with { Epochs = 4 };
            var t = Trainer.Run(options, Rotated(train), Rotated(val), CancellationToken.None);
            using var teacher = new ImageClassificationModel(t.Model, t.Descriptor, t.History);
            Assert.IsGreaterThan(0.6, t.History.Final!.Top1, "the teacher learned its rotated colours");
            teacher.Save(teacherFile);

            double Agreement(int[] a, int[] b) => a.Zip(b, (x, y) => x == y ? 1.0 : 0).Average();
            var teacherSays = Predicted(teacher, val);
            var truth = val.Items.Select(i => i.Label).ToArray();
            var messages = new List<string>();
            var runs = new Dictionary<double, (double WithTeacher, double WithLabels)>();
            foreach (var weight in new[] { 0.0, 1.0 })
            {
                var o = options with { Seed = 11, Progress = p => { if (p.Message is { } m) messages.Add(m); } };
                if (weight > 0) o = o with { TeacherPath = teacherFile, DistillationWeight = weight, DistillationTemperature = 2 };
                var s = Trainer.Run(o, train, val, CancellationToken.None);
                using var student = new ImageClassificationModel(s.Model, s.Descriptor, s.History);
                var says = Predicted(student, val);
                runs[weight] = (Agreement(says, teacherSays), Agreement(says, truth));
                if (weight > 0) StringAssert.Contains(s.History.Settings["teacher"], "(weight 1, temperature 2)");
                else Assert.AreEqual("none", s.History.Settings["teacher"]);
                var card = MLNetExt.MLNet.ModelCard.Markdown(student, exported: false, MLNetExt.Export.OnnxPrecision.Float32);
                Assert.AreEqual(weight > 0, card.Contains("| teacher | distilled from "), "the model card names the teacher");
            }
            Assert.IsGreaterThan(runs[0].WithTeacher + 0.3, runs[1].WithTeacher, $"agreement with the teacher: labels {runs[0].WithTeacher:P0}, distilled {runs[1].WithTeacher:P0}");
            Assert.IsLessThan(runs[0].WithLabels - 0.3, runs[1].WithLabels, $"right on the labels: labels {runs[0].WithLabels:P0}, distilled {runs[1].WithLabels:P0}");
            var note = messages.Single(m => m.StartsWith("distilling from ", StringComparison.Ordinal));
            StringAssert.Contains(note, "mixformer (custom) at 32 px (teacher.safetensors): loss = 0 x cross-entropy + 1 x T² KL(teacher || model) at T = 2");

            // resume: another teacher is another run
            var checkpoints = Path.Combine(dir.FullName, "run");
            var first = options with { Epochs = 1, TeacherPath = teacherFile, CheckpointDirectory = checkpoints };
            Trainer.Run(first, train, val, CancellationToken.None).Model.Dispose();
            var other = Path.Combine(dir.FullName, "other.safetensors");
            using (var copy = ImageClassificationModel.Load(teacherFile))
            {
                using (Autograd.NoGrad())
                    foreach (var p in copy.Backbone.Parameters()) p.Mul_(1.01);
                copy.Save(other);
            }
            var e = Assert.ThrowsExactly<TrainingException>(() => Trainer.Run(first with
            {
                Epochs = 2, TeacherPath = other, ResumeFrom = Path.Combine(checkpoints, "checkpoint-last.safetensors"),
            }, train, val, CancellationToken.None));
            StringAssert.Contains(e.Message, "teacher: checkpoint");
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>What a teacher must be, each refusal naming the option and what was found: an existing file, a model
    /// written by training, the data's classes in order; not a cached linear probe; not in cross-validation.</summary>
    [TestMethod]
    public void Teacher_IsChecked()
    {
        var train = TrainerTests.ColorData(4, 1);
        var dir = Directory.CreateTempSubdirectory("mlnetext-teacher-");
        try
        {
            var options = TrainerTests.Tiny() with { Epochs = 1, ValidationFraction = 0 };
            TrainingOptionException Refusal(ImageClassificationOptions o) =>
                Assert.ThrowsExactly<TrainingOptionException>(() => Trainer.Run(o, train, null, CancellationToken.None));

            var missing = Refusal(options with { TeacherPath = Path.Combine(dir.FullName, "none.safetensors") });
            Assert.AreEqual("TeacherPath", missing.Option);
            StringAssert.Contains(missing.Message, "none.safetensors', which does not exist");

            var weightsOnly = Path.Combine(dir.FullName, "weights.safetensors");
            File.WriteAllText(weightsOnly, "not a safetensors file");
            StringAssert.Contains(Refusal(options with { TeacherPath = weightsOnly }).Message, "must be a model written by training");

            var reordered = Path.Combine(dir.FullName, "reordered.safetensors");
            var d = new ModelDescriptor("mixformer", TrainerTests.TinyKwargs(), ["blue", "green", "red"], 32, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 0.875, "bicubic");
            using (var m = new ImageClassificationModel(d.CreateBackbone(), d, null)) m.Save(reordered);
            var classes = Refusal(options with { TeacherPath = reordered });
            StringAssert.Contains(classes.Message, $"must have the data's classes in order [{string.Join(", ", train.Classes)}]");
            StringAssert.Contains(classes.Message, "has [blue, green, red]");

            var good = Path.Combine(dir.FullName, "good.safetensors");
            var d2 = d with { Classes = train.Classes, ImageSize = 64, Mean = [0.5, 0.5, 0.5], Std = [0.5, 0.5, 0.5] };
            using (var m = new ImageClassificationModel(d2.CreateBackbone(), d2, null)) m.Save(good);
            var probe = Refusal(options with { TeacherPath = good, Mode = TrainingMode.LinearProbe });
            StringAssert.Contains(probe.Message, "--cache-features false");
            // another image size and normalisation: the batch is resized and renormalised for the teacher, and the run goes on
            var messages = new List<string>();
            var run = Trainer.Run(options with { TeacherPath = good, Progress = p => { if (p.Message is { } m) messages.Add(m); } }, train, null, CancellationToken.None);
            run.Model.Dispose();
            Assert.IsTrue(double.IsFinite(run.History.Epochs[0].TrainLoss));
            StringAssert.Contains(messages.Single(m => m.StartsWith("distilling", StringComparison.Ordinal)), "at 64 px (good.safetensors), each batch resized to its size, renormalised to its mean and std");

            var cv = Assert.ThrowsExactly<TrainingOptionException>(() => new MLNetExt.MLNet.ImageClassificationEstimator(options with { TeacherPath = good }).CrossValidate(train, 2));
            Assert.AreEqual("TeacherPath", cv.Option);
            StringAssert.Contains(cv.Message, "is not used by cross-validation");
            var weight = Refusal(options with { TeacherPath = good, DistillationWeight = 0 });
            Assert.AreEqual("DistillationWeight", weight.Option);
        }
        finally { dir.Delete(recursive: true); }
    }
}

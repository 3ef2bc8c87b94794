using MLNetExt.Data;
using MLNetExt.Inference;
using MLNetExt.Torch;
using MLNetExt.Training;

namespace MLNetExt.Tests.Training;

/// <summary>Training on from a model training wrote (its model.safetensors or a checkpoint), on data whose classes
/// changed: every backbone tensor is the model's, the classifier keeps its rows for the classes the model knew (matched
/// by name, wherever they now sit) and starts fresh for new ones; the input size is the model's unless given; a file of
/// another architecture is refused by name.</summary>
[TestClass]
public sealed class ContinueTrainingTests
{
    /// <summary>The colour data with the classes renamed and reordered: green, red and a new "zebra" (the blue images).</summary>
    static ImageDataset Renamed(ImageDataset d)
    {
        string[] classes = ["green", "red", "zebra"];
        int[] newIndex = [1, 0, 2];   // red → 1, green → 0, blue → zebra
        return ImageDataset.FromList(classes, d.Items.Select(i => i with { Label = newIndex[i.Label] }).ToList(), d.Source + " (renamed)");
    }

    [TestMethod, TestCategory("Slow")]
    public void NewClasses_KeepTheRowsOfTheKnownOnes_AndEveryOtherTensor()
    {
        var train = TrainerTests.ColorData(8, 1);
        var dir = Directory.CreateTempSubdirectory("mlnetext-continue-");
        try
        {
            var first = TrainerTests.Tiny(Path.Combine(dir.FullName, "first")) with { Epochs = 2, ValidationFraction = 0 };
            var t = Trainer.Run(first, train, null, CancellationToken.None);
            var modelFile = Path.Combine(dir.FullName, "model.safetensors");
            Dictionary<string, float[]> before;
            using (var m = new ImageClassificationModel(t.Model, t.Descriptor, t.History))
            {
                m.Save(modelFile);
                before = m.Backbone.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.To(DType.Float32).ToArray<float>());
            }

            // a learning rate so small that the weights stay where they started, within float32 rounding
            foreach (var weights in new[] { modelFile, Path.Combine(dir.FullName, "first", "checkpoint-last.safetensors") })
            {
                var messages = new List<string>();
                var options = TrainerTests.Tiny() with
                {
                    ImageSize = null, Epochs = 1, ValidationFraction = 0, LearningRate = 1e-12, WeightDecay = 0, WeightsPath = weights,
                    Progress = p => { if (p.Message is { } msg) messages.Add(msg); },
                };
                var renamed = Renamed(train);
                var run = Trainer.Run(options, renamed, null, CancellationToken.None);
                using var model = run.Model;
                Assert.AreEqual(32, run.Descriptor.ImageSize, "the input size of the model trained on");
                var after = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.To(DType.Float32).ToArray<float>());
                var head = model.ClassifierKeys.ToHashSet();
                // the parameters (BatchNorm's running statistics move with the data whatever the learning rate)
                foreach (var (key, _) in model.NamedParameters().Where(p => !head.Contains(p.Name)))
                    CollectionAssert.AreEqual(before[key].Select(v => MathF.Round(v, 4)).ToArray(), after[key].Select(v => MathF.Round(v, 4)).ToArray(), key);
                foreach (var key in head)
                {
                    int width = after[key].Length / 3;
                    float[] Row(float[] a, int r) => a.Skip(r * width).Take(width).Select(v => MathF.Round(v, 4)).ToArray();
                    CollectionAssert.AreEqual(Row(before[key], 1), Row(after[key], 0), $"{key}: green's row");
                    CollectionAssert.AreEqual(Row(before[key], 0), Row(after[key], 1), $"{key}: red's row");
                    if (width > 1)
                        foreach (int r in new[] { 0, 1, 2 })
                            CollectionAssert.AreNotEqual(Row(before[key], r), Row(after[key], 2), $"{key}: zebra's row is new");
                }
                var note = messages.Single(msg => msg.StartsWith("Continuing from ", StringComparison.Ordinal));
                StringAssert.Contains(note, "a mixformer (custom) model trained on 3 classes at 32 px");
                StringAssert.Contains(note, "the classifier keeps what it learned for green, red and starts fresh for zebra; no longer in the data: blue");
                Assert.IsTrue(messages.Any(msg => msg.Contains("ImageSize (--image-size) 32, the size it was trained at")), string.Join("\n", messages));
            }

            // the command line: --weights of a trained model needs no --variant or --config, the file says
            var parsed = MLNetExt.Cli.TrainCommand.OptionsOf("--data", "d", "--weights", modelFile, "--output", "o");
            Assert.AreEqual("mixformer", parsed.Model);
            Assert.IsTrue(System.Text.Json.Nodes.JsonNode.DeepEquals(TrainerTests.TinyKwargs(), parsed.CustomKwargs));
            Assert.AreEqual(modelFile, parsed.WeightsPath);

            // the same classes: everything continues, the classifier included
            var same = new List<string>();
            Trainer.Run(TrainerTests.Tiny() with { Epochs = 1, ValidationFraction = 0, WeightsPath = modelFile, Progress = p => { if (p.Message is { } m) same.Add(m); } },
                train, null, CancellationToken.None).Model.Dispose();
            StringAssert.Contains(same.Single(m => m.StartsWith("Continuing from ", StringComparison.Ordinal)), "its classifier included");

            // another architecture: refused with what the file is
            var other = Assert.ThrowsExactly<TrainingOptionException>(() => Trainer.Run(TrainerTests.Tiny() with
            {
                Model = "smt_t", CustomKwargs = null, Epochs = 1, ValidationFraction = 0, WeightsPath = modelFile,
            }, train, null, CancellationToken.None));
            Assert.AreEqual("WeightsPath", other.Option);
            StringAssert.Contains(other.Message, "is a mixformer (custom), 3 classes (red, green, blue), 32 px model");
            StringAssert.Contains(other.Message, "not smt_t");
        }
        finally { dir.Delete(recursive: true); }
    }
}

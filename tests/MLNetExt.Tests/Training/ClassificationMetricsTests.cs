using MLNetExt.Training;

namespace MLNetExt.Tests.Training;

[TestClass]
public sealed class ClassificationMetricsTests
{
    static readonly string[] Abc = ["a", "b", "c"];

    /// <summary>3 classes, 6 samples (rows: true label, probabilities, argmax):
    ///   0: [0.7, 0.2, 0.1] → a ✓        1: [0.2, 0.5, 0.3] → b
    ///   1: [0.1, 0.8, 0.1] → b ✓        1: [0.4, 0.4, 0.2] → a (tie goes to the lower index)
    ///   2: [0.6, 0.4, 0.0] → a (p(true) = 0, clipped to 1e-15)      2: [0.3, 0.6, 0.1] → b
    /// Confusion rows a, b, c: [1 1 0], [1 1 0], [1 1 0]. Top-1 = 2/6.
    /// a: precision 1/3 (1 of 3 predicted a), recall 1/2, F1 = 2·(1/3)(1/2)/(1/3 + 1/2) = 0.4; b: the same;
    /// c: never predicted → precision 0, recall 0, F1 0. Macro-F1 = 0.8/3.
    /// Log-loss = −(ln .7 + ln .2 + ln .8 + ln .4 + ln 1e-15 + ln .1)/6 = 6.6578181 (with the float32 values of the
    /// probabilities: 6.657818097481862). k = min(5, 3) = 3 so every sample is in the top-k.</summary>
    static readonly float[] CaseA =
    [
        0.7f, 0.2f, 0.1f,
        0.2f, 0.5f, 0.3f,
        0.1f, 0.8f, 0.1f,
        0.4f, 0.4f, 0.2f,
        0.6f, 0.4f, 0.0f,
        0.3f, 0.6f, 0.1f,
    ];
    static readonly int[] LabelsA = [0, 0, 1, 1, 2, 2];

    [TestMethod]
    public void ThreeClassesMatchHandComputedValues()
    {
        var m = ClassificationMetrics.Compute(CaseA, LabelsA, Abc);
        Assert.AreEqual(6, m.Count);
        Assert.AreEqual(2.0 / 6, m.Top1, Tolerances.Float64Abs);
        Assert.AreEqual(3, m.TopK);
        Assert.AreEqual(1.0, m.Top5, "with 3 classes the top-3 holds every true class");
        Assert.AreEqual(0.8 / 3, m.MacroF1, Tolerances.Float64Abs);
        Assert.AreEqual(6.657818097481862, m.LogLoss, Tolerances.Float64Abs);

        int[][] confusion = [[1, 1, 0], [1, 1, 0], [1, 1, 0]];
        for (int i = 0; i < 3; i++) CollectionAssert.AreEqual(confusion[i], m.Confusion[i], $"confusion row {i}");

        double[] precision = [1.0 / 3, 1.0 / 3, 0], recall = [0.5, 0.5, 0], f1 = [0.4, 0.4, 0];
        for (int j = 0; j < 3; j++)
        {
            var p = m.PerClass[j];
            Assert.AreEqual(Abc[j], p.Class);
            Assert.AreEqual(precision[j], p.Precision, Tolerances.Float64Abs, $"precision of {Abc[j]}");
            Assert.AreEqual(recall[j], p.Recall, Tolerances.Float64Abs, $"recall of {Abc[j]}");
            Assert.AreEqual(f1[j], p.F1, Tolerances.Float64Abs, $"F1 of {Abc[j]}");
            Assert.AreEqual(2, p.Support);
        }
    }

    /// <summary>6 classes, k = 5; a true class tied with others ranks behind the tied classes of lower index:
    ///   y=5, [.2 .2 .2 .2 .1 .1]: 4 strictly higher + class 4 tied at a lower index → rank 6, outside the top-5
    ///   y=4, same row: 4 strictly higher, class 5 tied at a higher index does not count → rank 5, inside
    ///   y=0, all 1/6: nothing ahead → rank 1, inside; argmax 0 → the only top-1 hit
    ///   y=5, all 1/6: the five lower indices are ahead → rank 6, outside
    ///   y=2, [.05 .05 .1 .3 .3 .2]: three strictly higher → rank 4, inside
    /// Top-5 = 3/5, top-1 = 1/5.</summary>
    [TestMethod]
    public void TopKCountsTiesAsArgmaxDoes()
    {
        const float s = 1f / 6;
        float[] p =
        [
            .2f, .2f, .2f, .2f, .1f, .1f,
            .2f, .2f, .2f, .2f, .1f, .1f,
            s, s, s, s, s, s,
            s, s, s, s, s, s,
            .05f, .05f, .1f, .3f, .3f, .2f,
        ];
        var m = ClassificationMetrics.Compute(p, [5, 4, 0, 5, 2], ["0", "1", "2", "3", "4", "5"]);
        Assert.AreEqual(5, m.TopK);
        Assert.AreEqual(3.0 / 5, m.Top5, Tolerances.Float64Abs);
        Assert.AreEqual(1.0 / 5, m.Top1, Tolerances.Float64Abs);
        // argmax of the tied rows is class 0, of the last row class 3 (first of the two 0.3)
        Assert.AreEqual(2, m.Confusion[5][0], "both y=5 rows go to class 0");
        Assert.AreEqual(1, m.Confusion[4][0]);
        Assert.AreEqual(1, m.Confusion[2][3]);
    }

    /// <summary>2 classes, 4 samples, y = [0, 0, 1, 1], p(class 1) = [0.1, 0.6, 0.8, 0.3]: predictions 0, 1, 1, 0.
    /// Confusion [[1 1] [1 1]]; every precision and recall is 1/2, F1 1/2; top-2 = 1.
    /// Log-loss = −(ln .9 + ln .4 + ln .8 + ln .3)/4 = (0.1053605 + 0.9162907 + 0.2231436 + 1.2039728)/4 = 0.6121919.</summary>
    [TestMethod]
    public void TwoClasses()
    {
        float[] p = [0.9f, 0.1f, 0.4f, 0.6f, 0.2f, 0.8f, 0.7f, 0.3f];
        var m = ClassificationMetrics.Compute(p, [0, 0, 1, 1], ["neg", "pos"]);
        Assert.AreEqual(2, m.TopK);
        Assert.AreEqual(1.0, m.Top5);
        Assert.AreEqual(0.5, m.Top1, Tolerances.Float64Abs);
        Assert.AreEqual(0.5, m.MacroF1, Tolerances.Float64Abs);
        double expected = -(Math.Log(0.9f) + Math.Log(0.4f) + Math.Log(0.8f) + Math.Log(0.3f)) / 4;
        Assert.AreEqual(0.6121919, expected, 1e-7, "hand value in the comment");
        Assert.AreEqual(expected, m.LogLoss, Tolerances.Float64Abs);
    }

    [TestMethod]
    public void AClassWithoutSamplesHasRecallZeroAndCountsInTheMacroAverage()
    {
        // y = [0, 1], both predicted correctly; class c has no samples and no predictions: P = R = F1 = 0 for it,
        // so macro-F1 = (1 + 1 + 0)/3.
        float[] p = [0.8f, 0.1f, 0.1f, 0.1f, 0.8f, 0.1f];
        var m = ClassificationMetrics.Compute(p, [0, 1], Abc);
        Assert.AreEqual(1.0, m.Top1);
        Assert.AreEqual(2.0 / 3, m.MacroF1, Tolerances.Float64Abs);
        Assert.AreEqual(0, m.PerClass[2].Support);
        Assert.AreEqual(0.0, m.PerClass[2].Recall);
    }

    [TestMethod]
    public void BadShapesThrowNamingTheCounts()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => ClassificationMetrics.Compute(new float[7], [0, 1], Abc));
        StringAssert.Contains(ex.Message, "2×3 = 6");
        StringAssert.Contains(ex.Message, "found 7");

        var label = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ClassificationMetrics.Compute(new float[6], [0, 3], Abc));
        StringAssert.Contains(label.Message, "sample 1");
        StringAssert.Contains(label.Message, "0..2");

        Assert.ThrowsExactly<ArgumentException>(() => ClassificationMetrics.Compute([], [], []));
    }

    [TestMethod]
    public void NoSamplesGiveZeros()
    {
        var m = ClassificationMetrics.Compute([], [], Abc);
        Assert.AreEqual(0, m.Count);
        Assert.AreEqual(0.0, m.Top1);
        Assert.AreEqual(0.0, m.LogLoss);
        Assert.AreEqual(0.0, m.MacroF1);
    }

    [TestMethod]
    public void GetByNameAndDirection()
    {
        var m = ClassificationMetrics.Compute(CaseA, LabelsA, Abc);
        Assert.AreEqual(m.Top1, m.Get("top1"));
        Assert.AreEqual(m.Top5, m.Get("top5"));
        Assert.AreEqual(m.MacroF1, m.Get("macro_f1"));
        Assert.AreEqual(m.LogLoss, m.Get("log_loss"));
        Assert.IsFalse(ClassificationMetrics.HigherIsBetter("log_loss"));
        Assert.IsTrue(ClassificationMetrics.HigherIsBetter("top1"));
        var ex = Assert.ThrowsExactly<ArgumentException>(() => m.Get("accuracy"));
        StringAssert.Contains(ex.Message, "accuracy");
        StringAssert.Contains(ex.Message, "macro_f1");
    }

    /// <summary>Four predictions of two classes, each alone in its bin of 15 over the top-1 confidence:
    /// 0.9 right (bin 13), 0.8 wrong (bin 11: (0.733, 0.8]), 0.7 right (bin 10), 0.55 right (bin 8).
    /// ECE = (|1 − 0.9| + |0 − 0.8| + |1 − 0.7| + |1 − 0.55|) / 4 = 0.4125.</summary>
    [TestMethod]
    public void Calibration_BinsTheTopConfidence_AndWeighsTheGapByTheBinsShare()
    {
        float[] p = [0.9f, 0.1f, 0.8f, 0.2f, 0.3f, 0.7f, 0.55f, 0.45f];
        var m = ClassificationMetrics.Compute(p, [0, 1, 1, 0], ["x", "y"]);
        Assert.HasCount(ClassificationMetrics.CalibrationBins, m.Calibration!);
        CollectionAssert.AreEqual(new[] { 8, 10, 11, 13 }, m.Calibration!.Select((b, i) => (b, i)).Where(t => t.b.Count > 0).Select(t => t.i).ToArray());
        Assert.AreEqual(0.8f, m.Calibration![11].MeanConfidence, 1e-9);
        Assert.AreEqual(0.0, m.Calibration![11].Accuracy);
        Assert.AreEqual(11.0 / 15, m.Calibration![11].Lower, 1e-12);
        Assert.AreEqual(12.0 / 15, m.Calibration![11].Upper, 1e-12);
        Assert.AreEqual(0.4125, m.ExpectedCalibrationError!.Value, 1e-6);

        // Sure and right: no gap; a confidence of exactly 1 falls in the last bin.
        var sure = ClassificationMetrics.Compute([1f, 0f, 0f, 1f], [0, 1], ["x", "y"]);
        Assert.AreEqual(2, sure.Calibration![^1].Count);
        Assert.AreEqual(0.0, sure.ExpectedCalibrationError!.Value);
        Assert.IsNull(ClassificationMetrics.Compute([], [], ["x", "y"]).ExpectedCalibrationError, "no samples, no calibration error");
    }

    /// <summary>A checkpoint keeps the calibration bins exactly; one written before they were recorded still loads,
    /// without calibration.</summary>
    [TestMethod]
    public void Calibration_SurvivesACheckpoint_AndOlderCheckpointsLoadWithout()
    {
        var m = ClassificationMetrics.Compute(CaseA, LabelsA, Abc);
        var history = new TrainingHistory { Model = "tiny", Classes = Abc, Settings = new Dictionary<string, string>() };
        history.EpochList.Add(new EpochSummary(1, 0.5, 1e-3, 10, 1, 0.4, m));
        var json = TrainingCheckpoint.StateToJson(new TrainingState { Fingerprint = new(), History = history });
        var back = TrainingCheckpoint.StateFromJson(json, Abc, "test").History.Epochs[0].Validation!;
        Assert.AreEqual(m.Calibration!.Count, back.Calibration!.Count);
        for (int i = 0; i < m.Calibration.Count; i++) Assert.AreEqual(m.Calibration[i], back.Calibration[i], $"bin {i}");
        Assert.AreEqual(m.ExpectedCalibrationError, back.ExpectedCalibrationError);

        var old = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        old["history"]!["epochs"]![0]!["val"]!.AsObject().Remove("calibration");
        var restored = TrainingCheckpoint.StateFromJson(old.ToJsonString(), Abc, "test").History.Epochs[0].Validation!;
        Assert.IsNull(restored.Calibration);
        Assert.IsNull(restored.ExpectedCalibrationError);
        Assert.AreEqual(m.Top1, restored.Top1);
        Assert.AreEqual(m.LogLoss, restored.LogLoss);
    }

    /// <summary>Answering only when sure: per minimum score, the share of images whose top probability reaches it and
    /// how often those are right (NaN when none is answered); a record restored without scores has none.</summary>
    [TestMethod]
    public void Selective_CountsTheAnsweredAndTheRightAmongThem_PerMinimumScore()
    {
        // top probabilities 0.95 (right), 0.85 (wrong), 0.65 (right), 0.55 (wrong)
        float[] p = [0.95f, 0.05f, 0.15f, 0.85f, 0.65f, 0.35f, 0.45f, 0.55f];
        var m = ClassificationMetrics.Compute(p, [0, 0, 0, 0], ["a", "b"]);
        var s = m.Selective!.ToDictionary(x => x.MinScore);
        Assert.AreEqual((1.0, 0.5), (s[0].Answered, s[0].Accuracy));
        Assert.AreEqual((0.75, 2 / 3.0), (s[0.6].Answered, s[0.6].Accuracy));
        Assert.AreEqual((0.5, 0.5), (s[0.8].Answered, s[0.8].Accuracy));
        Assert.AreEqual((0.25, 1.0), (s[0.9].Answered, s[0.9].Accuracy));
        Assert.AreEqual(0.0, s[0.99].Answered);
        Assert.IsTrue(double.IsNaN(s[0.99].Accuracy));
        CollectionAssert.AreEqual(ClassificationMetrics.MinScores.ToArray(), m.Selective!.Select(x => x.MinScore).ToArray());
        Assert.IsNull(ClassificationMetrics.FromConfusion(["a", "b"], [[2, 2], [0, 0]], 1, 2, 0.5, null).Selective);
    }
}

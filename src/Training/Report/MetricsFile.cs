using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MLNetExt.Training;

/// <summary>Writes a <see cref="TrainingHistory"/> as <c>metrics.json</c>: indented JSON with snake_case keys. Top level:
/// model, classes, settings, train_count, val_count, monitor, best_epoch, stop_reason, duration_seconds, epochs[]
/// (epoch, train_loss, lr, images_per_second, seconds, val_loss, val), final, hardest[] (source, true, predicted,
/// true_index, predicted_index, confidence, true_probability), step_count and steps[] (step, epoch, loss, lr; thinned
/// evenly to at most <see cref="MaxSteps"/> records, first and last kept). A metrics object (val, final) holds count,
/// top1, top5, top_k, macro_f1, log_loss, ece (expected calibration error), per_class[] (class, precision, recall, f1,
/// support), confusion ([true][predicted] counts), selective[] (min_score, answered, accuracy: the images answered when
/// only a top probability of min_score or more is taken, and how often right) and calibration[] (lower, upper, count,
/// confidence, accuracy per confidence bin); selective and calibration are null for a run restored from a record that
/// did not keep them. A value that does not exist (no validation) and a non-finite number are written as null.</summary>
internal static class MetricsFile
{
    /// <summary>The most step records written; longer runs are thinned evenly.</summary>
    public const int MaxSteps = 2000;

    /// <summary>Writes <paramref name="history"/> to <paramref name="path"/> through a temporary file in the same folder,
    /// so a reader never sees a partial file and an existing file is replaced whole.</summary>
    public static void Write(string path, TrainingHistory history)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ReportFiles.WriteAtomic(path, Encoding.UTF8.GetBytes(ToJson(history)));
    }

    /// <summary>The JSON text of <paramref name="history"/>.</summary>
    public static string ToJson(TrainingHistory history)
    {
        ReportFiles.Validate(history);
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            Run(w, history);
            w.WriteNumber("train_count", history.TrainCount);
            w.WriteNumber("val_count", history.ValCount);
            w.WriteString("monitor", history.Monitor);
            if (history.BestEpoch is int best) w.WriteNumber("best_epoch", best);
            else w.WriteNull("best_epoch");
            w.WriteString("stop_reason", history.StopReason);
            Number(w, "duration_seconds", history.Duration.TotalSeconds);

            w.WriteStartArray("epochs");
            foreach (var e in history.Epochs)
            {
                w.WriteStartObject();
                w.WriteNumber("epoch", e.Epoch);
                Number(w, "train_loss", e.TrainLoss);
                Number(w, "lr", e.LearningRate);
                Number(w, "images_per_second", e.ImagesPerSecond);
                Number(w, "seconds", e.Seconds);
                Number(w, "val_loss", e.ValLoss);
                w.WritePropertyName("val");
                Metrics(w, e.Validation);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            w.WritePropertyName("final");
            Metrics(w, history.Final);

            w.WriteStartArray("hardest");
            foreach (var m in history.Hardest)
            {
                w.WriteStartObject();
                w.WriteString("source", m.Source);
                w.WriteString("true", history.Classes[m.TrueLabel]);
                w.WriteString("predicted", history.Classes[m.PredictedLabel]);
                w.WriteNumber("true_index", m.TrueLabel);
                w.WriteNumber("predicted_index", m.PredictedLabel);
                Number(w, "confidence", m.Confidence);
                Number(w, "true_probability", m.TrueProbability);
                w.WriteEndObject();
            }
            w.WriteEndArray();

            w.WriteNumber("step_count", history.Steps.Count);
            w.WriteStartArray("steps");
            // one compact object per line: thousands of records stay readable and the file small
            foreach (int i in ThinIndices(history.Steps.Count, MaxSteps))
            {
                var s = history.Steps[i];
                Row(w, Compact(c =>
                {
                    c.WriteStartObject();
                    c.WriteNumber("step", s.Step);
                    c.WriteNumber("epoch", s.Epoch);
                    Number(c, "loss", s.Loss);
                    Number(c, "lr", s.LearningRate);
                    c.WriteEndObject();
                }));
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>What every results file opens with: model, classes and the run's settings.</summary>
    internal static void Run(Utf8JsonWriter w, TrainingHistory history)
    {
        w.WriteString("model", history.Model);
        w.WriteStartArray("classes");
        foreach (var c in history.Classes) w.WriteStringValue(c);
        w.WriteEndArray();
        w.WriteStartObject("settings");
        foreach (var (k, v) in history.Settings) w.WriteString(k, v);
        w.WriteEndObject();
    }

    internal static void Metrics(Utf8JsonWriter w, ClassificationMetrics? m)
    {
        if (m is null) { w.WriteNullValue(); return; }
        w.WriteStartObject();
        w.WriteNumber("count", m.Count);
        Number(w, "top1", m.Top1);
        Number(w, "top5", m.Top5);
        w.WriteNumber("top_k", m.TopK);
        Number(w, "macro_f1", m.MacroF1);
        Number(w, "log_loss", m.LogLoss);
        Number(w, "ece", m.ExpectedCalibrationError);
        Rows(w, "per_class", m.PerClass, (c, p) =>
        {
            c.WriteStartObject();
            c.WriteString("class", p.Class);
            Number(c, "precision", p.Precision);
            Number(c, "recall", p.Recall);
            Number(c, "f1", p.F1);
            c.WriteNumber("support", p.Support);
            c.WriteEndObject();
        });
        // one matrix row per line
        Rows(w, "confusion", m.Confusion, (c, row) =>
        {
            c.WriteStartArray();
            foreach (int v in row) c.WriteNumberValue(v);
            c.WriteEndArray();
        });
        Rows(w, "selective", m.Selective, (c, p) =>
        {
            c.WriteStartObject();
            Number(c, "min_score", p.MinScore);
            Number(c, "answered", p.Answered);
            Number(c, "accuracy", p.Accuracy);
            c.WriteEndObject();
        });
        Rows(w, "calibration", m.Calibration, (c, b) =>
        {
            c.WriteStartObject();
            Number(c, "lower", b.Lower);
            Number(c, "upper", b.Upper);
            c.WriteNumber("count", b.Count);
            Number(c, "confidence", b.MeanConfidence);
            Number(c, "accuracy", b.Accuracy);
            c.WriteEndObject();
        });
        w.WriteEndObject();
    }

    /// <summary>An array named <paramref name="name"/> with one compact element per line (null when
    /// <paramref name="items"/> is).</summary>
    internal static void Rows<T>(Utf8JsonWriter w, string name, IEnumerable<T>? items, Action<Utf8JsonWriter, T> write)
    {
        if (items is null) { w.WriteNull(name); return; }
        w.WriteStartArray(name);
        foreach (var item in items) Row(w, Compact(c => write(c, item)));
        w.WriteEndArray();
    }

    /// <summary>Writes a compact value as the next array element on a line of its own (the indented writer does not
    /// indent raw values itself).</summary>
    internal static void Row(Utf8JsonWriter w, byte[] compact)
    {
        var line = new byte[1 + 2 * w.CurrentDepth + compact.Length];
        line.AsSpan().Fill((byte)' ');
        line[0] = (byte)'\n';
        compact.CopyTo(line, 1 + 2 * w.CurrentDepth);
        w.WriteRawValue(line, skipInputValidation: true);
    }

    internal static byte[] Compact(Action<Utf8JsonWriter> write)
    {
        var b = new ArrayBufferWriter<byte>(128);
        using (var c = new Utf8JsonWriter(b, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            write(c);
        return b.WrittenSpan.ToArray();
    }

    /// <summary>JSON has no NaN or infinity: those (and a missing value) become null.</summary>
    internal static void Number(Utf8JsonWriter w, string name, double? value)
    {
        if (value is double v && double.IsFinite(v)) w.WriteNumber(name, v);
        else w.WriteNull(name);
    }

    /// <summary>A float written with its shortest float32 digits (0.9, not 0.8999999761581421).</summary>
    internal static void Number(Utf8JsonWriter w, string name, float value)
    {
        if (float.IsFinite(value)) w.WriteNumber(name, value);
        else w.WriteNull(name);
    }

    /// <summary><paramref name="max"/> indices spread evenly over 0..count-1, first and last included (all when count ≤ max).</summary>
    internal static IEnumerable<int> ThinIndices(int count, int max)
    {
        if (count <= max)
        {
            for (int i = 0; i < count; i++) yield return i;
            yield break;
        }
        for (int k = 0; k < max; k++)
            yield return (int)Math.Round((double)k * (count - 1) / (max - 1), MidpointRounding.AwayFromZero);
    }
}

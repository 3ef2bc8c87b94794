using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MLNetExt.Training;

/// <summary>Writes a <see cref="CrossValidationResult"/>: <c>crossval.json</c> (indented, snake_case: model, classes,
/// settings, folds, image_count, mean and std of the held-out top1/top5/macro_f1/log_loss over the folds, out_of_fold (a
/// metrics object as in metrics.json), best_epoch, epochs[] (epoch, top1, top1_std, log_loss: the mean held-out scores),
/// per_fold[] (fold, train_count, reused, duration_seconds, held_out metrics) and label_issues[] (source, label,
/// suggested, label_probability, suggested_probability, fold)) and <c>out-of-fold.csv</c> (one row per image: source,
/// label, predicted, label_probability, predicted_probability, fold, suggested_label — set for a label issue), and
/// <c>crossval.html</c> (<see cref="HtmlReport.CrossValidationHtml"/>). Each file is written atomically.</summary>
internal static class CrossValidationFile
{
    /// <summary>Writes crossval.json, out-of-fold.csv and crossval.html (label issues shown through
    /// <paramref name="loadImage"/>, which decodes an image from its source).</summary>
    public static void Write(string folder, CrossValidationResult r, Func<string, Imaging.RgbImage?>? loadImage)
    {
        ReportFiles.WriteAtomic(Path.Combine(folder, CrossValidationResult.SummaryFileName), Encoding.UTF8.GetBytes(ToJson(r)));
        ReportFiles.WriteAtomic(Path.Combine(folder, CrossValidationResult.PredictionsFileName), Encoding.UTF8.GetBytes(ToCsv(r)));
        HtmlReport.WriteCrossValidation(Path.Combine(folder, CrossValidationResult.ReportFileName), r, loadImage);
    }

    public static string ToJson(CrossValidationResult r)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            MetricsFile.Run(w, r.Folds[0].History);   // every fold ran with the same settings
            w.WriteNumber("folds", r.Folds.Count);
            w.WriteNumber("image_count", r.Predictions.Count);
            foreach (var (name, pick) in new (string, Func<(double Mean, double Std), double>)[] { ("mean", s => s.Mean), ("std", s => s.Std) })
            {
                w.WriteStartObject(name);
                foreach (var metric in ClassificationMetrics.MetricNames) MetricsFile.Number(w, metric, pick(r.Spread(metric)));
                w.WriteEndObject();
            }
            w.WritePropertyName("out_of_fold");
            MetricsFile.Metrics(w, r.OutOfFold);
            w.WriteNumber("best_epoch", r.BestEpoch);
            MetricsFile.Rows(w, "epochs", r.Epochs, (c, e) =>
            {
                c.WriteStartObject();
                c.WriteNumber("epoch", e.Epoch);
                MetricsFile.Number(c, "top1", e.Top1);
                MetricsFile.Number(c, "top1_std", e.Top1StandardDeviation);
                MetricsFile.Number(c, "log_loss", e.LogLoss);
                c.WriteEndObject();
            });
            w.WriteStartArray("per_fold");
            foreach (var f in r.Folds)
            {
                w.WriteStartObject();
                w.WriteNumber("fold", f.Fold);
                w.WriteNumber("train_count", f.TrainCount);
                w.WriteBoolean("reused", f.Reused);
                MetricsFile.Number(w, "duration_seconds", f.History.Duration.TotalSeconds);
                w.WritePropertyName("held_out");
                MetricsFile.Metrics(w, f.HeldOut);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            MetricsFile.Rows(w, "label_issues", r.LabelIssues, (c, i) =>
            {
                c.WriteStartObject();
                c.WriteString("source", i.Source);
                c.WriteString("label", r.Classes[i.Label]);
                c.WriteString("suggested", r.Classes[i.Suggested]);
                MetricsFile.Number(c, "label_probability", i.LabelProbability);
                MetricsFile.Number(c, "suggested_probability", i.SuggestedProbability);
                c.WriteNumber("fold", i.Fold);
                c.WriteEndObject();
            });
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    public static string ToCsv(CrossValidationResult r)
    {
        // the same file listed twice in one fold scores the same: one suggestion serves both rows
        var issues = r.LabelIssues.GroupBy(i => (i.Source, i.Fold)).ToDictionary(g => g.Key, g => g.First().Suggested);
        var sb = new StringBuilder("source,label,predicted,label_probability,predicted_probability,fold,suggested_label\n");
        foreach (var p in r.Predictions)
        {
            int predicted = p.Predicted;
            string suggested = issues.TryGetValue((p.Source, p.Fold), out int s) ? r.Classes[s] : "";
            sb.Append(Field(p.Source)).Append(',').Append(Field(r.Classes[p.Label])).Append(',').Append(Field(r.Classes[predicted])).Append(',')
              .Append(p.Probabilities[p.Label].ToString("R", CultureInfo.InvariantCulture)).Append(',')
              .Append(p.Probabilities[predicted].ToString("R", CultureInfo.InvariantCulture)).Append(',')
              .Append(p.Fold.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Field(suggested)).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.</summary>
    static string Field(string s) => s.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}

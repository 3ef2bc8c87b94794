using System.Globalization;
using System.Text;
using MLNetExt.Imaging;

namespace MLNetExt.Training;

/// <summary>The cross-validation page, <c>crossval.html</c>: one self-contained file like report.html, with the
/// estimate (mean ± sd over the folds and the pooled out-of-fold scores), the held-out top-1 after each epoch (each fold
/// and their mean with a ±1 sd band), the folds, the out-of-fold confusion matrix, per-class table and reliability, and
/// the label issues as thumbnails.</summary>
internal static partial class HtmlReport
{
    public static void WriteCrossValidation(string path, CrossValidationResult r, Func<string, RgbImage?>? loadImage = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ReportFiles.WriteAtomic(path, Encoding.UTF8.GetBytes(CrossValidationHtml(r, loadImage)));
    }

    public static string CrossValidationHtml(CrossValidationResult r, Func<string, RgbImage?>? loadImage = null)
    {
        var first = r.Folds[0].History;
        var h = Page($"Cross-validation · {first.Model}");

        var duration = TimeSpan.FromSeconds(r.Folds.Sum(f => f.History.Duration.TotalSeconds));
        h.Append($"<header><h1>Cross-validation <span class=\"model\">{E(first.Model)}</span></h1>");
        h.Append($"<p class=\"sub\">{r.Folds.Count} folds · {r.Predictions.Count:N0} images, each scored once by the model trained without it · " +
                 $"{r.Classes.Count} classes · {first.Epochs.Count} epoch{(first.Epochs.Count == 1 ? "" : "s")} a fold · {Duration(duration)} of training</p></header>\n");
        var m = r.OutOfFold;
        var (top1, top1Sd) = r.Spread("top1");
        h.Append("<section class=\"cards\">");
        Card(h, "held-out top-1", Pct(top1), $"± {Pct(top1Sd)} over the folds (sd)", false);
        Card(h, "out-of-fold top-1", Pct(m.Top1), $"all {m.Count:N0} images together", false);
        Card(h, "macro-F1", Num(m.MacroF1, "0.0000"), "out of fold", false);
        Card(h, "log-loss", Num(m.LogLoss, "0.0000"), "out of fold", false);
        if (m.ExpectedCalibrationError is double ece) Card(h, "calibration error", Pct(ece), "out of fold (ECE)", false);
        Card(h, "best epoch", r.BestEpoch.ToString(CultureInfo.InvariantCulture), "highest mean held-out top-1", false);
        Card(h, "label issues", r.LabelIssues.Count.ToString(CultureInfo.InvariantCulture), "images another class is confidently predicted for", false);
        h.Append("</section>\n");

        EpochCharts(h, r);
        FoldTable(h, r);
        Confusion(h, m);
        PerClass(h, m);
        Calibration(h, m, "All images, each scored by the fold that held it out,");
        Selective(h, m, "out-of-fold scores, so it holds for new images like these");
        LabelIssues(h, r, loadImage);
        Settings(h, first.Model, first.Settings, r.Classes,
        [
            ("folds", r.Folds.Count.ToString(CultureInfo.InvariantCulture)), ("images", r.Predictions.Count.ToString("N0", CultureInfo.InvariantCulture)),
            ("kept epoch", "the last of each fold"), ("training time", Duration(duration)),
        ]);
        return EndPage(h);
    }

    static void EpochCharts(StringBuilder h, CrossValidationResult r)
    {
        var epochs = r.Epochs.Select(e => (double)e.Epoch).ToArray();
        var best = new List<(double, string)> { (r.BestEpoch, $"best: epoch {r.BestEpoch}") };
        h.Append("<section class=\"charts\">\n");
        {
            var all = r.Folds.SelectMany(f => f.History.Epochs.Select(e => e.Validation!.Top1)).Where(double.IsFinite).DefaultIfEmpty(0).ToList();
            var chart = new SvgChart { Id = "cv-top1", XTitle = "epoch", YTitle = "held-out top-1", YMin = Math.Max(0, Ticks.Nice(all.Min(), 1, 5, false).Lo), YMax = 1, PercentY = true, IntegerX = true };
            foreach (var f in r.Folds)
                chart.Series.Add(new ChartSeries($"fold {f.Fold}", "#94a3b8", epochs, f.History.Epochs.Take(epochs.Length).Select(e => e.Validation!.Top1).ToArray(),
                    SeriesStyle.Line, 1.2, Opacity: 0.8));
            chart.Series.Add(new ChartSeries("mean", Blue, epochs, r.Epochs.Select(e => e.Top1).ToArray(), SeriesStyle.LinePoints, 2.4,
                BandLow: r.Epochs.Select(e => e.Top1 - e.Top1StandardDeviation).ToArray(), BandHigh: r.Epochs.Select(e => e.Top1 + e.Top1StandardDeviation).ToArray(),
                PointLabel: "epoch "));
            chart.Markers.AddRange(best);
            Panel(h, "Held-out top-1 after each epoch", [("mean of the folds (band: ± 1 sd)", Blue, "dot"), ("each fold", "#94a3b8", "line")], chart.Render(),
                "Where the mean stops rising, more epochs stop paying; the spread is how much one split's score can be trusted.");
        }
        {
            var chart = new SvgChart { Id = "cv-loss", XTitle = "epoch", YTitle = "loss", YMin = 0, IntegerX = true };
            chart.Series.Add(new ChartSeries("train loss", Blue, epochs, epochs.Select((_, i) => r.Folds.Average(f => f.History.Epochs[i].TrainLoss)).ToArray(),
                SeriesStyle.LinePoints, 2.2, PointLabel: "epoch "));
            chart.Series.Add(new ChartSeries("held-out loss", Orange, epochs, r.Epochs.Select(e => e.LogLoss).ToArray(), SeriesStyle.LinePoints, 2.2, PointLabel: "epoch "));
            chart.Markers.AddRange(best);
            Panel(h, "Loss (mean of the folds)", [("train loss", Blue, "dot"), ("held-out log-loss", Orange, "dot")], chart.Render(), null);
        }
        h.Append("</section>\n");
    }

    static void FoldTable(StringBuilder h, CrossValidationResult r)
    {
        h.Append("<section class=\"panel wide\"><h2>Folds</h2><div class=\"scroll\"><table><thead><tr><th class=\"num\">fold</th><th class=\"num\">trained on</th>" +
                 "<th class=\"num\">held out</th><th class=\"num\">top-1</th><th class=\"num\">macro-F1</th><th class=\"num\">log-loss</th><th class=\"num\">time</th><th></th></tr></thead><tbody>\n");
        foreach (var f in r.Folds)
            h.Append($"<tr><td class=\"num\">{f.Fold}</td><td class=\"num\">{f.TrainCount:N0}</td><td class=\"num\">{f.HeldOut.Count:N0}</td><td class=\"num\">{Pct(f.HeldOut.Top1)}</td>" +
                     $"<td class=\"num\">{Num(f.HeldOut.MacroF1, "0.000")}</td><td class=\"num\">{Num(f.HeldOut.LogLoss, "0.0000")}</td>" +
                     $"<td class=\"num\">{Duration(f.History.Duration)}</td><td class=\"muted\">{(f.Reused ? "reused from an earlier run" : "")}</td></tr>\n");
        var (top1, sd) = r.Spread("top1");
        var (f1, f1Sd) = r.Spread("macro_f1");
        var (loss, lossSd) = r.Spread("log_loss");
        h.Append($"</tbody><tfoot><tr><td>mean ± sd</td><td></td><td></td><td class=\"num\">{Pct(top1)} ± {Pct(sd)}</td><td class=\"num\">{Num(f1, "0.000")} ± {Num(f1Sd, "0.000")}</td>" +
                 $"<td class=\"num\">{Num(loss, "0.0000")} ± {Num(lossSd, "0.0000")}</td><td></td><td></td></tr></tfoot></table></div></section>\n");
    }

    static void LabelIssues(StringBuilder h, CrossValidationResult r, Func<string, RgbImage?>? loadImage)
    {
        h.Append("<section class=\"panel wide\"><h2>Label issues</h2>");
        if (r.LabelIssues.Count == 0)
        {
            h.Append("<div class=\"empty\">no image is confidently predicted as another class than its label</div></section>\n");
            return;
        }
        int shown = Math.Min(MaxThumbnails, r.LabelIssues.Count);
        h.Append($"<p class=\"note\">Images another class is confidently predicted for by the model that never trained on them (its probability reaches that " +
                 $"class's threshold, the mean probability given to the images labelled with it): a wrong label, an image of neither class, or one the models " +
                 $"cannot tell apart yet. The {shown} with the lowest probability of their label{(r.LabelIssues.Count > shown ? $" of {r.LabelIssues.Count} (all in out-of-fold.csv)" : "")}:</p>" +
                 "<div class=\"thumbs\">\n");
        foreach (var i in r.LabelIssues.Take(shown))
        {
            h.Append($"<figure class=\"thumb\" title=\"{E(i.Source)}\"><div class=\"frame\">");
            var img = TryLoad(loadImage, i.Source, out string? error);
            if (img is not null) Thumbnail(h, img, i.Source);
            else h.Append($"<span class=\"noimg\">{E(error is null ? "no image" : "could not load: " + error)}</span>");
            h.Append("</div><figcaption>");
            h.Append($"<div class=\"tp\">labelled <span class=\"pred\">{E(r.Classes[i.Label])}</span>, looks like <span class=\"true\">{E(r.Classes[i.Suggested])}</span></div>");
            h.Append($"<div class=\"conf\">p(label) {PctF(i.LabelProbability)} · p({E(r.Classes[i.Suggested])}) {PctF(i.SuggestedProbability)} · fold {i.Fold}</div>");
            h.Append($"<div class=\"src\">{E(ShortSource(i.Source))}</div></figcaption></figure>\n");
        }
        h.Append("</div></section>\n");
    }
}

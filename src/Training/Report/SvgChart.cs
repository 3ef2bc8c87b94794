using System.Globalization;
using System.Text;

namespace MLNetExt.Training;

/// <summary>How a chart series is drawn.</summary>
internal enum SeriesStyle
{
    /// <summary>A line broken at non-finite values; a finite point with no finite neighbour is drawn as a dot.</summary>
    Line,
    /// <summary>A line with a dot on every point (epoch series).</summary>
    LinePoints,
}

/// <summary>One series: x and y of equal length (NaN y = gap), optionally a min–max band drawn behind it.</summary>
internal sealed record ChartSeries(string Name, string Color, double[] X, double[] Y, SeriesStyle Style, double StrokeWidth = 2,
    double Opacity = 1, double[]? BandLow = null, double[]? BandHigh = null, string PointLabel = "", bool Dashed = false);

/// <summary>A small line-chart renderer producing standalone SVG markup (no script, no external resources): nice 1-2-5
/// ticks, gridlines, axis titles, gaps at non-finite values, vertical markers, and values above
/// <see cref="YClip"/> clipped to the plot area.</summary>
internal sealed class SvgChart
{
    /// <summary>Unique within the document (names the clip path).</summary>
    public required string Id { get; init; }
    public required string XTitle { get; init; }
    public required string YTitle { get; init; }
    public List<ChartSeries> Series { get; } = new();
    /// <summary>Vertical dashed lines (x, label).</summary>
    public List<(double X, string Label)> Markers { get; } = new();
    public double? XMin { get; init; }
    public double? XMax { get; init; }
    public double? YMin { get; init; }
    public double? YMax { get; init; }
    /// <summary>Largest y the axis shows; larger values run off the top (outliers such as the first steps' loss).</summary>
    public double? YClip { get; init; }
    public bool IntegerX { get; init; }
    public bool PercentY { get; init; }
    public int Width { get; init; } = 640;
    public int Height { get; init; } = 300;

    const double Left = 64, Right = 18, Top = 26, Bottom = 46;

    public string Render()
    {
        var xs = Series.SelectMany(s => s.X.Where((x, i) => double.IsFinite(x) && double.IsFinite(s.Y[i]))).ToList();
        var ys = Series.SelectMany(s => s.Y.Where(double.IsFinite)
            .Concat(s.BandLow?.Where(double.IsFinite) ?? []).Concat(s.BandHigh?.Where(double.IsFinite) ?? [])).ToList();
        double x0 = XMin ?? (xs.Count > 0 ? xs.Min() : 0), x1 = XMax ?? (xs.Count > 0 ? xs.Max() : 1);
        if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
        double y0 = YMin ?? (ys.Count > 0 ? ys.Min() : 0), y1 = YMax ?? (ys.Count > 0 ? ys.Max() : 1);
        if (YClip is double clip && y1 > clip) y1 = Math.Max(clip, y0);
        if (y1 <= y0)
        {
            double pad = y0 == 0 ? 1 : Math.Abs(y0) * 0.1;
            y0 = YMin ?? y0 - pad;
            y1 = YMax ?? y1 + pad;
            if (y1 <= y0) y1 = y0 + 1;
        }
        var (yLo, yHi, yStep) = Ticks.Nice(y0, y1, 5, integer: false);
        if (YMin is double fy0) yLo = fy0;
        if (YMax is double fy1) yHi = fy1;
        var (xLo, xHi, xStep) = Ticks.Nice(x0, x1, 8, IntegerX);
        if (XMin is double fx0) xLo = fx0;
        if (XMax is double fx1) xHi = fx1;

        double pw = Width - Left - Right, ph = Height - Top - Bottom;
        double Px(double x) => Left + (x - xLo) / (xHi - xLo) * pw;
        double Py(double y) => Top + (1 - (y - yLo) / (yHi - yLo)) * ph;

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" aria-label=\"{Html.Escape(YTitle)} by {Html.Escape(XTitle)}\">");
        sb.Append($"<defs><clipPath id=\"clip-{Id}\"><rect x=\"{F(Left)}\" y=\"{F(Top)}\" width=\"{F(pw)}\" height=\"{F(ph)}\"/></clipPath></defs>");

        // gridlines and y tick labels
        sb.Append("<g class=\"grid\">");
        foreach (double t in Ticks.Values(yLo, yHi, yStep))
        {
            double py = Py(t);
            sb.Append($"<line x1=\"{F(Left)}\" x2=\"{F(Left + pw)}\" y1=\"{F(py)}\" y2=\"{F(py)}\"/>");
        }
        sb.Append("</g><g class=\"ticks\">");
        foreach (double t in Ticks.Values(yLo, yHi, yStep))
            sb.Append($"<text x=\"{F(Left - 8)}\" y=\"{F(Py(t) + 4)}\" text-anchor=\"end\">{Ticks.Format(t, yStep, PercentY)}</text>");
        foreach (double t in Ticks.Values(xLo, xHi, xStep))
        {
            double px = Px(t);
            sb.Append($"<line class=\"tick\" x1=\"{F(px)}\" x2=\"{F(px)}\" y1=\"{F(Top + ph)}\" y2=\"{F(Top + ph + 5)}\"/>");
            sb.Append($"<text x=\"{F(px)}\" y=\"{F(Top + ph + 19)}\" text-anchor=\"middle\">{Ticks.Format(t, xStep, false)}</text>");
        }
        sb.Append("</g>");
        sb.Append($"<line class=\"axis\" x1=\"{F(Left)}\" x2=\"{F(Left + pw)}\" y1=\"{F(Top + ph)}\" y2=\"{F(Top + ph)}\"/>");
        sb.Append($"<line class=\"axis\" x1=\"{F(Left)}\" x2=\"{F(Left)}\" y1=\"{F(Top)}\" y2=\"{F(Top + ph)}\"/>");
        sb.Append($"<text class=\"axis-title\" x=\"{F(Left + pw / 2)}\" y=\"{F(Height - 6)}\" text-anchor=\"middle\">{Html.Escape(XTitle)}</text>");
        sb.Append($"<text class=\"axis-title\" transform=\"rotate(-90)\" x=\"{F(-(Top + ph / 2))}\" y=\"14\" text-anchor=\"middle\">{Html.Escape(YTitle)}</text>");

        foreach (var (mx, label) in Markers)
        {
            if (!double.IsFinite(mx) || mx < xLo || mx > xHi) continue;
            double px = Px(mx);
            // the label sits above the plot, where no curve can hide it, centred unless that would leave the chart
            string anchor = px > Width - Right - 50 ? "end" : px < Left + 50 ? "start" : "middle";
            sb.Append($"<g class=\"marker\"><line x1=\"{F(px)}\" x2=\"{F(px)}\" y1=\"{F(Top - 4)}\" y2=\"{F(Top + ph)}\"/>");
            sb.Append($"<text x=\"{F(px)}\" y=\"{F(Top - 8)}\" text-anchor=\"{anchor}\">{Html.Escape(label)}</text></g>");
        }

        sb.Append($"<g clip-path=\"url(#clip-{Id})\">");
        foreach (var s in Series)
        {
            if (s.BandLow is { } lo && s.BandHigh is { } hi)
                foreach (var (a, b) in Runs(s.X, lo, hi))
                {
                    var poly = new StringBuilder();
                    for (int i = a; i < b; i++) poly.Append($"{F(Px(s.X[i]))},{F(Py(hi[i]))} ");
                    for (int i = b - 1; i >= a; i--) poly.Append($"{F(Px(s.X[i]))},{F(Py(lo[i]))} ");
                    sb.Append($"<polygon points=\"{poly.ToString().TrimEnd()}\" fill=\"{s.Color}\" fill-opacity=\"{F(0.18 * s.Opacity)}\" stroke=\"none\"/>");
                }
            var path = new StringBuilder();
            var dots = new List<int>();
            foreach (var (a, b) in Runs(s.X, s.Y, s.Y))
            {
                if (b - a == 1) { dots.Add(a); continue; }
                for (int i = a; i < b; i++) path.Append(i == a ? 'M' : 'L').Append(F(Px(s.X[i]))).Append(',').Append(F(Py(s.Y[i])));
                if (s.Style == SeriesStyle.LinePoints) for (int i = a; i < b; i++) dots.Add(i);
            }
            if (path.Length > 0)
                sb.Append($"<path d=\"{path}\" fill=\"none\" stroke=\"{s.Color}\" stroke-width=\"{F(s.StrokeWidth)}\" stroke-opacity=\"{F(s.Opacity)}\" stroke-linejoin=\"round\" stroke-linecap=\"round\"{(s.Dashed ? " stroke-dasharray=\"6 4\"" : "")}/>");
            double r = Math.Max(2.5, s.StrokeWidth + 1);
            foreach (int i in dots)
            {
                sb.Append($"<circle cx=\"{F(Px(s.X[i]))}\" cy=\"{F(Py(s.Y[i]))}\" r=\"{F(r)}\" fill=\"{s.Color}\" fill-opacity=\"{F(s.Opacity)}\" stroke=\"#fff\" stroke-width=\"1\">");
                sb.Append($"<title>{Html.Escape(s.Name)}, {Html.Escape(s.PointLabel)}{s.X[i].ToString("0.##", CultureInfo.InvariantCulture)}: {Value(s.Y[i])}</title></circle>");
            }
        }
        sb.Append("</g></svg>");
        return sb.ToString();
    }

    string Value(double v) => PercentY ? (v * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%" : v.ToString("0.####", CultureInfo.InvariantCulture);

    /// <summary>Half-open index ranges where x, lo and hi are all finite (the pieces of a gapped line).</summary>
    static IEnumerable<(int, int)> Runs(double[] x, double[] lo, double[] hi)
    {
        int start = -1;
        for (int i = 0; i <= x.Length; i++)
        {
            bool ok = i < x.Length && double.IsFinite(x[i]) && double.IsFinite(lo[i]) && double.IsFinite(hi[i]);
            if (ok && start < 0) start = i;
            else if (!ok && start >= 0) { yield return (start, i); start = -1; }
        }
    }

    static string F(double v) => Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);
}

/// <summary>Axis ticks at 1-2-5 multiples of a power of ten.</summary>
internal static class Ticks
{
    /// <summary>An axis range covering [min, max] at a 1-2-5 step giving about <paramref name="target"/> intervals.</summary>
    public static (double Lo, double Hi, double Step) Nice(double min, double max, int target, bool integer)
    {
        double range = max - min;
        if (!(range > 0)) range = Math.Abs(min) > 0 ? Math.Abs(min) : 1;
        double rough = range / target;
        double mag = Math.Pow(10, Math.Floor(Math.Log10(rough)));
        double r = rough / mag;
        double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
        if (integer && step < 1) step = 1;
        double lo = Math.Floor(min / step + 1e-9) * step, hi = Math.Ceiling(max / step - 1e-9) * step;
        if (hi <= lo) hi = lo + step;
        return (lo, hi, step);
    }

    public static IEnumerable<double> Values(double lo, double hi, double step)
    {
        double first = Math.Ceiling(lo / step - 1e-9) * step;
        for (int i = 0; ; i++)
        {
            double v = first + i * step;
            if (v > hi + step * 1e-9) yield break;
            yield return Math.Abs(v) < step * 1e-9 ? 0 : v;
        }
    }

    /// <summary>A tick label with as many decimals as the step needs; tiny steps (learning rates) in e-notation.</summary>
    public static string Format(double v, double step, bool percent)
    {
        var inv = CultureInfo.InvariantCulture;
        if (percent)
        {
            int pd = Math.Max(0, (int)Math.Ceiling(-Math.Log10(step * 100) - 1e-9));
            return (v * 100).ToString("F" + pd, inv) + "%";
        }
        if (v == 0) return "0";
        if (step < 1e-3 || Math.Abs(v) >= 1e6) return v.ToString("0.##e-0", inv);
        int d = Math.Max(0, (int)Math.Ceiling(-Math.Log10(step) - 1e-9));
        return v.ToString("F" + d, inv);
    }
}

/// <summary>HTML/XML text escaping for element content and quoted attribute values.</summary>
internal static class Html
{
    public static string Escape(string? s)
    {
        if (string.IsNullOrEmpty(s)) return "";
        var sb = new StringBuilder(s.Length + 8);
        foreach (char ch in s)
        {
            switch (ch)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"': sb.Append("&quot;"); break;
                case '\'': sb.Append("&#39;"); break;
                // control characters are not allowed in HTML text (nor in XML): show a replacement
                case < ' ' when ch is not ('\n' or '\t' or '\r'): sb.Append('\uFFFD'); break;
                default: sb.Append(ch); break;
            }
        }
        return sb.ToString();
    }
}

using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>sum/mean over all elements (no dims) or over a dim list (<c>.dim_IntList</c> / <c>.dim</c>), keepdim, dtype.</summary>
internal abstract class ReduceBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        int rank = c.Rank(0);
        string x = c.InAs(0, t);
        bool allDims = c.Overload.Length == 0 || c.IsNone(1) || c.Ints(1).Length == 0;
        long[] axes = allDims ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : c.Ints(1).Select(d => (long)c.NormDim(d, rank)).ToArray();
        bool keep = !allDims && c.Bool(2, false);
        if (allDims && c.Overload.Length > 0) keep = c.Bool(2, false);
        c.Alias(0, c.Reduce(onnxOp, x, axes, keep));
    }
}

[Aten("aten::sum")] internal sealed class SumMapper() : ReduceBase("ReduceSum");
[Aten("aten::mean")] internal sealed class MeanMapper() : ReduceBase("ReduceMean");

/// <summary>amax/amin(self, dim, keepdim).</summary>
internal abstract class AminmaxBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank(0);
        var dims = c.Ints(1);
        long[] axes = dims.Length == 0 ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : dims.Select(d => (long)c.NormDim(d, rank)).ToArray();
        c.Alias(0, c.Reduce(onnxOp, c.In(0), axes, c.Bool(2, false)));
    }
}

[Aten("aten::amax")] internal sealed class AmaxMapper() : AminmaxBase("ReduceMax");
[Aten("aten::amin")] internal sealed class AminMapper() : AminmaxBase("ReduceMin");

/// <summary>var/std.correction(self, dim?, correction, keepdim): mean of squared deviations times n/(n - correction).</summary>
internal abstract class VarianceBase(bool sqrt) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        int rank = c.Rank(0);
        var shape = c.Shape(0);
        long[] axes = c.IsNone(1) || c.Ints(1).Length == 0 ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : c.Ints(1).Select(d => (long)c.NormDim(d, rank)).ToArray();
        long n = 1;
        foreach (var a in axes) n *= c.StaticDim(0, (int)a);
        long correction = c.Int(2, 1);
        bool keep = c.Bool(3, false);
        string x = c.In(0);
        var mean = c.Reduce("ReduceMean", x, axes, true);
        var d = c.Emit("Sub", new[] { x, mean });
        var v = c.Reduce("ReduceMean", c.Emit("Mul", new[] { d, d }), axes, keep);
        if (correction != 0) v = c.Emit("Mul", new[] { v, c.Scalar((double)n / (n - correction), t) });
        c.Alias(0, sqrt ? c.Emit("Sqrt", new[] { v }) : v);
    }
}

[Aten("aten::var")] internal sealed class VarMapper() : VarianceBase(false);
[Aten("aten::std")] internal sealed class StdMapper() : VarianceBase(true);

/// <summary>norm.Scalar(self, p) / norm.ScalarOpt_dim(self, p, dim, keepdim): ReduceL2 / ReduceL1, or (Σ|x|^p)^(1/p).</summary>
[Aten("aten::norm")]
internal sealed class NormMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank(0);
        double p = c.Double(1, 2);
        bool byDim = c.Overload == "ScalarOpt_dim";
        long[] dims = byDim ? c.Ints(2) : Array.Empty<long>();
        long[] axes = dims.Length == 0 ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : dims.Select(d => (long)c.NormDim(d, rank)).ToArray();
        bool keep = byDim && c.Bool(3, false);
        var t = c.OutDType();
        string x = c.InAs(0, t);
        if (p == 2) { c.Alias(0, c.Reduce("ReduceL2", x, axes, keep)); return; }
        if (p == 1) { c.Alias(0, c.Reduce("ReduceL1", x, axes, keep)); return; }
        if (double.IsInfinity(p) || p == 0) throw c.Unsupported($"p = {p}");
        var powered = c.Emit("Pow", new[] { c.Emit("Abs", new[] { x }), c.Scalar(p, t) });
        c.EmitOut("Pow", new[] { c.Reduce("ReduceSum", powered, axes, keep), c.Scalar(1 / p, t) });
    }
}

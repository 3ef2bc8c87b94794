using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>sum/mean over all elements (no dims) or over a dim list (<c>.dim_IntList</c> / <c>.dim</c>), keepdim, dtype.</summary>
internal abstract class ReduceBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        int rank = c.Rank("self");
        string x = c.InAs("self", t);
        bool allDims = !c.Has("dim") || c.IsNone("dim") || c.Ints("dim").Length == 0;
        long[] axes = allDims ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : c.Ints("dim").Select(d => (long)c.NormDim(d, rank)).ToArray();
        bool keep = c.Has("keepdim") && c.Bool("keepdim", false);
        c.Alias(0, c.Reduce(onnxOp, x, axes, keep));
    }
}

[Aten("aten::sum(Tensor self, *, ScalarType? dtype=None) -> Tensor")]
[Aten("aten::sum.dim_IntList(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor")]
internal sealed class SumMapper() : ReduceBase("ReduceSum");

[Aten("aten::mean(Tensor self, *, ScalarType? dtype=None) -> Tensor")]
[Aten("aten::mean.dim(Tensor self, int[1]? dim, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor")]
internal sealed class MeanMapper() : ReduceBase("ReduceMean");

/// <summary>amax/amin(self, dim, keepdim).</summary>
internal abstract class AminmaxBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank("self");
        var dims = c.Ints("dim");
        long[] axes = dims.Length == 0 ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : dims.Select(d => (long)c.NormDim(d, rank)).ToArray();
        c.Alias(0, c.Reduce(onnxOp, c.In("self"), axes, c.Bool("keepdim", false)));
    }
}

[Aten("aten::amax(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor")]
internal sealed class AmaxMapper() : AminmaxBase("ReduceMax");

[Aten("aten::amin(Tensor self, int[1] dim=[], bool keepdim=False) -> Tensor")]
internal sealed class AminMapper() : AminmaxBase("ReduceMin");

/// <summary>var/std.correction(self, dim?, correction, keepdim): mean of squared deviations times n/(n - correction).</summary>
internal abstract class VarianceBase(bool sqrt) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        int rank = c.Rank("self");
        long[] axes = c.IsNone("dim") || c.Ints("dim").Length == 0 ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : c.Ints("dim").Select(d => (long)c.NormDim(d, rank)).ToArray();
        long n = 1;
        foreach (var a in axes) n *= c.StaticDim("self", (int)a);
        long correction = c.Int("correction", 1);
        bool keep = c.Bool("keepdim", false);
        string x = c.In("self");
        var mean = c.Reduce("ReduceMean", x, axes, true);
        var d = c.Emit("Sub", new[] { x, mean });
        var v = c.Reduce("ReduceMean", c.Emit("Mul", new[] { d, d }), axes, keep);
        if (correction != 0) v = c.Emit("Mul", new[] { v, c.Scalar((double)n / (n - correction), t) });
        c.Alias(0, sqrt ? c.Emit("Sqrt", new[] { v }) : v);
    }
}

[Aten("aten::var.correction(Tensor self, int[1]? dim, *, int? correction, bool keepdim=False) -> Tensor")]
internal sealed class VarMapper() : VarianceBase(false);

[Aten("aten::std.correction(Tensor self, int[1]? dim, *, int? correction, bool keepdim=False) -> Tensor")]
internal sealed class StdMapper() : VarianceBase(true);

/// <summary>norm.Scalar(self, p) / norm.ScalarOpt_dim(self, p, dim, keepdim): ReduceL2 / ReduceL1, or (Σ|x|^p)^(1/p).</summary>
[Aten("aten::norm.Scalar(Tensor self, Scalar p=2) -> Tensor")]
[Aten("aten::norm.ScalarOpt_dim(Tensor self, Scalar? p, int[1] dim, bool keepdim=False) -> Tensor")]
internal sealed class NormMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank("self");
        double p = c.Double("p", 2);
        bool byDim = c.Has("dim");
        long[] dims = byDim ? c.Ints("dim") : Array.Empty<long>();
        long[] axes = dims.Length == 0 ? Enumerable.Range(0, rank).Select(a => (long)a).ToArray() : dims.Select(d => (long)c.NormDim(d, rank)).ToArray();
        bool keep = byDim && c.Bool("keepdim", false);
        var t = c.OutDType();
        string x = c.InAs("self", t);
        if (p == 2) { c.Alias(0, c.Reduce("ReduceL2", x, axes, keep)); return; }
        if (p == 1) { c.Alias(0, c.Reduce("ReduceL1", x, axes, keep)); return; }
        if (double.IsInfinity(p) || p == 0) throw c.Unsupported($"p = {p}");
        var powered = c.Emit("Pow", new[] { c.Emit("Abs", new[] { x }), c.Scalar(p, t) });
        c.EmitOut("Pow", new[] { c.Reduce("ReduceSum", powered, axes, keep), c.Scalar(1 / p, t) });
    }
}

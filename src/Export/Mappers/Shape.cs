using MLNetExt.Export.Graph;
using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>view(self, size) / reshape(self, shape): Reshape; sizes computed from the batch become graph computations.</summary>
internal abstract class ReshapeBase(string sizeArgument) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reshape", new[] { c.In("self"), c.IntsTensor(sizeArgument) });
}

[Aten("aten::view(Tensor(a) self, SymInt[] size) -> Tensor(a)")] internal sealed class ViewMapper() : ReshapeBase("size");
[Aten("aten::reshape(Tensor(a) self, SymInt[] shape) -> Tensor(a)")] internal sealed class ReshapeMapper() : ReshapeBase("shape");

/// <summary>The output's shape as a Reshape target: the batch-dependent dimensions (at most one) taken as -1.</summary>
internal static class ShapeTargets
{
    public static string Of(MapContext c)
    {
        var v = c.OutValue(0);
        var dims = v.Shape.ToArray();
        int dynamic = 0;
        for (int k = 0; k < dims.Length; k++) if (v.DynamicDims.Length > k && v.DynamicDims[k]) { dims[k] = -1; dynamic++; }
        if (dynamic > 1) throw c.Unsupported("more than one output dimension depends on the batch size");
        return c.ConstI64(dims);
    }
}

[Aten("aten::flatten.using_ints(Tensor(a) self, int start_dim=0, int end_dim=-1) -> Tensor(a)")]
internal sealed class FlattenMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reshape", new[] { c.In("self"), ShapeTargets.Of(c) });
}

[Aten("aten::unflatten.int(Tensor(a) self, int dim, int[] sizes) -> Tensor(a)")]
internal sealed class UnflattenMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reshape", new[] { c.In("self"), ShapeTargets.Of(c) });
}

[Aten("aten::squeeze(Tensor(a) self) -> Tensor(a)")]
[Aten("aten::squeeze.dim(Tensor(a) self, int dim) -> Tensor(a)")]
internal sealed class SqueezeMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var shape = c.Shape("self");
        long[] axes = c.Has("dim")
            ? new long[] { c.NormDim(c.Int("dim", 0), shape.Length) }.Where(a => shape[a] == 1).ToArray()
            : Enumerable.Range(0, shape.Length).Where(a => shape[a] == 1).Select(a => (long)a).ToArray();
        foreach (var a in axes) if (c.ArgValue("self").DynamicDims[a]) throw c.Unsupported("squeezing the batch dimension");
        if (axes.Length == 0) c.Alias(0, c.In("self"));
        else c.EmitOut("Squeeze", new[] { c.In("self"), c.ConstI64(axes) });
    }
}

[Aten("aten::unsqueeze(Tensor(a) self, int dim) -> Tensor(a)")]
internal sealed class UnsqueezeMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Unsqueeze", new[] { c.In("self"), c.ConstI64(c.NormDim(c.Int("dim", 0), c.Rank("self") + 1)) });
}

[Aten("aten::permute(Tensor(a) self, int[] dims) -> Tensor(a)")]
internal sealed class PermuteMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank("self");
        c.EmitOut("Transpose", new[] { c.In("self") }, Attr.Ints("perm", c.Ints("dims").Select(d => (long)c.NormDim(d, rank))));
    }
}

[Aten("aten::transpose.int(Tensor(a) self, int dim0, int dim1) -> Tensor(a)")]
internal sealed class TransposeMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank("self");
        int a = c.NormDim(c.Int("dim0", 0), rank), b = c.NormDim(c.Int("dim1", 0), rank);
        var perm = Enumerable.Range(0, rank).Select(d => (long)d).ToArray();
        (perm[a], perm[b]) = (perm[b], perm[a]);
        if (a == b) c.Alias(0, c.In("self"));
        else c.EmitOut("Transpose", new[] { c.In("self") }, Attr.Ints("perm", perm));
    }
}

/// <summary>expand(self, size, implicit): -1 keeps a dimension (1 for ONNX Expand's broadcasting).</summary>
[Aten("aten::expand(Tensor(a) self, SymInt[] size, *, bool implicit=False) -> Tensor(a)")]
internal sealed class ExpandMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        // -1 means "keep", which Expand's broadcasting does with 1; batch-dependent entries (positive) are computed
        if (c.IsSymbolic("size")) { c.EmitOut("Expand", new[] { c.In("self"), c.Emit("Abs", new[] { c.IntsTensor("size") }) }); return; }
        c.EmitOut("Expand", new[] { c.In("self"), c.ConstI64(c.Ints("size").Select(s => s == -1 ? 1 : s).ToArray()) });
    }
}

[Aten("aten::expand_as(Tensor(a) self, Tensor other) -> Tensor(a)")]
internal sealed class ExpandAsMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Expand", new[] { c.In("self"), c.Emit("Shape", new[] { c.In("other") }) });
}

[Aten("aten::cat(Tensor[] tensors, int dim=0) -> Tensor")]
internal sealed class CatMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        var vals = c.ArgValues("tensors");
        var names = c.InList("tensors").Select((n, k) => c.Cast(n, vals[k].DType, t)).ToArray();
        c.EmitOut("Concat", names, Attr.I("axis", c.NormDim(c.Int("dim", 0), c.OutShape().Length)));
    }
}

[Aten("aten::stack(Tensor[] tensors, int dim=0) -> Tensor")]
internal sealed class StackMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int("dim", 0), c.OutShape().Length);
        var parts = c.InList("tensors").Select(n => c.Unsqueeze(n, axis)).ToArray();
        c.EmitOut("Concat", parts, Attr.I("axis", axis));
    }
}

/// <summary>split / split_with_sizes / chunk: one ONNX Split with the traced part sizes along a batch-free axis.</summary>
internal abstract class SplitBase : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank("self");
        int axis = c.NormDim(c.Int("dim", 0), rank);
        if (c.ArgValue("self").DynamicDims[axis]) throw c.Unsupported("splitting along the batch dimension");
        var sizes = Enumerable.Range(0, c.OutCount).Select(j => c.OutShape(j)[axis]).ToArray();
        var outs = Enumerable.Range(0, c.OutCount).Select(j => c.Out(j)).ToArray();
        if (outs.Length == 1) { c.Graph.EmitTo("Identity", new[] { c.In("self") }, outs[0]); return; }
        c.Graph.EmitMany("Split", new[] { c.In("self"), c.ConstI64(sizes) }, outs, Attr.I("axis", axis));
    }
}

[Aten("aten::split.Tensor(Tensor(a -> *) self, int split_size, int dim=0) -> Tensor(a)[]")] internal sealed class SplitMapper : SplitBase;
[Aten("aten::split_with_sizes(Tensor(a -> *) self, int[] split_sizes, int dim=0) -> Tensor(a)[]")] internal sealed class SplitWithSizesMapper : SplitBase;
[Aten("aten::chunk(Tensor(a -> *) self, int chunks, int dim=0) -> Tensor(a)[]")] internal sealed class ChunkMapper : SplitBase;

/// <summary>narrow(self, dim, start, length) as Slice (start and length may depend on the batch).</summary>
[Aten("aten::narrow(Tensor(a) self, int dim, int start, int length) -> Tensor(a)")]
internal sealed class NarrowMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int("dim", 0), c.Rank("self"));
        if (c.IsSymbolic("start") || c.IsSymbolic("length"))
        {
            var start = c.IntsTensor("start");
            var end = c.Emit("Add", new[] { start, c.IntsTensor("length") });
            c.EmitOut("Slice", new[] { c.In("self"), start, end, c.ConstI64(axis) });
            return;
        }
        long s = c.Int("start", 0);
        if (s < 0) s += c.StaticDim("self", axis);
        c.EmitOut("Slice", new[] { c.In("self"), c.ConstI64(s), c.ConstI64(s + c.Int("length", 0)), c.ConstI64(axis) });
    }
}

/// <summary>slice(self, dim, start?, end?, step) as Slice.</summary>
[Aten("aten::slice.Tensor(Tensor(a) self, int dim=0, SymInt? start=None, SymInt? end=None, SymInt step=1) -> Tensor(a)")]
internal sealed class SliceMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int("dim", 0), c.Rank("self"));
        long start = c.Int("start", 0), end = c.Int("end", long.MaxValue), step = c.Int("step", 1);
        c.EmitOut("Slice", new[] { c.In("self"), c.ConstI64(start), c.ConstI64(end), c.ConstI64(axis), c.ConstI64(step) });
    }
}

/// <summary>select(self, dim, index): Gather with a scalar index (removes the axis).</summary>
[Aten("aten::select.int(Tensor(a) self, int dim, int index) -> Tensor(a)")]
internal sealed class SelectMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int("dim", 0), c.Rank("self"));
        long index = c.Int("index", 0);
        if (index < 0) index += c.StaticDim("self", axis);
        c.EmitOut("Gather", new[] { c.In("self"), c.Graph.ConstI64(new[] { index }, scalar: true) }, Attr.I("axis", axis));
    }
}

[Aten("aten::index_select(Tensor self, int dim, Tensor index) -> Tensor")]
internal sealed class IndexSelectMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Gather", new[] { c.In("self"), c.In("index") }, Attr.I("axis", c.NormDim(c.Int("dim", 0), c.Rank("self"))));
}

[Aten("aten::gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor")]
internal sealed class GatherMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("GatherElements", new[] { c.In("self"), c.In("index") }, Attr.I("axis", c.NormDim(c.Int("dim", 0), c.Rank("self"))));
}

/// <summary>repeat(self, repeats): Tile (with leading unit dimensions added when repeats has more entries).</summary>
[Aten("aten::repeat(Tensor self, SymInt[] repeats) -> Tensor")]
internal sealed class RepeatMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var reps = c.Ints("repeats");
        string x = c.In("self");
        int extra = reps.Length - c.Rank("self");
        if (extra > 0) x = c.Unsqueeze(x, Enumerable.Range(0, extra).Select(a => (long)a).ToArray());
        c.EmitOut("Tile", new[] { x, c.ConstI64(reps) });
    }
}

/// <summary>roll(self, shifts, dims): two Slices and a Concat per rolled axis.</summary>
[Aten("aten::roll(Tensor self, int[1] shifts, int[1] dims=[]) -> Tensor")]
internal sealed class RollMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var shifts = c.Ints("shifts");
        var dims = c.Ints("dims");
        if (dims.Length == 0) throw c.Unsupported("roll without dims (over the flattened tensor)");
        string x = c.In("self");
        for (int k = 0; k < dims.Length; k++)
        {
            int axis = c.NormDim(dims[k], c.Rank("self"));
            long n = c.StaticDim("self", axis);
            long s = ((shifts[k] % n) + n) % n;
            if (s == 0) continue;
            var tail = c.Emit("Slice", new[] { x, c.ConstI64(n - s), c.ConstI64(n), c.ConstI64(axis) });
            var head = c.Emit("Slice", new[] { x, c.ConstI64(0), c.ConstI64(n - s), c.ConstI64(axis) });
            x = c.Emit("Concat", new[] { tail, head }, Attr.I("axis", axis));
        }
        c.Alias(0, x == c.In("self") ? c.Emit("Identity", new[] { x }) : x);
    }
}

[Aten("aten::flip(Tensor self, int[] dims) -> Tensor")]
internal sealed class FlipMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var dims = c.Ints("dims").Select(d => (long)c.NormDim(d, c.Rank("self"))).ToArray();
        c.EmitOut("Slice", new[] { c.In("self"), c.ConstI64(dims.Select(_ => -1L).ToArray()), c.ConstI64(dims.Select(_ => long.MinValue).ToArray()),
            c.ConstI64(dims), c.ConstI64(dims.Select(_ => -1L).ToArray()) });
    }
}

/// <summary>constant_pad_nd(self, pad, value): torch lists (begin, end) pairs from the last axis backwards.</summary>
[Aten("aten::constant_pad_nd(Tensor self, int[] pad, Scalar value=0) -> Tensor")]
internal sealed class ConstantPadMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var pads = OnnxPads(c.Rank("self"), c.Ints("pad"));
        c.EmitOut("Pad", new[] { c.In("self"), c.ConstI64(pads), c.Scalar(c.Double("value", 0), c.OutDType()) }, Attr.S("mode", "constant"));
    }

    /// <summary>torch's (begin, end) pairs from the last axis backwards → ONNX's all begins then all ends, first axis first.</summary>
    internal static long[] OnnxPads(int rank, long[] pad)
    {
        var pads = new long[2 * rank];
        for (int k = 0; k < pad.Length / 2; k++)
        {
            int axis = rank - 1 - k;
            pads[axis] = pad[2 * k];
            pads[rank + axis] = pad[2 * k + 1];
        }
        return pads;
    }
}

/// <summary>pad(self, pad, mode, value): constant, reflect and replicate (ONNX 'edge').</summary>
[Aten("""aten::pad(Tensor self, int[] pad, str mode="constant", float? value=None) -> Tensor""")]
internal sealed class PadMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var pads = ConstantPadMapper.OnnxPads(c.Rank("self"), c.Ints("pad"));
        string mode = c.String("mode") ?? "constant";
        string onnxMode = mode switch { "constant" => "constant", "reflect" => "reflect", "replicate" => "edge", _ => throw c.Unsupported($"padding mode '{mode}'") };
        var ins = mode == "constant" ? new[] { c.In("self"), c.ConstI64(pads), c.Scalar(c.OptDouble("value") ?? 0, c.OutDType()) } : new[] { c.In("self"), c.ConstI64(pads) };
        c.EmitOut("Pad", ins, Attr.S("mode", onnxMode));
    }
}

[Aten("aten::matmul(Tensor self, Tensor other) -> Tensor")]
internal sealed class MatmulMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("MatMul", new[] { c.In("self"), c.In("other") });
}

[Aten("aten::bmm(Tensor self, Tensor mat2) -> Tensor")]
internal sealed class BmmMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("MatMul", new[] { c.In("self"), c.In("mat2") });
}

[Aten("aten::mm(Tensor self, Tensor mat2) -> Tensor")]
internal sealed class MmMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("MatMul", new[] { c.In("self"), c.In("mat2") });
}

/// <summary>baddbmm(self, b1, b2, beta, alpha) = beta * self + alpha * (b1 @ b2).</summary>
[Aten("aten::baddbmm(Tensor self, Tensor batch1, Tensor batch2, *, Scalar beta=1, Scalar alpha=1) -> Tensor")]
internal sealed class BaddbmmMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        double beta = c.Double("beta", 1), alpha = c.Double("alpha", 1);
        var prod = c.Emit("MatMul", new[] { c.In("batch1"), c.In("batch2") });
        if (alpha != 1) prod = c.Emit("Mul", new[] { prod, c.Scalar(alpha, t) });
        if (beta == 0) { c.Alias(0, prod); return; }
        var self = beta == 1 ? c.In("self") : c.Emit("Mul", new[] { c.In("self"), c.Scalar(beta, t) });
        c.EmitOut("Add", new[] { self, prod });
    }
}

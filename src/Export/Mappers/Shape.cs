using MLNetExt.Export.Graph;
using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>view/reshape(self, size): Reshape; sizes computed from the batch become graph computations.</summary>
internal abstract class ReshapeBase : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reshape", new[] { c.In(0), c.IntsTensor(1) });
}

[Aten("aten::view")] internal sealed class ViewMapper : ReshapeBase;
[Aten("aten::reshape")] internal sealed class ReshapeMapper : ReshapeBase;

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

[Aten("aten::flatten")]
internal sealed class FlattenMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reshape", new[] { c.In(0), ShapeTargets.Of(c) });
}

[Aten("aten::unflatten")]
internal sealed class UnflattenMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reshape", new[] { c.In(0), ShapeTargets.Of(c) });
}

[Aten("aten::squeeze")]
internal sealed class SqueezeMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var shape = c.Shape(0);
        long[] axes = c.Overload == "dim"
            ? new long[] { c.NormDim(c.Int(1, 0), shape.Length) }.Where(a => shape[a] == 1).ToArray()
            : Enumerable.Range(0, shape.Length).Where(a => shape[a] == 1).Select(a => (long)a).ToArray();
        foreach (var a in axes) if (c.ArgValue(0).DynamicDims[a]) throw c.Unsupported("squeezing the batch dimension");
        if (axes.Length == 0) c.Alias(0, c.In(0));
        else c.EmitOut("Squeeze", new[] { c.In(0), c.ConstI64(axes) });
    }
}

[Aten("aten::unsqueeze")]
internal sealed class UnsqueezeMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Unsqueeze", new[] { c.In(0), c.ConstI64(c.NormDim(c.Int(1, 0), c.Rank(0) + 1)) });
}

[Aten("aten::permute")]
internal sealed class PermuteMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank(0);
        c.EmitOut("Transpose", new[] { c.In(0) }, Attr.Ints("perm", c.Ints(1).Select(d => (long)c.NormDim(d, rank))));
    }
}

[Aten("aten::transpose")]
internal sealed class TransposeMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank(0);
        int a = c.NormDim(c.Int(1, 0), rank), b = c.NormDim(c.Int(2, 0), rank);
        var perm = Enumerable.Range(0, rank).Select(d => (long)d).ToArray();
        (perm[a], perm[b]) = (perm[b], perm[a]);
        if (a == b) c.Alias(0, c.In(0));
        else c.EmitOut("Transpose", new[] { c.In(0) }, Attr.Ints("perm", perm));
    }
}

/// <summary>expand(self, size, implicit): -1 keeps a dimension (1 for ONNX Expand's broadcasting).</summary>
[Aten("aten::expand")]
internal sealed class ExpandMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        // -1 means "keep", which Expand's broadcasting does with 1; batch-dependent entries (positive) are computed
        if (c.IsSymbolic(1)) { c.EmitOut("Expand", new[] { c.In(0), c.Emit("Abs", new[] { c.IntsTensor(1) }) }); return; }
        c.EmitOut("Expand", new[] { c.In(0), c.ConstI64(c.Ints(1).Select(s => s == -1 ? 1 : s).ToArray()) });
    }
}

[Aten("aten::expand_as")]
internal sealed class ExpandAsMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Expand", new[] { c.In(0), c.Emit("Shape", new[] { c.In(1) }) });
}

[Aten("aten::cat")]
internal sealed class CatMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        var vals = c.ArgValues(0);
        var names = c.InList(0).Select((n, k) => c.Cast(n, vals[k].DType, t)).ToArray();
        c.EmitOut("Concat", names, Attr.I("axis", c.NormDim(c.Int(1, 0), c.OutShape().Length)));
    }
}

[Aten("aten::stack")]
internal sealed class StackMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int(1, 0), c.OutShape().Length);
        var parts = c.InList(0).Select(n => c.Unsqueeze(n, axis)).ToArray();
        c.EmitOut("Concat", parts, Attr.I("axis", axis));
    }
}

/// <summary>split / split_with_sizes / chunk: one ONNX Split with the traced part sizes along a batch-free axis.</summary>
internal abstract class SplitBase : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int rank = c.Rank(0);
        int axis = c.NormDim(c.Int(2, 0), rank);
        if (c.ArgValue(0).DynamicDims[axis]) throw c.Unsupported("splitting along the batch dimension");
        var sizes = Enumerable.Range(0, c.OutCount).Select(j => c.OutShape(j)[axis]).ToArray();
        var outs = Enumerable.Range(0, c.OutCount).Select(j => c.Out(j)).ToArray();
        if (outs.Length == 1) { c.Graph.EmitTo("Identity", new[] { c.In(0) }, outs[0]); return; }
        c.Graph.EmitMany("Split", new[] { c.In(0), c.ConstI64(sizes) }, outs, Attr.I("axis", axis));
    }
}

[Aten("aten::split")] internal sealed class SplitMapper : SplitBase;
[Aten("aten::split_with_sizes")] internal sealed class SplitWithSizesMapper : SplitBase;
[Aten("aten::chunk")] internal sealed class ChunkMapper : SplitBase;

/// <summary>narrow(self, dim, start, length) as Slice (start and length may depend on the batch).</summary>
[Aten("aten::narrow")]
internal sealed class NarrowMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int(1, 0), c.Rank(0));
        if (c.IsSymbolic(2) || c.IsSymbolic(3))
        {
            var start = c.IntsTensor(2);
            var end = c.Emit("Add", new[] { start, c.IntsTensor(3) });
            c.EmitOut("Slice", new[] { c.In(0), start, end, c.ConstI64(axis) });
            return;
        }
        long s = c.Int(2, 0);
        if (s < 0) s += c.StaticDim(0, axis);
        c.EmitOut("Slice", new[] { c.In(0), c.ConstI64(s), c.ConstI64(s + c.Int(3, 0)), c.ConstI64(axis) });
    }
}

/// <summary>slice(self, dim, start?, end?, step) as Slice.</summary>
[Aten("aten::slice")]
internal sealed class SliceMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int(1, 0), c.Rank(0));
        long start = c.Int(2, 0), end = c.Int(3, long.MaxValue), step = c.Int(4, 1);
        c.EmitOut("Slice", new[] { c.In(0), c.ConstI64(start), c.ConstI64(end), c.ConstI64(axis), c.ConstI64(step) });
    }
}

/// <summary>select(self, dim, index): Gather with a scalar index (removes the axis).</summary>
[Aten("aten::select")]
internal sealed class SelectMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        int axis = c.NormDim(c.Int(1, 0), c.Rank(0));
        long index = c.Int(2, 0);
        if (index < 0) index += c.StaticDim(0, axis);
        c.EmitOut("Gather", new[] { c.In(0), c.Graph.ConstI64(new[] { index }, scalar: true) }, Attr.I("axis", axis));
    }
}

[Aten("aten::index_select")]
internal sealed class IndexSelectMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Gather", new[] { c.In(0), c.In(2) }, Attr.I("axis", c.NormDim(c.Int(1, 0), c.Rank(0))));
}

[Aten("aten::gather")]
internal sealed class GatherMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("GatherElements", new[] { c.In(0), c.In(2) }, Attr.I("axis", c.NormDim(c.Int(1, 0), c.Rank(0))));
}

/// <summary>repeat(self, repeats): Tile (with leading unit dimensions added when repeats has more entries).</summary>
[Aten("aten::repeat")]
internal sealed class RepeatMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var reps = c.Ints(1);
        string x = c.In(0);
        int extra = reps.Length - c.Rank(0);
        if (extra > 0) x = c.Unsqueeze(x, Enumerable.Range(0, extra).Select(a => (long)a).ToArray());
        c.EmitOut("Tile", new[] { x, c.ConstI64(reps) });
    }
}

/// <summary>roll(self, shifts, dims): two Slices and a Concat per rolled axis.</summary>
[Aten("aten::roll")]
internal sealed class RollMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var shifts = c.Ints(1);
        var dims = c.Ints(2);
        if (dims.Length == 0) throw c.Unsupported("roll without dims (over the flattened tensor)");
        string x = c.In(0);
        for (int k = 0; k < dims.Length; k++)
        {
            int axis = c.NormDim(dims[k], c.Rank(0));
            long n = c.StaticDim(0, axis);
            long s = ((shifts[k] % n) + n) % n;
            if (s == 0) continue;
            var tail = c.Emit("Slice", new[] { x, c.ConstI64(n - s), c.ConstI64(n), c.ConstI64(axis) });
            var head = c.Emit("Slice", new[] { x, c.ConstI64(0), c.ConstI64(n - s), c.ConstI64(axis) });
            x = c.Emit("Concat", new[] { tail, head }, Attr.I("axis", axis));
        }
        c.Alias(0, x == c.In(0) ? c.Emit("Identity", new[] { x }) : x);
    }
}

[Aten("aten::flip")]
internal sealed class FlipMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var dims = c.Ints(1).Select(d => (long)c.NormDim(d, c.Rank(0))).ToArray();
        c.EmitOut("Slice", new[] { c.In(0), c.ConstI64(dims.Select(_ => -1L).ToArray()), c.ConstI64(dims.Select(_ => long.MinValue).ToArray()),
            c.ConstI64(dims), c.ConstI64(dims.Select(_ => -1L).ToArray()) });
    }
}

/// <summary>constant_pad_nd(self, pad, value): torch lists (begin, end) pairs from the last axis backwards.</summary>
[Aten("aten::constant_pad_nd")]
internal sealed class ConstantPadMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var pads = OnnxPads(c.Rank(0), c.Ints(1));
        c.EmitOut("Pad", new[] { c.In(0), c.ConstI64(pads), c.Scalar(c.Double(2, 0), c.OutDType()) }, Attr.S("mode", "constant"));
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
[Aten("aten::pad")]
internal sealed class PadMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var pads = ConstantPadMapper.OnnxPads(c.Rank(0), c.Ints(1));
        string mode = c.String(2) ?? "constant";
        string onnxMode = mode switch { "constant" => "constant", "reflect" => "reflect", "replicate" => "edge", _ => throw c.Unsupported($"padding mode '{mode}'") };
        var ins = mode == "constant" ? new[] { c.In(0), c.ConstI64(pads), c.Scalar(c.OptDouble(3) ?? 0, c.OutDType()) } : new[] { c.In(0), c.ConstI64(pads) };
        c.EmitOut("Pad", ins, Attr.S("mode", onnxMode));
    }
}

[Aten("aten::matmul")]
internal sealed class MatmulMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("MatMul", new[] { c.In(0), c.In(1) });
}

[Aten("aten::bmm")]
internal sealed class BmmMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("MatMul", new[] { c.In(0), c.In(1) });
}

[Aten("aten::mm")]
internal sealed class MmMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("MatMul", new[] { c.In(0), c.In(1) });
}

/// <summary>baddbmm(self, b1, b2, beta, alpha) = beta * self + alpha * (b1 @ b2).</summary>
[Aten("aten::baddbmm")]
internal sealed class BaddbmmMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        double beta = c.Double(3, 1), alpha = c.Double(4, 1);
        var prod = c.Emit("MatMul", new[] { c.In(1), c.In(2) });
        if (alpha != 1) prod = c.Emit("Mul", new[] { prod, c.Scalar(alpha, t) });
        if (beta == 0) { c.Alias(0, prod); return; }
        var self = beta == 1 ? c.In(0) : c.Emit("Mul", new[] { c.In(0), c.Scalar(beta, t) });
        c.EmitOut("Add", new[] { self, prod });
    }
}

using MLNetExt.Export.Graph;
using MLNetExt.Torch;

namespace MLNetExt.Export.Mappers;

/// <summary>An elementwise operator with one ONNX counterpart of the same arity.</summary>
internal abstract class Elementwise(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut(onnxOp, new[] { c.InAs(0, t) });
    }
}

[Aten("aten::neg")] internal sealed class NegMapper() : Elementwise("Neg");
[Aten("aten::sqrt")] internal sealed class SqrtMapper() : Elementwise("Sqrt");
[Aten("aten::exp")] internal sealed class ExpMapper() : Elementwise("Exp");
[Aten("aten::log")] internal sealed class LogMapper() : Elementwise("Log");
[Aten("aten::abs")] internal sealed class AbsMapper() : Elementwise("Abs");
[Aten("aten::sin")] internal sealed class SinMapper() : Elementwise("Sin");
[Aten("aten::cos")] internal sealed class CosMapper() : Elementwise("Cos");
[Aten("aten::tanh")] internal sealed class TanhMapper() : Elementwise("Tanh");
[Aten("aten::sigmoid")] internal sealed class SigmoidMapper() : Elementwise("Sigmoid");
[Aten("aten::relu")] internal sealed class ReluMapper() : Elementwise("Relu");
[Aten("aten::erf")] internal sealed class ErfMapper() : Elementwise("Erf");
[Aten("aten::floor")] internal sealed class FloorMapper() : Elementwise("Floor");
[Aten("aten::reciprocal")] internal sealed class ReciprocalMapper() : Elementwise("Reciprocal");

[Aten("aten::rsqrt")]
internal sealed class RsqrtMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reciprocal", new[] { c.Emit("Sqrt", new[] { c.InAs(0, c.OutDType()) }) });
}

/// <summary><c>add/sub(self, other, alpha)</c>: <c>self ± alpha * other</c>, in the promoted dtype.</summary>
internal abstract class AddSubBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string other = c.Operand(1, t);
        double alpha = c.Double(2, 1);
        if (alpha != 1) other = c.Emit("Mul", new[] { other, c.Scalar(alpha, t) });
        c.EmitOut(onnxOp, new[] { c.InAs(0, t), other });
    }
}

[Aten("aten::add")] internal sealed class AddMapper() : AddSubBase("Add");
[Aten("aten::sub")] internal sealed class SubMapper() : AddSubBase("Sub");

/// <summary>A binary arithmetic operator whose second operand is a tensor or a number.</summary>
internal abstract class Binary(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut(onnxOp, new[] { c.InAs(0, t), c.Operand(1, t) });
    }
}

[Aten("aten::mul")] internal sealed class MulMapper() : Binary("Mul");
[Aten("aten::maximum")] internal sealed class MaximumMapper() : Binary("Max");
[Aten("aten::minimum")] internal sealed class MinimumMapper() : Binary("Min");

[Aten("aten::div")]
internal sealed class DivMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        var mode = c.Overload == "Tensor_mode" ? c.String(2) : null;
        if (mode is null) { c.EmitOut("Div", new[] { c.InAs(0, t), c.Operand(1, t) }); return; }
        if (mode != "floor" || !t.IsFloatingPoint()) throw c.Unsupported($"rounding mode '{mode}' on {t} tensors (floor on floating point is supported)");
        c.EmitOut("Floor", new[] { c.Emit("Div", new[] { c.InAs(0, t), c.Operand(1, t) }) });
    }
}

/// <summary><c>rsub(self, other, alpha)</c> = <c>other - alpha * self</c>.</summary>
[Aten("aten::rsub")]
internal sealed class RsubMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string self = c.InAs(0, t);
        double alpha = c.Double(2, 1);
        if (alpha != 1) self = c.Emit("Mul", new[] { self, c.Scalar(alpha, t) });
        c.EmitOut("Sub", new[] { c.Operand(1, t), self });
    }
}

[Aten("aten::pow")]
internal sealed class PowMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        if (!c.IsTensor(1) && c.Double(1, 0) == 2) { var x = c.InAs(0, t); c.EmitOut("Mul", new[] { x, x }); return; }
        c.EmitOut("Pow", new[] { c.InAs(0, t), c.Operand(1, t) });
    }
}

[Aten("aten::square")]
internal sealed class SquareMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var x = c.InAs(0, c.OutDType());
        c.EmitOut("Mul", new[] { x, x });
    }
}

/// <summary><c>clamp(self, min?, max?)</c> through Max/Min (any dtype, either bound optional).</summary>
[Aten("aten::clamp")]
internal sealed class ClampMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string x = c.InAs(0, t);
        if (c.OptDouble(1) is { } lo) x = c.Emit("Max", new[] { x, c.Scalar(lo, t) });
        if (c.OptDouble(2) is { } hi) x = c.Emit("Min", new[] { x, c.Scalar(hi, t) });
        c.Alias(0, x == c.In(0) ? c.Emit("Identity", new[] { x }) : x);
    }
}

[Aten("aten::clamp_min")]
internal sealed class ClampMinMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Max", new[] { c.InAs(0, c.OutDType()), c.Scalar(c.Double(1, 0), c.OutDType()) });
}

[Aten("aten::clamp_max")]
internal sealed class ClampMaxMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Min", new[] { c.InAs(0, c.OutDType()), c.Scalar(c.Double(1, 0), c.OutDType()) });
}

/// <summary><c>addcmul(self, t1, t2, value)</c> = <c>self + value * t1 * t2</c>.</summary>
[Aten("aten::addcmul")]
internal sealed class AddcmulMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        var prod = c.Emit("Mul", new[] { c.InAs(1, t), c.InAs(2, t) });
        double value = c.Double(3, 1);
        if (value != 1) prod = c.Emit("Mul", new[] { prod, c.Scalar(value, t) });
        c.EmitOut("Add", new[] { c.InAs(0, t), prod });
    }
}

/// <summary>Comparisons: the operands are brought to a common type, the result is bool.</summary>
internal abstract class Compare(string onnxOp, bool negate = false) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.DTypeOf(0);
        if (c.IsTensor(1) && c.DTypeOf(1) != t && c.DTypeOf(1).IsFloatingPoint()) t = c.DTypeOf(1);
        var r = c.Emit(onnxOp, new[] { c.InAs(0, t), c.Operand(1, t) });
        if (negate) c.EmitOut("Not", new[] { r }); else c.Alias(0, r);
    }
}

[Aten("aten::eq")] internal sealed class EqMapper() : Compare("Equal");
[Aten("aten::ne")] internal sealed class NeMapper() : Compare("Equal", negate: true);
[Aten("aten::lt")] internal sealed class LtMapper() : Compare("Less");
[Aten("aten::gt")] internal sealed class GtMapper() : Compare("Greater");
[Aten("aten::le")] internal sealed class LeMapper() : Compare("LessOrEqual");
[Aten("aten::ge")] internal sealed class GeMapper() : Compare("GreaterOrEqual");

[Aten("aten::where")]
internal sealed class WhereMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut("Where", new[] { c.Cast(c.In(0), c.DTypeOf(0), DType.Bool), c.Operand(1, t), c.Operand(2, t) });
    }
}

/// <summary><c>masked_fill(self, mask, value)</c> = <c>Where(mask, value, self)</c>.</summary>
[Aten("aten::masked_fill")]
internal sealed class MaskedFillMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut("Where", new[] { c.Cast(c.In(1), c.DTypeOf(1), DType.Bool), c.Operand(2, t), c.InAs(0, t) });
    }
}

/// <summary><c>to(dtype)</c> / <c>to(device, dtype)</c>: a Cast (or nothing when the dtype is unchanged).</summary>
[Aten("aten::to")]
internal sealed class ToMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var from = c.DTypeOf(0);
        var to = c.OutDType();
        if (from == to) c.Alias(0, c.In(0));
        else c.EmitOut("Cast", new[] { c.In(0) }, Attr.I("to", OnnxTypes.Of(to)));
    }
}

/// <summary>Operators that are the identity in an exported (eval-mode) graph.</summary>
internal abstract class IdentityLike : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.Alias(0, c.In(0));
}

[Aten("aten::contiguous")] internal sealed class ContiguousMapper : IdentityLike;
[Aten("aten::clone")] internal sealed class CloneMapper : IdentityLike;
[Aten("aten::detach")] internal sealed class DetachMapper : IdentityLike;

/// <summary><c>dropout(input, p, train)</c>: the identity when <c>train</c> is false (the tracer rejects train=true).</summary>
[Aten("aten::dropout")]
internal sealed class DropoutMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        if (c.Bool(2, false)) throw c.Unsupported("dropout in training mode");
        c.Alias(0, c.In(0));
    }
}

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
        c.EmitOut(onnxOp, new[] { c.InAs("self", t) });
    }
}

[Aten("aten::neg(Tensor self) -> Tensor")] internal sealed class NegMapper() : Elementwise("Neg");
[Aten("aten::sqrt(Tensor self) -> Tensor")] internal sealed class SqrtMapper() : Elementwise("Sqrt");
[Aten("aten::exp(Tensor self) -> Tensor")] internal sealed class ExpMapper() : Elementwise("Exp");
[Aten("aten::log(Tensor self) -> Tensor")] internal sealed class LogMapper() : Elementwise("Log");
[Aten("aten::abs(Tensor self) -> Tensor")] internal sealed class AbsMapper() : Elementwise("Abs");
[Aten("aten::sin(Tensor self) -> Tensor")] internal sealed class SinMapper() : Elementwise("Sin");
[Aten("aten::cos(Tensor self) -> Tensor")] internal sealed class CosMapper() : Elementwise("Cos");
[Aten("aten::tanh(Tensor self) -> Tensor")] internal sealed class TanhMapper() : Elementwise("Tanh");
[Aten("aten::sigmoid(Tensor self) -> Tensor")] internal sealed class SigmoidMapper() : Elementwise("Sigmoid");
[Aten("aten::relu(Tensor self) -> Tensor")] internal sealed class ReluMapper() : Elementwise("Relu");
[Aten("aten::erf(Tensor self) -> Tensor")] internal sealed class ErfMapper() : Elementwise("Erf");
[Aten("aten::floor(Tensor self) -> Tensor")] internal sealed class FloorMapper() : Elementwise("Floor");
[Aten("aten::reciprocal(Tensor self) -> Tensor")] internal sealed class ReciprocalMapper() : Elementwise("Reciprocal");

[Aten("aten::rsqrt(Tensor self) -> Tensor")]
internal sealed class RsqrtMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Reciprocal", new[] { c.Emit("Sqrt", new[] { c.InAs("self", c.OutDType()) }) });
}

/// <summary><c>add/sub(self, other, alpha)</c>: <c>self ± alpha * other</c>, in the promoted dtype.</summary>
internal abstract class AddSubBase(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string other = c.Operand("other", t);
        double alpha = c.Double("alpha", 1);
        if (alpha != 1) other = c.Emit("Mul", new[] { other, c.Scalar(alpha, t) });
        c.EmitOut(onnxOp, new[] { c.InAs("self", t), other });
    }
}

[Aten("aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor")]
[Aten("aten::add.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor")]
internal sealed class AddMapper() : AddSubBase("Add");

[Aten("aten::sub.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor")]
[Aten("aten::sub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor")]
internal sealed class SubMapper() : AddSubBase("Sub");

/// <summary>A binary arithmetic operator whose second operand is a tensor or a number.</summary>
internal abstract class Binary(string onnxOp) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut(onnxOp, new[] { c.InAs("self", t), c.Operand("other", t) });
    }
}

[Aten("aten::mul.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::mul.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class MulMapper() : Binary("Mul");

[Aten("aten::maximum(Tensor self, Tensor other) -> Tensor")] internal sealed class MaximumMapper() : Binary("Max");
[Aten("aten::minimum(Tensor self, Tensor other) -> Tensor")] internal sealed class MinimumMapper() : Binary("Min");

/// <summary><c>div(self, other)</c>, and <c>div.Tensor_mode</c> with rounding mode floor on floating point.</summary>
[Aten("aten::div.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::div.Scalar(Tensor self, Scalar other) -> Tensor")]
[Aten("aten::div.Tensor_mode(Tensor self, Tensor other, *, str? rounding_mode) -> Tensor")]
internal sealed class DivMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        var mode = c.Has("rounding_mode") ? c.String("rounding_mode") : null;
        if (mode is null) { c.EmitOut("Div", new[] { c.InAs("self", t), c.Operand("other", t) }); return; }
        if (mode != "floor" || !t.IsFloatingPoint()) throw c.Unsupported($"rounding mode '{mode}' on {t} tensors (floor on floating point is supported)");
        c.EmitOut("Floor", new[] { c.Emit("Div", new[] { c.InAs("self", t), c.Operand("other", t) }) });
    }
}

/// <summary><c>rsub(self, other, alpha)</c> = <c>other - alpha * self</c>.</summary>
[Aten("aten::rsub.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor")]
internal sealed class RsubMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string self = c.InAs("self", t);
        double alpha = c.Double("alpha", 1);
        if (alpha != 1) self = c.Emit("Mul", new[] { self, c.Scalar(alpha, t) });
        c.EmitOut("Sub", new[] { c.Operand("other", t), self });
    }
}

[Aten("aten::pow.Tensor_Scalar(Tensor self, Scalar exponent) -> Tensor")]
[Aten("aten::pow.Tensor_Tensor(Tensor self, Tensor exponent) -> Tensor")]
internal sealed class PowMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        if (!c.IsTensor("exponent") && c.Double("exponent", 0) == 2) { var x = c.InAs("self", t); c.EmitOut("Mul", new[] { x, x }); return; }
        c.EmitOut("Pow", new[] { c.InAs("self", t), c.Operand("exponent", t) });
    }
}

[Aten("aten::square(Tensor self) -> Tensor")]
internal sealed class SquareMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var x = c.InAs("self", c.OutDType());
        c.EmitOut("Mul", new[] { x, x });
    }
}

/// <summary><c>clamp(self, min?, max?)</c> through Max/Min (any dtype, either bound optional).</summary>
[Aten("aten::clamp(Tensor self, Scalar? min=None, Scalar? max=None) -> Tensor")]
internal sealed class ClampMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        string x = c.InAs("self", t);
        if (c.OptDouble("min") is { } lo) x = c.Emit("Max", new[] { x, c.Scalar(lo, t) });
        if (c.OptDouble("max") is { } hi) x = c.Emit("Min", new[] { x, c.Scalar(hi, t) });
        c.Alias(0, x == c.In("self") ? c.Emit("Identity", new[] { x }) : x);
    }
}

[Aten("aten::clamp_min(Tensor self, Scalar min) -> Tensor")]
internal sealed class ClampMinMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Max", new[] { c.InAs("self", c.OutDType()), c.Scalar(c.Double("min", 0), c.OutDType()) });
}

[Aten("aten::clamp_max(Tensor self, Scalar max) -> Tensor")]
internal sealed class ClampMaxMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.EmitOut("Min", new[] { c.InAs("self", c.OutDType()), c.Scalar(c.Double("max", 0), c.OutDType()) });
}

/// <summary><c>addcmul(self, t1, t2, value)</c> = <c>self + value * t1 * t2</c>.</summary>
[Aten("aten::addcmul(Tensor self, Tensor tensor1, Tensor tensor2, *, Scalar value=1) -> Tensor")]
internal sealed class AddcmulMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        var prod = c.Emit("Mul", new[] { c.InAs("tensor1", t), c.InAs("tensor2", t) });
        double value = c.Double("value", 1);
        if (value != 1) prod = c.Emit("Mul", new[] { prod, c.Scalar(value, t) });
        c.EmitOut("Add", new[] { c.InAs("self", t), prod });
    }
}

/// <summary>Comparisons: the operands are brought to a common type, the result is bool.</summary>
internal abstract class Compare(string onnxOp, bool negate = false) : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.DTypeOf("self");
        if (c.IsTensor("other") && c.DTypeOf("other") != t && c.DTypeOf("other").IsFloatingPoint()) t = c.DTypeOf("other");
        var r = c.Emit(onnxOp, new[] { c.InAs("self", t), c.Operand("other", t) });
        if (negate) c.EmitOut("Not", new[] { r }); else c.Alias(0, r);
    }
}

[Aten("aten::eq.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::eq.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class EqMapper() : Compare("Equal");

[Aten("aten::ne.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::ne.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class NeMapper() : Compare("Equal", negate: true);

[Aten("aten::lt.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::lt.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class LtMapper() : Compare("Less");

[Aten("aten::gt.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::gt.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class GtMapper() : Compare("Greater");

[Aten("aten::le.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::le.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class LeMapper() : Compare("LessOrEqual");

[Aten("aten::ge.Tensor(Tensor self, Tensor other) -> Tensor")]
[Aten("aten::ge.Scalar(Tensor self, Scalar other) -> Tensor")]
internal sealed class GeMapper() : Compare("GreaterOrEqual");

[Aten("aten::where.self(Tensor condition, Tensor self, Tensor other) -> Tensor")]
internal sealed class WhereMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut("Where", new[] { c.Cast(c.In("condition"), c.DTypeOf("condition"), DType.Bool), c.Operand("self", t), c.Operand("other", t) });
    }
}

/// <summary><c>masked_fill(self, mask, value)</c> = <c>Where(mask, value, self)</c>.</summary>
[Aten("aten::masked_fill.Scalar(Tensor self, Tensor mask, Scalar value) -> Tensor")]
[Aten("aten::masked_fill.Tensor(Tensor self, Tensor mask, Tensor value) -> Tensor")]
internal sealed class MaskedFillMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var t = c.OutDType();
        c.EmitOut("Where", new[] { c.Cast(c.In("mask"), c.DTypeOf("mask"), DType.Bool), c.Operand("value", t), c.InAs("self", t) });
    }
}

/// <summary><c>to(dtype)</c> / <c>to(device, dtype)</c>: a Cast (or nothing when the dtype is unchanged).</summary>
[Aten("aten::to.dtype(Tensor(a) self, ScalarType dtype, bool non_blocking=False, bool copy=False, MemoryFormat? memory_format=None) -> Tensor(a)")]
[Aten("aten::to.device(Tensor(a) self, Device device, ScalarType dtype, bool non_blocking=False, bool copy=False, MemoryFormat? memory_format=None) -> Tensor(a)")]
internal sealed class ToMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        var from = c.DTypeOf("self");
        var to = c.OutDType();
        if (from == to) c.Alias(0, c.In("self"));
        else c.EmitOut("Cast", new[] { c.In("self") }, Attr.I("to", OnnxTypes.Of(to)));
    }
}

/// <summary>Operators that are the identity in an exported (eval-mode) graph.</summary>
internal abstract class IdentityLike : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c) => c.Alias(0, c.In("self"));
}

[Aten("aten::contiguous(Tensor(a) self, *, MemoryFormat memory_format=0) -> Tensor(a)")] internal sealed class ContiguousMapper : IdentityLike;
[Aten("aten::clone(Tensor self, *, MemoryFormat? memory_format=None) -> Tensor")] internal sealed class CloneMapper : IdentityLike;
[Aten("aten::detach(Tensor(a) self) -> Tensor(a)")] internal sealed class DetachMapper : IdentityLike;

/// <summary><c>dropout(input, p, train)</c>: the identity when <c>train</c> is false (the tracer rejects train=true).</summary>
[Aten("aten::dropout(Tensor input, float p, bool train) -> Tensor")]
internal sealed class DropoutMapper : OpMapper
{
    [Opset(13)]
    public void V13(MapContext c)
    {
        if (c.Bool("train", false)) throw c.Unsupported("dropout in training mode");
        c.Alias(0, c.In("input"));
    }
}

namespace MLNetExt.Torch;

// Typed wrappers over the dispatcher. Each method names its aten overload; arguments follow the schema.
// Integer scalars are passed as long and real ones as double, so integer tensors keep integer results.
public partial class Tensor
{
    // ---- arithmetic (aten::add.Tensor, sub.Tensor, mul.Tensor, div.Tensor and their .Scalar forms) ----

    /// <summary><c>self + alpha * other</c> with broadcasting (aten::add.Tensor).</summary>
    public Tensor Add(Tensor other, double alpha = 1) => alpha == 1 ? Ops.Add.Call(this, other) : Ops.Add.Call(this, other, alpha);
    /// <summary>aten::add.Scalar.</summary>
    public Tensor Add(double other) => Ops.AddScalar.Call(this, other);
    /// <summary>aten::add.Scalar with an integer scalar.</summary>
    public Tensor Add(long other) => Ops.AddScalar.Call(this, other);
    /// <summary><c>self - alpha * other</c> (aten::sub.Tensor).</summary>
    public Tensor Sub(Tensor other, double alpha = 1) => alpha == 1 ? Ops.Sub.Call(this, other) : Ops.Sub.Call(this, other, alpha);
    /// <summary>aten::sub.Scalar.</summary>
    public Tensor Sub(double other) => Ops.SubScalar.Call(this, other);
    /// <summary>aten::sub.Scalar with an integer scalar.</summary>
    public Tensor Sub(long other) => Ops.SubScalar.Call(this, other);
    /// <summary>aten::mul.Tensor.</summary>
    public Tensor Mul(Tensor other) => Ops.Mul.Call(this, other);
    /// <summary>aten::mul.Scalar.</summary>
    public Tensor Mul(double other) => Ops.MulScalar.Call(this, other);
    /// <summary>aten::mul.Scalar with an integer scalar.</summary>
    public Tensor Mul(long other) => Ops.MulScalar.Call(this, other);
    /// <summary>True division (aten::div.Tensor).</summary>
    public Tensor Div(Tensor other) => Ops.Div.Call(this, other);
    /// <summary>aten::div.Scalar.</summary>
    public Tensor Div(double other) => Ops.DivScalar.Call(this, other);
    /// <summary>Division with rounding "trunc" or "floor" (aten::div.Tensor_mode).</summary>
    public Tensor Div(Tensor other, string roundingMode) => Ops.DivMode.Call(this, other, roundingMode);

    // Operators: the methods above, with broadcasting; each makes a new tensor (in the current scope).
#pragma warning disable CS1591 // operators are documented by the methods they call
    public static Tensor operator +(Tensor a, Tensor b) => a.Add(b);
    public static Tensor operator +(Tensor a, double b) => a.Add(b);
    public static Tensor operator +(Tensor a, long b) => a.Add(b);
    public static Tensor operator +(double a, Tensor b) => b.Add(a);
    public static Tensor operator +(long a, Tensor b) => b.Add(a);
    public static Tensor operator -(Tensor a, Tensor b) => a.Sub(b);
    public static Tensor operator -(Tensor a, double b) => a.Sub(b);
    public static Tensor operator -(Tensor a, long b) => a.Sub(b);
    public static Tensor operator -(double a, Tensor b) => Ops.RsubScalar.Call(b, a);
    public static Tensor operator -(long a, Tensor b) => Ops.RsubScalar.Call(b, a);
    public static Tensor operator *(Tensor a, Tensor b) => a.Mul(b);
    public static Tensor operator *(Tensor a, double b) => a.Mul(b);
    public static Tensor operator *(Tensor a, long b) => a.Mul(b);
    public static Tensor operator *(double a, Tensor b) => b.Mul(a);
    public static Tensor operator *(long a, Tensor b) => b.Mul(a);
    public static Tensor operator /(Tensor a, Tensor b) => a.Div(b);
    public static Tensor operator /(Tensor a, double b) => a.Div(b);
    public static Tensor operator -(Tensor a) => a.Neg();
#pragma warning restore CS1591

    /// <summary>aten::neg.</summary>
    public Tensor Neg() => Ops.Neg.Call(this);
    /// <summary>aten::pow.Tensor_Scalar.</summary>
    public Tensor Pow(double exponent) => Ops.PowScalar.Call(this, exponent);
    /// <summary>aten::pow.Tensor_Tensor.</summary>
    public Tensor Pow(Tensor exponent) => Ops.PowTensor.Call(this, exponent);
    /// <summary>aten::sqrt.</summary>
    public Tensor Sqrt() => Ops.Sqrt.Call(this);
    /// <summary>aten::rsqrt.</summary>
    public Tensor Rsqrt() => Ops.Rsqrt.Call(this);
    /// <summary>aten::exp.</summary>
    public Tensor Exp() => Ops.Exp.Call(this);
    /// <summary>aten::log.</summary>
    public Tensor Log() => Ops.Log.Call(this);
    /// <summary>aten::log2 (exact, unlike <c>Log() / ln 2</c>).</summary>
    public Tensor Log2() => Ops.Log2.Call(this);
    /// <summary>aten::log1p.</summary>
    public Tensor Log1p() => Ops.Log1p.Call(this);
    /// <summary>aten::expm1.</summary>
    public Tensor Expm1() => Ops.Expm1.Call(this);
    /// <summary>aten::abs.</summary>
    public Tensor Abs() => Ops.Abs.Call(this);
    /// <summary>aten::sin.</summary>
    public Tensor Sin() => Ops.Sin.Call(this);
    /// <summary>aten::cos.</summary>
    public Tensor Cos() => Ops.Cos.Call(this);
    /// <summary>aten::tanh.</summary>
    public Tensor Tanh() => Ops.Tanh.Call(this);
    /// <summary>aten::sigmoid.</summary>
    public Tensor Sigmoid() => Ops.Sigmoid.Call(this);
    /// <summary>aten::relu.</summary>
    public Tensor Relu() => Ops.Relu.Call(this);
    /// <summary>aten::erf.</summary>
    public Tensor Erf() => Ops.Erf.Call(this);
    /// <summary>aten::floor.</summary>
    public Tensor Floor() => Ops.Floor.Call(this);
    /// <summary>aten::round (half to even).</summary>
    public Tensor Round() => Ops.Round.Call(this);
    /// <summary>aten::sign.</summary>
    public Tensor Sign() => Ops.Sign.Call(this);
    /// <summary>aten::reciprocal.</summary>
    public Tensor Reciprocal() => Ops.Reciprocal.Call(this);
    /// <summary>aten::square.</summary>
    public Tensor Square() => Ops.Square.Call(this);
    /// <summary>aten::clamp with optional bounds.</summary>
    public Tensor Clamp(double? min = null, double? max = null) => Ops.Clamp.Call(this, Arg.Of(min), Arg.Of(max));
    /// <summary>aten::clamp_min.</summary>
    public Tensor ClampMin(double min) => Ops.ClampMin.Call(this, min);
    /// <summary>aten::clamp_max.</summary>
    public Tensor ClampMax(double max) => Ops.ClampMax.Call(this, max);
    /// <summary>Element-wise maximum (aten::maximum).</summary>
    public Tensor Maximum(Tensor other) => Ops.Maximum.Call(this, other);
    /// <summary>Element-wise minimum (aten::minimum).</summary>
    public Tensor Minimum(Tensor other) => Ops.Minimum.Call(this, other);
    /// <summary><c>self + value * t1 * t2</c> (aten::addcmul).</summary>
    public Tensor Addcmul(Tensor t1, Tensor t2, double value = 1) => Ops.Addcmul.Call(this, t1, t2, value);
    /// <summary><c>self + value * t1 / t2</c> (aten::addcdiv).</summary>
    public Tensor Addcdiv(Tensor t1, Tensor t2, double value = 1) => Ops.Addcdiv.Call(this, t1, t2, value);
    /// <summary><c>self + weight * (end - self)</c> (aten::lerp.Scalar).</summary>
    public Tensor Lerp(Tensor end, double weight) => Ops.Lerp.Call(this, end, weight);

    // ---- comparisons (bool results) ----

    /// <summary>aten::eq.Tensor.</summary>
    public Tensor Eq(Tensor other) => Ops.Eq.Call(this, other);
    /// <summary>aten::eq.Scalar.</summary>
    public Tensor Eq(double other) => Ops.EqScalar.Call(this, other);
    /// <summary>aten::ne.Tensor.</summary>
    public Tensor Ne(Tensor other) => Ops.Ne.Call(this, other);
    /// <summary>aten::ne.Scalar.</summary>
    public Tensor Ne(double other) => Ops.NeScalar.Call(this, other);
    /// <summary>aten::lt.Tensor.</summary>
    public Tensor Lt(Tensor other) => Ops.Lt.Call(this, other);
    /// <summary>aten::lt.Scalar.</summary>
    public Tensor Lt(double other) => Ops.LtScalar.Call(this, other);
    /// <summary>aten::le.Tensor.</summary>
    public Tensor Le(Tensor other) => Ops.Le.Call(this, other);
    /// <summary>aten::le.Scalar.</summary>
    public Tensor Le(double other) => Ops.LeScalar.Call(this, other);
    /// <summary>aten::gt.Tensor.</summary>
    public Tensor Gt(Tensor other) => Ops.Gt.Call(this, other);
    /// <summary>aten::gt.Scalar.</summary>
    public Tensor Gt(double other) => Ops.GtScalar.Call(this, other);
    /// <summary>aten::ge.Tensor.</summary>
    public Tensor Ge(Tensor other) => Ops.Ge.Call(this, other);
    /// <summary>aten::ge.Scalar.</summary>
    public Tensor Ge(double other) => Ops.GeScalar.Call(this, other);
    /// <summary>aten::logical_and.</summary>
    public Tensor LogicalAnd(Tensor other) => Ops.LogicalAnd.Call(this, other);
    /// <summary>aten::logical_or.</summary>
    public Tensor LogicalOr(Tensor other) => Ops.LogicalOr.Call(this, other);
    /// <summary>aten::logical_not.</summary>
    public Tensor LogicalNot() => Ops.LogicalNot.Call(this);
    /// <summary>aten::isnan.</summary>
    public Tensor IsNan() => Ops.IsNan.Call(this);
    /// <summary>aten::isfinite.</summary>
    public Tensor IsFinite() => Ops.IsFinite.Call(this);
    /// <summary><c>condition ? self : other</c> element-wise (aten::where.self).</summary>
    public static Tensor Where(Tensor condition, Tensor x, Tensor y) => Ops.Where.Call(condition, x, y);
    /// <summary>Writes <paramref name="value"/> where <paramref name="mask"/> is true (aten::masked_fill.Scalar).</summary>
    public Tensor MaskedFill(Tensor mask, double value) => Ops.MaskedFill.Call(this, mask, value);
    /// <summary>aten::masked_fill.Tensor (0-dim value tensor).</summary>
    public Tensor MaskedFill(Tensor mask, Tensor value) => Ops.MaskedFillTensor.Call(this, mask, value);

    // ---- reductions ----

    /// <summary>Sum of all elements (aten::sum).</summary>
    public Tensor Sum(DType? dtype = null) => Ops.Sum.Call(this, Arg.Of(dtype));
    /// <summary>Sum over <paramref name="dims"/> (aten::sum.dim_IntList).</summary>
    public Tensor Sum(long[] dims, bool keepDim = false, DType? dtype = null) => Ops.SumDim.Call(this, dims, keepDim, Arg.Of(dtype));
    /// <summary>Sum over one dimension.</summary>
    public Tensor Sum(int dim, bool keepDim = false) => Ops.SumDim.Call(this, new long[] { dim }, keepDim);
    /// <summary>Mean of all elements (aten::mean).</summary>
    public Tensor Mean(DType? dtype = null) => Ops.Mean.Call(this, Arg.Of(dtype));
    /// <summary>Mean over <paramref name="dims"/> (aten::mean.dim).</summary>
    public Tensor Mean(long[] dims, bool keepDim = false, DType? dtype = null) => Ops.MeanDim.Call(this, dims, keepDim, Arg.Of(dtype));
    /// <summary>Mean over one dimension.</summary>
    public Tensor Mean(int dim, bool keepDim = false) => Ops.MeanDim.Call(this, new long[] { dim }, keepDim);
    /// <summary>Maximum of all elements (aten::max).</summary>
    public Tensor Max() => Ops.MaxAll.Call(this);
    /// <summary>Maximum values and their indices along <paramref name="dim"/> (aten::max.dim).</summary>
    public (Tensor Values, Tensor Indices) Max(int dim, bool keepDim = false)
    {
        var r = Ops.MaxDim.CallMany(this, dim, keepDim);
        return (r[0], r[1]);
    }
    /// <summary>Minimum of all elements (aten::min).</summary>
    public Tensor Min() => Ops.MinAll.Call(this);
    /// <summary>Minimum values and indices along <paramref name="dim"/> (aten::min.dim).</summary>
    public (Tensor Values, Tensor Indices) Min(int dim, bool keepDim = false)
    {
        var r = Ops.MinDim.CallMany(this, dim, keepDim);
        return (r[0], r[1]);
    }
    /// <summary>aten::amax.</summary>
    public Tensor Amax(long[] dims, bool keepDim = false) => Ops.Amax.Call(this, dims, keepDim);
    /// <summary>aten::amin.</summary>
    public Tensor Amin(long[] dims, bool keepDim = false) => Ops.Amin.Call(this, dims, keepDim);
    /// <summary>aten::argmax (over all elements when <paramref name="dim"/> is null).</summary>
    public Tensor Argmax(int? dim = null, bool keepDim = false) => Ops.Argmax.Call(this, Arg.Of((long?)dim), keepDim);
    /// <summary>aten::argmin.</summary>
    public Tensor Argmin(int? dim = null, bool keepDim = false) => Ops.Argmin.Call(this, Arg.Of((long?)dim), keepDim);
    /// <summary>Variance with Bessel's correction by default (aten::var.correction).</summary>
    public Tensor Var(long[]? dims = null, long correction = 1, bool keepDim = false) => Ops.Var.Call(this, dims, correction, keepDim);
    /// <summary>Standard deviation (aten::std.correction).</summary>
    public Tensor Std(long[]? dims = null, long correction = 1, bool keepDim = false) => Ops.Std.Call(this, dims, correction, keepDim);
    /// <summary>p-norm over <paramref name="dims"/> (aten::norm.ScalarOpt_dim).</summary>
    public Tensor Norm(double p, long[] dims, bool keepDim = false) => Ops.Norm.Call(this, p, dims, keepDim);
    /// <summary>p-norm of all elements (aten::norm.Scalar).</summary>
    public Tensor Norm(double p = 2) => Ops.NormAll.Call(this, p);
    /// <summary>aten::prod.</summary>
    public Tensor Prod() => Ops.Prod.Call(this);
    /// <summary>aten::cumsum.</summary>
    public Tensor Cumsum(int dim) => Ops.Cumsum.Call(this, dim);
    /// <summary>aten::all.</summary>
    public Tensor All() => Ops.All.Call(this);
    /// <summary>aten::any.</summary>
    public Tensor Any() => Ops.Any.Call(this);
    /// <summary>aten::logsumexp.</summary>
    public Tensor LogSumExp(long[] dims, bool keepDim = false) => Ops.LogSumExp.Call(this, dims, keepDim);
    /// <summary>aten::softmax.int.</summary>
    public Tensor Softmax(int dim, DType? dtype = null) => Ops.Softmax.Call(this, dim, Arg.Of(dtype));
    /// <summary>aten::log_softmax.int.</summary>
    public Tensor LogSoftmax(int dim, DType? dtype = null) => Ops.LogSoftmax.Call(this, dim, Arg.Of(dtype));

    // ---- shape ----

    /// <summary>A view with a new shape (one entry may be -1) (aten::view).</summary>
    public Tensor View(params long[] shape) => Ops.View.Call(this, shape);
    /// <summary>aten::reshape (a view when possible, else a copy).</summary>
    public Tensor Reshape(params long[] shape) => Ops.Reshape.Call(this, shape);
    /// <summary>aten::permute.</summary>
    public Tensor Permute(params long[] dims) => Ops.Permute.Call(this, dims);
    /// <summary>aten::transpose.int.</summary>
    public Tensor Transpose(int dim0, int dim1) => Ops.Transpose.Call(this, dim0, dim1);
    /// <summary>Transpose of the last two dimensions.</summary>
    public Tensor MT => Transpose(-2, -1);
    /// <summary>aten::flatten.using_ints.</summary>
    public Tensor Flatten(int startDim = 0, int endDim = -1) => Ops.Flatten.Call(this, startDim, endDim);
    /// <summary>aten::unflatten.int.</summary>
    public Tensor Unflatten(int dim, params long[] sizes) => Ops.Unflatten.Call(this, dim, sizes);
    /// <summary>Removes every size-1 dimension (aten::squeeze).</summary>
    public Tensor Squeeze() => Ops.Squeeze.Call(this);
    /// <summary>aten::squeeze.dim.</summary>
    public Tensor Squeeze(int dim) => Ops.SqueezeDim.Call(this, dim);
    /// <summary>aten::unsqueeze.</summary>
    public Tensor Unsqueeze(int dim) => Ops.Unsqueeze.Call(this, dim);
    /// <summary>Broadcast view (aten::expand; -1 keeps a size).</summary>
    public Tensor Expand(params long[] sizes) => Ops.Expand.Call(this, sizes);
    /// <summary>aten::expand_as.</summary>
    public Tensor ExpandAs(Tensor other) => Ops.ExpandAs.Call(this, other);
    /// <summary>aten::contiguous.</summary>
    public Tensor Contiguous() => Ops.Contiguous.Call(this);
    /// <summary>The same values stored channels-last (aten::contiguous, memory_format=channels_last; c10's
    /// MemoryFormat 2): a convolution whose input is stored so runs oneDNN's NHWC kernels, forward and backward,
    /// without reordering to and from its blocked layout, and its output stays channels-last.</summary>
    internal Tensor ChannelsLast() => Ops.Contiguous.Call(this, 2L);
    /// <summary>Splits into pieces of <paramref name="splitSize"/> along <paramref name="dim"/> (aten::split.Tensor).</summary>
    public Tensor[] Split(long splitSize, int dim = 0) => Ops.Split.CallMany(this, splitSize, dim);
    /// <summary>Splits into pieces of the given sizes (aten::split_with_sizes).</summary>
    public Tensor[] Split(long[] sizes, int dim = 0) => Ops.SplitWithSizes.CallMany(this, sizes, dim);
    /// <summary>aten::chunk.</summary>
    public Tensor[] Chunk(int chunks, int dim = 0) => Ops.Chunk.CallMany(this, chunks, dim);
    /// <summary>aten::narrow.</summary>
    public Tensor Narrow(int dim, long start, long length) => Ops.Narrow.Call(this, dim, start, length);
    /// <summary>Python's <c>x[..., start:end:step]</c> on one dimension (aten::slice.Tensor); null means open.</summary>
    public Tensor Slice(int dim, long? start, long? end, long step = 1) => Ops.Slice.Call(this, dim, Arg.Of(start), Arg.Of(end), step);
    /// <summary>Python's <c>x[..., index]</c> on one dimension (aten::select.int).</summary>
    public Tensor Select(int dim, long index) => Ops.Select.Call(this, dim, index);
    /// <summary>Advanced indexing <c>x[i0, i1, ...]</c> (aten::index.Tensor); null entries mean ':'.</summary>
    public Tensor Index(params Tensor?[] indices) => Ops.Index.Call(this, Arg.OptionalTensors(indices));
    /// <summary>aten::index_select.</summary>
    public Tensor IndexSelect(int dim, Tensor index) => Ops.IndexSelect.Call(this, dim, index);
    /// <summary>aten::gather.</summary>
    public Tensor Gather(int dim, Tensor index) => Ops.Gather.Call(this, dim, index);
    /// <summary>aten::scatter.src.</summary>
    public Tensor Scatter(int dim, Tensor index, Tensor src) => Ops.Scatter.Call(this, dim, index, src);
    /// <summary>aten::repeat.</summary>
    public Tensor Repeat(params long[] repeats) => Ops.Repeat.Call(this, repeats);
    /// <summary>aten::roll.</summary>
    public Tensor Roll(long[] shifts, long[] dims) => Ops.Roll.Call(this, shifts, dims);
    /// <summary>aten::flip.</summary>
    public Tensor Flip(params long[] dims) => Ops.Flip.Call(this, dims);
    /// <summary>aten::tril.</summary>
    public Tensor Tril(long diagonal = 0) => Ops.Tril.Call(this, diagonal);
    /// <summary>aten::triu.</summary>
    public Tensor Triu(long diagonal = 0) => Ops.Triu.Call(this, diagonal);
    /// <summary>Sliding windows along one dimension (Tensor.unfold; aten::unfold).</summary>
    public Tensor Unfold(int dimension, long size, long step) => Ops.UnfoldDim.Call(this, dimension, size, step);

    /// <summary>A view with explicit sizes, strides and storage offset, in elements (aten::as_strided).</summary>
    public Tensor AsStrided(long[] size, long[] stride, long storageOffset = 0) => Ops.AsStrided.Call(this, size, stride, storageOffset);

    /// <summary>Concatenates along <paramref name="dim"/> (aten::cat).</summary>
    public static Tensor Cat(Tensor[] tensors, int dim = 0) => Ops.Cat.Call(tensors, dim);
    /// <summary>Stacks along a new dimension (aten::stack).</summary>
    public static Tensor Stack(Tensor[] tensors, int dim = 0) => Ops.Stack.Call(tensors, dim);
    /// <summary>Coordinate grids from 1-D tensors (aten::meshgrid.indexing; "ij" is PyTorch's default).</summary>
    public static Tensor[] Meshgrid(Tensor[] tensors, string indexing = "ij") => Ops.Meshgrid.CallMany(tensors, indexing);
    /// <summary>aten::einsum.</summary>
    public static Tensor Einsum(string equation, params Tensor[] tensors) => Ops.Einsum.Call(equation, tensors);

    // ---- copies and conversions ----

    /// <summary>A copy (aten::clone), differentiable.</summary>
    public Tensor Clone() => Ops.Clone.Call(this);
    /// <summary>A view that does not require grad (aten::detach).</summary>
    public Tensor Detach() => Ops.Detach.Call(this);
    /// <summary>Converts the dtype (aten::to.dtype); returns a new handle to this tensor when it already matches.</summary>
    public Tensor To(DType dtype, bool copy = false) => Ops.ToDtype.Call(this, dtype, false, copy);
    /// <summary>Moves to a device, keeping the dtype (aten::to.device).</summary>
    public Tensor To(Device device, bool copy = false) => Ops.ToDevice.Call(this, device, DType, false, copy);
    /// <summary>Moves to a device and converts the dtype (aten::to.device).</summary>
    public Tensor To(Device device, DType dtype, bool copy = false) => Ops.ToDevice.Call(this, device, dtype, false, copy);

    // ---- matrix products ----

    /// <summary>aten::matmul.</summary>
    public Tensor Matmul(Tensor other) => Ops.Matmul.Call(this, other);
    /// <summary>aten::bmm.</summary>
    public Tensor Bmm(Tensor other) => Ops.Bmm.Call(this, other);
    /// <summary>aten::mm.</summary>
    public Tensor Mm(Tensor other) => Ops.Mm.Call(this, other);

    // ---- in place (return this) ----

    /// <summary>aten::add_.Tensor.</summary>
    public Tensor Add_(Tensor other, double alpha = 1) { Ops.Add_.CallVoid(this, other, alpha); return this; }
    /// <summary>aten::add_.Scalar.</summary>
    public Tensor Add_(double other) { Ops.AddScalar_.CallVoid(this, other); return this; }
    /// <summary>aten::add_.Scalar with an integer scalar (keeps integer tensors integer).</summary>
    public Tensor Add_(long other) { Ops.AddScalar_.CallVoid(this, other); return this; }
    /// <summary>aten::sub_.Tensor.</summary>
    public Tensor Sub_(Tensor other, double alpha = 1) { Ops.Sub_.CallVoid(this, other, alpha); return this; }
    /// <summary>aten::mul_.Tensor.</summary>
    public Tensor Mul_(Tensor other) { Ops.Mul_.CallVoid(this, other); return this; }
    /// <summary>aten::mul_.Scalar.</summary>
    public Tensor Mul_(double other) { Ops.MulScalar_.CallVoid(this, other); return this; }
    /// <summary>aten::mul_.Scalar with an integer scalar.</summary>
    public Tensor Mul_(long other) { Ops.MulScalar_.CallVoid(this, other); return this; }
    /// <summary>aten::div_.Tensor.</summary>
    public Tensor Div_(Tensor other) { Ops.Div_.CallVoid(this, other); return this; }
    /// <summary>aten::div_.Scalar.</summary>
    public Tensor Div_(double other) { Ops.DivScalar_.CallVoid(this, other); return this; }
    /// <summary>aten::zero_.</summary>
    public Tensor Zero_() { Ops.Zero_.CallVoid(this); return this; }
    /// <summary>aten::fill_.Scalar.</summary>
    public Tensor Fill_(double value) { Ops.Fill_.CallVoid(this, value); return this; }
    /// <summary>aten::fill_.Scalar with an integer value.</summary>
    public Tensor Fill_(long value) { Ops.Fill_.CallVoid(this, value); return this; }
    /// <summary>Copies <paramref name="source"/> into this tensor with broadcasting and dtype conversion (aten::copy_).</summary>
    public Tensor Copy_(Tensor source) { Ops.Copy_.CallVoid(this, source); return this; }
    /// <summary>aten::addcmul_.</summary>
    public Tensor Addcmul_(Tensor t1, Tensor t2, double value = 1) { Ops.Addcmul_.CallVoid(this, t1, t2, value); return this; }
    /// <summary>aten::addcdiv_.</summary>
    public Tensor Addcdiv_(Tensor t1, Tensor t2, double value = 1) { Ops.Addcdiv_.CallVoid(this, t1, t2, value); return this; }
    /// <summary>aten::clamp_.</summary>
    public Tensor Clamp_(double? min = null, double? max = null) { Ops.Clamp_.CallVoid(this, Arg.Of(min), Arg.Of(max)); return this; }
    /// <summary>aten::lerp_.Scalar.</summary>
    public Tensor Lerp_(Tensor end, double weight) { Ops.Lerp_.CallVoid(this, end, weight); return this; }
    /// <summary>aten::erfinv_.</summary>
    public Tensor Erfinv_() { Ops.Erfinv_.CallVoid(this); return this; }
    /// <summary>aten::sqrt_.</summary>
    public Tensor Sqrt_() { Ops.Sqrt_.CallVoid(this); return this; }
    /// <summary>aten::masked_fill_.Scalar.</summary>
    public Tensor MaskedFill_(Tensor mask, double value) { Ops.MaskedFill_.CallVoid(this, mask, value); return this; }
    /// <summary>Fills with U(from, to) samples (aten::uniform_).</summary>
    public Tensor Uniform_(double from = 0, double to = 1) { Ops.Uniform_.CallVoid(this, from, to); return this; }
    /// <summary>Fills with N(mean, std) samples (aten::normal_).</summary>
    public Tensor Normal_(double mean = 0, double std = 1) { Ops.Normal_.CallVoid(this, mean, std); return this; }
    /// <summary>Fills with Bernoulli(p) samples (aten::bernoulli_.float).</summary>
    public Tensor Bernoulli_(double p) { Ops.Bernoulli_.CallVoid(this, p); return this; }

    // ---- factories ----

    static Arg Dev(Device? d) => Arg.Of(d);

    /// <summary>aten::zeros.</summary>
    public static Tensor Zeros(long[] shape, DType dtype = DType.Float32, Device? device = null) => Ops.Zeros.Call(shape, dtype, Arg.None, Dev(device));
    /// <summary>aten::ones.</summary>
    public static Tensor Ones(long[] shape, DType dtype = DType.Float32, Device? device = null) => Ops.Ones.Call(shape, dtype, Arg.None, Dev(device));
    /// <summary>Uninitialised memory (aten::empty.memory_format).</summary>
    public static Tensor Empty(long[] shape, DType dtype = DType.Float32, Device? device = null) => Ops.Empty.Call(shape, dtype, Arg.None, Dev(device));
    /// <summary>aten::full.</summary>
    public static Tensor Full(long[] shape, double value, DType dtype = DType.Float32, Device? device = null) => Ops.Full.Call(shape, value, dtype, Arg.None, Dev(device));
    /// <summary>U[0, 1) samples (aten::rand).</summary>
    public static Tensor Rand(long[] shape, DType dtype = DType.Float32, Device? device = null) => Ops.Rand.Call(shape, dtype, Arg.None, Dev(device));
    /// <summary>N(0, 1) samples (aten::randn).</summary>
    public static Tensor Randn(long[] shape, DType dtype = DType.Float32, Device? device = null) => Ops.Randn.Call(shape, dtype, Arg.None, Dev(device));
    /// <summary>Integers in [low, high) (aten::randint.low).</summary>
    public static Tensor RandInt(long low, long high, long[] shape, DType dtype = DType.Int64, Device? device = null) => Ops.RandIntLow.Call(low, high, shape, dtype, Arg.None, Dev(device));
    /// <summary>A random permutation of 0..n-1 (aten::randperm).</summary>
    public static Tensor Randperm(long n, Device? device = null) => Ops.Randperm.Call(n, DType.Int64, Arg.None, Dev(device));
    /// <summary>[start, end) with step (aten::arange.start_step); float64 arguments give float32 unless dtype says otherwise.</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType? dtype = null, Device? device = null) => Ops.Arange.Call(start, end, step, Arg.Of(dtype), Arg.None, Dev(device));
    /// <summary>Integer range [0, end) as int64.</summary>
    public static Tensor Arange(long end, Device? device = null) => Ops.Arange.Call(0L, end, 1L, DType.Int64, Arg.None, Dev(device));
    /// <summary>aten::linspace.</summary>
    public static Tensor Linspace(double start, double end, long steps, DType dtype = DType.Float32, Device? device = null) => Ops.Linspace.Call(start, end, steps, dtype, Arg.None, Dev(device));
    /// <summary>A 0-dim tensor holding <paramref name="value"/>.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32, Device? device = null) => Full(Array.Empty<long>(), value, dtype, device);
    /// <summary>aten::zeros_like.</summary>
    public Tensor ZerosLike() => Ops.ZerosLike.Call(this);
    /// <summary>aten::ones_like.</summary>
    public Tensor OnesLike() => Ops.OnesLike.Call(this);
    /// <summary>aten::empty_like.</summary>
    public Tensor EmptyLike() => Ops.EmptyLike.Call(this);
    /// <summary>aten::full_like.</summary>
    public Tensor FullLike(double value) => Ops.FullLike.Call(this, value);
    /// <summary>aten::rand_like.</summary>
    public Tensor RandLike() => Ops.RandLike.Call(this);
    /// <summary>aten::randn_like.</summary>
    public Tensor RandnLike() => Ops.RandnLike.Call(this);
    /// <summary>A 1-D float32 tensor from values.</summary>
    public static Tensor From(params float[] values) => FromArray<float>(values, new long[] { values.Length });
    /// <summary>A float32 tensor with the given shape.</summary>
    public static Tensor From(float[] values, params long[] shape) => FromArray<float>(values, shape);
    /// <summary>A float64 tensor with the given shape.</summary>
    public static Tensor From(double[] values, params long[] shape) => FromArray<double>(values, shape);
    /// <summary>An int64 tensor with the given shape.</summary>
    public static Tensor From(long[] values, params long[] shape) => FromArray<long>(values, shape);
}

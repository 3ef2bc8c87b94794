namespace MLNetExt.Torch;

/// <summary>Every operator the engine calls, resolved lazily on first use: aten's and the bridge's own
/// (<c>mlnetext::</c>, src/Native/ops.cpp). One row per overload; the typed wrappers in <c>Tensor.*.cs</c> and
/// <c>Nn/F.cs</c> quote the schema they call.</summary>
internal static class Ops
{
    static Op A(string name, string overload = "") => new("aten::" + name, overload);

    // pointwise arithmetic
    internal static readonly Op Add = A("add", "Tensor"), AddScalar = A("add", "Scalar");
    internal static readonly Op Sub = A("sub", "Tensor"), SubScalar = A("sub", "Scalar");
    internal static readonly Op Mul = A("mul", "Tensor"), MulScalar = A("mul", "Scalar");
    internal static readonly Op Div = A("div", "Tensor"), DivScalar = A("div", "Scalar"), DivMode = A("div", "Tensor_mode");
    internal static readonly Op RsubScalar = A("rsub", "Scalar");
    internal static readonly Op Neg = A("neg"), PowScalar = A("pow", "Tensor_Scalar"), PowTensor = A("pow", "Tensor_Tensor");
    internal static readonly Op Sqrt = A("sqrt"), Rsqrt = A("rsqrt"), Exp = A("exp"), Log = A("log"), Log2 = A("log2"), Abs = A("abs");
    internal static readonly Op Sin = A("sin"), Cos = A("cos"), Tanh = A("tanh"), Sigmoid = A("sigmoid"), Relu = A("relu");
    internal static readonly Op Erf = A("erf"), Floor = A("floor"), Round = A("round"), Sign = A("sign");
    internal static readonly Op Reciprocal = A("reciprocal"), Square = A("square"), Log1p = A("log1p"), Expm1 = A("expm1");
    internal static readonly Op Clamp = A("clamp"), ClampMin = A("clamp_min"), ClampMax = A("clamp_max");
    internal static readonly Op Maximum = A("maximum"), Minimum = A("minimum");
    internal static readonly Op Addcmul = A("addcmul"), Addcdiv = A("addcdiv"), Lerp = A("lerp", "Scalar");

    // comparisons and selection
    internal static readonly Op Eq = A("eq", "Tensor"), EqScalar = A("eq", "Scalar"), Ne = A("ne", "Tensor"), NeScalar = A("ne", "Scalar");
    internal static readonly Op Lt = A("lt", "Tensor"), LtScalar = A("lt", "Scalar"), Le = A("le", "Tensor"), LeScalar = A("le", "Scalar");
    internal static readonly Op Gt = A("gt", "Tensor"), GtScalar = A("gt", "Scalar"), Ge = A("ge", "Tensor"), GeScalar = A("ge", "Scalar");
    internal static readonly Op LogicalAnd = A("logical_and"), LogicalOr = A("logical_or"), LogicalNot = A("logical_not");
    internal static readonly Op Where = A("where", "self"), MaskedFill = A("masked_fill", "Scalar"), MaskedFillTensor = A("masked_fill", "Tensor");
    internal static readonly Op IsNan = A("isnan"), IsFinite = A("isfinite");

    // reductions
    internal static readonly Op Sum = A("sum"), SumDim = A("sum", "dim_IntList"), Mean = A("mean"), MeanDim = A("mean", "dim");
    internal static readonly Op MaxAll = A("max"), MaxDim = A("max", "dim"), MinAll = A("min"), MinDim = A("min", "dim");
    internal static readonly Op Amax = A("amax"), Amin = A("amin"), Argmax = A("argmax"), Argmin = A("argmin");
    internal static readonly Op Var = A("var", "correction"), Std = A("std", "correction");
    internal static readonly Op Norm = A("norm", "ScalarOpt_dim"), NormAll = A("norm", "Scalar");
    internal static readonly Op Prod = A("prod"), Cumsum = A("cumsum"), All = A("all"), Any = A("any"), LogSumExp = A("logsumexp");

    // shape and indexing
    internal static readonly Op View = A("view"), Reshape = A("reshape"), Permute = A("permute"), Transpose = A("transpose", "int");
    internal static readonly Op Flatten = A("flatten", "using_ints"), Unflatten = A("unflatten", "int");
    internal static readonly Op Squeeze = A("squeeze"), SqueezeDim = A("squeeze", "dim"), Unsqueeze = A("unsqueeze");
    internal static readonly Op Expand = A("expand"), ExpandAs = A("expand_as"), Contiguous = A("contiguous");
    internal static readonly Op Cat = A("cat"), Stack = A("stack"), Split = A("split", "Tensor"), SplitWithSizes = A("split_with_sizes");
    internal static readonly Op Chunk = A("chunk"), Narrow = A("narrow"), Slice = A("slice", "Tensor"), Select = A("select", "int");
    internal static readonly Op Index = A("index", "Tensor"), IndexSelect = A("index_select"), Gather = A("gather");
    internal static readonly Op Scatter = A("scatter", "src"), Repeat = A("repeat"), Roll = A("roll"), Flip = A("flip");
    internal static readonly Op Clone = A("clone"), Detach = A("detach"), ToDtype = A("to", "dtype"), ToDevice = A("to", "device");
    internal static readonly Op Tril = A("tril"), Triu = A("triu"), UnfoldDim = A("unfold"), Im2Col = A("im2col");
    internal static readonly Op ConstantPad = A("constant_pad_nd"), Pad = A("pad"), OneHot = A("one_hot");
    internal static readonly Op AsStrided = A("as_strided"), Meshgrid = A("meshgrid", "indexing");

    // in place
    internal static readonly Op Add_ = A("add_", "Tensor"), AddScalar_ = A("add_", "Scalar"), Sub_ = A("sub_", "Tensor");
    internal static readonly Op Mul_ = A("mul_", "Tensor"), MulScalar_ = A("mul_", "Scalar");
    internal static readonly Op Div_ = A("div_", "Tensor"), DivScalar_ = A("div_", "Scalar");
    internal static readonly Op Zero_ = A("zero_"), Fill_ = A("fill_", "Scalar"), Copy_ = A("copy_");
    internal static readonly Op Addcmul_ = A("addcmul_"), Addcdiv_ = A("addcdiv_"), Clamp_ = A("clamp_"), Lerp_ = A("lerp_", "Scalar");
    internal static readonly Op Uniform_ = A("uniform_"), Normal_ = A("normal_"), Bernoulli_ = A("bernoulli_", "float");
    internal static readonly Op Erfinv_ = A("erfinv_");
    internal static readonly Op Sqrt_ = A("sqrt_"), MaskedFill_ = A("masked_fill_", "Scalar");

    // linear algebra and nn
    internal static readonly Op Matmul = A("matmul"), Bmm = A("bmm"), Mm = A("mm"), Baddbmm = A("baddbmm"), Einsum = A("einsum");
    internal static readonly Op Conv2d = A("conv2d"), Linear = A("linear");
    internal static readonly Op LayerNorm = A("layer_norm"), GroupNorm = A("group_norm"), BatchNorm = A("batch_norm");
    internal static readonly Op Gelu = A("gelu"), Silu = A("silu"), Softplus = A("softplus"), Hardswish = A("hardswish"), LeakyRelu = A("leaky_relu");
    internal static readonly Op Softmax = A("softmax", "int"), LogSoftmax = A("log_softmax", "int");
    internal static readonly Op Dropout = A("dropout"), Bernoulli = A("bernoulli"), BernoulliP = A("bernoulli", "p");
    internal static readonly Op AvgPool2d = A("avg_pool2d"), MaxPool2d = A("max_pool2d");
    internal static readonly Op AdaptiveAvgPool2d = A("adaptive_avg_pool2d"), AdaptiveMaxPool2d = A("adaptive_max_pool2d");
    internal static readonly Op UpsampleBilinear = A("upsample_bilinear2d", "vec"), UpsampleBicubic = A("upsample_bicubic2d", "vec");
    internal static readonly Op UpsampleNearest = A("upsample_nearest2d", "vec");
    internal static readonly Op CrossEntropy = A("cross_entropy_loss"), NllLoss = A("nll_loss"), MseLoss = A("mse_loss");

    // the bridge's own operators (compositions of aten's, each recorded and exported as one node)
    internal static readonly Op DepthwiseConv2dPerSample = new("mlnetext::depthwise_conv2d_per_sample");

    // factories
    internal static readonly Op Zeros = A("zeros"), Ones = A("ones"), Empty = A("empty", "memory_format"), Full = A("full");
    internal static readonly Op ZerosLike = A("zeros_like"), OnesLike = A("ones_like"), EmptyLike = A("empty_like"), FullLike = A("full_like");
    internal static readonly Op Rand = A("rand"), Randn = A("randn"), RandIntLow = A("randint", "low"), Randperm = A("randperm");
    internal static readonly Op RandLike = A("rand_like"), RandnLike = A("randn_like");
    internal static readonly Op Arange = A("arange", "start_step"), Linspace = A("linspace");
    internal static readonly Op Item = A("item");

    // optimizers
    internal static readonly Op ForeachAddList_ = A("_foreach_add_", "List"), ForeachMulScalar_ = A("_foreach_mul_", "Scalar");
}

namespace MLNetExt.Export.Mappers;

/// <summary>Why a row of the engine's op table has no ONNX mapper.</summary>
internal enum NotExportedReason
{
    /// <summary>Losses and optimizer steps: they run after the forward pass; an exported graph ends at the logits.</summary>
    Training,

    /// <summary>In-place updates (weight initialisation, optimizer and training steps). Forward passes use the
    /// out-of-place forms; the tracer rejects an in-place write to a weight or to the input, and one on a value computed
    /// from the input fails for want of a mapper.</summary>
    InPlace,

    /// <summary>Random operators: the tracer rejects them (<c>Tracer.RandomOps</c>); export traces in eval mode, where
    /// dropout and drop-path do not run.</summary>
    Random,

    /// <summary>Returns a value to C#, not a tensor (<c>Op.CallValue</c>): never a graph node; on a value computed from
    /// the input the tracer rejects it as a host read.</summary>
    HostValue,

    /// <summary>Builds a tensor from sizes and scalars only: the result is a constant, folded into an initializer. A size
    /// computed from the batch would need a mapper; none is written, so such an export fails naming the operator.</summary>
    Factory,

    /// <summary>Could appear in a forward pass, but no backbone applies it to a value computed from the input (on
    /// constants it is folded into an initializer). Exporting a model that does fails naming the operator; to export
    /// it, write a mapper with its schema and a parity case and take it off this list.</summary>
    Unmapped,
}

/// <summary>
/// The rows of the engine's op table (<c>src/Torch/Ops.cs</c>) that are never exported as ONNX nodes, each with why.
/// Keys are overloads as <c>Op.ToString()</c> writes them. The schema test
/// (<c>tests/MLNetExt.Tests/Export/MapperSchemaTests.cs</c>) requires every row of the table to have a mapper that
/// names its schema or to be listed here, never both, and every entry here to be a row of the table.
/// </summary>
internal static class NeverExported
{
    public static readonly IReadOnlyDictionary<string, NotExportedReason> Operators = new Dictionary<string, NotExportedReason>
    {
        // ---- training: losses and optimizer steps ----
        ["aten::cross_entropy_loss"] = NotExportedReason.Training,
        ["aten::nll_loss"] = NotExportedReason.Training,
        ["aten::mse_loss"] = NotExportedReason.Training,
        ["aten::_foreach_add_.List"] = NotExportedReason.Training,
        ["aten::_foreach_mul_.Scalar"] = NotExportedReason.Training,

        // ---- in place: initialisation, optimizer and training updates ----
        ["aten::add_.Tensor"] = NotExportedReason.InPlace,
        ["aten::add_.Scalar"] = NotExportedReason.InPlace,
        ["aten::sub_.Tensor"] = NotExportedReason.InPlace,
        ["aten::mul_.Tensor"] = NotExportedReason.InPlace,
        ["aten::mul_.Scalar"] = NotExportedReason.InPlace,
        ["aten::div_.Tensor"] = NotExportedReason.InPlace,
        ["aten::div_.Scalar"] = NotExportedReason.InPlace,
        ["aten::zero_"] = NotExportedReason.InPlace,
        ["aten::fill_.Scalar"] = NotExportedReason.InPlace,
        ["aten::copy_"] = NotExportedReason.InPlace,
        ["aten::addcmul_"] = NotExportedReason.InPlace,
        ["aten::addcdiv_"] = NotExportedReason.InPlace,
        ["aten::clamp_"] = NotExportedReason.InPlace,
        ["aten::lerp_.Scalar"] = NotExportedReason.InPlace,
        ["aten::erfinv_"] = NotExportedReason.InPlace,
        ["aten::sqrt_"] = NotExportedReason.InPlace,
        ["aten::masked_fill_.Scalar"] = NotExportedReason.InPlace,

        // ---- random: rejected by the tracer ----
        ["aten::uniform_"] = NotExportedReason.Random,
        ["aten::normal_"] = NotExportedReason.Random,
        ["aten::bernoulli_.float"] = NotExportedReason.Random,
        ["aten::bernoulli"] = NotExportedReason.Random,
        ["aten::bernoulli.p"] = NotExportedReason.Random,
        ["aten::rand"] = NotExportedReason.Random,
        ["aten::randn"] = NotExportedReason.Random,
        ["aten::randint.low"] = NotExportedReason.Random,
        ["aten::randperm"] = NotExportedReason.Random,
        ["aten::rand_like"] = NotExportedReason.Random,
        ["aten::randn_like"] = NotExportedReason.Random,

        // ---- host values ----
        ["aten::item"] = NotExportedReason.HostValue,

        // ---- factories: constants, folded ----
        ["aten::zeros"] = NotExportedReason.Factory,
        ["aten::ones"] = NotExportedReason.Factory,
        ["aten::empty.memory_format"] = NotExportedReason.Factory,
        ["aten::full"] = NotExportedReason.Factory,
        ["aten::arange.start_step"] = NotExportedReason.Factory,
        ["aten::linspace"] = NotExportedReason.Factory,

        // ---- no mapper: not applied to traced values by any backbone ----
        // pointwise
        ["aten::log2"] = NotExportedReason.Unmapped,
        ["aten::round"] = NotExportedReason.Unmapped,
        ["aten::sign"] = NotExportedReason.Unmapped,
        ["aten::log1p"] = NotExportedReason.Unmapped,
        ["aten::expm1"] = NotExportedReason.Unmapped,
        ["aten::addcdiv"] = NotExportedReason.Unmapped,
        ["aten::lerp.Scalar"] = NotExportedReason.Unmapped,
        ["aten::logical_and"] = NotExportedReason.Unmapped,
        ["aten::logical_or"] = NotExportedReason.Unmapped,
        ["aten::logical_not"] = NotExportedReason.Unmapped,
        ["aten::isnan"] = NotExportedReason.Unmapped,
        ["aten::isfinite"] = NotExportedReason.Unmapped,
        // reductions
        ["aten::max"] = NotExportedReason.Unmapped,
        ["aten::max.dim"] = NotExportedReason.Unmapped,
        ["aten::min"] = NotExportedReason.Unmapped,
        ["aten::min.dim"] = NotExportedReason.Unmapped,
        ["aten::argmax"] = NotExportedReason.Unmapped,
        ["aten::argmin"] = NotExportedReason.Unmapped,
        ["aten::prod"] = NotExportedReason.Unmapped,
        ["aten::cumsum"] = NotExportedReason.Unmapped,
        ["aten::all"] = NotExportedReason.Unmapped,
        ["aten::any"] = NotExportedReason.Unmapped,
        ["aten::logsumexp"] = NotExportedReason.Unmapped,
        // indexing and shape
        ["aten::index.Tensor"] = NotExportedReason.Unmapped,
        ["aten::scatter.src"] = NotExportedReason.Unmapped,
        ["aten::tril"] = NotExportedReason.Unmapped,
        ["aten::triu"] = NotExportedReason.Unmapped,
        ["aten::unfold"] = NotExportedReason.Unmapped,
        ["aten::one_hot"] = NotExportedReason.Unmapped,
        ["aten::as_strided"] = NotExportedReason.Unmapped,
        ["aten::meshgrid.indexing"] = NotExportedReason.Unmapped,
        // linear algebra and nn
        ["aten::einsum"] = NotExportedReason.Unmapped,
        ["aten::adaptive_max_pool2d"] = NotExportedReason.Unmapped,
        // factories shaped like a tensor argument (that may be computed from the input)
        ["aten::zeros_like"] = NotExportedReason.Unmapped,
        ["aten::ones_like"] = NotExportedReason.Unmapped,
        ["aten::empty_like"] = NotExportedReason.Unmapped,
        ["aten::full_like"] = NotExportedReason.Unmapped,
    };
}

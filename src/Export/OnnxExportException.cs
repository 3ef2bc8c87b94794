namespace MLNetExt.Export;

/// <summary>Export failed: an operator without a mapper, an operator that needs a higher opset, a host read
/// during tracing, or a forward pass that cannot be expressed with a symbolic batch. The message names the
/// operator (with overload), the target opset and, where the trace can tell, the module path.</summary>
public sealed class OnnxExportException : Exception
{
    /// <summary>A failure not tied to one operator.</summary>
    public OnnxExportException(string message) : base(message) { }

    /// <summary>A failure at operator <paramref name="op"/> for <paramref name="opset"/>, inside <paramref name="modulePath"/> when known.</summary>
    public OnnxExportException(string message, string op, int opset, string? modulePath) : base(message)
    {
        Op = op;
        Opset = opset;
        ModulePath = modulePath;
    }

    /// <summary>The aten operator (<c>aten::name.overload</c>) involved, when there is one.</summary>
    public string? Op { get; }

    /// <summary>The target opset of the export.</summary>
    public int Opset { get; }

    /// <summary>The module the call was made in (the module of the parameter used last), when known.</summary>
    public string? ModulePath { get; }

    /// <summary>For opset errors: the lowest opset at which the operator can be exported.</summary>
    public int? LowestWorkingOpset { get; init; }
}

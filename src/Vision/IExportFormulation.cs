namespace MLNetExt.Vision;

/// <summary>
/// A backbone with layers that have two exact formulations: a faster one whose traced graph would bake the batch size
/// in, and a batch-agnostic one (TransXNet's IDConv: batch-folded grouped conv vs im2col + batched matmul). The ONNX
/// exporter switches <see cref="ExportFriendly"/> on while it traces and restores it afterwards; results are the same
/// either way. Only the families that need it implement this; it is not part of the <see cref="Backbone"/> contract.
/// </summary>
internal interface IExportFormulation
{
    /// <summary>Use the batch-agnostic formulation.</summary>
    bool ExportFriendly { get; set; }
}

using Google.Protobuf;
using MLNetExt.Export.Graph;
using MLNetExt.Export.Onnx;
using DataType = MLNetExt.Export.Onnx.TensorProto.Types.DataType;

namespace MLNetExt.Tests.Export;

/// <summary>
/// Runs an FP16 export's arithmetic on a CPU that has no float16 kernels: every operator computes in float32, and
/// every value the FP16 graph holds in float16 is rounded through float16 as it is stored (Cast to float16 and back),
/// so values past ±65504 become infinite exactly where a GPU's float16 tensors would. (Accumulation inside a kernel stays
/// float32, as in ONNX Runtime's CUDA matrix products and convolutions.) Run with graph optimisations disabled, so
/// ONNX Runtime keeps the round trips.
/// </summary>
internal static class Float16Emulation
{
    public static byte[] Emulate(byte[] fp16Model)
    {
        var model = ModelProto.Parser.ParseFrom(fp16Model);
        var g = model.Graph;
        var types = Float16.InferTypes(g);
        foreach (var t in g.Initializer.Where(t => t.DataType == (int)DataType.Float16)) ToFloat(t);
        foreach (var v in g.ValueInfo.Where(v => v.Type.TensorType.ElemType == (int)DataType.Float16)) v.Type.TensorType.ElemType = (int)DataType.Float;
        var nodes = new List<NodeProto>();
        foreach (var n in g.Node)
        {
            if (n.OpType == "Constant" && n.Attribute[0].T.DataType == (int)DataType.Float16)
            {
                ToFloat(n.Attribute[0].T);   // float16 values, held in float32
                nodes.Add(n);
                continue;
            }
            foreach (var sub in GraphEdits.Subgraphs(n)) Float16.Retype(sub, DataType.Float16, DataType.Float);  // rounded at its outputs
            var to = n.Attribute.FirstOrDefault(a => a.Name == "to");
            if (n.OpType == "Cast" && to is not null && to.I == (int)DataType.Float16) to.I = (int)DataType.Float;
            var rounded = new List<NodeProto>();
            for (int k = 0; k < n.Output.Count; k++)
            {
                if (types.GetValueOrDefault(n.Output[k]) != (int)DataType.Float16) continue;
                string name = n.Output[k], raw = name + "_emulated_f32", half = name + "_emulated_f16";
                n.Output[k] = raw;
                rounded.Add(GraphEdits.Cast(raw, half, DataType.Float16));
                var back = GraphEdits.Cast(half, name, DataType.Float);
                back.Name = name + "_emulated_back";   // the node that made the value carries its name
                rounded.Add(back);
            }
            nodes.Add(n);
            nodes.AddRange(rounded);
        }
        g.Node.Clear();
        g.Node.AddRange(nodes);
        return model.ToByteArray();
    }

    static void ToFloat(TensorProto t)
    {
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(t.RawData.Span);
        var floats = new float[halves.Length];
        for (int i = 0; i < floats.Length; i++) floats[i] = (float)halves[i];
        t.DataType = (int)DataType.Float;
        t.RawData = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()));
    }
}

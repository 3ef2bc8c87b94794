using Google.Protobuf;
using MLNetExt.Export.Onnx;

namespace MLNetExt.Export.Graph;

/// <summary>Writes ONNX files atomically (temporary file in the target folder, then rename). When the initializers
/// exceed the threshold (protobuf cannot write a single message over 2 GB) the large ones go to an external data
/// file <c>{model}.data</c> next to the model, referenced by the ONNX external-data fields (location, offset, length).</summary>
internal static class OnnxFile
{
    const long ExternalMinBytes = 1024;

    /// <summary>Writes the model; returns the external data path, or null when everything is in one file.</summary>
    public static string? Write(ModelProto model, string path, long externalThreshold)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        long total = model.Graph.Initializer.Sum(t => (long)t.RawData.Length);
        string? dataPath = null;
        if (total > externalThreshold)
        {
            dataPath = full + ".data";
            var dataName = Path.GetFileName(dataPath);
            var tmpData = Serialization.AtomicFile.TempPath(dataPath);
            using (var fs = new FileStream(tmpData, FileMode.Create, FileAccess.Write))
            {
                foreach (var t in model.Graph.Initializer)
                {
                    if (t.RawData.Length < ExternalMinBytes) continue;
                    long pad = (4096 - fs.Position % 4096) % 4096;
                    fs.Write(new byte[pad]);
                    long offset = fs.Position;
                    t.RawData.Span.CopyTo(fs);
                    t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                    t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString() });
                    t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString() });
                    t.DataLocation = TensorProto.Types.DataLocation.External;
                    t.RawData = ByteString.Empty;
                }
            }
            File.Move(tmpData, dataPath, overwrite: true);
        }
        var tmp = Serialization.AtomicFile.TempPath(full);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write))
                model.WriteTo(fs);
            File.Move(tmp, full, overwrite: true);
        }
        finally { if (File.Exists(tmp)) File.Delete(tmp); }
        return dataPath;
    }
}

internal static class StreamExtensions
{
    public static void CopyTo(this ReadOnlySpan<byte> span, Stream s) => s.Write(span);
}

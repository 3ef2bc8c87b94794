using MLNetExt.Export;
using MLNetExt.OnnxRuntime;

namespace MLNetExt.MLNet;

/// <summary>An ONNX export held in memory for ML.NET's ApplyOnnxModel: written to a temporary file by the exporter,
/// its metadata read back through ONNX Runtime (the checked reader), the bytes kept, the file removed.</summary>
internal static class InMemoryExport
{
    public static (byte[] Onnx, ExportedModelInfo Info) Run(Action<string> export, string what)
    {
        var temp = Directory.CreateTempSubdirectory("mlnetext-export-");
        try
        {
            var path = Path.Combine(temp.FullName, "model.onnx");
            export(path);
            using (var session = OnnxSession.FromFile(path, new OnnxSessionOptions { IntraOpThreads = 1 }))
                return (File.ReadAllBytes(path), ExportedModelInfo.From(session, what));
        }
        finally { temp.Delete(recursive: true); }
    }
}

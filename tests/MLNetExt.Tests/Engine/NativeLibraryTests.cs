using System.Diagnostics;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Engine;

[TestClass]
public sealed class NativeLibraryTests
{
    /// <summary>The bridge exports only its own mlnx_* symbols (no libtorch or C++ runtime symbols leak out).</summary>
    [TestMethod]
    public void ExportsOnlyBridgeSymbols()
    {
        _ = TorchRuntime.Threads;  // loads the library
        var path = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Last())
            .First(p => p.EndsWith("libmlnetext_native.so"));
        var psi = new ProcessStartInfo("nm", $"-D --defined-only \"{path}\"") { RedirectStandardOutput = true };
        using var nm = Process.Start(psi)!;
        var symbols = nm.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ').Last()).ToList();
        nm.WaitForExit();
        Assert.AreEqual(0, nm.ExitCode);
        Assert.IsGreaterThan(20, symbols.Count);
        CollectionAssert.Contains(symbols, "mlnx_op_call");
        var foreign = symbols.Where(s => !s.StartsWith("mlnx_")).ToList();
        Assert.IsEmpty(foreign, "unexpected exports: " + string.Join(", ", foreign));
    }
}

using System.Runtime.CompilerServices;

namespace MLNetExt.Tests.Architecture;

/// <summary>The library's internals are for verification code only: the tests and the benchmark harnesses under
/// bench/. Front ends (the CLI, samples) are built on the public API, so a C# user can do all they do.</summary>
[TestClass]
public sealed class InternalsAccessTests
{
    [TestMethod]
    public void InternalsAreVisibleToTestsAndBenchmarksOnly()
    {
        var granted = typeof(Torch.Tensor).Assembly.GetCustomAttributes(typeof(InternalsVisibleToAttribute), false)
            .Cast<InternalsVisibleToAttribute>().Select(a => a.AssemblyName).ToHashSet();
        var benchmarks = Directory.GetFiles(Path.Combine(LayerTests.RepositoryRoot(), "bench"), "*.csproj", SearchOption.AllDirectories)
            .Select(Path.GetFileNameWithoutExtension).ToHashSet();
        var others = granted.Where(a => a != "MLNetExt.Tests" && !benchmarks.Contains(a)).ToList();
        Assert.IsEmpty(others, $"internals granted to {string.Join(", ", others)}: front ends use the public API");
        Assert.Contains("MLNetExt.Tests", granted);
        Assert.DoesNotContain("MLNetExt.Cli", granted);
    }
}

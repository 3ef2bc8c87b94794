using System.Text.RegularExpressions;

namespace MLNetExt.Tests.Architecture;

/// <summary>The library's namespaces form layers: each may use only the layers below it (README, "Layout"). Read from
/// the sources: a file's <c>using MLNetExt.X</c> directives and its qualified <c>MLNetExt.X.</c> / <c>X.Type</c> names.</summary>
[TestClass]
public sealed class LayerTests
{
    /// <summary>Lowest first; a namespace may use the namespaces of lower rows only.</summary>
    static readonly string[][] Layers =
    [
        ["MLNetExt"],
        ["Torch"],
        ["Nn", "Serialization"],
        ["Optim", "Imaging", "Distributed"],
        ["Vision"],
        ["Transforms", "Pretrained"],
        ["Data"],
        ["OnnxRuntime"],
        ["Export"],
        ["Training"],
        ["Inference"],
        ["MLNet"],
    ];

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MLNetExt.sln"))) return dir.FullName;
        throw new AssertFailedException("MLNetExt.sln not found above the test binaries.");
    }

    [TestMethod]
    public void EachNamespace_UsesOnlyTheLayersBelowIt()
    {
        var layerOf = Layers.SelectMany((names, i) => names.Select(n => (n, i))).ToDictionary(p => p.n, p => p.i);
        var src = Path.Combine(RepositoryRoot(), "src");
        var violations = new List<string>();
        int files = 0;
        foreach (var file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(src, file);
            if (relative.StartsWith("Cli", StringComparison.Ordinal) || relative.Contains("/obj/")) continue;
            var text = File.ReadAllText(file);
            var ns = Regex.Match(text, @"^namespace MLNetExt\.?(\w*)", RegexOptions.Multiline);
            Assert.IsTrue(ns.Success, $"{relative} has no MLNetExt namespace");
            string own = ns.Groups[1].Value is { Length: > 0 } n ? n : "MLNetExt";
            Assert.IsTrue(layerOf.ContainsKey(own), $"{relative}: namespace {own} is in no layer of this test (add it to the README's table and here)");
            files++;
            // code without comments and string literals
            var code = Regex.Replace(Regex.Replace(text, @"//[^\n]*", ""), "\"(?:[^\"\\\\\\n]|\\\\.)*\"", "\"\"");
            var used = Regex.Matches(text, @"^using (?:static )?MLNetExt\.(\w+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value)
                .Concat(Regex.Matches(code, @"\bMLNetExt\.(\w+)\.").Select(m => m.Groups[1].Value))
                .Concat(Regex.Matches(code, @"(?<![\w.])(\w+)\.[A-Z]\w*").Select(m => m.Groups[1].Value).Where(layerOf.ContainsKey))
                .Where(u => u != own && layerOf.ContainsKey(u)).Distinct();
            foreach (var u in used)
                if (layerOf[u] >= layerOf[own]) violations.Add($"{relative} ({own}) uses {u}");
        }
        Assert.IsGreaterThan(100, files, "the sources were found");
        Assert.IsEmpty(violations, string.Join("\n", violations));
    }
}

using System.Text.Json;
using MLNetExt.Cli;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Cli;

[TestClass]
public sealed class KeysCommandTests
{
    static (int Code, string[] Lines, string Error) Run(string path)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = KeysCommand.Run(new FileInfo(path), output, error);
        return (code, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), error.ToString());
    }

    /// <summary>Expected lines come from the Python-written listing next to the fixture, not from our reader.</summary>
    [TestMethod]
    [DataRow("nested.pth.tar")]
    [DataRow("dtypes.pt")]
    [DataRow("views.pt")]
    public void ListsEveryTensorInFileOrderWithTotal(string fixture)
    {
        var path = Fixtures.Path("checkpoints/" + fixture);
        using var listing = JsonDocument.Parse(File.ReadAllText(path + ".expected.json"));
        var expected = new List<string>();
        long total = 0;
        foreach (var t in listing.RootElement.GetProperty("tensors").EnumerateArray())
        {
            var shape = t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            expected.Add($"{t.GetProperty("name").GetString()}\t[{string.Join(", ", shape)}]\t{t.GetProperty("dtype").GetString()}");
            total += shape.Aggregate(1L, (a, b) => a * b);
        }
        expected.Add($"total\t{total}");
        var (code, lines, error) = Run(path);
        Assert.AreEqual(0, code, error);
        CollectionAssert.AreEqual(expected, lines);
    }

    [TestMethod]
    public void ReadsSafetensorsToo()
    {
        var dir = Directory.CreateTempSubdirectory("mlnx-keys-");
        try
        {
            var path = Path.Combine(dir.FullName, "w.safetensors");
            using (var scope = TensorScope.Begin())
                SafeTensors.Save(path, new[] { new KeyValuePair<string, Tensor>("head.weight", Tensor.Zeros(new long[] { 2, 3 }, DType.Float16)) });
            var (code, lines, _) = Run(path);
            Assert.AreEqual(0, code);
            CollectionAssert.AreEqual(new[] { "head.weight\t[2, 3]\tfloat16", "total\t6" }, lines);
        }
        finally { dir.Delete(true); }
    }

    [TestMethod]
    public void BadFilesGiveAClearErrorAndNonZeroExit()
    {
        var (code, _, error) = Run("/nonexistent/weights.pth");
        Assert.AreEqual(2, code);
        StringAssert.Contains(error, "does not exist");
        var (code2, lines2, error2) = Run(Fixtures.Path("checkpoints/legacy.pth"));
        Assert.AreEqual(1, code2);
        Assert.IsEmpty(lines2);
        StringAssert.Contains(error2, "legacy");
    }
}

using System.Runtime.InteropServices;
using MLNetExt.Cli;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Cli;

/// <summary>`keys --variant` and `logits` against the TransXNet fixtures (the commands are generic over the registry).</summary>
[TestClass]
public sealed class ModelCommandsTests
{
    [TestMethod]
    public void KeysVariant_PrintsTheOfficialStateDictAndTrainableCount()
    {
        var output = new StringWriter();
        Assert.AreEqual(0, KeysCommand.RunModel(new ModelOptions.Choice("transxnet_t", null, null), output));
        var expected = File.ReadAllLines(Fixtures.Path("transxnet/keys_transxnet_t.txt"));
        CollectionAssert.AreEqual(expected, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [TestMethod]
    public void Logits_FromConfigWeightsAndRawInput_MatchTheOfficialLogits()
    {
        using var scope = TensorScope.Begin();
        using var fixture = SafeTensors.Load(Fixtures.Path("transxnet/tiny.safetensors"));
        var dir = Directory.CreateTempSubdirectory("mlnetext-logits-");
        try
        {
            var weights = Path.Combine(dir.FullName, "tiny.safetensors");
            SafeTensors.Save(weights, fixture.Where(kv => kv.Key.StartsWith("weights.")).Select(kv => new KeyValuePair<string, Tensor>(kv.Key["weights.".Length..], kv.Value)));
            var config = Path.Combine(dir.FullName, "tiny.json");
            File.WriteAllText(config, fixture.Metadata["kwargs"]);
            TorchRuntime.ManualSeed(11);
            var x = Tensor.Randn(new long[] { 2, 3, 112, 112 });
            var input = Path.Combine(dir.FullName, "input.raw");
            File.WriteAllBytes(input, MemoryMarshal.AsBytes(x.ToArray<float>().AsSpan()).ToArray());
            var output = Path.Combine(dir.FullName, "logits.raw");

            var choice = new ModelOptions.Choice("transxnet", BackboneConfigFromFile(config), null);
            Assert.AreEqual(0, LogitsCommand.Run(choice, new FileInfo(weights), new FileInfo(input), "2,3,112,112", new FileInfo(output), TextWriter.Null));
            var logits = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(output)).ToArray();
            using var actual = Tensor.FromArray<float>(logits, new long[] { 2, 10 });
            TensorAssert.Close(fixture["logits.112x112"], actual, Tolerances.BackboneParity, 0, "CLI logits");
            Assert.HasCount(4, dir.GetFiles(), "no temporary file left beside the output");

            var e = Assert.ThrowsExactly<ArgumentException>(() =>
                LogitsCommand.Run(choice, new FileInfo(weights), new FileInfo(input), "1,3,112,112", new FileInfo(output), TextWriter.Null));
            StringAssert.Contains(e.Message, "needs 150528");
        }
        finally { dir.Delete(recursive: true); }
    }

    static System.Text.Json.Nodes.JsonObject BackboneConfigFromFile(string path) =>
        MLNetExt.Vision.BackboneConfig.ParseObject(File.ReadAllText(path), path);

    [TestMethod]
    [DataRow("1,3,224")]
    [DataRow("1,3,0,224")]
    [DataRow("a,b,c,d")]
    public void Shape_MustBeFourPositiveIntegers(string text)
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => LogitsCommand.ParseShape(text));
        StringAssert.Contains(e.Message, "N,C,H,W");
    }
}

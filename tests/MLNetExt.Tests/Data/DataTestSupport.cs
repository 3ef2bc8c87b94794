using System.Security.Cryptography;
using MLNetExt.Data;
using MLNetExt.Serialization;
using MLNetExt.Torch;
using MLNetExt.Imaging;

namespace MLNetExt.Tests.Data;

internal static class DataFixtures
{
    public static string Image(string name) => Fixtures.Path("data/images/" + name);

    /// <summary>../shared/data/hymenoptera next to the checkout (or MLNETEXT_HYMENOPTERA).</summary>
    public static string? Hymenoptera()
    {
        var env = Environment.GetEnvironmentVariable("MLNETEXT_HYMENOPTERA");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "shared", "data", "hymenoptera");
            if (Directory.Exists(p)) return p;
        }
        return null;
    }

    public static string RequireHymenoptera() => Hymenoptera()
        ?? throw new AssertInconclusiveException("../shared/data/hymenoptera is not present (set MLNETEXT_HYMENOPTERA to its path)");

    /// <summary>Compares an image with a uint8 [H, W, 3] tensor; returns the largest absolute difference and the count of differing bytes.</summary>
    public static (int MaxDiff, int Differing) Compare(Tensor expected, RgbImage actual, string what)
    {
        CollectionAssert.AreEqual(new long[] { actual.Height, actual.Width, 3 }, expected.Shape, $"{what}: shape");
        var e = expected.ToArray<byte>();
        int max = 0, n = 0;
        for (int i = 0; i < e.Length; i++)
        {
            int d = Math.Abs(e[i] - actual.Pixels[i]);
            if (d > 0) n++;
            max = Math.Max(max, d);
        }
        return (max, n);
    }

    public static void AssertClose(Tensor expected, RgbImage actual, int levels, string what)
    {
        var (max, n) = Compare(expected, actual, what);
        Assert.IsLessThanOrEqualTo(levels, max, $"{what}: {n} bytes differ, largest difference {max} levels (allowed {levels})");
    }

    public static RgbImage Load(string name) => ImageDecoder.DecodeFile(Fixtures.Path(name));

    public static string Md5(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));
}

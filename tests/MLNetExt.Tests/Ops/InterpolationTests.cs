using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Tests.OpsParity;

/// <summary>F.Interpolate (bilinear, bicubic with and without align_corners, nearest), by size and by scale
/// factor, up and down, against torch 1.13. Input is (1, 2, 5, 6).</summary>
[TestClass, TestCategory("Parity")]
public sealed class InterpolationTests : OpsTestBase
{
    internal static readonly CaseTable Cases = Build();

    static CaseTable Build()
    {
        var table = new CaseTable();
        var modes = new[] { ("bilinear", InterpolationMode.Bilinear), ("bicubic", InterpolationMode.Bicubic) };
        foreach (var (name, mode) in modes)
        {
            foreach (var ac in new[] { false, true })
            {
                string tag = $"interp_{name}_{(ac ? "ac" : "noac")}";
                table[tag + "_size_up"] = c => [F.Interpolate(c.In(0), 9, 11, mode, ac)];
                table[tag + "_size_down"] = c => [F.Interpolate(c.In(0), 3, 4, mode, ac)];
                table[tag + "_scale_up"] = c => [F.Interpolate(c.In(0), 2.0, mode, ac)];
                table[tag + "_scale_down"] = c => [F.Interpolate(c.In(0), 0.6, mode, ac)];
            }
        }
        table["interp_nearest_size_up"] = c => [F.Interpolate(c.In(0), 9, 11, InterpolationMode.Nearest)];
        table["interp_nearest_size_down"] = c => [F.Interpolate(c.In(0), 3, 4, InterpolationMode.Nearest)];
        table["interp_nearest_scale_up"] = c => [F.Interpolate(c.In(0), 2.0, InterpolationMode.Nearest)];
        table["interp_nearest_scale_down"] = c => [F.Interpolate(c.In(0), 0.6, InterpolationMode.Nearest)];
        return table;
    }

    public static IEnumerable<object[]> CaseNames => Cases.Rows;

    [TestMethod, DynamicData(nameof(CaseNames))]
    public void Matches_torch(string name) => RunCase(Cases, name);
}

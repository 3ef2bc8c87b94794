using System.Text.RegularExpressions;

namespace MLNetExt.Vision;

/// <summary>Where a depth-group rule puts the parameters it matches (see <see cref="DepthGroupTable"/>).</summary>
internal enum DepthGroupKind
{
    /// <summary>Group 0: stem and embeddings before the first block.</summary>
    Stem,
    /// <summary>Block <c>block</c> of stage <c>stage</c>: its index over the whole network + 1.</summary>
    Block,
    /// <summary>With the first block of stage <c>stage</c> (a downsampler or table that feeds the stage); capped at the
    /// last block group, or at <see cref="DepthGroupRule.MinCap"/> when that is larger (a network without blocks).</summary>
    StageStart,
    /// <summary>With the last block of stage <c>stage</c> or, if the stage is empty, the last block before it (a norm
    /// that closes the stage); at least <see cref="DepthGroupRule.AtLeast"/>.</summary>
    StageEnd,
    /// <summary>The last group: final norm and head.</summary>
    Head,
}

/// <summary>
/// One row of a family's depth-group table: parameter names matching <paramref name="Pattern"/> (a regular expression
/// tried from the start of the name; the named captures <c>stage</c> and <c>block</c> give the positions) go to
/// <paramref name="Kind"/>. The stage index (0-based) is <c>(capture + StageOffset) / StageDivisor</c>, which maps
/// module positions such as TransXNet's <c>network.{0,2,4,6}</c> or TransNeXt's 1-based <c>block{1..4}</c> to stages.
/// A row whose captured positions do not exist in the model (a block past the stage's depth) does not match.
/// </summary>
internal sealed record DepthGroupRule(string Pattern, DepthGroupKind Kind, int StageOffset = 0, int StageDivisor = 1, int AtLeast = 0, int MinCap = 0)
{
    internal Regex Regex { get; } = new("^(?:" + Pattern + ")", RegexOptions.CultureInvariant);
}

/// <summary>
/// A family's parameter → depth-group assignment for layer-wise learning-rate decay, declared as data (the idea of timm's
/// <c>group_matcher</c>): group 0 is the stem, groups 1..D the blocks in network order (D = the sum of the stage depths),
/// group D + 1 the final norm and head. Rules are tried in order; the first that matches decides.
/// </summary>
internal sealed class DepthGroupTable
{
    readonly DepthGroupRule[] _rules;

    public DepthGroupTable(params DepthGroupRule[] rules) => _rules = rules;

    /// <summary>The rules, in the order they are tried.</summary>
    public IReadOnlyList<DepthGroupRule> Rules => _rules;

    /// <summary>Groups of a network with these stage depths: stem, one per block, head.</summary>
    public static int NumGroups(IReadOnlyList<int> depths) => depths.Sum() + 2;

    /// <summary>The group of <paramref name="name"/>, or null when no rule matches it.</summary>
    public int? GroupOf(string name, IReadOnlyList<int> depths)
    {
        int total = depths.Sum();
        foreach (var rule in _rules)
        {
            var m = rule.Regex.Match(name);
            if (!m.Success) continue;
            switch (rule.Kind)
            {
                case DepthGroupKind.Stem: return 0;
                case DepthGroupKind.Head: return total + 1;
            }
            int stage = (int.Parse(m.Groups["stage"].Value, System.Globalization.CultureInfo.InvariantCulture) + rule.StageOffset) / rule.StageDivisor;
            // StageStart may name the stage after the last (a downsampler that feeds nothing): it then caps like any other.
            if (stage < 0 || stage > depths.Count || (stage == depths.Count && rule.Kind != DepthGroupKind.StageStart)) continue;
            int before = depths.Take(stage).Sum();
            switch (rule.Kind)
            {
                case DepthGroupKind.Block:
                    if (!int.TryParse(m.Groups["block"].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int block)
                        || block >= depths[stage]) continue;
                    return before + block + 1;
                case DepthGroupKind.StageStart:
                    return Math.Min(before + 1, Math.Max(total, rule.MinCap));
                case DepthGroupKind.StageEnd:
                    return Math.Max(before + depths[stage], rule.AtLeast);
            }
        }
        return null;
    }
}

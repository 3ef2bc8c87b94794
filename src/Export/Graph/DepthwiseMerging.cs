using MLNetExt.Export.Onnx;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Depthwise convolutions on the consecutive channel chunks of one tensor merged into one depthwise convolution:
/// Split (channel axis) → one depthwise Conv per chunk (stride 1, "same" padding of an odd kernel) → Concat (channel
/// axis, chunk order) becomes a single Conv whose kernels are each chunk's, zero-padded to the largest size. The
/// result is the same to float rounding (the added taps contribute products of zero; the convolution kernel ONNX
/// Runtime picks, and so the order of the sums, may change). TransXNet's MS-FFN
/// (kernels 1, 3, 5, 7 on four chunks) is the case: ONNX Runtime cannot keep its blocked (NCHWc) layout across a
/// Split or an unaligned Concat, and the reorders around them cost more than the larger kernel
/// (transxnet_t 8 % faster in float32, bench/README.md).
/// </summary>
internal static class DepthwiseMerging
{
    /// <summary>Merges every Split → depthwise Convs → Concat of the graph (not inside subgraphs). Returns how many.</summary>
    public static int SplitChunks(GraphProto g)
    {
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var producer = GraphEdits.Producers(g);
        var readers = GraphEdits.Readers(g);
        var names = UniqueNames.Of(g);
        var outputs = g.Output.Select(o => o.Name).ToHashSet();
        var captured = GraphEdits.CapturedBySubgraphs(g);
        bool Private(string value) => readers[value].Count == 1 && !outputs.Contains(value) && !captured.Contains(value);

        var replacement = new Dictionary<NodeProto, NodeProto[]>();
        int merged = 0;
        foreach (var concat in g.Node.Where(n => n.OpType == "Concat" && n.Domain.Length == 0 && Axis(n) == 1))
        {
            var convs = concat.Input.Select(i => producer.GetValueOrDefault(i)).ToList();
            if (convs.Count < 2 || convs.Any(c => c is null || !IsSameDepthwise(c, inits) || !Private(c.Output[0]))) continue;
            if (!producer.TryGetValue(convs[0]!.Input[0], out var split) || split.OpType != "Split" || split.Domain.Length != 0
                || Axis(split) != 1 || split.Output.Count != convs.Count) continue;
            if (!convs.Select((c, j) => c!.Input[0] == split.Output[j] && Private(split.Output[j])).All(ok => ok)) continue;
            var weights = convs.Select(c => inits[c!.Input[1]]).ToList();
            long[] channels = weights.Select(w => w.Dims[0]).ToArray();
            if (!SplitSizesAre(split, channels, inits)) continue;

            long kh = weights.Max(w => w.Dims[2]), kw = weights.Max(w => w.Dims[3]), total = channels.Sum();
            var kernels = new float[total * kh * kw];
            var bias = new float[total];
            long first = 0;
            for (int j = 0; j < convs.Count; j++)
            {
                var w = GraphEdits.Floats(weights[j]);
                long h = weights[j].Dims[2], wd = weights[j].Dims[3], top = (kh - h) / 2, left = (kw - wd) / 2;
                for (long c = 0; c < channels[j]; c++)
                    for (long y = 0; y < h; y++)
                        for (long x = 0; x < wd; x++)
                            kernels[((first + c) * kh + top + y) * kw + left + x] = w[(c * h + y) * wd + x];
                if (convs[j]!.Input.Count > 2) GraphEdits.Floats(inits[convs[j]!.Input[2]]).CopyTo(bias, first);
                first += channels[j];
            }
            string wName = names.Fresh(concat.Output[0] + "_merged_weight"), bName = names.Fresh(concat.Output[0] + "_merged_bias");
            g.Initializer.Add(GraphEdits.FloatTensor(wName, kernels, [total, 1, kh, kw]));
            g.Initializer.Add(GraphEdits.FloatTensor(bName, bias, [total]));
            replacement[concat] = [GraphEdits.Node("Conv", [split.Input[0], wName, bName], [concat.Output[0]],
                Attr.Ints("kernel_shape", [kh, kw]), Attr.Ints("pads", [kh / 2, kw / 2, kh / 2, kw / 2]), Attr.I("group", total))];
            replacement[split] = [];
            foreach (var c in convs) replacement[c!] = [];
            merged++;
        }
        GraphEdits.ReplaceNodes(g, replacement);
        return merged;
    }

    static long Axis(NodeProto n) => n.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 0;

    static long[] Ints(NodeProto n, string name, params long[] otherwise) =>
        n.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.Ints.ToArray() : otherwise;

    /// <summary>A depthwise 2-D Conv with constant float32 weights (C, 1, kh, kw), odd kernel, stride and dilation 1,
    /// and the padding that keeps the size: the form a zero-padded larger kernel reproduces exactly.</summary>
    static bool IsSameDepthwise(NodeProto n, Dictionary<string, TensorProto> inits)
    {
        if (n.OpType != "Conv" || n.Domain.Length != 0 || !inits.TryGetValue(n.Input[1], out var w) || !GraphEdits.IsRawFloat(w)
            || w.Dims.Count != 4 || w.Dims[1] != 1 || w.Dims[2] % 2 == 0 || w.Dims[3] % 2 == 0) return false;
        if (n.Input.Count > 2 && (!inits.TryGetValue(n.Input[2], out var b) || !GraphEdits.IsRawFloat(b))) return false;
        long group = n.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;
        string autoPad = n.Attribute.FirstOrDefault(a => a.Name == "auto_pad")?.S.ToStringUtf8() ?? "NOTSET";
        long ph = w.Dims[2] / 2, pw = w.Dims[3] / 2;
        return group == w.Dims[0] && autoPad == "NOTSET"
            && Ints(n, "kernel_shape", w.Dims[2], w.Dims[3]).SequenceEqual([w.Dims[2], w.Dims[3]])
            && Ints(n, "strides", 1, 1).All(s => s == 1) && Ints(n, "dilations", 1, 1).All(d => d == 1)
            && Ints(n, "pads", 0, 0, 0, 0).SequenceEqual([ph, pw, ph, pw]);
    }

    /// <summary>Whether the Split cuts exactly the convolutions' channel counts (sizes given as a constant input, as an
    /// attribute before opset 13, or equal parts).</summary>
    static bool SplitSizesAre(NodeProto split, long[] channels, Dictionary<string, TensorProto> inits)
    {
        if (split.Input.Count > 1 && split.Input[1].Length > 0)
            return inits.TryGetValue(split.Input[1], out var sizes) && GraphEdits.Int64s(sizes) is { } s && s.SequenceEqual(channels);
        if (split.Attribute.FirstOrDefault(a => a.Name == "split") is { } attribute) return attribute.Ints.SequenceEqual(channels);
        return channels.All(c => c == channels[0]);
    }
}

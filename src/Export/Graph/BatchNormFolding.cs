using MLNetExt.Export.Onnx;

namespace MLNetExt.Export.Graph;

/// <summary>
/// Inference-mode BatchNormalization folded into a neighbouring convolution's weights and bias, in double arithmetic
/// (the folded graph matches the unfolded one to float rounding). Per channel the norm is y = f·x + s with
/// f = γ / √(var + ε) and s = β − mean·f.
/// </summary>
internal static class BatchNormFolding
{
    /// <summary>Folds each BatchNormalization whose input is a convolution's output read by nothing else into that
    /// convolution: W' = W·f, b' = b·f + s per output channel. ONNX Runtime does this itself for float graphs, but not
    /// across a Quantize/Dequantize pair, so the static INT8 pass calls it. Returns how many.</summary>
    public static int IntoPrecedingConvolutions(GraphProto g)
    {
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var producer = GraphEdits.Producers(g);
        var readers = GraphEdits.Readers(g);
        var names = UniqueNames.Of(g);
        var removed = new Dictionary<NodeProto, NodeProto[]>();
        foreach (var bn in g.Node.Where(n => IsFoldable(n, inits)).ToList())
        {
            if (!producer.TryGetValue(bn.Input[0], out var conv) || !IsConvWithConstants(conv, inits)
                || readers[bn.Input[0]].Count != 1 || g.Output.Any(o => o.Name == bn.Input[0])) continue;
            var (f, s) = Affine(bn, inits);
            var w = inits[conv.Input[1]];
            var weights = GraphEdits.Floats(w);
            int outC = (int)w.Dims[0], per = weights.Length / outC;
            if (f.Length != outC) continue;
            var bias = conv.Input.Count > 2 ? GraphEdits.Floats(inits[conv.Input[2]]) : new float[outC];
            var newBias = new float[outC];
            for (int o = 0; o < outC; o++)
            {
                for (int i = 0; i < per; i++) weights[o * per + i] = (float)(weights[o * per + i] * f[o]);
                newBias[o] = (float)(bias[o] * f[o] + s[o]);
            }
            SetConstants(g, conv, names, weights, w, newBias);
            conv.Output[0] = bn.Output[0];
            removed[bn] = [];
        }
        GraphEdits.ReplaceNodes(g, removed);
        return removed.Count;
    }

    /// <summary>
    /// Folds each BatchNormalization that no convolution computes (e.g. one after a GELU) into the convolutions that
    /// read it, when every reader is a convolution without padding: W'[o, i] = W[o, i]·f[i], b'[o] = b[o] +
    /// Σ W[o, i]·s[i]. Exact because every kernel tap then reads a normalised pixel (with padding, the folded bias would
    /// count each padded tap as s where the original reads 0). A norm computed by a convolution is left for <see cref="IntoPrecedingConvolutions"/>
    /// (ONNX Runtime's own fusion in a float graph). Neither ONNX Runtime nor torch.onnx folds a norm forward:
    /// TransXNet's token mixer and MS-FFN have three per block (conv → GELU → BN → 1×1 conv). Returns how many.
    /// </summary>
    public static int IntoFollowingConvolutions(GraphProto g)
    {
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var producer = GraphEdits.Producers(g);
        var readers = GraphEdits.Readers(g);
        var names = UniqueNames.Of(g);
        var captured = GraphEdits.CapturedBySubgraphs(g);
        var removed = new Dictionary<NodeProto, NodeProto[]>();
        foreach (var bn in g.Node.Where(n => IsFoldable(n, inits)).ToList())
        {
            var y = bn.Output[0];
            if (producer.TryGetValue(bn.Input[0], out var before) && IsConvWithConstants(before, inits) && readers[bn.Input[0]].Count == 1) continue;
            if (g.Output.Any(o => o.Name == y) || captured.Contains(y) || readers[y].Count == 0) continue;
            var convs = readers[y];
            if (!convs.All(c => IsConvWithConstants(c, inits) && c.Input[0] == y && c.Input.Skip(1).All(i => i != y) && WithoutPadding(c))) continue;
            var (f, s) = Affine(bn, inits);
            if (!convs.All(c => inits[c.Input[1]].Dims[1] * Group(c) == f.Length)) continue;
            foreach (var conv in convs)
            {
                var w = inits[conv.Input[1]];
                var weights = GraphEdits.Floats(w);
                long groups = Group(conv);
                int outC = (int)w.Dims[0], inPerGroup = (int)w.Dims[1], taps = weights.Length / (outC * inPerGroup), outPerGroup = outC / (int)groups;
                var bias = conv.Input.Count > 2 ? GraphEdits.Floats(inits[conv.Input[2]]) : new float[outC];
                var newBias = new float[outC];
                for (int o = 0; o < outC; o++)
                {
                    double b = bias[o];
                    for (int i = 0; i < inPerGroup; i++)
                    {
                        int channel = o / outPerGroup * inPerGroup + i;
                        for (int t = 0; t < taps; t++)
                        {
                            int k = (o * inPerGroup + i) * taps + t;
                            b += weights[k] * s[channel];
                            weights[k] = (float)(weights[k] * f[channel]);
                        }
                    }
                    newBias[o] = (float)b;
                }
                SetConstants(g, conv, names, weights, w, newBias);
                conv.Input[0] = bn.Input[0];
            }
            removed[bn] = [];
        }
        GraphEdits.ReplaceNodes(g, removed);
        return removed.Count;
    }

    /// <summary>Rewrites each BatchNormalization left as <c>Add(Mul(x, f), s)</c>, f and s shaped (C, 1, …) to
    /// broadcast. For the static INT8 export: ONNX Runtime runs quantized convolutions channels-last and moves the layout
    /// Transposes across elementwise operators until pairs cancel, which a BatchNormalization (channel axis 1) stops.
    /// Returns how many.</summary>
    public static int AsMulAdd(GraphProto g)
    {
        var inits = g.Initializer.ToDictionary(t => t.Name);
        var rank = g.Input.Concat(g.ValueInfo).Where(v => v.Type?.TensorType?.Shape is not null)
            .ToDictionary(v => v.Name, v => v.Type.TensorType.Shape.Dim.Count);
        var names = UniqueNames.Of(g);
        var replacement = new Dictionary<NodeProto, NodeProto[]>();
        foreach (var bn in g.Node.Where(n => IsFoldable(n, inits)))
        {
            if (!rank.TryGetValue(bn.Input[0], out int r) || r < 2) continue;
            var (f, s) = Affine(bn, inits);
            long[] dims = [f.Length, .. Enumerable.Repeat(1L, r - 2)];
            string fName = names.Fresh($"{bn.Input[1]}_factor"), sName = names.Fresh($"{bn.Input[2]}_shift"), scaled = names.Fresh($"{bn.Output[0]}_scaled");
            g.Initializer.Add(GraphEdits.FloatTensor(fName, f.Select(v => (float)v).ToArray(), dims));
            g.Initializer.Add(GraphEdits.FloatTensor(sName, s.Select(v => (float)v).ToArray(), dims));
            replacement[bn] = [GraphEdits.Node("Mul", [bn.Input[0], fName], [scaled]), GraphEdits.Node("Add", [scaled, sName], [bn.Output[0]])];
        }
        GraphEdits.ReplaceNodes(g, replacement);
        return replacement.Count;
    }

    static bool IsFoldable(NodeProto n, Dictionary<string, TensorProto> inits) =>
        n.OpType == "BatchNormalization" && n.Domain.Length == 0 && n.Output.Count == 1 && n.Input.Skip(1).All(inits.ContainsKey);

    static bool IsConvWithConstants(NodeProto n, Dictionary<string, TensorProto> inits) =>
        n.OpType == "Conv" && n.Domain.Length == 0 && inits.TryGetValue(n.Input[1], out var w) && GraphEdits.IsRawFloat(w)
        && (n.Input.Count < 3 || (inits.TryGetValue(n.Input[2], out var b) && GraphEdits.IsRawFloat(b)));

    static bool WithoutPadding(NodeProto conv)
    {
        var pads = conv.Attribute.FirstOrDefault(a => a.Name == "pads");
        var auto = conv.Attribute.FirstOrDefault(a => a.Name == "auto_pad")?.S.ToStringUtf8() ?? "NOTSET";
        return (pads is null || pads.Ints.All(p => p == 0)) && auto is "NOTSET" or "VALID";
    }

    static long Group(NodeProto conv) => conv.Attribute.FirstOrDefault(a => a.Name == "group")?.I ?? 1;

    /// <summary>The norm as y = f·x + s per channel, in double.</summary>
    static (double[] F, double[] S) Affine(NodeProto bn, Dictionary<string, TensorProto> inits)
    {
        float eps = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
        var (gamma, beta, mean, var) = (GraphEdits.Floats(inits[bn.Input[1]]), GraphEdits.Floats(inits[bn.Input[2]]),
            GraphEdits.Floats(inits[bn.Input[3]]), GraphEdits.Floats(inits[bn.Input[4]]));
        var (f, s) = (new double[gamma.Length], new double[gamma.Length]);
        for (int c = 0; c < gamma.Length; c++)
        {
            f[c] = gamma[c] / Math.Sqrt(var[c] + (double)eps);
            s[c] = beta[c] - mean[c] * f[c];
        }
        return (f, s);
    }

    /// <summary>Points <paramref name="conv"/> at new weight and bias initializers (the old ones may be shared).</summary>
    static void SetConstants(GraphProto g, NodeProto conv, UniqueNames names, float[] weights, TensorProto w, float[] bias)
    {
        var wName = names.Fresh(conv.Input[1] + "_bnfold");
        var bName = names.Fresh((conv.Input.Count > 2 ? conv.Input[2] : conv.Input[1]) + "_bnfold_bias");
        g.Initializer.Add(GraphEdits.FloatTensor(wName, weights, w.Dims));
        g.Initializer.Add(GraphEdits.FloatTensor(bName, bias, [bias.Length]));
        conv.Input[1] = wName;
        if (conv.Input.Count > 2) conv.Input[2] = bName; else conv.Input.Add(bName);
    }

}

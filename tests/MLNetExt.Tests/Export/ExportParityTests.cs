using Google.Protobuf;
using MLNetExt.Export;
using MLNetExt.Export.Mappers;
using MLNetExt.Nn;
using MLNetExt.OnnxRuntime;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Tests.Export;

/// <summary>Exported graphs in ONNX Runtime against the libtorch forward: one case per mapper, and whole backbones at
/// batch 1 and 3 (the batch axis is symbolic; the trace ran at 2 and 3).</summary>
[TestClass]
public sealed class ExportParityTests
{
    static Tensor C(long[] shape, double scale = 1, double offset = 0)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var data = new float[n];
        for (long i = 0; i < n; i++) data[i] = (float)(Math.Sin(i * 1.37 + 0.5) * scale + offset);
        return Tensor.FromArray<float>(data, shape);
    }

    /// <summary>item shape, function. The input is [N, ..item]; constants made by <see cref="C"/> become initializers.</summary>
    static readonly Dictionary<string, (long[] Item, Func<Tensor, Tensor> F, int Opset)> Cases = new()
    {
        ["neg"] = (new long[] { 3, 4 }, x => x.Neg(), 17),
        ["sqrt"] = (new long[] { 3, 4 }, x => x.Abs().Sqrt(), 17),
        ["exp"] = (new long[] { 3, 4 }, x => x.Exp(), 17),
        ["log"] = (new long[] { 3, 4 }, x => x.Abs().Add(0.5).Log(), 17),
        ["abs"] = (new long[] { 3, 4 }, x => x.Abs(), 17),
        ["sin"] = (new long[] { 3, 4 }, x => x.Sin(), 17),
        ["cos"] = (new long[] { 3, 4 }, x => x.Cos(), 17),
        ["tanh"] = (new long[] { 3, 4 }, x => x.Tanh(), 17),
        ["sigmoid"] = (new long[] { 3, 4 }, x => x.Sigmoid(), 17),
        ["relu"] = (new long[] { 3, 4 }, x => x.Relu(), 17),
        ["erf"] = (new long[] { 3, 4 }, x => x.Erf(), 17),
        ["floor"] = (new long[] { 3, 4 }, x => x.Mul(3.0).Floor(), 17),
        ["reciprocal"] = (new long[] { 3, 4 }, x => x.Abs().Add(0.5).Reciprocal(), 17),
        ["rsqrt"] = (new long[] { 3, 4 }, x => x.Abs().Add(0.5).Rsqrt(), 17),
        ["add"] = (new long[] { 3, 4 }, x => x.Add(C(new long[] { 4 }), 0.5).Add(2.0), 17),
        ["sub"] = (new long[] { 3, 4 }, x => x.Sub(C(new long[] { 3, 4 }), 2).Sub(1.5), 17),
        ["mul"] = (new long[] { 3, 4 }, x => x.Mul(C(new long[] { 3, 1 })).Mul(-2.0), 17),
        ["maximum"] = (new long[] { 3, 4 }, x => x.Maximum(C(new long[] { 4 })), 17),
        ["minimum"] = (new long[] { 3, 4 }, x => x.Minimum(C(new long[] { 4 })), 17),
        ["div"] = (new long[] { 3, 4 }, x => x.Div(C(new long[] { 4 }, 1, 3)).Div(4.0).Div(C(new long[] { 4 }, 0.1, 1), "floor"), 17),
        ["rsub"] = (new long[] { 3, 4 }, x => 1.5 - x, 17),
        ["pow"] = (new long[] { 3, 4 }, x => x.Pow(2.0).Add(x.Abs().Add(0.1).Pow(1.5)), 17),
        ["square"] = (new long[] { 3, 4 }, x => x.Square(), 17),
        ["clamp"] = (new long[] { 3, 4 }, x => x.Clamp(-0.3, 0.4).Add(x.Clamp(min: 0.1)), 17),
        ["clamp_min"] = (new long[] { 3, 4 }, x => x.ClampMin(0.2), 17),
        ["clamp_max"] = (new long[] { 3, 4 }, x => x.ClampMax(0.2), 17),
        ["addcmul"] = (new long[] { 3, 4 }, x => x.Addcmul(x, C(new long[] { 4 }), 0.5), 17),
        ["eq"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Mul(2.0).Floor().Eq(0.0), x, x.Neg()), 17),
        ["ne"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Mul(2.0).Floor().Ne(0.0), x, x.Neg()), 17),
        ["lt"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Lt(C(new long[] { 4 })), x, x.Neg()), 17),
        ["gt"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Gt(0.1), x, x.Neg()), 17),
        ["le"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Le(0.1), x, x.Neg()), 17),
        ["ge"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Ge(0.1), x, x.Neg()), 17),
        ["where"] = (new long[] { 3, 4 }, x => Tensor.Where(x.Gt(0.0), x, C(new long[] { 4 })), 17),
        ["masked_fill"] = (new long[] { 3, 4 }, x => x.MaskedFill(x.Lt(0.0), -7.0), 17),
        ["to"] = (new long[] { 3, 4 }, x => x.Mul(4.0).To(DType.Int64).To(DType.Float32), 17),
        ["contiguous"] = (new long[] { 3, 4 }, x => x.Transpose(1, 2).Contiguous(), 17),
        ["clone"] = (new long[] { 3, 4 }, x => x.Clone().Mul(2.0), 17),
        ["detach"] = (new long[] { 3, 4 }, x => x.Detach().Mul(2.0), 17),
        ["dropout"] = (new long[] { 3, 4 }, x => F.Dropout(x, 0.3, training: false).Mul(2.0), 17),
        ["gelu"] = (new long[] { 3, 4 }, x => F.Gelu(x).Add(F.Gelu(x, tanhApproximation: true)), 17),
        ["silu"] = (new long[] { 3, 4 }, x => F.Silu(x), 17),
        ["hardswish"] = (new long[] { 3, 4 }, x => F.Hardswish(x.Mul(4.0)), 17),
        ["leaky_relu"] = (new long[] { 3, 4 }, x => F.LeakyRelu(x, 0.2), 17),
        ["softplus"] = (new long[] { 3, 4 }, x => F.Softplus(x.Mul(30.0), 2, 20), 17),
        ["softmax"] = (new long[] { 3, 4 }, x => x.Softmax(1), 17),
        ["log_softmax"] = (new long[] { 3, 4 }, x => x.LogSoftmax(-1), 17),
        ["conv2d"] = (new long[] { 4, 7, 6 }, x => F.Conv2d(x, C(new long[] { 6, 2, 3, 3 }, 0.3), C(new long[] { 6 }), new long[] { 2, 1 }, new long[] { 1, 2 }, new long[] { 1, 2 }, 2), 17),
        ["linear"] = (new long[] { 3, 4 }, x => F.Linear(x, C(new long[] { 5, 4 }), C(new long[] { 5 })).Add(F.Linear(x.Select(1, 0), C(new long[] { 5, 4 })).Unsqueeze(1)), 17),
        ["layer_norm"] = (new long[] { 3, 4 }, x => F.LayerNorm(x, new long[] { 4 }, C(new long[] { 4 }, 1, 1), C(new long[] { 4 }), 1e-6), 17),
        ["group_norm"] = (new long[] { 6, 3, 2 }, x => F.GroupNorm(x.Mul(C(new long[] { 2 }, 3)), 3, C(new long[] { 6 }, 1, 1), C(new long[] { 6 }), 1e-5), 17),
        ["batch_norm"] = (new long[] { 3, 2, 2 }, x => F.BatchNorm(x, C(new long[] { 3 }, 0.1), C(new long[] { 3 }, 0.1, 1), C(new long[] { 3 }, 1, 1), C(new long[] { 3 }), false, 0.1, 1e-5), 17),
        ["avg_pool2d"] = (new long[] { 2, 7, 6 }, x => F.AvgPool2d(x, 3, 2, 1, ceilMode: true, countIncludePad: false), 17),
        ["max_pool2d"] = (new long[] { 2, 7, 6 }, x => F.MaxPool2d(x, 3, 2, 1), 17),
        ["adaptive_avg_pool2d"] = (new long[] { 2, 7, 6 }, x => F.AdaptiveAvgPool2d(x, 3, 4).Sum(new long[] { 2, 3 }).Add(F.AdaptiveAvgPool2d(x, 1, 1).Flatten(1)).Add(F.AdaptiveAvgPool2d(x, 7, 3).Mean(new long[] { 2, 3 })), 17),
        ["upsample_nearest2d"] = (new long[] { 2, 3, 4 }, x => F.Interpolate(x, 6, 8, InterpolationMode.Nearest), 17),
        ["upsample_bilinear2d"] = (new long[] { 2, 3, 4 }, x => F.Interpolate(x, 5, 7, InterpolationMode.Bilinear).Add(F.Interpolate(x, 5, 7, InterpolationMode.Bilinear, alignCorners: true)), 17),
        ["upsample_bicubic2d"] = (new long[] { 2, 5, 6 }, x => F.Interpolate(x, 7, 9, InterpolationMode.Bicubic).Add(F.Interpolate(x, 7, 9, InterpolationMode.Bicubic, alignCorners: true)), 17),
        ["view"] = (new long[] { 3, 4 }, x => x.View(-1, 4, 3), 17),
        ["reshape"] = (new long[] { 3, 4 }, x => x.Reshape(x.Size(0) * 3, 2, 2), 17),
        ["flatten"] = (new long[] { 3, 4, 2 }, x => x.Flatten(1), 17),
        ["unflatten"] = (new long[] { 12 }, x => x.Unflatten(1, 3, 4), 17),
        ["squeeze"] = (new long[] { 1, 4, 1 }, x => x.Squeeze(1).Squeeze(-1).Add(x.Squeeze(3).Squeeze(1)), 17),
        ["unsqueeze"] = (new long[] { 3, 4 }, x => x.Unsqueeze(-1).Unsqueeze(1), 17),
        ["permute"] = (new long[] { 2, 3, 4 }, x => x.Permute(0, 3, 1, 2), 17),
        ["transpose"] = (new long[] { 3, 4 }, x => x.Transpose(-1, -2), 17),
        ["expand"] = (new long[] { 1, 4 }, x => x.Expand(-1, 3, 4).Add(x.Expand(x.Size(0), 3, 4)), 17),
        ["expand_as"] = (new long[] { 3, 4 }, x => C(new long[] { 4 }).ExpandAs(x).Mul(x), 17),
        ["cat"] = (new long[] { 3, 4 }, x => Tensor.Cat(new[] { x, x.Mul(2.0), C(new long[] { 1, 3, 2 }).Expand(x.Size(0), 3, 2) }, -1), 17),
        ["stack"] = (new long[] { 3, 4 }, x => Tensor.Stack(new[] { x, x.Neg() }, 2), 17),
        ["split"] = (new long[] { 5, 4 }, x => { var p = x.Split(2, 1); return p[0].Sum(1).Add(p[2].Sum(1)); }, 17),
        ["split_with_sizes"] = (new long[] { 5, 4 }, x => { var p = x.Split(new long[] { 1, 3, 1 }, 1); return p[1].Mul(2.0).Sum(1).Add(p[2].Squeeze(1)); }, 17),
        ["chunk"] = (new long[] { 5, 4 }, x => { var p = x.Chunk(2, -1); return p[1].Sub(p[0]); }, 17),
        ["narrow"] = (new long[] { 5, 4 }, x => x.Narrow(1, 1, 3).Narrow(-1, -3, 3).Add(x.Narrow(1, 0, 1).Narrow(2, 1, 3)), 17),
        ["slice"] = (new long[] { 6, 4 }, x => x.Slice(1, 1, null, 2).Add(x.Slice(-1, null, -1).Sum(-1, keepDim: true).Narrow(1, 0, 3)), 17),
        ["select"] = (new long[] { 3, 4 }, x => x.Select(1, -1).Add(x.Select(2, 0).Narrow(1, 0, 1)), 17),
        ["index_select"] = (new long[] { 3, 4 }, x => x.IndexSelect(2, Tensor.FromArray<long>(new long[] { 3, 0, 0 }, new long[] { 3 })), 17),
        ["gather"] = (new long[] { 3, 4 }, x => x.Gather(2, Tensor.FromArray<long>(new long[] { 1, 3, 0, 2, 2, 2 }, new long[] { 1, 3, 2 }).Expand(x.Size(0), 3, 2)), 17),
        ["repeat"] = (new long[] { 3, 4 }, x => x.Repeat(1, 2, 1).Add(x.Repeat(1, 1, 1, 1).Squeeze(0).Repeat(1, 2, 1)), 17),
        ["roll"] = (new long[] { 3, 4 }, x => x.Roll(new long[] { 1, -3 }, new long[] { 1, 2 }), 17),
        ["flip"] = (new long[] { 3, 4 }, x => x.Flip(1, 2), 17),
        ["constant_pad_nd"] = (new long[] { 3, 4 }, x => F.Pad(x, new long[] { 1, 2, 0, 1 }, 0.5).Add(F.Pad(x, new long[] { -1, 4, 1, 0 })), 17),
        ["pad"] = (new long[] { 2, 3, 4 }, x => F.Pad(x, new long[] { 1, 2, 2, 1 }, "reflect").Add(F.Pad(x, new long[] { 1, 2, 2, 1 }, "replicate")), 17),
        ["matmul"] = (new long[] { 3, 4 }, x => x.Matmul(C(new long[] { 4, 5 })).Transpose(1, 2).Matmul(x), 17),
        ["bmm"] = (new long[] { 3, 4 }, x => x.Bmm(x.Transpose(1, 2)), 17),
        ["mm"] = (new long[] { 4 }, x => x.Mm(C(new long[] { 4, 2 })), 17),
        ["im2col"] = (new long[] { 3, 7, 6 }, x => F.Unfold(x, 3, padding: 1).Add(F.Unfold(x, 2, dilation: 2, stride: 2).Sum(new long[] { 1, 2 }, keepDim: true)), 17),
        ["baddbmm"] = (new long[] { 3, 4 }, x => Ops_Baddbmm(x), 17),
        ["mlnetext::depthwise_conv2d_per_sample"] = (new long[] { 4, 7, 6 }, x => F.DepthwiseConv2dPerSample(x, F.AdaptiveAvgPool2d(x, 3, 3), x.Mean(new long[] { 2, 3 }), 1)
            .Add(F.DepthwiseConv2dPerSample(x, F.AdaptiveAvgPool2d(x, 5, 5).Mul(0.5), x.Amax(new long[] { 2, 3 }), 2)), 17),
        ["sum"] = (new long[] { 3, 4 }, x => x.Sum(new long[] { -1 }, keepDim: true).Add(x.Sum(1).Unsqueeze(1).Sum(new long[] { 1, 2 }).View(-1, 1, 1)), 17),
        ["mean"] = (new long[] { 3, 4 }, x => x.Mean(new long[] { 1, 2 }).Add(x.Mean(-1, keepDim: true).Squeeze(-1).Sum(1)), 17),
        ["amax"] = (new long[] { 3, 4 }, x => x.Amax(new long[] { 2 }, keepDim: true), 17),
        ["amin"] = (new long[] { 3, 4 }, x => x.Amin(new long[] { 1, 2 }), 17),
        ["norm"] = (new long[] { 3, 4 }, x => x.Norm(2, new long[] { -1 }, keepDim: true).Add(x.Norm(1, new long[] { 1, 2 }).View(-1, 1, 1)).Add(x.Norm(3, new long[] { 1 }).Unsqueeze(2).Narrow(1, 0, 1)), 17),
        ["var"] = (new long[] { 3, 4 }, x => x.Var(new long[] { 2 }).Add(x.Var(new long[] { 1, 2 }, 0, keepDim: true).Squeeze(-1)), 17),
        ["std"] = (new long[] { 3, 4 }, x => x.Std(new long[] { 2 }, 1, keepDim: true), 17),
    };

    static Tensor Ops_Baddbmm(Tensor x) => MLNetExt.Torch.Ops.Baddbmm.Call(x.Narrow(2, 0, 3), x, x.Transpose(1, 2), 0.5, 2.0);

    [TestMethod]
    public void EveryMapperHasACase()
    {
        var missing = MapperRegistry.Operators.Select(o => o.Replace("aten::", "")).Where(o => !Cases.ContainsKey(o)).OrderBy(o => o).ToList();
        Assert.AreEqual(0, missing.Count, "mappers without a parity case: " + string.Join(", ", missing));
    }

    public static IEnumerable<object[]> CaseNames => Cases.Keys.OrderBy(k => k).Select(k => new object[] { k });

    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void MapperMatchesLibtorchInOnnxRuntime(string op) => CheckCase(op, Cases[op].Opset);

    /// <summary>Mappers whose ONNX form changes with the opset (and ops whose axes move from attribute to input at 18),
    /// at the other forms.</summary>
    [TestMethod]
    [DataRow("gelu", 20)]
    [DataRow("gelu", 21)]
    [DataRow("layer_norm", 13)]
    [DataRow("layer_norm", 16)]
    [DataRow("mean", 18)]
    [DataRow("sum", 13)]
    [DataRow("amax", 18)]
    [DataRow("norm", 18)]
    [DataRow("var", 18)]
    [DataRow("softmax", 13)]
    [DataRow("hardswish", 14)]
    [DataRow("group_norm", 21)]
    [DataRow("mlnetext::depthwise_conv2d_per_sample", 13)]
    [DataRow("mlnetext::depthwise_conv2d_per_sample", 21)]
    public void MapperMatchesLibtorchAtOtherOpsets(string op, int opset) => CheckCase(op, opset);

    static void CheckCase(string op, int opset)
    {
        using var scope = TensorScope.Begin();
        var (item, f, _) = Cases[op];
        var model = OnnxExporter.BuildModel(null, item, x => new[] { f(x) }, "input", new[] { "y" }, opset, Array.Empty<(string, string)>());
        CollectionAssert.Contains(OnnxExporter.LastTracedOps!.ToList(), op.Contains("::") ? op : "aten::" + op, $"the case for {op} must call it");
        using var session = OnnxSession.FromBytes(model.ToByteArray());
        foreach (long n in new long[] { 1, 3 })
        {
            using var x = C(new[] { n }.Concat(item).ToArray(), 1, 0.05);
            using var expected = f(x);
            var data = x.ToArray<float>();
            using var result = session.Run("input", OnnxTensor.FromArray(data, x.Shape));
            using var actual = Tensor.FromArray<float>(result["y"].ToArray<float>(), result["y"].Shape.ToArray());
            TensorAssert.Close(expected.To(DType.Float32), actual, Tolerances.OnnxExportParity, 0, $"{op} at batch {n}");
        }
    }

    static double MaxAbs(Tensor expected, OnnxValue actual)
    {
        var e = expected.ToArray<float>();
        var a = actual.AsSpan<float>();
        double m = 0;
        for (int i = 0; i < e.Length; i++) m = Math.Max(m, Math.Abs(e[i] - a[i]));
        return m;
    }

    static void BackboneParity(Backbone model, int h, int w, bool features, string what, int opset = 17)
    {
        var dir = Directory.CreateTempSubdirectory("mlnetext-parity-");
        try
        {
            model.Eval();
            var mlnetPath = Path.Combine(dir.FullName, "mlnet.onnx");
            var nonePath = Path.Combine(dir.FullName, "none.onnx");
            OnnxExporter.Export(model, mlnetPath, new OnnxExportOptions { ImageSize = (h, w), IncludeFeatures = features, Opset = opset });
            OnnxExporter.Export(model, nonePath, new OnnxExportOptions { ImageSize = (h, w), Preprocess = OnnxPreprocess.None, Opset = opset });
            using var mlnet = OnnxSession.FromFile(mlnetPath);
            using var none = OnnxSession.FromFile(nonePath);
            var mean = model.PretrainedConfig.Mean;
            var std = model.PretrainedConfig.Std;
            // the ML.NET-layout graph takes the evaluation resize size and slices the centre crop itself
            var crop = EvalCrop.For(h, w, model.PretrainedConfig.CropPct);
            int rh = crop.ResizeHeight, rw = crop.ResizeWidth;
            CollectionAssert.AreEqual(new long[] { -1, 3, rh, rw }, mlnet.Inputs[0].Dimensions.ToArray(), $"{what}: ML.NET-layout input at the resize size");
            foreach (long n in new long[] { 1, 3 })
            {
                using var scope = TensorScope.Begin();
                // ML.NET layout: 0-255 RGB planar, as ExtractPixels produces, at the resize size
                var raw = new float[n * 3 * rh * rw];
                var rng = new Random((int)n);
                for (int i = 0; i < raw.Length; i++) raw[i] = rng.Next(256);
                var normalised = new float[n * 3 * h * w];
                for (int i = 0; i < normalised.Length; i++)
                {
                    int b = i / (3 * h * w), c = i / (h * w) % 3, y = i / w % h, xx = i % w;
                    float v = raw[((b * 3 + c) * rh + crop.Top + y) * rw + crop.Left + xx];
                    normalised[i] = (float)((v / 255.0 - mean[c]) / std[c]);
                }
                using var x = Tensor.FromArray<float>(normalised, new long[] { n, 3, h, w });
                using var logits = model.Call(x);
                using var score = logits.Softmax(-1);

                using var r1 = mlnet.Run("image", OnnxTensor.FromArray(raw, n, 3, rh, rw));
                using var r2 = none.Run("input", OnnxTensor.FromArray(normalised, n, 3, h, w));
                var k = logits.Shape[1];
                TensorAssert.Close(logits, Tensor.FromArray<float>(r2["logits"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{what} preprocess=none logits at batch {n}");
                TensorAssert.Close(score, Tensor.FromArray<float>(r2["Score"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{what} preprocess=none Score at batch {n}");
                TensorAssert.Close(logits, Tensor.FromArray<float>(r1["logits"].ToArray<float>(), new[] { n, k }), Tolerances.OnnxExportParity, 0, $"{what} preprocess=mlnet logits at batch {n}");
                Console.WriteLine($"{what} batch {n}: max abs logits none {MaxAbs(logits, r2["logits"])}, mlnet {MaxAbs(logits, r1["logits"])}; " +
                    $"Score none {MaxAbs(score, r2["Score"])}, mlnet {MaxAbs(score, r1["Score"])}");
                // the ML.NET-layout input gives the same Score as the normalised path
                TensorAssert.Close(Tensor.FromArray<float>(r2["Score"].ToArray<float>(), new[] { n, k }), Tensor.FromArray<float>(r1["Score"].ToArray<float>(), new[] { n, k }),
                    Tolerances.OnnxExportParity, 0, $"{what} ML.NET-layout Score vs normalised Score at batch {n}");
                if (features)
                {
                    using var f = model.ForwardHead(model.ForwardFeatures(x), preLogits: true);
                    TensorAssert.Close(f, Tensor.FromArray<float>(r1["features"].ToArray<float>(), f.Shape), Tolerances.OnnxExportParity, 0, $"{what} features at batch {n}");
                }
            }
        }
        finally { dir.Delete(true); }
    }

    [TestMethod, TestCategory("Slow")]
    public void TransNeXtMicroMatchesLibtorchAtBatch1And3InBothPreprocessModes()
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create("transnext_micro");
        BackboneParity(model, 224, 224, features: false, "transnext_micro");
    }

    [TestMethod, TestCategory("Slow")]
    public void SmtTMatchesLibtorchAtBatch1And3InBothPreprocessModes()
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create("smt_t");
        BackboneParity(model, 224, 224, features: false, "smt_t");
    }

    [TestMethod, TestCategory("Slow")]
    public void MixFormerB0MatchesLibtorchAtBatch1And3InBothPreprocessModes()
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create("mixformer_b0");
        BackboneParity(model, 224, 224, features: false, "mixformer_b0");
    }

    /// <summary>Coverage of the opset range: every family's small configuration at the lowest and highest target.</summary>
    [TestMethod, TestCategory("Slow")]
    [DataRow(13)]
    [DataRow(21)]
    public void EveryFamilysSmallConfigurationMatchesAtOpset(int opset)
    {
        using var scope = TensorScope.Begin();
        using (var m = Backbones.CreateCustom("transxnet", TinyConfig.Kwargs)) { m.LoadStateDict(TinyConfig.Weights); BackboneParity(m, 112, 112, false, $"transxnet tiny opset {opset}", opset); }
        using (var fixture = MLNetExt.Serialization.SafeTensors.Load(Tests.Vision.TransNeXt.TransNeXtFixtures.Path("parity_a.safetensors")))
        using (var m = Tests.Vision.TransNeXt.TransNeXtFixtures.Build(Tests.Vision.TransNeXt.TransNeXtFixtures.Json("parity_a.json"), fixture))
            BackboneParity(m, 224, 224, false, $"transnext tiny opset {opset}", opset);
        using (var fixture = Tests.Vision.Smt.SmtFixtures.Load("a"))
        using (var m = Tests.Vision.Smt.SmtFixtures.Build(fixture))
            BackboneParity(m, 224, 224, false, $"smt tiny opset {opset}", opset);
        using (var m = Tests.Vision.MixFormer.MixFormerFixtures.Small())
            BackboneParity(m, 224, 224, false, $"mixformer small opset {opset}", opset);
    }

    [TestMethod, TestCategory("Slow")]
    public void TransXNetTMatchesLibtorchAtBatch1And3InBothPreprocessModes()
    {
        using var scope = TensorScope.Begin();
        using var model = Backbones.Create("transxnet_t");
        BackboneParity(model, 224, 224, features: false, "transxnet_t");
    }
}

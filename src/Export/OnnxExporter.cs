using System.Diagnostics;
using System.Reflection;
using Module = MLNetExt.Nn.Module;
using Trace = MLNetExt.Export.Tracing.Trace;
using Google.Protobuf;
using MLNetExt.Export.Graph;
using MLNetExt.Export.Mappers;
using MLNetExt.Export.Onnx;
using MLNetExt.Export.Tracing;
using MLNetExt.Nn;
using MLNetExt.Torch;
using MLNetExt.Vision;

namespace MLNetExt.Export;

/// <summary>How the exported graph takes its input.</summary>
public enum OnnxPreprocess
{
    /// <summary>Input <c>image</c>: float32 [N,3,RH,RW] at the evaluation resize size (e.g. 256 for a 224 network with
    /// crop fraction 0.875), RGB planar, 0-255, exactly as ML.NET's ExtractPixels gives with its defaults. The graph
    /// takes the centre crop (a Slice) and normalises it, so ML.NET's <c>ResizeImages</c> to the resize size frames the
    /// image as training evaluation did.</summary>
    MLNet,
    /// <summary>Input <c>input</c>: the normalised tensor the network itself takes.</summary>
    None,
}

/// <summary>The arithmetic of the exported graph; its inputs and outputs are float32 either way.</summary>
public enum OnnxPrecision
{
    /// <summary>Every operator in float32: the exact model (parity with libtorch within float tolerance).</summary>
    Float32,
    /// <summary>Linear layers in dynamic INT8 (weights quantized per output channel when exporting, activations per
    /// run), and with <see cref="OnnxExportOptions.CalibrationImages"/> the convolutions in static INT8 too (activation
    /// scales measured on those images); everything else float32: a smaller, faster model for CPU serving whose top-1
    /// differs slightly.</summary>
    Int8,
    /// <summary>IEEE half precision for GPU serving (ONNX Runtime's CUDA provider): weights and activations in float16,
    /// half the size; reductions and sums of squares stay float32 so they cannot overflow. The CPU provider runs it
    /// too, but casts around most operators (it has few float16 kernels), so on CPU it is slower than float32.</summary>
    Float16,
}

/// <summary>What the exported graph computes after the preprocessing.</summary>
internal enum OnnxHead
{
    /// <summary>Outputs <c>logits</c> and <c>Score</c> (softmax), optionally <c>features</c>.</summary>
    Classifier,
    /// <summary>One output: the pooled pre-logits features the classifier sees.</summary>
    PreLogits,
    /// <summary>One output: every stage map (strides 4 to 32) global-average-pooled and concatenated.</summary>
    PooledStages,
}

/// <summary>Options of <see cref="OnnxExporter.Export"/>.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Target ONNX opset (13 to 21).</summary>
    public int Opset { get; init; } = MapperRegistry.DefaultOpset;
    /// <summary>What the graph's input is: ML.NET's pixel layout with crop and normalisation inside (default), or a
    /// normalised tensor.</summary>
    public OnnxPreprocess Preprocess { get; init; } = OnnxPreprocess.MLNet;
    /// <summary>Network input height and width (the crop size); null = the backbone's pretrained input size.</summary>
    public (int Height, int Width)? ImageSize { get; init; }
    /// <summary>Evaluation crop fraction taken inside the graph (<see cref="OnnxPreprocess.MLNet"/> only): the input is
    /// floor(size / crop) and the graph crops the centre; 1 = no crop; null = the backbone's pretrained crop fraction.</summary>
    public double? CropPct { get; init; }
    /// <summary>Class names in output order (stored in the model); null = none.</summary>
    public IReadOnlyList<string>? Labels { get; init; }
    /// <summary>Also output <c>features</c> (pooled pre-logits).</summary>
    public bool IncludeFeatures { get; init; }
    /// <summary>The temperature of <c>Score = softmax(logits / T)</c> (1: plain softmax; a trained model's calibrated
    /// <see cref="Training.ModelDescriptor.ScoreTemperature"/>); <c>logits</c> stay as the network gives them.</summary>
    public double ScoreTemperature { get; init; } = 1;
    /// <summary>Views the graph averages for each image (<see cref="TestTimeAugmentation.Flip"/>: the image and its
    /// mirror in one batch, mean logits); a trained model's <see cref="Training.ModelDescriptor.TestTimeAugmentation"/>.</summary>
    public TestTimeAugmentation TestTimeAugmentation { get; init; } = TestTimeAugmentation.None;
    /// <summary>The graph's arithmetic: float32 (default), INT8 (CPU serving; see <see cref="CalibrationImages"/>) or
    /// float16 (GPU serving).</summary>
    public OnnxPrecision Precision { get; init; } = OnnxPrecision.Float32;
    /// <summary>With <see cref="OnnxPrecision.Int8"/>: image files on which to calibrate a static quantization of the
    /// convolutions (integer arithmetic with activation scales measured on these images, framed as the model's scorers
    /// frame them); null = only the linear layers in INT8, which are dynamic either way (no images needed). A few dozen
    /// to a few hundred images like the ones the model will see are enough.</summary>
    public IReadOnlyList<string>? CalibrationImages { get; init; }
    /// <summary>Calibration images as dataset items (files, encoded bytes or decoded images), for the ML.NET trainer,
    /// whose images need not be files; used instead of <see cref="CalibrationImages"/> when set.</summary>
    internal IReadOnlyList<Data.ImageItem>? CalibrationItems { get; init; }
    /// <summary>Initializer bytes above which the weights go to an external data file next to the model (protobuf
    /// cannot write a single message over 2 GB).</summary>
    public long ExternalDataThreshold { get; init; } = 1L << 30;
    /// <summary>What the graph outputs (the ML.NET featurizer exports features only).</summary>
    internal OnnxHead Head { get; init; } = OnnxHead.Classifier;
    /// <summary>Graph input name (null: <c>image</c> or <c>input</c>); ML.NET components use names no user column has.</summary>
    internal string? InputName { get; init; }
    /// <summary>Name of the first output (null: <c>logits</c>, or <c>features</c> for a feature head).</summary>
    internal string? OutputName { get; init; }
    /// <summary>With <see cref="OnnxPrecision.Int8"/>: linear layers with fewer inputs or outputs stay float32 (tests
    /// lower it to reach the small layers of tiny models).</summary>
    internal int Int8MinSide { get; init; } = DynamicInt8.DefaultMinSide;
}

/// <summary>What an export wrote. Initializers count the weights and constants, whether stored as initializers or (the
/// float16 weights) as Constant nodes.</summary>
public sealed record OnnxExportResult(string Path, string? ExternalDataPath, int NodeCount, int InitializerCount, long InitializerBytes,
    IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, TimeSpan Elapsed, TimeSpan TraceTime, TimeSpan MapTime);

/// <summary>
/// Exports a backbone to ONNX by tracing: the forward pass runs twice in eval mode (batch 2 and 3), every operator call
/// through the dispatcher is recorded, the two records are merged into one program with a symbolic batch <c>N</c>,
/// and each call is written by its operator's mapper.
/// </summary>
public static class OnnxExporter
{
    /// <summary>The graph input's name: ML.NET layout ("image") or a normalised tensor ("input").</summary>
    public const string ImageInput = "image", NormalizedInput = "input";

    /// <summary>Traces <paramref name="model"/> (eval mode, no gradients) and writes the ONNX model to
    /// <paramref name="path"/> atomically; the result says what was written and how long it took.</summary>
    public static OnnxExportResult Export(Backbone model, string path, OnnxExportOptions? options = null)
    {
        options ??= new OnnxExportOptions();
        var sw = Stopwatch.StartNew();
        var (h, w) = options.ImageSize ?? (model.PretrainedConfig.Height, model.PretrainedConfig.Width);
        model.CheckInputSize(h, w);
        if (options.Labels is { } labels && labels.Count != model.NumClasses)
            throw new ArgumentException($"{labels.Count} labels were given but the model has {model.NumClasses} classes.", nameof(options));
        // The metadata stores labels one per line (as readers split them).
        if (options.Labels?.FirstOrDefault(l => l.Contains('\n') || l.Contains('\r')) is { } broken)
            throw new ArgumentException($"Label '{broken.ReplaceLineEndings("\\n")}' contains a line break; class names for the ONNX metadata must be single lines.", nameof(options));
        var mean = model.PretrainedConfig.Mean;
        var std = model.PretrainedConfig.Std;
        bool mlnet = options.Preprocess == OnnxPreprocess.MLNet;
        double cropPct = options.CropPct ?? model.PretrainedConfig.CropPct;
        if (!(cropPct > 0 && cropPct <= 1)) throw new ArgumentException($"The crop fraction must lie in (0, 1]; got {cropPct}.", nameof(options));
        // the training evaluation's framing; the ML.NET-layout graph takes its resize size and slices the crop itself
        var crop = EvalCrop.For(h, w, cropPct);
        var (inputH, inputW) = mlnet ? (crop.ResizeHeight, crop.ResizeWidth) : (h, w);
        var calibration = options.CalibrationItems ?? options.CalibrationImages?.Select(f => new Data.ImageItem(f, 0, f)).ToList();
        if (calibration is not null && options.Precision != OnnxPrecision.Int8)
            throw new ArgumentException($"Calibration images are for a static INT8 export; the precision is {PrecisionName(options.Precision)}.", nameof(options));
        if (options.Head != OnnxHead.Classifier && (options.Labels is not null || options.IncludeFeatures))
            throw new ArgumentException("A feature export has one output: no labels and no extra features output.", nameof(options));
        var tta = options.TestTimeAugmentation;
        if (options.Head != OnnxHead.Classifier && tta != TestTimeAugmentation.None)
            throw new ArgumentException("A feature export scores each image once: test-time augmentation is for classifier exports.", nameof(options));
        var outputs = options.Head == OnnxHead.Classifier ? new List<string> { options.OutputName ?? "logits", "Score" } : [options.OutputName ?? "features"];
        if (options.IncludeFeatures) outputs.Add("features");
        var inputName = options.InputName ?? (mlnet ? ImageInput : NormalizedInput);

        Tensor[] Forward(Tensor x)
        {
            // the evaluation centre crop: constant slices on the spatial axes keep the batch dynamic
            if (inputH != h) x = x.Slice(2, crop.Top, crop.Top + h);
            if (inputW != w) x = x.Slice(3, crop.Left, crop.Left + w);
            if (mlnet)
            {
                // x / 255 normalised: x * (1 / (255 std)) + (-mean / std), per channel
                using var scale = Tensor.FromArray<float>(std.Select(s => (float)(1 / (255 * s))).ToArray(), new long[] { 1, 3, 1, 1 });
                using var shift = Tensor.FromArray<float>(mean.Zip(std, (m, s) => (float)(-m / s)).ToArray(), new long[] { 1, 3, 1, 1 });
                x = x.Mul(scale).Add(shift);
            }
            if (options.Head == OnnxHead.PooledStages)
                return [Tensor.Cat(model.ForwardStages(x).Select(stage => stage.Mean(new long[] { 2, 3 })).ToArray(), 1)];
            var f = model.ForwardFeatures(TestTimeViews.Expand(x, tta));
            if (options.Head == OnnxHead.PreLogits) return [model.ForwardHead(f, preLogits: true)];
            var logits = TestTimeViews.Merge(model.ForwardHead(f), tta);
            var score = (options.ScoreTemperature == 1 ? logits : logits.Mul(1 / options.ScoreTemperature)).Softmax(-1);
            return options.IncludeFeatures ? new[] { logits, score, TestTimeViews.Merge(model.ForwardHead(f, preLogits: true), tta) } : new[] { logits, score };
        }

        var metadata = new List<(string, string)>
        {
            ("mlnetext.backbone", model.Family),
            ("mlnetext.variant", model.Variant),
            ("mlnetext.input_name", inputName),
            ("mlnetext.input_size", $"3,{inputH},{inputW}"),
            ("mlnetext.input_layout", mlnet ? "NCHW float32 RGB planar 0-255 (ML.NET ExtractPixels defaults); centre crop and normalisation inside the graph" : "NCHW float32 RGB, normalised with mean/std"),
            ("mlnetext.mean", string.Join(",", mean.Select(v => v.ToString("R")))),
            ("mlnetext.std", string.Join(",", std.Select(v => v.ToString("R")))),
            ("mlnetext.crop_pct", cropPct.ToString("R")),
            ("mlnetext.score_temperature", options.ScoreTemperature.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            ("mlnetext.crop_in_graph", mlnet ? "true" : "false"),
            ("mlnetext.crop_size", $"{h},{w}"),
            ("mlnetext.crop_offset", $"{crop.Top},{crop.Left}"),
            ("mlnetext.resize_size", $"{crop.ResizeHeight},{crop.ResizeWidth}"),
            ("mlnetext.resize_mode", h == w ? EvalCrop.ShorterSide : EvalCrop.Stretch),
            ("mlnetext.interpolation", model.PretrainedConfig.Interpolation),
            ("mlnetext.num_classes", model.NumClasses.ToString()),
            ("mlnetext.opset", options.Opset.ToString()),
            ("mlnetext.preprocess", mlnet ? "mlnet" : "none"),
            ("mlnetext.precision", PrecisionName(options.Precision)),
            ("mlnetext.test_time_augmentation", TestTimeViews.Name(tta)),
        };
        if (options.Head != OnnxHead.Classifier) metadata.Add(("mlnetext.features", options.Head == OnnxHead.PreLogits ? "pre_logits" : "pooled_stages"));
        if (options.Labels is { } l) metadata.Add(("mlnetext.labels", string.Join("\n", l)));

        bool wasTraining = model.Training;
        model.Eval();
        try
        {
            var model_ = BuildModel(model, new long[] { 3, inputH, inputW }, Forward, inputName, outputs.ToArray(),
                options.Opset, metadata, options.Labels, $"{model.Family}/{model.Variant}");
            // norms between an activation and a 1×1 convolution: ONNX Runtime would run each as its own pass
            BatchNormFolding.IntoFollowingConvolutions(model_.Graph);
            // depthwise convolutions on channel chunks (TransXNet's MS-FFN): one convolution, no Split/Concat to break
            // ONNX Runtime's blocked layout
            DepthwiseMerging.SplitChunks(model_.Graph);
            if (options.Precision == OnnxPrecision.Int8)
            {
                if (calibration is not null) StaticInt8.Quantize(model_, calibration, options.Int8MinSide);
                else DynamicInt8.Apply(model_, options.Int8MinSide);
                model_.MetadataProps.Add(new StringStringEntryProto
                {
                    Key = "mlnetext.int8", Value = calibration is null ? "dynamic (linear layers)" : $"static, calibrated on {calibration.Count} images",
                });
            }
            else if (options.Precision == OnnxPrecision.Float16) Float16.Apply(model_);
            // weights written inline as Constant nodes: only the float16 pass makes them (ML.NET cannot read float16 initializers)
            var inline = model_.Graph.Node.Where(n => n.OpType == "Constant").Select(n => n.Attribute[0].T).ToList();
            long inlineBytes = inline.Sum(t => (long)t.RawData.Length);
            if (inlineBytes > options.ExternalDataThreshold)
                throw new OnnxExportException($"The float16 weights of {model.Family}/{model.Variant} take {inlineBytes / 1e6:F0} MB, more than the " +
                    $"{options.ExternalDataThreshold / 1e6:F0} MB written inside one ONNX file; float16 weights are Constant nodes (which ML.NET " +
                    "can load) and are not written to external data. Export float32 for a model this large.");
            var written = OnnxFile.Write(model_, path, options.ExternalDataThreshold);
            var constants = model_.Graph.Initializer.Concat(inline).ToList();
            return new OnnxExportResult(path, written, model_.Graph.Node.Count, constants.Count,
                constants.Sum(t => (long)t.RawData.Length), new[] { model_.Graph.Input[0].Name },
                model_.Graph.Output.Select(o => o.Name).ToArray(), sw.Elapsed, LastTraceTime, LastMapTime);
        }
        finally
        {
            model.Train(wasTraining);
        }
    }

    /// <summary>The precision's name on the command line and in the model's <c>mlnetext.precision</c> metadata.</summary>
    public static string PrecisionName(OnnxPrecision precision) => precision switch
    {
        OnnxPrecision.Float32 => "fp32",
        OnnxPrecision.Int8 => "int8",
        OnnxPrecision.Float16 => "fp16",
        _ => throw new ArgumentException($"Unknown ONNX precision {precision}; expected Float32, Int8 or Float16.", nameof(precision)),
    };

    /// <summary>The precision <paramref name="name"/> names as <see cref="PrecisionName"/> writes it (<c>fp32</c>,
    /// <c>int8</c>, <c>fp16</c>; any case), or null.</summary>
    public static OnnxPrecision? PrecisionFromName(string name) =>
        Enum.GetValues<OnnxPrecision>().Where(p => PrecisionName(p) == name.ToLowerInvariant()).Select(p => (OnnxPrecision?)p).FirstOrDefault();

    /// <summary>Traces <paramref name="forward"/> at batch 2 and 3 and builds the ONNX model (input [N, ..itemShape]).</summary>
    internal static ModelProto BuildModel(Module? module, long[] itemShape, Func<Tensor, Tensor[]> forward, string inputName, string[] outputNames,
        int opset, IEnumerable<(string Key, string Value)> metadata, IReadOnlyList<string>? labels = null, string graphName = "mlnetext")
    {
        if (opset < MapperRegistry.MinOpset || opset > MapperRegistry.MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), opset, $"Supported ONNX opsets are {MapperRegistry.MinOpset} to {MapperRegistry.MaxOpset}.");
        using var scope = TensorScope.Begin();
        var gen = new Random(1234);
        Trace TraceAt(long n)
        {
            var shape = new[] { n }.Concat(itemShape).ToArray();
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int k = 0; k < data.Length; k++) data[k] = (float)gen.NextDouble();
            using var x = Tensor.FromArray<float>(data, shape);
            return Tracer.Run(module, x, forward, opset);
        }
        var sw = Stopwatch.StartNew();
        using var a = TraceAt(2);
        using var b = TraceAt(3);
        TraceMerger.Merge(a, b);
        b.Dispose();
        LastTraceTime = sw.Elapsed;
        LastTracedOps = a.Nodes.Select(n => n.Op.Name).ToHashSet();
        sw.Restart();

        var g = new GraphBuilder(a, opset, inputName);
        var needed = Needed(a);
        var toMap = a.Nodes.Where(node => node.Outputs.Any(o => a[o].Dynamic) && node.Outputs.Any(needed.Contains)).ToList();  // not folded, not dead
        var unmapped = toMap.Where(n => !MapperRegistry.Maps(n.Op)).Select(n => n.OpName).Distinct().ToList();
        if (unmapped.Count > 1)
        {
            var first = toMap.First(n => !MapperRegistry.Maps(n.Op));
            throw new OnnxExportException($"No ONNX mapper for {string.Join(", ", unmapped)} (target opset {opset}; first call in module " +
                $"{(first.ModulePath.Length == 0 ? "(before any parameter was used)" : first.ModulePath)}).", first.OpName, opset, first.ModulePath);
        }
        foreach (var node in toMap)
        {
            var mapping = MapperRegistry.Find(node, opset);
            mapping.Map(new MapContext(g, node, mapping.Schema));
            foreach (var o in node.Outputs)
                if (!g.IsBound(o)) throw new InvalidOperationException($"Internal error: the mapper of {node.OpName} did not write output %{o}.");
        }
        // graph outputs: rename the producing node's output, or add an Identity
        var model = new ModelProto
        {
            IrVersion = opset <= 17 ? 8 : opset <= 20 ? 9 : 10,
            ProducerName = "MLNetExt",
            ProducerVersion = LibraryInfo.Version,
            Graph = new GraphProto { Name = graphName },
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        var outNames = new List<string>();
        for (int k = 0; k < a.OutputIds.Length; k++)
        {
            var src = g.NameOf(a.OutputIds[k]);
            g.EmitTo("Identity", new[] { src }, outputNames[k]);
            outNames.Add(outputNames[k]);
        }
        if (labels is not null) AddSlotNames(g, model, labels, "Score");
        g.RemoveDeadNodes(outNames.Concat(labels is null ? Array.Empty<string>() : new[] { "mlnet.Score.unusedOutput" }));
        RemoveIdentities(g, outNames);

        model.Graph.Node.AddRange(g.Nodes);
        model.Graph.Initializer.AddRange(g.Initializers);
        model.Graph.Input.Add(ValueInfo(inputName, a[a.InputId]));
        for (int k = 0; k < outNames.Count; k++) model.Graph.Output.Add(ValueInfo(outNames[k], a[a.OutputIds[k]]));
        model.Graph.ValueInfo.AddRange(IntermediateShapes(a, g, model.Graph));
        foreach (var (key, value) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "mlnetext.library_version", Value = LibraryInfo.Version });
        LastMapTime = sw.Elapsed;
        return model;
    }

    /// <summary>ML.NET's slot-names convention: a node named <c>mlnet.{column}.SlotNames</c> with a <c>keys_strings</c>
    /// attribute (an ai.onnx.ml LabelEncoder over a constant, output <c>mlnet.{column}.unusedOutput</c>).</summary>
    static void AddSlotNames(GraphBuilder g, ModelProto model, IReadOnlyList<string> labels, string column)
    {
        var keys = g.Fresh("mlnet_slot_names");
        var t = new TensorProto { Name = keys, DataType = (int)TensorProto.Types.DataType.String };
        t.Dims.Add(labels.Count);
        t.StringData.AddRange(labels.Select(ByteString.CopyFromUtf8));
        g.AddInitializer(t);
        var node = new NodeProto { Name = $"mlnet.{column}.SlotNames", OpType = "LabelEncoder", Domain = "ai.onnx.ml" };
        node.Input.Add(keys);
        node.Output.Add($"mlnet.{column}.unusedOutput");
        node.Attribute.Add(Attr.Strings("keys_strings", labels));
        node.Attribute.Add(Attr.Ints("values_int64s", Enumerable.Range(0, labels.Count).Select(i => (long)i)));
        node.Attribute.Add(Attr.I("default_int64", -1));
        g.Nodes.Add(node);
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "ai.onnx.ml", Version = 2 });
    }

    /// <summary>Removes Identity nodes whose output is not a graph output (readers take the input directly).</summary>
    static void RemoveIdentities(GraphBuilder g, List<string> outputs)
    {
        var keep = new HashSet<string>(outputs);
        var rename = new Dictionary<string, string>();
        string R(string n) { while (rename.TryGetValue(n, out var m)) n = m; return n; }
        var kept = new List<NodeProto>();
        foreach (var node in g.Nodes)
        {
            for (int k = 0; k < node.Input.Count; k++) node.Input[k] = R(node.Input[k]);
            if (node.OpType == "Identity" && node.Domain.Length == 0 && !keep.Contains(node.Output[0])) { rename[node.Output[0]] = node.Input[0]; continue; }
            kept.Add(node);
        }
        g.Nodes.Clear();
        g.Nodes.AddRange(kept);
    }

    /// <summary>Values some output depends on (backwards from the outputs through producers).</summary>
    static HashSet<int> Needed(Trace t)
    {
        var needed = new HashSet<int>(t.OutputIds);
        for (int i = t.Nodes.Count - 1; i >= 0; i--)
        {
            var node = t.Nodes[i];
            if (!node.Outputs.Any(needed.Contains)) continue;
            foreach (var arg in node.Args)
            {
                if (arg.Kind == TArgKind.Tensor) needed.Add(arg.ValueId);
                else if (arg.Kind is TArgKind.TensorList or TArgKind.OptionalTensorList)
                    foreach (var v in (int?[])arg.Ref!) if (v is { } id) needed.Add(id);
            }
        }
        return needed;
    }

    /// <summary>Type and shape of every traced value the graph computes (not its inputs and outputs), with the batch
    /// dimension as N. ONNX Runtime starts its shape inference from these: without them, shapes computed at run time
    /// (a Reshape to Shape(x), a Scan's output) leave the batch dimension unknown downstream, which stops fusions that
    /// need two shapes to be provably equal (e.g. a residual Add into the convolution before it).</summary>
    static IEnumerable<ValueInfoProto> IntermediateShapes(Trace trace, GraphBuilder g, GraphProto graph)
    {
        var computed = graph.Node.SelectMany(n => n.Output).ToHashSet();
        computed.ExceptWith(graph.Output.Select(o => o.Name));
        var infos = new Dictionary<string, ValueInfoProto>();
        var ambiguous = new HashSet<string>();
        foreach (var v in trace.Values.Where(v => v.Dynamic && g.IsBound(v.Id)))
        {
            var name = g.NameOf(v.Id);
            if (!computed.Contains(name)) continue;
            var info = ValueInfo(name, v);
            // two traced values bound to one name (an alias) with different shapes: leave that name to inference
            if (infos.TryGetValue(name, out var seen) && !seen.Equals(info)) ambiguous.Add(name);
            infos[name] = info;
        }
        return infos.Where(kv => !ambiguous.Contains(kv.Key)).Select(kv => kv.Value);
    }

    static ValueInfoProto ValueInfo(string name, TValue v) => GraphEdits.Value(name, OnnxTypes.Of(v.DType), Shape(v));

    /// <summary>Static dimensions as numbers, the batch dimension as N, other batch-dependent sizes (B·C) unnamed.</summary>
    static TensorShapeProto Shape(TValue v)
    {
        var s = new TensorShapeProto();
        for (int k = 0; k < v.Shape.Length; k++)
            s.Dim.Add(v.BatchDims.Length > k && v.BatchDims[k] ? new TensorShapeProto.Types.Dimension { DimParam = "N" }
                : v.DynamicDims.Length > k && v.DynamicDims[k] ? new TensorShapeProto.Types.Dimension()
                : new TensorShapeProto.Types.Dimension { DimValue = v.Shape[k] });
        return s;
    }

    [ThreadStatic] internal static TimeSpan LastTraceTime, LastMapTime;
    /// <summary>The aten operators recorded by the last export on this thread (for coverage tests).</summary>
    [ThreadStatic] internal static HashSet<string>? LastTracedOps;
}

using System.Numerics;
using MLNetExt.Serialization;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Serialization;

[TestClass]
public sealed class TorchCheckpointTests
{
    // Every fixture read back exactly: names in file order, dtypes, shapes, bytes, strides and storage sharing.
    [TestMethod]
    [DataRow("flat.pth")]
    [DataRow("protocol4.pth")]
    [DataRow("nested.pth.tar")]
    [DataRow("ema.pth")]
    [DataRow("ema_only.pth")]
    [DataRow("module_prefix.pth")]
    [DataRow("whole_module.pt")]
    [DataRow("dtypes.pt")]
    [DataRow("views.pt")]
    public void FixtureMatchesPython(string fixture)
    {
        Ckpt.NoLeak(() =>
        {
            using var sd = TorchCheckpoint.LoadStateDict(Ckpt.Path(fixture));
            using var expected = Ckpt.Expected(fixture);
            Ckpt.AssertSame(expected, sd, fixture);

            var rows = Ckpt.Rows(fixture);
            Assert.AreEqual(rows.Count, sd.Count);
            var bases = new Dictionary<int, long>();
            foreach (var r in rows)
            {
                var t = sd[r.Name];
                Assert.AreEqual(r.DType, t.DType.TorchName(), r.Name);
                CollectionAssert.AreEqual(r.Shape, t.Shape, $"shape of {r.Name}");
                CollectionAssert.AreEqual(r.Stride, t.Strides, $"strides of {r.Name}");
                Assert.AreEqual(Device.Cpu, t.Device);
                Assert.IsFalse(t.RequiresGrad, r.Name);
                if (t.NumEl == 0) continue;   // an empty tensor's storage address is meaningless
                long b = Ckpt.StorageBase(t, r.StorageOffset);
                if (bases.TryGetValue(r.Storage, out var other))
                    Assert.AreEqual(other, b, $"{r.Name} should share storage {r.Storage} as in Python");
                else
                {
                    Assert.IsFalse(bases.ContainsValue(b), $"{r.Name} shares a storage it did not share in Python");
                    bases[r.Storage] = b;
                }
            }
        }, fixture);
    }

    [TestMethod]
    public void ViewsShareMemoryLikePython()
    {
        using var sd = TorchCheckpoint.LoadStateDict(Ckpt.Path("views.pt"));
        var t = sd["transposed"];
        Assert.IsFalse(t.IsContiguous);
        CollectionAssert.AreEqual(new long[] { 1, 6 }, t.Strides);
        CollectionAssert.AreEqual(new long[] { 0, 1 }, sd["expanded"].Strides);

        // Writing through the base shows in every view of its storage; the aliased entry is one tensor.
        sd["base"].Fill_(-1);
        CollectionAssert.AreEqual(Enumerable.Repeat(-1f, 24).ToArray(), t.ToArray<float>());
        CollectionAssert.AreEqual(Enumerable.Repeat(-1f, 6).ToArray(), sd["slice"].ToArray<float>());
        CollectionAssert.AreEqual(Enumerable.Repeat(-1f, 6).ToArray(), sd["row"].ToArray<float>());
        sd["alias1"].Fill_(4);
        CollectionAssert.AreEqual(new[] { 4f, 4f, 4f }, sd["alias2"].ToArray<float>());
        Assert.AreEqual(sd["shared_a"].CpuDataPointer + 5 * 8, sd["shared_b"].CpuDataPointer);
        CollectionAssert.AreEqual(new long[] { 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 }, sd["shared_b"].ToArray<long>());
    }

    [TestMethod]
    public void DtypesAndSpecialValues()
    {
        using var sd = TorchCheckpoint.LoadStateDict(Ckpt.Path("dtypes.pt"));
        var f32 = sd["f32"].ToArray<float>();
        Assert.IsTrue(float.IsNaN(f32[0]));
        Assert.AreEqual(float.PositiveInfinity, f32[1]);
        Assert.IsTrue(f32[2] == 0 && float.IsNegative(f32[2]));
        CollectionAssert.AreEqual(new[] { -(1L << 40), 7, 1L << 62 }, sd["i64"].ToArray<long>());
        CollectionAssert.AreEqual(new[] { -5, int.MaxValue }, sd["i32"].ToArray<int>());
        CollectionAssert.AreEqual(new short[] { -300, 300 }, sd["i16"].ToArray<short>());
        CollectionAssert.AreEqual(new sbyte[] { -128, 127 }, sd["i8"].ToArray<sbyte>());
        CollectionAssert.AreEqual(new byte[] { 0, 200, 255 }, sd["u8"].ToArray<byte>());
        CollectionAssert.AreEqual(new[] { true, false, true }, sd["bool"].ToArray<bool>());
        Assert.AreEqual(0, sd["scalar"].Dim);
        Assert.AreEqual(2.5, sd["scalar"].ToDouble());
        CollectionAssert.AreEqual(new long[] { 0, 3 }, sd["empty"].Shape);
        CollectionAssert.AreEqual(new[] { 1f, 1f }, sd["param"].ToArray<float>());
        Assert.AreEqual(DType.BFloat16, sd["bf16"].DType);
        Assert.AreEqual(DType.Float16, sd["f16"].DType);
    }

    [TestMethod]
    public void NestedCheckpointKeepsNonTensorValues()
    {
        using var ckpt = TorchCheckpoint.Load(Ckpt.Path("nested.pth.tar"));
        var root = (PyDict)ckpt.Root!;
        CollectionAssert.AreEqual(new object[] { "model", "epoch", "args", "optimizer", "best_acc", "note", "tag", "pair", "big", "neg", "numpy", "set" },
            root.Select(kv => kv.Key).ToArray());
        Assert.AreEqual(3L, root["epoch"]);
        Assert.AreEqual(0.75, root["best_acc"]);
        Assert.IsNull(root["note"]);
        CollectionAssert.AreEqual("raw\0bytes"u8.ToArray(), (byte[])root["tag"]!);
        var pair = (PyTuple)root["pair"]!;
        CollectionAssert.AreEqual(new object[] { 1L, "two", 3.5 }, pair.ToArray());
        Assert.AreEqual(BigInteger.Pow(2, 70), root["big"]);
        Assert.AreEqual(-123456789012L, root["neg"]);

        var args = (PyObject)root["args"]!;
        Assert.AreEqual("argparse.Namespace", args.TypeName);
        Assert.IsTrue(args.TryGetAttribute("lr", out var lr));
        Assert.AreEqual(0.1, lr);
        Assert.IsTrue(args.TryGetAttribute("name", out var name));
        Assert.AreEqual("resnet", name);
        Assert.IsTrue(args.TryGetAttribute("layers", out var layers));
        CollectionAssert.AreEqual(new object[] { 1L, 2L }, (List<object?>)layers!);
        Assert.IsTrue(args.TryGetAttribute("flag", out var flag));
        Assert.AreEqual(true, flag);

        var np = (PyObject)root["numpy"]!;
        Assert.AreEqual("numpy.core.multiarray.scalar", np.TypeName);
        CollectionAssert.AreEqual(BitConverter.GetBytes(0.5), (byte[])np.Args[1]!);
        var set = (PyObject)root["set"]!;
        Assert.AreEqual("builtins.set", set.TypeName);
        CollectionAssert.AreEqual(new object[] { 3L }, set.Items);

        var opt = (PyDict)root["optimizer"]!;
        var state = (PyDict)opt["state"]!;
        Assert.AreEqual(0L, state[0].Key);
        Assert.IsInstanceOfType<Tensor>(((PyDict)state[0].Value!)["momentum_buffer"]);
        var group = (PyDict)((List<object?>)opt["param_groups"]!)[0]!;
        Assert.AreEqual(0.9, group["momentum"]);
        CollectionAssert.AreEqual(new object[] { 0L, 1L, 2L, 3L, 4L, 5L }, (List<object?>)group["params"]!);

        // The state_dict keeps the _metadata attribute torch attaches.
        var model = (PyDict)root["model"]!;
        Assert.AreEqual("collections.OrderedDict", model.TypeName);
        Assert.IsInstanceOfType<PyDict>(model.Attributes);

        using var sd = ckpt.ToStateDict();
        StringAssert.StartsWith(sd[0].Key, "model.");
        Assert.IsTrue(sd.ContainsKey("optimizer.state.0.momentum_buffer"));
    }

    [TestMethod]
    public void ModelWeightsPickTheUsualWrappers()
    {
        using var flat = TorchCheckpoint.LoadStateDict(Ckpt.Path("flat.pth"));
        var names = flat.Names.ToList();
        Assert.AreEqual("1.num_batches_tracked", names[6]);

        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("flat.pth"))) Ckpt.AssertSame(flat, w, "flat");
        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("module_prefix.pth"))) Ckpt.AssertSame(flat, w, "module. stripped");
        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("ema.pth"))) Ckpt.AssertSame(flat, w, "ema.pth state_dict");
        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("nested.pth.tar")))
        using (var all = TorchCheckpoint.LoadStateDict(Ckpt.Path("nested.pth.tar")))
        {
            CollectionAssert.AreEqual(names, w.Names.ToList(), "'model' wrapper");
            TensorAssert.Equal(all["model.0.weight"], w["0.weight"], "nested model");
        }

        using var ema = TorchCheckpoint.LoadStateDict(Ckpt.Path("ema.pth"));
        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("ema.pth"), preferEma: true))
        {
            CollectionAssert.AreEqual(names, w.Names.ToList());
            TensorAssert.Equal(ema["state_dict_ema.3.bias"], w["3.bias"], "preferEma");
        }
        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("ema_only.pth")))
        using (var e = Ckpt.Expected("ema_only.pth"))
        {
            CollectionAssert.AreEqual(names, w.Names.ToList(), "only state_dict_ema present");
            TensorAssert.Equal(e["state_dict_ema.0.weight"], w["0.weight"]);
        }
        // A pickled nn.Module under 'model' gives its state_dict (parameters, buffers, submodules in order).
        using (var w = TorchCheckpoint.LoadModelWeights(Ckpt.Path("whole_module.pt")))
        using (var e = Ckpt.Expected("whole_module.pt"))
        {
            CollectionAssert.AreEqual(names, w.Names.ToList(), "whole module");
            TensorAssert.Equal(e["model.1.running_var"], w["1.running_var"]);
        }
    }

    [TestMethod]
    public void StateDictOutlivesCheckpointAndFreesEverything()
    {
        Ckpt.NoLeak(() =>
        {
            StateDict sd;
            using (var ckpt = TorchCheckpoint.Load(Ckpt.Path("views.pt"))) sd = ckpt.ToStateDict();
            using (sd)
                CollectionAssert.AreEqual(Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), sd["base"].ToArray<float>());
            Assert.AreEqual(0, sd.Count);
        }, "views.pt");

        // Loading inside a TensorScope must not hand the scope the caller's tensors.
        using var outer = TorchCheckpoint.LoadStateDict(Ckpt.Path("flat.pth"));
        StateDict inner;
        using (TensorScope.Begin()) inner = TorchCheckpoint.LoadStateDict(Ckpt.Path("flat.pth"));
        using (inner) Ckpt.AssertSame(outer, inner, "loaded inside a scope");
    }

    [TestMethod]
    public void StateDictLookupAndPrefix()
    {
        using var sd = new StateDict();
        sd.Add("module.a", Tensor.From(1f));
        sd.Add("module.b", Tensor.From(2f));
        Assert.ThrowsExactly<ArgumentException>(() => sd.Add("module.a", Tensor.From(3f)));
        var e = Assert.ThrowsExactly<KeyNotFoundException>(() => sd["a"]);
        StringAssert.Contains(e.Message, "module.a");
        sd.StripPrefix("module.");
        CollectionAssert.AreEqual(new[] { "a", "b" }, sd.Names.ToList());
        Assert.IsTrue(sd.TryGetValue("b", out var b));
        Assert.AreEqual(2f, b.ToSingle());
    }

    [TestMethod]
    public void DeflatedArchiveReadsTheSame()
    {
        using var dir = new TempDir();
        var path = dir.File("deflated.pth");
        Ckpt.RewriteZip(Ckpt.Path("views.pt"), path, (_, b) => b, System.IO.Compression.CompressionLevel.Optimal);
        using var a = TorchCheckpoint.LoadStateDict(Ckpt.Path("views.pt"));
        using var b = TorchCheckpoint.LoadStateDict(path);
        Ckpt.AssertSame(a, b, "deflated");
    }
}

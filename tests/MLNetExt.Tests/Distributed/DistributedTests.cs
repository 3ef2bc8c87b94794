using MLNetExt.Distributed;
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Torch;

namespace MLNetExt.Tests.Distributed;

/// <summary>c10d through the bridge on loopback: each rank is a thread with its own Gloo process group (as a process
/// would have), rank 0 hosting the TCPStore rendezvous.</summary>
[TestClass]
public sealed class DistributedTests
{
    static int FreePort() => MLNetExt.Cli.WorkerLauncher.FreePort();

    /// <summary>Runs <paramref name="body"/> on every rank (a thread each) of a fresh group and returns the ranks' results.</summary>
    internal static T[] OnRanks<T>(int world, Func<ProcessGroup, T> body, double timeoutSeconds = 30)
    {
        int port = FreePort();
        var ranks = Enumerable.Range(0, world).Select(r => Task.Factory.StartNew(() =>
        {
            using var g = ProcessGroup.Join("127.0.0.1", port, r, world, TimeSpan.FromSeconds(timeoutSeconds), "lo");
            return body(g);
        }, TaskCreationOptions.LongRunning)).ToArray();
        Assert.IsTrue(Task.WaitAll(ranks, TimeSpan.FromSeconds(120)), "every rank finished");
        return ranks.Select(t => t.Result).ToArray();
    }

    [TestMethod]
    public void Collectives_SumBroadcastAndBarrier_AcrossTwoRanks()
    {
        var results = OnRanks(2, g =>
        {
            using var scope = TensorScope.Begin();
            var x = Tensor.FromArray<float>([g.Rank + 1, 10 * (g.Rank + 1)], [2]);
            g.AllReduceSum(x);
            var b = Tensor.FromArray<float>([g.Rank == 1 ? 7 : 0, g.Rank == 1 ? 8 : 0, 9], [3]);
            g.Broadcast(b, root: 1);
            g.Barrier();
            return (g.Rank, g.WorldSize, g.IsMain, Sum: x.ToArray<float>(), Broadcast: b.ToArray<float>());
        });
        foreach (var r in results)
        {
            CollectionAssert.AreEqual(new float[] { 3, 30 }, r.Sum, $"rank {r.Rank}: all-reduce sums");
            CollectionAssert.AreEqual(new float[] { 7, 8, 9 }, r.Broadcast, $"rank {r.Rank}: rank 1's tensor");
            Assert.AreEqual((2, r.Rank == 0), (r.WorldSize, r.IsMain));
        }
    }

    /// <summary>The differentiable all-reduce (synchronised BatchNorm's): y = x0 + x1 on both ranks; rank r's loss is
    /// sum(c_r * y), so d(loss0 + loss1)/dx_r = c0 + c1 on both ranks, which the backward's all-reduce provides.
    /// A backward run after the group was closed fails with a message instead of touching freed memory.</summary>
    [TestMethod]
    public void DifferentiableAllReduce_SumsTheGradientsOverTheRanks()
    {
        var results = OnRanks(2, g =>
        {
            using var scope = TensorScope.Begin();
            var x = Tensor.FromArray<float>([g.Rank + 1, 2 * (g.Rank + 1)], [2]).RequiresGrad_();
            var y = g.AllReduceSumDifferentiable(x);
            using var c = Tensor.FromArray<float>(g.Rank == 0 ? [1, 10] : [100, 1000], [2]);
            y.Mul(c).Sum().Backward();
            var late = g.AllReduceSumDifferentiable(x).Sum().DetachFromScope();
            return (Y: y.ToArray<float>(), Grad: x.Grad!.ToArray<float>(), Late: late);
        });
        foreach (var r in results)
        {
            CollectionAssert.AreEqual(new float[] { 3, 6 }, r.Y, "forward: the sum");
            CollectionAssert.AreEqual(new float[] { 101, 1010 }, r.Grad, "backward: the gradient summed over the ranks");
        }
        // the groups are closed now (OnRanks disposes them); the recorded graph's backward names the problem
        var e = Assert.ThrowsExactly<TorchException>(() => results[0].Late.Backward());
        StringAssert.Contains(e.Message, "the process group was closed");
    }

    [TestMethod]
    public void AMissingRank_EndsTheRendezvousWithinTheTimeout_NamingTheRank()
    {
        int port = FreePort();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<TorchException>(() => ProcessGroup.Join("127.0.0.1", port, 0, 2, TimeSpan.FromSeconds(2), "lo"));
        Assert.IsLessThan(30.0, clock.Elapsed.TotalSeconds, "bounded by the timeout, no hang");
        StringAssert.Contains(e.Message, $"joining the process group at 127.0.0.1:{port} as rank 0 of 2");
    }

    [TestMethod]
    public void ARankThatLeaves_FailsTheOthersCollective_InsteadOfHanging()
    {
        var results = OnRanks(2, g =>
        {
            using var scope = TensorScope.Begin();
            if (g.Rank == 1) return "";       // rank 1 leaves (its group is disposed) without taking part
            try
            {
                g.AllReduceSum(Tensor.Ones([4]));
                return "no error";
            }
            catch (TorchException e) { return e.Message; }
        }, timeoutSeconds: 5);
        StringAssert.Contains(results[0], "all-reduce (rank 0 of 2");
    }

    [TestMethod]
    public void Environment_FollowsTorchrunsVariables_AndNamesWhatIsWrong()
    {
        Func<string, string?> Env(params (string, string)[] vars) => name => vars.FirstOrDefault(v => v.Item1 == name).Item2;
        Assert.IsNull(ProcessGroup.ReadEnvironment(Env()), "no WORLD_SIZE: single process");
        Assert.AreEqual(("10.0.0.1", 29500, 3, 4),
            ProcessGroup.ReadEnvironment(Env(("WORLD_SIZE", "4"), ("RANK", "3"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500"))));
        var missing = Assert.ThrowsExactly<ArgumentException>(() => ProcessGroup.ReadEnvironment(Env(("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1"))));
        StringAssert.Contains(missing.Message, "RANK is not set");
        var rank = Assert.ThrowsExactly<ArgumentException>(() => ProcessGroup.ReadEnvironment(Env(("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1"))));
        StringAssert.Contains(rank.Message, "RANK must be an integer in [0, 1]; got '2'");
        var port = Assert.ThrowsExactly<ArgumentException>(() => ProcessGroup.ReadEnvironment(Env(("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "x"))));
        StringAssert.Contains(port.Message, "MASTER_PORT must be an integer in [1, 65535]; got 'x'");
    }

    [TestMethod]
    public void Shard_GivesEachItemToOneRank_AndStepKOfAllRanksIsGlobalBatchK()
    {
        var order = Enumerable.Range(0, 23).Select(i => (i * 7) % 23).ToList();   // a shuffled epoch
        const int globalBatch = 8, world = 4;
        var shards = Enumerable.Range(0, world).Select(r => DataParallel.Shard(order, globalBatch, r, world)).ToList();
        CollectionAssert.AreEquivalent(order, shards.SelectMany(s => s).ToList(), "every item exactly once");
        // steps of globalBatch / world per rank; the last global batch (7 items) splits 2, 2, 2, 1
        for (int step = 0; step * globalBatch < order.Count; step++)
        {
            var global = order.Skip(step * globalBatch).Take(globalBatch).ToList();
            var union = shards.SelectMany(s => s.Skip(step * (globalBatch / world)).Take(globalBatch / world)).ToList();
            if (step == 2) union = shards.SelectMany((s, r) => s.Skip(4).Take(r < 3 ? 2 : 1)).ToList();
            CollectionAssert.AreEqual(global, union, $"step {step}");
        }
        Assert.ThrowsExactly<ArgumentException>(() => DataParallel.Shard(order, 6, 0, 4));
    }

    sealed class Mlp : Module<Tensor, Tensor>
    {
        readonly Linear _fc1, _fc2;

        public Mlp()
        {
            _fc1 = RegisterModule("fc1", new Linear(6, 16));
            _fc2 = RegisterModule("fc2", new Linear(16, 3));
        }

        public override Tensor Forward(Tensor x) => _fc2.Call(F.Gelu(_fc1.Call(x)));
    }

    [TestMethod]
    public void TwoRanks_EqualOneProcessWithTheWholeBatch_ForTwoSteps()
    {
        // the data: 7 samples (shards of 4 and 3), two steps
        TorchRuntime.ManualSeed(3);
        float[] xs = Tensor.Randn([7, 6]).ToArray<float>();
        long[] ys = [0, 2, 1, 1, 0, 2, 2];

        Dictionary<string, float[]> Train(Mlp model, IReadOnlyList<int> items, ProcessGroup? group)
        {
            using var optimizer = new AdamW(model.Parameters(), lr: 1e-2, weightDecay: 0.05);
            for (int step = 0; step < 2; step++)
            {
                using var scope = TensorScope.Begin();
                var x = Tensor.FromArray<float>(items.SelectMany(i => xs.Skip(6 * i).Take(6)).ToArray(), [items.Count, 6]);
                var y = Tensor.FromArray<long>(items.Select(i => ys[i]).ToArray(), [items.Count]);
                optimizer.ZeroGrad();
                F.CrossEntropy(model.Call(x), y).Backward();
                if (group is not null) Assert.AreEqual(7L, DataParallel.AverageGradients(model.Parameters(), items.Count, group));
                optimizer.Step();
            }
            return model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.ToArray<float>());
        }

        TorchRuntime.ManualSeed(11);
        Dictionary<string, float[]> single;
        using (var model = new Mlp()) single = Train(model, Enumerable.Range(0, 7).ToList(), null);

        // each rank initialises differently (made here: libtorch's generator is per process); rank 0's weights (seed 11,
        // as the single run) reach every rank
        TorchRuntime.ManualSeed(11);
        using var model0 = new Mlp();
        TorchRuntime.ManualSeed(99);
        using var model1 = new Mlp();
        var ranks = OnRanks(2, g =>
        {
            var model = g.Rank == 0 ? model0 : model1;
            DataParallel.BroadcastState(model, g);
            return Train(model, DataParallel.Shard(Enumerable.Range(0, 7).ToList(), 8, g.Rank, 2), g);
        });
        foreach (var (key, expected) in single)
            for (int r = 0; r < 2; r++)
                for (int i = 0; i < expected.Length; i++)
                    Assert.AreEqual(expected[i], ranks[r][key][i], 1e-5, $"rank {r}: {key}[{i}] after two steps");
    }

    /// <summary>The reducer that overlaps the all-reduce with the backward gives the gradients that averaging after the
    /// backward gives: two micro-batches (the first only accumulates), unequal shards (3 and 2 samples), a parameter
    /// the forward does not use (reduced as zeros by both), buckets small enough that some start during the backward.
    /// A rank that arms twice, or finishes without arming, is told so.</summary>
    [TestMethod]
    public void GradientReducer_DuringTheBackward_EqualsAveragingAfterIt()
    {
        TorchRuntime.ManualSeed(5);
        float[] xs = Tensor.Randn([5, 6]).ToArray<float>();
        long[] ys = [0, 2, 1, 1, 0];
        TorchRuntime.ManualSeed(13);
        using var model0 = new Mlp();
        using var unused0 = new Linear(3, 3);
        TorchRuntime.ManualSeed(13);
        using var model1 = new Mlp();
        using var unused1 = new Linear(3, 3);
        var results = OnRanks(2, g =>
        {
            var (model, unused) = g.Rank == 0 ? (model0, unused0) : (model1, unused1);
            // the unused parameter first: buckets start in order from the last parameter, and one that no hook fills
            // holds the later buckets back until Finish (as in PyTorch's DDP without find_unused_parameters)
            var parameters = unused.Parameters().Concat(model.Parameters()).ToList();
            int[] mine = g.Rank == 0 ? [0, 1, 2] : [3, 4];
            void Backward(IEnumerable<int> items, double scale)
            {
                using var scope = TensorScope.Begin();
                var ids = items.ToArray();
                var x = Tensor.FromArray<float>(ids.SelectMany(i => xs.Skip(6 * i).Take(6)).ToArray(), [ids.Length, 6]);
                var y = Tensor.FromArray<long>(ids.Select(i => ys[i]).ToArray(), [ids.Length]);
                F.CrossEntropy(model.Call(x), y).Mul(scale).Backward();
            }
            float[][] Grads() => parameters.Select(p => p.Grad!.ToArray<float>()).ToArray();
            void Zero() { foreach (var p in parameters) p.Grad = null; }

            Backward(mine.Take(1), 0.5);
            Backward(mine.Skip(1), 0.5);
            Assert.AreEqual(5L, DataParallel.AverageGradients(parameters, mine.Length, g));
            var expected = Grads();
            Zero();
            using var reducer = new GradientReducer(parameters, g, bucketBytes: 64);
            Backward(mine.Take(1), 0.5);
            Assert.AreEqual(5L, reducer.Prepare(mine.Length));
            var twice = Assert.ThrowsExactly<TorchException>(() => reducer.Prepare(mine.Length)).Message;
            Backward(mine.Skip(1), 0.5);
            int overlapped = reducer.Finish();
            var early = Assert.ThrowsExactly<TorchException>(() => reducer.Finish()).Message;
            return (Expected: expected, Actual: Grads(), Overlapped: overlapped, Twice: twice, Early: early);
        });
        foreach (var r in results)
        {
            for (int k = 0; k < r.Expected.Length; k++)
                for (int i = 0; i < r.Expected[k].Length; i++)
                    Assert.AreEqual(r.Expected[k][i], r.Actual[k][i], 1e-6, $"parameter {k}[{i}]");
            Assert.IsTrue(r.Expected[0].All(v => v == 0), "the unused parameter's gradient is zero");
            Assert.IsGreaterThan(0, r.Overlapped, "buckets started while the backward ran");
            StringAssert.Contains(r.Twice, "already armed");
            StringAssert.Contains(r.Early, "was not armed");
        }
        CollectionAssert.AreEqual(results[0].Actual.SelectMany(a => a).ToArray(), results[1].Actual.SelectMany(a => a).ToArray(), "both ranks hold the same gradients");
    }
}

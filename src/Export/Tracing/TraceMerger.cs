namespace MLNetExt.Export.Tracing;

/// <summary>
/// Makes the batch axis symbolic: the model is traced at two batch sizes; the two records must be the same program
/// and every integer argument that differs between them is a size computed in C# from the batch. Such an integer is
/// solved as <c>A * N + B</c> (exact for the products and sums of sizes a forward pass computes) and becomes a graph
/// computation from the input's shape. Values that depend on such sizes are marked dynamic so that they are not
/// folded into constants.
/// </summary>
internal static class TraceMerger
{
    public static void Merge(Trace a, Trace b)
    {
        long na = a.Batch, nb = b.Batch;
        if (a.Nodes.Count != b.Nodes.Count)
            throw new OnnxExportException($"The forward pass ran {a.Nodes.Count} operators at batch {na} but {b.Nodes.Count} at batch {nb}; " +
                "control flow that depends on the batch size cannot be exported with a symbolic batch.");
        if (a.Values.Count != b.Values.Count)
            throw new OnnxExportException($"The forward pass made {a.Values.Count} tensors at batch {na} but {b.Values.Count} at batch {nb}.");
        for (int i = 0; i < a.Nodes.Count; i++)
        {
            TNode x = a.Nodes[i], y = b.Nodes[i];
            if (x.Op != y.Op || x.Args.Length != y.Args.Length || !x.Outputs.SequenceEqual(y.Outputs))
                throw Diverged(i, x, y, na, nb);
            for (int k = 0; k < x.Args.Length; k++)
            {
                TArg p = x.Args[k], q = y.Args[k];
                if (p.Kind != q.Kind) throw Diverged(i, x, y, na, nb);
                switch (p.Kind)
                {
                    case TArgKind.Tensor:
                        if (p.ValueId != q.ValueId) throw Diverged(i, x, y, na, nb);
                        break;
                    case TArgKind.TensorList:
                    case TArgKind.OptionalTensorList:
                        if (!((int?[])p.Ref!).SequenceEqual((int?[])q.Ref!)) throw Diverged(i, x, y, na, nb);
                        break;
                    case TArgKind.Int:
                        if (p.I != q.I) p.Sym = new SymInt?[] { Solve(p.I, q.I, na, nb, x, k) };
                        break;
                    case TArgKind.IntList:
                    {
                        long[] u = (long[])p.Ref!, w = (long[])q.Ref!;
                        if (u.Length != w.Length) throw Diverged(i, x, y, na, nb);
                        for (int e = 0; e < u.Length; e++)
                            if (u[e] != w[e])
                            {
                                p.Sym ??= new SymInt?[u.Length];
                                p.Sym[e] = Solve(u[e], w[e], na, nb, x, k);
                            }
                        break;
                    }
                    case TArgKind.Double:
                        if (p.D != q.D)
                            throw new OnnxExportException($"{x.OpName} (operator #{i}, module {x.ModulePath}) received argument {k} = {p.D} at batch {na} " +
                                $"but {q.D} at batch {nb}; a floating-point value computed from the batch size cannot be made symbolic.", x.OpName, 0, x.ModulePath);
                        break;
                    default:
                        break;
                }
            }
        }
        for (int id = 0; id < a.Values.Count; id++)
        {
            TValue u = a.Values[id], w = b.Values[id];
            if (u.Shape.Length != w.Shape.Length || u.DType != w.DType)
                throw new OnnxExportException($"Tensor %{id} has rank/type {u.Shape.Length}/{u.DType} at batch {na} but {w.Shape.Length}/{w.DType} at batch {nb}.");
            u.DynamicDims = u.Shape.Zip(w.Shape, (s, t) => s != t).ToArray();
            u.BatchDims = u.Shape.Zip(w.Shape, (s, t) => s == na && t == nb).ToArray();
            if (u.Producer < 0 && !u.IsInput && u.DynamicDims.Any(d => d))
                throw new OnnxExportException($"A constant tensor{(u.StateKey is null ? "" : $" '{u.StateKey}'")} made outside the traced operators has shape " +
                    $"[{string.Join(", ", u.Shape)}] at batch {na} but [{string.Join(", ", w.Shape)}] at batch {nb}; make batch-sized tensors with tensor operations.");
        }
        // values that depend on batch-dependent integers are not constants either
        foreach (var node in a.Nodes)
        {
            bool dyn = node.Args.Any(arg => arg.IsSymbolic || (arg.Kind == TArgKind.Tensor && a[arg.ValueId].Dynamic)
                || (arg.Kind is TArgKind.TensorList or TArgKind.OptionalTensorList && ((int?[])arg.Ref!).Any(v => v is { } id && a[id].Dynamic)));
            if (!dyn) continue;
            foreach (var o in node.Outputs)
            {
                var v = a[o];
                if (!v.Dynamic)
                {
                    v.Dynamic = true;
                    v.Constant?.Dispose();
                    v.Constant = null;
                }
            }
        }
    }

    static SymInt Solve(long va, long vb, long na, long nb, TNode node, int arg)
    {
        long slope = (vb - va) / (nb - na);
        if (slope * (nb - na) != vb - va)
            throw new OnnxExportException($"{node.OpName} (module {node.ModulePath}) received the integer {va} at batch {na} and {vb} at batch {nb} " +
                $"in argument {arg}; it is not a whole multiple of the batch size plus a constant.", node.OpName, 0, node.ModulePath);
        return new SymInt(slope, va - slope * na);
    }

    static OnnxExportException Diverged(int i, TNode x, TNode y, long na, long nb) =>
        new($"The forward pass differs between batch {na} and batch {nb} at operator #{i}: {x.OpName}({string.Join(", ", x.Args.Select(a => a.ToString()))}) " +
            $"vs {y.OpName}({string.Join(", ", y.Args.Select(a => a.ToString()))}) (module {x.ModulePath}); control flow that depends on the batch " +
            "size cannot be exported with a symbolic batch.", x.OpName, 0, x.ModulePath);
}

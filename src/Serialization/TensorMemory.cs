using MLNetExt.Torch;
using Microsoft.Win32.SafeHandles;

namespace MLNetExt.Serialization;

/// <summary>Direct access to the bytes of CPU tensors, so file data moves between disk and tensor memory
/// without a managed intermediate.</summary>
internal static class TensorMemory
{
    /// <summary>A new uninitialised 1-D (or shaped) CPU tensor the caller owns, whatever scope is open.</summary>
    public static Tensor Allocate(long[] shape, DType dtype) => Tensor.Empty(shape, dtype, Device.Cpu).DetachFromScope();

    /// <summary>Reads exactly <paramref name="length"/> bytes at <paramref name="offset"/> into native memory.</summary>
    public static unsafe void ReadExactly(SafeFileHandle file, long offset, byte* dest, long length, Func<string, Exception> error)
    {
        long done = 0;
        while (done < length)
        {
            int chunk = (int)Math.Min(length - done, 1 << 30);
            int n = RandomAccess.Read(file, new Span<byte>(dest + done, chunk), offset + done);
            if (n <= 0) throw error($"the file ended at byte {offset + done} while {length - done} more bytes were expected");
            done += n;
        }
    }

    /// <summary>Runs <paramref name="work"/> over the items (largest first is best), in parallel when there is
    /// enough data to be worth it; the first failure is rethrown as itself (not wrapped).</summary>
    public static void ForEach<T>(IReadOnlyList<T> items, long totalBytes, Action<T> work)
    {
        if (items.Count < 2 || totalBytes < (16 << 20))
        {
            foreach (var i in items) work(i);
            return;
        }
        try
        {
            Parallel.ForEach(System.Collections.Concurrent.Partitioner.Create(items, System.Collections.Concurrent.EnumerablePartitionerOptions.NoBuffering), new ParallelOptions { MaxDegreeOfParallelism = Math.Min(Environment.ProcessorCount, 8) }, work);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }
}

using System.Globalization;
using MLNetExt.Torch;
using MLNetExt.Torch.Interop;

namespace MLNetExt.Distributed;

/// <summary>
/// A group of processes that train together, on libtorch's own distributed engine (c10d: a TCPStore rendezvous hosted
/// by rank 0 and a Gloo process group on CPU). Processes join the way PyTorch users start theirs: <see cref="FromEnvironment(TimeSpan?)"/>
/// reads torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so a job across machines is launched the same
/// way. Every collective blocks until all ranks took part or the group's timeout passed; a rank that died or hangs then
/// ends the others' call with a <see cref="TorchException"/> naming the operation and the rank, instead of a hang.
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    /// <summary>How long a rendezvous or a collective may wait for the other ranks by default (PyTorch's default: 30 min).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(30);

    IntPtr _handle;

    ProcessGroup(IntPtr handle, int rank, int worldSize, string address, TimeSpan timeout)
    {
        _handle = handle;
        Rank = rank;
        WorldSize = worldSize;
        Address = address;
        Timeout = timeout;
    }

    /// <summary>This process's rank, 0 to <see cref="WorldSize"/> − 1.</summary>
    public int Rank { get; }

    /// <summary>The number of processes in the group.</summary>
    public int WorldSize { get; }

    /// <summary>Rank 0, the one that writes checkpoints, reports and models.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>The rendezvous (host:port of rank 0's store).</summary>
    public string Address { get; }

    /// <summary>How long a collective waits for the other ranks.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Joins (rank 0: hosts) the rendezvous at <paramref name="masterAddress"/>:<paramref name="masterPort"/>
    /// and returns when all <paramref name="worldSize"/> ranks have joined; throws when they have not within
    /// <paramref name="timeout"/>. <paramref name="networkInterface"/> names the interface Gloo binds to (default: this
    /// host's resolved address, else loopback), as GLOO_SOCKET_IFNAME does for PyTorch.</summary>
    public static ProcessGroup Join(string masterAddress, int masterPort, int rank, int worldSize, TimeSpan? timeout = null, string? networkInterface = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(masterAddress);
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "The world size must be at least 1.");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"The rank must be in [0, {worldSize - 1}] for a world of {worldSize}.");
        if (masterPort is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(masterPort), masterPort, "The port must be in [1, 65535].");
        var t = timeout ?? DefaultTimeout;
        if (t <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), t, "The timeout must be positive.");
        Native.EnsureLoaded();
        Native.Check(Native.mlnx_dist_init(masterAddress, masterPort, rank, worldSize, (long)t.TotalMilliseconds, networkInterface, out var handle));
        return new ProcessGroup(handle, rank, worldSize, $"{masterAddress}:{masterPort}", t);
    }

    /// <summary>Joins the group torchrun's environment variables describe (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
    /// GLOO_SOCKET_IFNAME when set), or returns null when WORLD_SIZE is not set (a single-process run). A variable that
    /// is missing or malformed is named in the error.</summary>
    public static ProcessGroup? FromEnvironment(TimeSpan? timeout = null) => FromEnvironment(Environment.GetEnvironmentVariable, timeout);

    internal static ProcessGroup? FromEnvironment(Func<string, string?> env, TimeSpan? timeout) =>
        ReadEnvironment(env) is { } e ? Join(e.Address, e.Port, e.Rank, e.WorldSize, timeout, env("GLOO_SOCKET_IFNAME")) : null;

    /// <summary>torchrun's variables, checked; null when WORLD_SIZE is unset.</summary>
    internal static (string Address, int Port, int Rank, int WorldSize)? ReadEnvironment(Func<string, string?> env)
    {
        if (env("WORLD_SIZE") is null) return null;
        int Int(string name, int min, int max)
        {
            var text = env(name) ?? throw new ArgumentException($"{name} is not set; a distributed run (WORLD_SIZE={env("WORLD_SIZE")}) needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT.");
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
                throw new ArgumentException($"{name} must be an integer in [{min}, {max}]; got '{text}'.");
            return v;
        }
        int world = Int("WORLD_SIZE", 1, 1 << 16);
        int rank = Int("RANK", 0, world - 1);
        int port = Int("MASTER_PORT", 1, 65535);
        var address = env("MASTER_ADDR");
        if (string.IsNullOrWhiteSpace(address)) throw new ArgumentException("MASTER_ADDR is not set; it names the host of rank 0 (e.g. 127.0.0.1).");
        return (address, port, rank, world);
    }

    /// <summary>Sums <paramref name="tensor"/> over all ranks, in place (every rank passes a contiguous CPU tensor of the
    /// same shape and dtype).</summary>
    public void AllReduceSum(Tensor tensor)
    {
        Require(tensor, "all-reduce");
        Native.Check(Native.mlnx_dist_all_reduce_sum(Handle, tensor.Handle));
        GC.KeepAlive(tensor);
    }

    /// <summary>The sum of <paramref name="tensor"/> over all ranks as a new tensor that autograd differentiates: its
    /// backward sums the incoming gradient over the ranks, since every rank's loss depends on every rank's input through
    /// the sum (statistics shared by all ranks, as synchronised BatchNorm's). Every rank must run the same backward.</summary>
    internal Tensor AllReduceSumDifferentiable(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Device.Type != DeviceType.Cpu)
            throw new ArgumentException($"The all-reduce takes a CPU tensor (Gloo); got a {tensor.Device} tensor.", nameof(tensor));
        Native.Check(Native.mlnx_dist_all_reduce_sum_autograd(Handle, tensor.Handle, out var result));
        GC.KeepAlive(tensor);
        return new Tensor(result);
    }

    /// <summary>Copies rank <paramref name="root"/>'s <paramref name="tensor"/> into every rank's, in place.</summary>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        Require(tensor, "broadcast");
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), root, $"The root must be a rank in [0, {WorldSize - 1}].");
        Native.Check(Native.mlnx_dist_broadcast(Handle, tensor.Handle, root));
        GC.KeepAlive(tensor);
    }

    /// <summary>Returns when every rank has called it.</summary>
    public void Barrier() => Native.Check(Native.mlnx_dist_barrier(Handle));

    void Require(Tensor tensor, string what)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Device.Type != DeviceType.Cpu || !tensor.IsContiguous)
            throw new ArgumentException($"The {what} takes a contiguous CPU tensor (Gloo); got {(tensor.IsContiguous ? "" : "a non-contiguous ")}{tensor.Device} tensor.", nameof(tensor));
    }

    internal IntPtr Handle => _handle != IntPtr.Zero ? _handle : throw new ObjectDisposedException(nameof(ProcessGroup));

    /// <summary>Leaves the group (rank 0 also closes the rendezvous).</summary>
    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, IntPtr.Zero);
        if (h != IntPtr.Zero) Native.mlnx_dist_free(h);
    }
}

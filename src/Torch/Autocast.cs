using MLNetExt.Torch.Interop;

namespace MLNetExt.Torch;

/// <summary>Mixed precision for a region of code on the current thread, like Python's
/// <c>with torch.autocast(device_type, dtype)</c>: matmuls and convolutions run in the reduced type, reductions and
/// losses stay float32. Regions nest; disposing restores the state before the region.</summary>
public sealed class Autocast : IDisposable
{
    readonly DeviceType _device;
    readonly bool _wasEnabled;
    readonly DType _previousType;
    bool _disposed;

    [ThreadStatic] static Dictionary<DeviceType, (bool Enabled, DType Type)>? t_state;

    Autocast(DeviceType device, DType type)
    {
        _device = device;
        t_state ??= new();
        (_wasEnabled, _previousType) = t_state.GetValueOrDefault(device, (false, device == DeviceType.Cuda ? DType.Float16 : DType.BFloat16));
        Set(device, true, type, entering: true);
    }

    /// <summary>Enables autocast with <paramref name="type"/> (bfloat16 or float16) for ops on <paramref name="device"/>.</summary>
    public static Autocast Enable(DeviceType device, DType type = DType.BFloat16)
    {
        if (type is not (DType.BFloat16 or DType.Float16))
            throw new ArgumentException($"Autocast needs a reduced floating type (bfloat16 or float16), got {type.TorchName()}.", nameof(type));
        return new Autocast(device, type);
    }

    /// <summary>Whether autocast is on for <paramref name="device"/> on this thread.</summary>
    public static bool IsEnabled(DeviceType device) => t_state is not null && t_state.TryGetValue(device, out var s) && s.Enabled;

    static void Set(DeviceType device, bool enabled, DType type, bool entering)
    {
        Native.Check(Native.mlnx_set_autocast((int)device, enabled ? 1 : 0, (int)type, entering ? 1 : 0));
        t_state![device] = (enabled, type);
    }

    /// <summary>Leaves the region.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Set(_device, _wasEnabled, _previousType, entering: false);
    }
}

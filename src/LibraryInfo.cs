using System.Reflection;

namespace MLNetExt;

/// <summary>Facts about this build of MLNetExt, written into every model, checkpoint and generated file.</summary>
public static class LibraryInfo
{
    /// <summary>The library version (the package version, without the source revision).</summary>
    public static string Version =>
        typeof(LibraryInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion?.Split('+')[0]
        ?? typeof(LibraryInfo).Assembly.GetName().Version?.ToString() ?? "0.0.0";
}

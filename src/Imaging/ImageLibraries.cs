using System.Runtime.InteropServices;

namespace MLNetExt.Imaging;

/// <summary>Thrown when a native image library (a Debian shared library) cannot be loaded.</summary>
public sealed class ImageLibraryMissingException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The Debian shared libraries the decoders bind to, checked once each before the first call so that a
/// missing one is reported by name together with the package that provides it.</summary>
internal static class ImageLibraries
{
    internal const string TurboJpeg = "libturbojpeg.so.0";
    internal const string Png = "libpng16.so.16";
    internal const string WebP = "libwebp.so.7";
    internal const string Gif = "libgif.so.7";

    static readonly Dictionary<string, string> Packages = new()
    {
        [TurboJpeg] = "libturbojpeg0",
        [Png] = "libpng16-16",
        [WebP] = "libwebp7",
        [Gif] = "libgif7",
    };

    static readonly Dictionary<string, Exception?> Checked = new();

    /// <summary>Throws <see cref="ImageLibraryMissingException"/> when <paramref name="library"/> cannot be loaded.</summary>
    public static void Require(string library) => Require(library, Packages[library]);

    internal static void Require(string library, string package)
    {
        Exception? failure;
        lock (Checked)
        {
            if (!Checked.TryGetValue(library, out failure))
            {
                try
                {
                    NativeLibrary.Load(library);
                    failure = null;
                }
                catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
                {
                    failure = e;
                }
                Checked[library] = failure;
            }
        }
        if (failure != null)
            throw new ImageLibraryMissingException(
                $"The image library {library} could not be loaded ({failure.Message}). Install the Debian package " +
                $"'{package}' (apt-get install {package}) or run tools/setup.sh.", failure);
    }
}

using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;
using MLNetExt.Data;
using MLNetExt.Imaging;

namespace MLNetExt.MLNet;

/// <summary>
/// The one step of an MLNetExt pipeline that no standard ML.NET transform does: decoding encoded image bytes (the
/// VarVector&lt;Byte&gt; of <c>LoadRawImageBytes</c>) into an image, with MLNetExt's decoder (the one training uses:
/// EXIF orientation, the pixel budget of <see cref="ImageDecoder.MaxImagePixels"/>). It is an ML.NET custom mapping,
/// so a saved model that contains it loads only where MLNetExt is referenced and registered first:
/// <code>mlContext.ComponentCatalog.RegisterAssembly(typeof(ImageBytesDecoder).Assembly);   // then mlContext.Model.Load(...)</code>
/// ML.NET creates this class itself when it loads such a model; users do not call it.
/// </summary>
[CustomMappingFactoryAttribute(ContractName)]
public sealed class ImageBytesDecoder : CustomMappingFactory<ImageBytesDecoder.Encoded, ImageBytesDecoder.Decoded>
{
    /// <summary>The name the mapping is saved under.</summary>
    public const string ContractName = "MLNetExt.DecodeImageBytes";

    /// <summary>The mapping's input: encoded bytes.</summary>
    public sealed class Encoded
    {
        /// <summary>An encoded JPEG, PNG, WebP, GIF or BMP.</summary>
        [ColumnName(ImageColumn.BytesColumn)] public byte[] Bytes { get; set; } = [];
    }

    /// <summary>The mapping's output: the decoded image.</summary>
    public sealed class Decoded
    {
        /// <summary>The image, 8-bit BGRA.</summary>
        [ColumnName(ImageColumn.LoadedColumn)] public MLImage? Image { get; set; }
    }

    static ImageBytesDecoder() => RegisterImageType();

    /// <summary>ML.NET maps a MLImage property to its image type only with a fixed size; decoded images have any size.</summary>
    static void RegisterImageType()
    {
        lock (typeof(ImageBytesDecoder))
        {
            if (s_registered) return;
            DataViewTypeManager.Register(new ImageDataViewType(), typeof(MLImage));
            s_registered = true;
        }
    }

    static bool s_registered;

    /// <inheritdoc/>
    public override Action<Encoded, Decoded> GetMapping() => (src, dst) =>
    {
        RgbImage rgb;
        try { rgb = ImageDecoder.Decode(src.Bytes); }
        catch (Exception e) when (ImageDecodeException.IsImageProblem(e))
        {
            throw new InvalidDataException($"MLNetExt could not decode the encoded image ({src.Bytes.Length} bytes): {Problem(src.Bytes) ?? e.Message}", e);
        }
        dst.Image = ToMLImage(rgb);
    };

    internal static CustomMappingEstimator<Encoded, Decoded> Estimator(MLContext ml)
    {
        RegisterImageType();
        return ml.Transforms.CustomMapping(new ImageBytesDecoder().GetMapping(), ContractName);
    }

    /// <summary>Why <paramref name="bytes"/> cannot be an image (empty, or no supported format's signature), or null.</summary>
    internal static string? Problem(ReadOnlySpan<byte> bytes) =>
        bytes.Length == 0 ? "the encoded image is empty (0 bytes)" : ImageDecoder.UnsupportedReason(bytes[..Math.Min(ImageDecoder.HeadBytes, bytes.Length)]);

    internal static MLImage ToMLImage(RgbImage rgb)
    {
        var bgra = new byte[checked(rgb.Width * rgb.Height * 4)];
        var src = rgb.Pixels;
        for (int i = 0, j = 0; j < bgra.Length; i += 3, j += 4)
        {
            bgra[j] = src[i + 2];
            bgra[j + 1] = src[i + 1];
            bgra[j + 2] = src[i];
            bgra[j + 3] = 255;
        }
        return MLImage.CreateFromPixels(rgb.Width, rgb.Height, MLPixelFormat.Bgra32, bgra);
    }

    /// <summary>The RGB pixels of an ML.NET image (alpha dropped, as ExtractPixels with ColorBits.Rgb does).</summary>
    internal static RgbImage ToRgb(MLImage image)
    {
        var (r, b) = image.PixelFormat switch
        {
            MLPixelFormat.Bgra32 => (2, 0),
            MLPixelFormat.Rgba32 => (0, 2),
            var f => throw new InvalidDataException($"An image of pixel format {f}; MLNetExt reads Bgra32 and Rgba32 images."),
        };
        var src = image.Pixels;
        var rgb = new RgbImage(image.Width, image.Height);
        var dst = rgb.Pixels;
        for (int i = 0, j = 0; i < dst.Length; i += 3, j += 4)
        {
            dst[i] = src[j + r];
            dst[i + 1] = src[j + 1];
            dst[i + 2] = src[j + b];
        }
        return rgb;
    }
}

using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>Token ⇄ image layout: tokens are (B, N, C) with N = H·W in row-major (y, x) order. Every reshape keeps the
/// batch dynamic (-1), so traced graphs keep a symbolic batch.</summary>
/// <remarks>Both directions go through the channels-last image (B, H, W, C), as the official SMT code writes its stage
/// ends. In libtorch the results are the same views as <c>transpose(1, 2)</c> + reshape (same strides, no copy); in an
/// exported graph the 4-D Transpose next to a convolution is one ONNX Runtime folds into its blocked-layout reorder
/// (channels-last input or output), where a 3-D transpose of the tokens is a separate copy.</remarks>
internal static class TokenLayout
{
    /// <summary>(B, N, C) tokens → (B, C, H, W) image: <c>x.reshape(B, H, W, C).permute(0, 3, 1, 2)</c>.</summary>
    public static Tensor ToImage(Tensor tokens, long channels, long h, long w)
    {
        using var t = tokens.Reshape(-1, h, w, channels);
        return t.Permute(0, 3, 1, 2);
    }

    /// <summary>(B, N, C) tokens → (B, C, H, W) image, C read from the tokens.</summary>
    public static Tensor ToImage(Tensor tokens, long h, long w) => ToImage(tokens, tokens.Size(2), h, w);

    /// <summary>(B, C, H, W) image → (B, H·W, C) tokens: <c>x.permute(0, 2, 3, 1).reshape(B, H·W, C)</c>.</summary>
    public static Tensor ToTokens(Tensor image)
    {
        using var t = image.Permute(0, 2, 3, 1);
        return t.Reshape(-1, image.Size(2) * image.Size(3), image.Size(1));
    }
}

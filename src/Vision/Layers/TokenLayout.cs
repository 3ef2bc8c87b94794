using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>Token ⇄ image layout: tokens are (B, N, C) with N = H·W in row-major (y, x) order. Every reshape keeps the
/// batch dynamic (-1), so traced graphs keep a symbolic batch.</summary>
internal static class TokenLayout
{
    /// <summary>(B, N, C) tokens → (B, C, H, W) image: <c>x.transpose(1, 2).reshape(B, C, H, W)</c>.</summary>
    public static Tensor ToImage(Tensor tokens, long channels, long h, long w)
    {
        using var t = tokens.Transpose(1, 2);
        return t.Reshape(-1, channels, h, w);
    }

    /// <summary>(B, N, C) tokens → (B, C, H, W) image, C read from the tokens.</summary>
    public static Tensor ToImage(Tensor tokens, long h, long w) => ToImage(tokens, tokens.Size(2), h, w);

    /// <summary>(B, C, H, W) image → (B, H·W, C) tokens: <c>x.flatten(2).transpose(1, 2)</c>.</summary>
    public static Tensor ToTokens(Tensor image)
    {
        using var f = image.Flatten(2);
        return f.Transpose(1, 2);
    }
}

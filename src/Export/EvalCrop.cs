using MLNetExt.Transforms;
using MLNetExt.Imaging;

namespace MLNetExt.Export;

/// <summary>
/// The evaluation framing of a network of <see cref="Height"/>x<see cref="Width"/> with a crop fraction, as an exported
/// graph takes it: an input of <see cref="ResizeHeight"/>x<see cref="ResizeWidth"/> (the training pipeline's resize
/// size, floor(size / crop)) from which the graph slices the centre at (<see cref="Top"/>, <see cref="Left"/>) — the
/// same offsets as <see cref="ImageOps.CenterCropOffsets"/>. Square networks resize the shorter side (ML.NET:
/// <c>ResizeImages(IsoCrop, Center)</c> to the resize size); non-square ones stretch both sides (ML.NET: <c>Fill</c>).
/// </summary>
internal readonly record struct EvalCrop(int Height, int Width, int ResizeHeight, int ResizeWidth, int Top, int Left)
{
    /// <summary><c>mlnetext.resize_mode</c> values.</summary>
    public const string ShorterSide = "shorter-side", Stretch = "stretch";

    /// <summary>The framing of <see cref="ImagePipeline.Eval(int, int, IReadOnlyList{double}, IReadOnlyList{double}, double, Interpolation)"/>.</summary>
    public static EvalCrop For(int height, int width, double cropPct)
    {
        int rh, rw;
        if (height == width) rh = rw = (int)Math.Floor(height / cropPct);
        else (rh, rw) = ((int)Math.Floor(height / cropPct), (int)Math.Floor(width / cropPct));
        var (left, top) = ImageOps.CenterCropOffsets(rw, rh, width, height);
        return new EvalCrop(height, width, rh, rw, top, left);
    }
}

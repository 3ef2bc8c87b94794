using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetExt.Data;
using MLNetExt.Export;

namespace MLNetExt.MLNet;

/// <summary>What an image column of an IDataView holds.</summary>
internal enum ImageColumnKind
{
    /// <summary>A string: the path of an image file, relative to an optional image folder (as <c>LoadImages</c> reads it).</summary>
    Path,
    /// <summary>An <see cref="MLImage"/> (from <c>LoadImages</c>).</summary>
    Image,
    /// <summary>Encoded image bytes, a vector of bytes (from <c>LoadRawImageBytes</c>).</summary>
    Bytes,
}

/// <summary>
/// The image column MLNetExt's ML.NET components read: its kind, checked against the schema with messages naming the
/// column, what is expected and what was found; the standard ML.NET transforms that turn it into the exported graph's
/// pixel input; and the rows read for training.
/// </summary>
internal sealed record ImageColumn(string Name, ImageColumnKind Kind, string? ImageFolder)
{
    /// <summary>Columns the preparation adds and drops again; named so no user column is hidden.</summary>
    public const string LoadedColumn = "MLNetExt.Image", ResizedColumn = "MLNetExt.Resized", BytesColumn = "MLNetExt.ImageBytes",
        PixelsColumn = "MLNetExt.Pixels";

    const string Expected = "a string path (with an image folder, as LoadImages reads it), an image (MLImage, from LoadImages) " +
                            "or encoded image bytes (a vector of bytes, from LoadRawImageBytes)";

    /// <summary>The kind of column <paramref name="name"/> of <paramref name="schema"/>.</summary>
    public static ImageColumn Of(DataViewSchema schema, string name, string? imageFolder) =>
        new(name, KindOf(schema.GetColumnOrNull(name)?.Type, name, schema.Select(c => c.Name)), imageFolder);

    /// <summary>The kind of column <paramref name="name"/> of an estimator's input shape.</summary>
    public static ImageColumn Of(SchemaShape shape, string name, string? imageFolder)
    {
        if (MLNetSchemas.Find(shape, name) is not { } c) return new(name, KindOf(null, name, shape.Select(s => s.Name)), imageFolder);
        DataViewType? type = c.Kind == SchemaShape.Column.VectorKind.Scalar ? c.ItemType
            : c.ItemType == NumberDataViewType.Byte ? new VectorDataViewType(NumberDataViewType.Byte) : new VectorDataViewType((PrimitiveDataViewType)c.ItemType);
        return new(name, KindOf(type, name, shape.Select(s => s.Name)), imageFolder);
    }

    static ImageColumnKind KindOf(DataViewType? type, string name, IEnumerable<string> columns) => type switch
    {
        null => throw new ArgumentOutOfRangeException(nameof(name), $"The image column '{name}' is not in the data; expected {Expected}. " +
            $"The data has columns {string.Join(", ", columns.Distinct().Select(c => $"'{c}'"))}."),
        TextDataViewType => ImageColumnKind.Path,
        ImageDataViewType => ImageColumnKind.Image,
        VectorDataViewType { ItemType: var item } when item == NumberDataViewType.Byte => ImageColumnKind.Bytes,
        _ => throw new ArgumentOutOfRangeException(nameof(name), $"The image column '{name}' has type {type}; expected {Expected}."),
    };

    /// <summary>Standard transforms from this column to <paramref name="pixelsColumn"/>: the image resized as the export's
    /// metadata says (shorter side to the resize size and the centre kept, or stretched) and its pixels as float RGB
    /// planar 0-255, the graph's input. Encoded bytes are decoded by <see cref="ImageBytesDecoder"/> (MLNetExt's decoder).</summary>
    public IEstimator<ITransformer> Preparation(MLContext ml, ExportedModelInfo info, string pixelsColumn)
    {
        IEstimator<ITransformer>? chain = null;
        string image = Name;
        switch (Kind)
        {
            case ImageColumnKind.Path:
                chain = ml.Transforms.LoadImages(LoadedColumn, ImageFolder ?? "", Name);
                image = LoadedColumn;
                break;
            case ImageColumnKind.Bytes:
                chain = ml.Transforms.CopyColumns(BytesColumn, Name).Append(ImageBytesDecoder.Estimator(ml));
                image = LoadedColumn;
                break;
        }
        var resizing = info.ResizeMode == EvalCrop.ShorterSide ? ImageResizingEstimator.ResizingKind.IsoCrop : ImageResizingEstimator.ResizingKind.Fill;
        var resize = ml.Transforms.ResizeImages(ResizedColumn, info.InputWidth, info.InputHeight, image, resizing, ImageResizingEstimator.Anchor.Center);
        var pixels = ml.Transforms.ExtractPixels(pixelsColumn, ResizedColumn, ImagePixelExtractingEstimator.ColorBits.Rgb,
            ImagePixelExtractingEstimator.ColorsOrder.ARGB, interleavePixelColors: false, offsetImage: 0f, scaleImage: 1f, outputAsFloatArray: true);
        return chain is null ? resize.Append(pixels) : chain.Append(resize).Append(pixels);
    }

    /// <summary>The columns <see cref="Preparation"/> adds besides the pixels.</summary>
    public string[] Intermediates => Kind switch
    {
        ImageColumnKind.Path => [LoadedColumn, ResizedColumn],
        ImageColumnKind.Bytes => [BytesColumn, LoadedColumn, ResizedColumn],
        _ => [ResizedColumn],
    };

    /// <summary>The training rows of <paramref name="data"/> as a dataset whose classes are the label key's values: one
    /// item per row with a label and a readable-looking image. Rows without a label (missing key) and rows whose image
    /// cannot be read are left out and listed in the dataset's issues, by row number and path.</summary>
    public ImageDataset ReadDataset(IDataView data, LabelColumn label, string source)
    {
        var col = data.Schema[Name];
        var items = new List<ImageItem>();
        var issues = new List<DatasetIssue>();
        int missing = 0;
        using var cursor = data.GetRowCursor([col, data.Schema[label.Name]]);
        var getLabel = label.Getter(cursor);
        var getText = Kind == ImageColumnKind.Path ? cursor.GetGetter<ReadOnlyMemory<char>>(col) : null;
        var getImage = Kind == ImageColumnKind.Image ? cursor.GetGetter<MLImage?>(col) : null;
        var getBytes = Kind == ImageColumnKind.Bytes ? cursor.GetGetter<VBuffer<byte>>(col) : null;
        ReadOnlyMemory<char> text = default;
        MLImage? mlImage = null;
        VBuffer<byte> bytes = default;
        long row = -1;
        while (cursor.MoveNext())
        {
            row++;
            int y = getLabel();
            if (y < 0) { missing++; continue; }
            string where = $"row {row}";
            try
            {
                switch (Kind)
                {
                    case ImageColumnKind.Path:
                        getText!(ref text);
                        var path = text.ToString();
                        where = $"row {row} ('{path}')";
                        if (path.Length == 0) { issues.Add(new DatasetIssue(where, "the image path is empty")); continue; }
                        var full = string.IsNullOrEmpty(ImageFolder) ? path : System.IO.Path.Combine(ImageFolder, path);
                        if (ImageDataset.HeaderProblem(full) is { } problem) { issues.Add(new DatasetIssue(where, problem)); continue; }
                        items.Add(new ImageItem(where, y, Path: full));
                        break;
                    case ImageColumnKind.Bytes:
                        getBytes!(ref bytes);
                        var encoded = bytes.DenseValues().ToArray();
                        if (ImageBytesDecoder.Problem(encoded) is { } bad) { issues.Add(new DatasetIssue(where, bad)); continue; }
                        items.Add(new ImageItem(where, y, Bytes: encoded));
                        break;
                    default:
                        getImage!(ref mlImage);
                        if (mlImage is null) { issues.Add(new DatasetIssue(where, "the image is missing")); continue; }
                        items.Add(new ImageItem(where, y, Image: ImageBytesDecoder.ToRgb(mlImage)));
                        break;
                }
            }
            catch (Exception e) when (e is not (OutOfMemoryException or OperationCanceledException))
            {
                // ML.NET's LoadImages fails in the getter on a file it cannot load: that row is reported, the rest read on
                while (e.InnerException is not null) e = e.InnerException;
                issues.Add(new DatasetIssue(where, e.Message));
            }
        }
        if (missing > 0) issues.Add(new DatasetIssue($"{missing} row(s)", $"have no label (a missing key in '{label.Name}') and are not used"));
        if (row < 0) throw new DatasetException($"The {source} is empty: no rows.");
        if (items.Count == 0)
            throw new DatasetException($"The {source} has {row + 1} row(s) but none with a label and a readable image: {string.Join("; ", issues.Take(3))}.");
        var ds = new ImageDataset(source, label.Classes, items, issues);
        var counts = ds.CountPerClass();
        var used = label.Classes.Where((c, i) => counts[i] > 0).ToList();
        if (used.Count < 2)
            throw new DatasetException($"The {source} has images of {used.Count} class(es) ({string.Join(", ", used.Select(c => $"'{c}'"))}) in '{label.Name}'; a classifier needs at least two.");
        var empty = label.Classes.Where((c, i) => counts[i] == 0).ToList();
        if (empty.Count > 0 && source.StartsWith("training", StringComparison.Ordinal))
            throw new DatasetException($"The {source}: class(es) {string.Join(", ", empty.Select(c => $"'{c}'"))} of the key '{label.Name}' have no readable image; " +
                "every class the label key names must have training images (map the labels with MapValueToKey on the training data).");
        return ds;
    }
}

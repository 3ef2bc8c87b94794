using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetExt.MLNet;

/// <summary>
/// The label column of a training IDataView: a key (from <c>MapValueToKey</c>) whose key order is the class order and
/// whose key values, when it has them, are the class names (else the class names are "0", "1", ...).
/// </summary>
internal sealed record LabelColumn(string Name, KeyDataViewType Type, IReadOnlyList<string> Classes)
{
    /// <summary>More classes than this is not an image classification problem these backbones are built for.</summary>
    public const int MaxClasses = 100_000;

    const string Hint = "map it to a key first, e.g. mlContext.Transforms.Conversion.MapValueToKey(\"{0}\")";

    /// <summary>Checks column <paramref name="name"/> of <paramref name="schema"/> and reads its classes.</summary>
    public static LabelColumn Of(DataViewSchema schema, string name)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(nameof(name), $"The label column '{name}' is not in the data; expected a key column ({string.Format(Hint, name)}). " +
                $"The data has columns {string.Join(", ", schema.Select(c => $"'{c.Name}'").Distinct())}.");
        if (column.Type is not KeyDataViewType key)
            throw new ArgumentOutOfRangeException(nameof(name), $"The label column '{name}' has type {column.Type}; expected a key type: {string.Format(Hint, name)}.");
        if (key.Count < 2 || key.Count > MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(name), $"The label column '{name}' is a key of {key.Count} value(s); a classifier needs at least two classes (and at most {MaxClasses}).");
        return new LabelColumn(name, key, ClassNames(column, (int)key.Count));
    }

    /// <summary>Checks the label column of an estimator's input shape (no class names yet) and returns it.</summary>
    public static SchemaShape.Column Check(SchemaShape shape, string name)
    {
        if (MLNetSchemas.Find(shape, name) is not { } c)
            throw new ArgumentOutOfRangeException(nameof(name), $"The label column '{name}' is not in the data; expected a key column ({string.Format(Hint, name)}). " +
                $"The data has columns {string.Join(", ", shape.Select(s => $"'{s.Name}'").Distinct())}.");
        if (!c.IsKey || c.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(name), $"The label column '{name}' has type {(c.Kind == SchemaShape.Column.VectorKind.Scalar ? "" : "vector of ")}{c.ItemType}; " +
                $"expected a key type: {string.Format(Hint, name)}.");
        return c;
    }

    /// <summary>The same classes in the same order as <paramref name="other"/>'s (a validation set must use the training key).</summary>
    public void CheckSameAs(LabelColumn other, string what)
    {
        if (!Classes.SequenceEqual(other.Classes))
            throw new ArgumentException($"The {what}'s label key '{Name}' has classes [{Short(Classes)}] but the training data's has [{Short(other.Classes)}]; " +
                "transform both with the same fitted MapValueToKey.");
    }

    static string Short(IReadOnlyList<string> c) => string.Join(", ", c.Take(10)) + (c.Count > 10 ? $", ... ({c.Count})" : "");

    static IReadOnlyList<string> ClassNames(DataViewSchema.Column column, int count)
    {
        var keyValues = column.Annotations.Schema.GetColumnOrNull(MLNetSchemas.KeyValues);
        if (keyValues?.Type is VectorDataViewType { ItemType: var item } && item.RawType is var raw)
        {
            var read = typeof(LabelColumn).GetMethod(nameof(ReadKeyValues), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!
                .MakeGenericMethod(raw);
            var names = (string[])read.Invoke(null, [column])!;
            if (names.Length == count) return names; // checked (empty, control characters, twice) where the dataset is made
        }
        return Enumerable.Range(0, count).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
    }

    static string[] ReadKeyValues<T>(DataViewSchema.Column column)
    {
        VBuffer<T> values = default;
        column.GetKeyValues(ref values);
        return values.DenseValues().Select(v => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "").ToArray();
    }

    /// <summary>A getter of the current row's class index (-1 for a missing key).</summary>
    public Func<int> Getter(DataViewRowCursor cursor)
    {
        var column = cursor.Schema[Name];
        switch (Type.RawType)
        {
            case var t when t == typeof(uint):
            {
                var g = cursor.GetGetter<uint>(column);
                uint v = 0;
                return () => { g(ref v); return (int)v - 1; };
            }
            case var t when t == typeof(byte):
            {
                var g = cursor.GetGetter<byte>(column);
                byte v = 0;
                return () => { g(ref v); return v - 1; };
            }
            case var t when t == typeof(ushort):
            {
                var g = cursor.GetGetter<ushort>(column);
                ushort v = 0;
                return () => { g(ref v); return v - 1; };
            }
            default:
            {
                var g = cursor.GetGetter<ulong>(column);
                ulong v = 0;
                return () => { g(ref v); return v == 0 || v > (ulong)Classes.Count ? -1 : (int)v - 1; };
            }
        }
    }
}

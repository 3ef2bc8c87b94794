using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetExt.MLNet;

/// <summary>Estimator output shapes. ML.NET's <see cref="SchemaShape.Column"/> constructor is internal (its own
/// estimators build columns through internal helpers), so new columns are made through it by reflection, pinned to
/// Microsoft.ML 6.0.0 and tested.</summary>
internal static class MLNetSchemas
{
    internal const string SlotNames = "SlotNames", KeyValues = "KeyValues";

    internal static readonly Type[] ColumnConstructor =
        [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)];

    /// <summary>The last column named <paramref name="name"/> (the visible one), or null.</summary>
    public static SchemaShape.Column? Find(SchemaShape shape, string name) =>
        shape.Where(c => c.Name == name).Cast<SchemaShape.Column?>().LastOrDefault();

    /// <summary><paramref name="input"/> plus a Score vector with slot names and a PredictedLabel of <paramref name="label"/>'s key type.</summary>
    public static SchemaShape WithClassifierOutputs(SchemaShape input, SchemaShape.Column label, string score, string predictedLabel)
    {
        var slotNames = new SchemaShape([Column(SlotNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false)]);
        var keyValues = Find(label.Annotations, KeyValues) is { } kv ? new SchemaShape([kv]) : new SchemaShape([]);
        return With(input,
            Column(score, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, slotNames),
            Column(predictedLabel, SchemaShape.Column.VectorKind.Scalar, label.ItemType, true, keyValues));
    }

    /// <summary><paramref name="input"/> plus a float vector column.</summary>
    public static SchemaShape WithFeatures(SchemaShape input, string column) =>
        With(input, Column(column, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false));

    static SchemaShape With(SchemaShape input, params SchemaShape.Column[] added) =>
        new(input.Where(c => !added.Any(a => a.Name == c.Name)).Concat(added));

    static SchemaShape.Column Column(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey, SchemaShape? annotations = null)
    {
        var ctor = typeof(SchemaShape.Column).GetConstructor(BindingFlags.Instance | BindingFlags.NonPublic, null, ColumnConstructor, null)
            ?? throw new NotSupportedException($"Microsoft.ML {typeof(SchemaShape).Assembly.GetName().Version} has no SchemaShape.Column({string.Join(", ", ColumnConstructor.Select(t => t.Name))}): " +
                "MLNetExt's estimators describe their output columns as Microsoft.ML 6.0.0 does. Use Microsoft.ML 6.0.0.");
        return (SchemaShape.Column)ctor.Invoke([name, kind, itemType, isKey, annotations ?? new SchemaShape([])]);
    }
}

namespace MLNetExt.Export.Mappers;

/// <summary>One formal argument of an aten schema: <c>int[2] stride=1</c> is type <c>int[2]</c>, name <c>stride</c>,
/// default <c>1</c>. Arguments after <c>*</c> are keyword-only (the engine still passes them by position).</summary>
internal sealed record SchemaArgument(string Type, string Name, string? Default, bool KeywordOnly)
{
    public override string ToString() => $"{Type} {Name}{(Default is null ? "" : "=" + Default)}";
}

/// <summary>
/// An aten operator schema as libtorch prints it, e.g.
/// <c>aten::conv2d(Tensor input, Tensor weight, Tensor? bias=None, int[2] stride=1, ...) -> Tensor</c>, parsed once
/// into its name, overload and argument names. The engine passes arguments by position in schema order (trailing ones
/// may be left out for their defaults), so a traced call's argument k is the schema's argument k.
/// </summary>
internal sealed class AtenSchema
{
    AtenSchema(string text, string name, string overload, SchemaArgument[] arguments, string returns)
    {
        Text = text;
        Name = name;
        Overload = overload;
        Arguments = arguments;
        Returns = returns;
    }

    /// <summary>The schema as written.</summary>
    public string Text { get; }

    /// <summary>The operator, e.g. <c>aten::add</c>.</summary>
    public string Name { get; }

    /// <summary>The overload, e.g. <c>Tensor</c>, or empty.</summary>
    public string Overload { get; }

    /// <summary><c>aten::add.Tensor</c> (as <see cref="Torch.Op.ToString"/> writes it).</summary>
    public string QualifiedName => Overload.Length == 0 ? Name : $"{Name}.{Overload}";

    public IReadOnlyList<SchemaArgument> Arguments { get; }

    /// <summary>What follows <c>-&gt;</c>.</summary>
    public string Returns { get; }

    /// <summary>The argument names in order.</summary>
    public IEnumerable<string> ArgumentNames => Arguments.Select(a => a.Name);

    /// <summary>The position of argument <paramref name="name"/>, or -1.</summary>
    public int IndexOf(string name)
    {
        for (int k = 0; k < Arguments.Count; k++) if (Arguments[k].Name == name) return k;
        return -1;
    }

    /// <summary>The schema without defaults and returns (<c>aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha)</c>):
    /// what must agree with libtorch's schema for positional arguments to mean the same thing.</summary>
    public string Signature
    {
        get
        {
            var parts = new List<string>();
            bool kw = false;
            foreach (var a in Arguments)
            {
                if (a.KeywordOnly && !kw) { parts.Add("*"); kw = true; }
                parts.Add($"{a.Type} {a.Name}");
            }
            return $"{QualifiedName}({string.Join(", ", parts)})";
        }
    }

    public override string ToString() => Text;

    /// <summary>Parses <c>ns::name[.overload](arguments) -&gt; returns</c>; a malformed schema is a
    /// <see cref="FormatException"/> quoting it.</summary>
    public static AtenSchema Parse(string text)
    {
        FormatException Bad(string why) => new($"Malformed aten schema ({why}): {text}");
        int open = text.IndexOf('(');
        if (open <= 0) throw Bad("no argument list");
        string head = text[..open].Trim();
        int ns = head.IndexOf("::", StringComparison.Ordinal);
        if (ns <= 0) throw Bad("no namespace");
        int dot = head.IndexOf('.', ns + 2);
        string name = dot < 0 ? head : head[..dot], overload = dot < 0 ? "" : head[(dot + 1)..];
        if (name.Length == ns + 2 || (dot >= 0 && overload.Length == 0) || !head.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':' or '.'))
            throw Bad("bad operator name");

        int close = Matching(text, open) ?? throw Bad("unbalanced parentheses");
        string rest = text[(close + 1)..].Trim();
        if (!rest.StartsWith("->", StringComparison.Ordinal)) throw Bad("no '->' after the arguments");
        string returns = rest[2..].Trim();
        if (returns.Length == 0) throw Bad("no return type");

        var args = new List<SchemaArgument>();
        bool keywordOnly = false;
        string inner = text[(open + 1)..close];
        foreach (var piece in inner.Trim().Length == 0 ? new List<string>() : SplitTopLevel(inner, ','))
        {
            string p = piece.Trim();
            if (p.Length == 0) throw Bad("empty argument");
            if (p == "...") continue;  // varargs (aten::einsum.sublist): no named argument
            if (p == "*")
            {
                if (keywordOnly) throw Bad("two '*'");
                keywordOnly = true;
                continue;
            }
            string decl = p;
            string? @default = null;
            int eq = TopLevelIndexOf(p, '=');
            if (eq >= 0) { decl = p[..eq].Trim(); @default = p[(eq + 1)..].Trim(); }
            int space = TopLevelLastIndexOf(decl, ' ');
            if (space <= 0) throw Bad($"argument '{p}' has no type or no name");
            string type = decl[..space].Trim(), argName = decl[(space + 1)..];
            if (argName.Length == 0 || !argName.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                throw Bad($"argument '{p}' has a bad name");
            if (args.Any(a => a.Name == argName)) throw Bad($"two arguments named '{argName}'");
            args.Add(new SchemaArgument(type, argName, @default, keywordOnly));
        }
        return new AtenSchema(text, name, overload, args.ToArray(), returns);
    }

    /// <summary>The index of the parenthesis closing the one at <paramref name="open"/>.</summary>
    static int? Matching(string s, int open)
    {
        int depth = 0;
        char quote = '\0';
        for (int k = open; k < s.Length; k++)
        {
            char c = s[k];
            if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
            if (c is '"' or '\'') quote = c;
            else if (c is '(' or '[') depth++;
            else if (c is ')' or ']' && --depth == 0) return c == ')' ? k : null;
        }
        return null;
    }

    /// <summary>Positions of <paramref name="sep"/> outside brackets and quotes.</summary>
    static IEnumerable<int> TopLevel(string s, char sep)
    {
        int depth = 0;
        char quote = '\0';
        for (int k = 0; k < s.Length; k++)
        {
            char c = s[k];
            if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
            if (c is '"' or '\'') quote = c;
            else if (c is '(' or '[') depth++;
            else if (c is ')' or ']') depth--;
            else if (c == sep && depth == 0) yield return k;
        }
    }

    static int TopLevelIndexOf(string s, char c) => TopLevel(s, c).DefaultIfEmpty(-1).First();
    static int TopLevelLastIndexOf(string s, char c) => TopLevel(s, c).DefaultIfEmpty(-1).Last();

    static List<string> SplitTopLevel(string s, char sep)
    {
        var parts = new List<string>();
        int start = 0;
        foreach (int k in TopLevel(s, sep)) { parts.Add(s[start..k]); start = k + 1; }
        parts.Add(s[start..]);
        return parts;
    }
}

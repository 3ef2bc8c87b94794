using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace MLNetExt.Serialization;

/// <summary>
/// A pickle interpreter for data (protocols 0-5): it builds <see cref="PyDict"/>, lists, <see cref="PyTuple"/>,
/// strings, numbers and <see cref="PyObject"/> placeholders, and never imports or runs anything. Calls of
/// globals go to <see cref="Call"/>, which the torch reader extends to rebuild tensors, and persistent ids to
/// <see cref="PersistentLoad"/>.
/// </summary>
internal class Unpickler
{
    /// <summary>Returned by <see cref="Call"/> overrides for globals they leave to the default.</summary>
    protected static readonly object NotHandled = new();

    readonly byte[] _data;
    readonly string _file, _entry;
    int _pos, _opPos;
    byte _op;
    readonly List<object?> _stack = new();
    readonly List<int> _marks = new();
    readonly Dictionary<long, object?> _memo = new();

    public Unpickler(byte[] data, string file, string entry)
    {
        _data = data;
        _file = file;
        _entry = entry;
    }

    /// <summary>The topmost string on the stack: while a dict value is being built, its key. Error messages
    /// quote it so a failure points at an entry.</summary>
    public string? CurrentKey => _stack.LastOrDefault(v => v is string) as string;

    /// <summary>An error at the current opcode, naming the file, the pickle entry and the position.</summary>
    public CheckpointException Error(string what) =>
        new(_file, $"corrupt pickle in '{_entry}' at byte {_opPos} (opcode 0x{_op:x2}{(_op >= 0x20 && _op < 0x7f ? $" '{(char)_op}'" : "")}): {what}.");

    public object? Load()
    {
        while (true)
        {
            if (_pos >= _data.Length) throw Error($"expected the STOP opcode but the pickle ended after {_data.Length} bytes");
            _opPos = _pos;
            _op = _data[_pos++];
            switch (_op)
            {
                case 0x80: Read(1); break;                              // PROTO
                case 0x95: Read(8); break;                              // FRAME: framing is irrelevant with the whole pickle in memory
                case (byte)'.': return _stack.Count == 1 && _marks.Count == 0 ? _stack[0]
                        : throw Error($"expected one object on the stack at STOP but found {_stack.Count} (and {_marks.Count} open marks)");
                case (byte)'}': Push(new PyDict("builtins.dict")); break;
                case (byte)']': Push(new List<object?>()); break;
                case (byte)')': Push(PyTuple.Empty); break;
                case 0x8f: Push(NewSet("builtins.set", null)); break;   // EMPTY_SET
                case (byte)'(': _marks.Add(_stack.Count); break;
                case (byte)'0': Pop(); break;                           // POP
                case (byte)'1': PopMark(); break;                       // POP_MARK
                case (byte)'2': Push(Peek()); break;                    // DUP

                case (byte)'X': PushString(Encoding.UTF8.GetString(Read(ReadLength(4)))); break;
                case 0x8c: PushString(Encoding.UTF8.GetString(Read(ReadLength(1)))); break;
                case 0x8d: PushString(Encoding.UTF8.GetString(Read(ReadLength(8)))); break;
                case (byte)'T': PushString(Encoding.Latin1.GetString(Read(ReadLength(4)))); break;   // BINSTRING (Python 2 str)
                case (byte)'U': PushString(Encoding.Latin1.GetString(Read(ReadLength(1)))); break;   // SHORT_BINSTRING
                case (byte)'V': PushString(RawUnicodeEscape(ReadLine(Encoding.Latin1))); break;                     // UNICODE
                case (byte)'B': Push(Read(ReadLength(4)).ToArray()); break;
                case (byte)'C': Push(Read(ReadLength(1)).ToArray()); break;
                case 0x8e: Push(Read(ReadLength(8)).ToArray()); break;
                case 0x96: Push(Read(ReadLength(8)).ToArray()); break;  // BYTEARRAY8

                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Read(4))); break;
                case (byte)'K': Push((long)Read(1)[0]); break;
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Read(2))); break;
                case 0x8a: Push(ReadLong(ReadLength(1))); break;        // LONG1
                case 0x8b: Push(ReadLong(ReadLength(4))); break;        // LONG4
                case (byte)'I': Push(ParseIntLine(ReadLine())); break;  // INT
                case (byte)'L': Push(ParseBig(ReadLine().TrimEnd('L'))); break;  // LONG
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Read(8))); break;
                case (byte)'F': Push(double.TryParse(ReadLine(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) ? f : throw Error("FLOAT is not a number")); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case (byte)'N': Push(null); break;

                case (byte)'q': Memo(Read(1)[0]); break;
                case (byte)'r': Memo(BinaryPrimitives.ReadUInt32LittleEndian(Read(4))); break;
                case (byte)'p': Memo(ParseIndex(ReadLine())); break;
                case 0x94: Memo(_memo.Count); break;                    // MEMOIZE
                case (byte)'h': Recall(Read(1)[0]); break;
                case (byte)'j': Recall(BinaryPrimitives.ReadUInt32LittleEndian(Read(4))); break;
                case (byte)'g': Recall(ParseIndex(ReadLine())); break;

                case (byte)'c': { var m = ReadLine(); var n = ReadLine(); Push(Global(m, n)); break; }
                case 0x93:                                              // STACK_GLOBAL
                {
                    var n = Pop() as string ?? throw Error("STACK_GLOBAL expects a string name");
                    var m = Pop() as string ?? throw Error("STACK_GLOBAL expects a string module");
                    Push(Global(m, n));
                    break;
                }
                case (byte)'Q': Push(PersistentLoad(Pop())); break;    // BINPERSID
                case (byte)'P': Push(PersistentLoad(ReadLine())); break;

                case (byte)'t': Push(new PyTuple(PopMark().ToArray())); break;
                case 0x85: Push(new PyTuple(new[] { Pop() })); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new PyTuple(new[] { a, b })); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PyTuple(new[] { a, b, c })); break; }
                case (byte)'l': Push(PopMark()); break;                 // LIST
                case (byte)'d': { var items = PopMark(); var d = new PyDict("builtins.dict"); SetItems(d, items); Push(d); break; }
                case 0x91: Push(NewSet("builtins.frozenset", PopMark())); break;

                case (byte)'a': { var v = Pop(); Append(Peek(), new List<object?> { v }); break; }
                case (byte)'e': { var items = PopMark(); Append(Peek(), items); break; }
                case 0x90: { var items = PopMark(); Append(Peek(), items); break; }   // ADDITEMS
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(Peek(), new List<object?> { k, v }); break; }
                case (byte)'u': { var items = PopMark(); SetItems(Peek(), items); break; }

                case (byte)'R':                                         // REDUCE
                {
                    var args = Pop();
                    var fn = Pop();
                    Push(CallAny(fn, args as PyTuple ?? throw Error($"REDUCE expects an argument tuple but found {Describe(args)}")));
                    break;
                }
                case 0x81:                                              // NEWOBJ
                {
                    var args = Pop() as PyTuple ?? throw Error("NEWOBJ expects an argument tuple");
                    Push(New(Pop(), args));
                    break;
                }
                case 0x92:                                              // NEWOBJ_EX: keyword arguments are kept as a last argument
                {
                    var kw = Pop();
                    var args = Pop() as PyTuple ?? throw Error("NEWOBJ_EX expects an argument tuple");
                    Push(New(Pop(), kw is PyDict { Count: > 0 } ? new PyTuple(args.Append(kw).ToArray()) : args));
                    break;
                }
                case (byte)'o':                                         // OBJ
                {
                    var items = PopMark();
                    if (items.Count == 0) throw Error("OBJ without a class");
                    Push(New(items[0], new PyTuple(items.Skip(1).ToArray())));
                    break;
                }
                case (byte)'i':                                         // INST
                {
                    var m = ReadLine(); var n = ReadLine();
                    Push(New(Global(m, n), new PyTuple(PopMark().ToArray())));
                    break;
                }
                case (byte)'b':                                         // BUILD
                {
                    var state = Pop();
                    switch (Peek())
                    {
                        case PyObject o: o.State = state; break;
                        case PyDict d: d.Attributes = state; break;
                        // Python would call __setstate__; on other values (tensors) there is nothing to keep.
                    }
                    break;
                }
                case 0x82 or 0x83 or 0x84:
                    throw Error("extension registry codes (EXT1/2/4) are not used by torch.save and are not supported");
                case 0x97 or 0x98:
                    throw Error("out-of-band buffers (protocol 5) are not supported");
                case (byte)'S':
                    throw Error("the text STRING opcode (protocol 0) is not supported; torch.save writes protocol 2");
                default:
                    throw Error($"unknown opcode 0x{_op:x2}");
            }
        }
    }

    // ---- stack ----

    void Push(object? v) => _stack.Add(v);

    void PushString(string s) => _stack.Add(s);

    object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor) throw Error(_stack.Count == 0 ? "the stack is empty" : "an object was expected above the mark");
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    object? Peek()
    {
        int floor = _marks.Count > 0 ? _marks[^1] : 0;
        if (_stack.Count <= floor) throw Error("the stack is empty");
        return _stack[^1];
    }

    List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Error("no MARK to pop to");
        int m = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(m, _stack.Count - m);
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    void Memo(long index) => _memo[index] = Peek();

    void Recall(long index)
    {
        if (!_memo.TryGetValue(index, out var v)) throw Error($"memo slot {index} was never stored");
        Push(v);
    }

    // ---- reading ----

    ReadOnlySpan<byte> Read(long n)
    {
        if (n < 0 || n > _data.Length - _pos)
            throw Error($"expected {n} more bytes but only {_data.Length - _pos} remain (truncated pickle?)");
        var s = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return s;
    }

    long ReadLength(int width)
    {
        var b = Read(width);
        long n = width switch
        {
            1 => b[0],
            4 => _op == (byte)'T' || _op == 0x8b ? BinaryPrimitives.ReadInt32LittleEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b),
            _ => (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(b), long.MaxValue),
        };
        if (n < 0) throw Error($"negative length {n}");
        return n;
    }

    /// <summary>A text argument (protocol 0); UNICODE lines are latin-1 with \\u escapes, the rest ASCII.</summary>
    string ReadLine(Encoding? encoding = null)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0) throw Error("expected a newline-terminated argument but the pickle ended");
        var s = (encoding ?? Encoding.UTF8).GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    object ReadLong(long n)
    {
        var b = Read(n);
        if (n == 0) return 0L;
        var v = new BigInteger(b, isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v;
    }

    object ParseIntLine(string s) => s switch
    {
        "00" => false,
        "01" => true,
        _ => ParseBig(s),
    };

    object ParseBig(string s)
    {
        if (!BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)) throw Error($"'{s}' is not an integer");
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v;
    }

    long ParseIndex(string s) => long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : throw Error($"'{s}' is not a memo index");

    static string RawUnicodeEscape(string s)
    {
        if (!s.Contains("\\u") && !s.Contains("\\U")) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            int digits = i + 1 < s.Length && s[i] == '\\' ? s[i + 1] switch { 'u' => 4, 'U' => 8, _ => 0 } : 0;
            if (digits > 0 && i + 2 + digits <= s.Length &&
                int.TryParse(s.AsSpan(i + 2, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int cp) && cp <= 0x10FFFF)
            {
                sb.Append(char.ConvertFromUtf32(cp));
                i += 1 + digits;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    // ---- objects ----

    static readonly Dictionary<string, string> s_moduleRenames = new()
    {
        ["__builtin__"] = "builtins", ["copy_reg"] = "copyreg", ["UserDict"] = "collections",
    };

    static PyGlobal Global(string module, string name) =>
        new(s_moduleRenames.GetValueOrDefault(module, module), name);

    static PyObject NewSet(string type, List<object?>? items)
    {
        var s = new PyObject(type, PyTuple.Empty);
        if (items is not null) s.Items.AddRange(items);
        return s;
    }

    static string Describe(object? v) => v switch
    {
        null => "None",
        PyObject o => o.TypeName + " object",
        PyGlobal g => g.FullName,
        PyDict => "a dict",
        PyTuple => "a tuple",
        List<object?> => "a list",
        string => "a str",
        long or System.Numerics.BigInteger => "an int",
        double => "a float",
        bool => "a bool",
        byte[] => "bytes",
        _ => v.GetType().Name,
    };

    void Append(object? target, List<object?> items)
    {
        switch (target)
        {
            case List<object?> l: l.AddRange(items); break;
            case PyObject o: o.Items.AddRange(items); break;
            default: throw Error($"cannot append to {Describe(target)}");
        }
    }

    void SetItems(object? target, List<object?> kv)
    {
        if (kv.Count % 2 != 0) throw Error($"SETITEMS needs key/value pairs but found {kv.Count} items");
        for (int i = 0; i < kv.Count; i += 2)
        {
            switch (target)
            {
                case PyDict d: d.Set(kv[i], kv[i + 1]); break;
                case PyObject o: o.DictItems.Add(new(kv[i], kv[i + 1])); break;
                default: throw Error($"cannot assign items to {Describe(target)}");
            }
        }
    }

    object? New(object? cls, PyTuple args)
    {
        if (cls is not PyGlobal g) throw Error($"expected a class to instantiate but found {Describe(cls)}");
        return g.FullName switch
        {
            "collections.OrderedDict" or "builtins.dict" or "collections.defaultdict" when args.Count == 0 => new PyDict(g.FullName),
            _ => CallAny(g, args),
        };
    }

    protected object? CallAny(object? fn, PyTuple args)
    {
        if (fn is not PyGlobal g)
            return new PyObject($"call of {Describe(fn)}", args);
        var r = Call(g, args);
        return ReferenceEquals(r, NotHandled) ? Builtin(g, args) : r;
    }

    /// <summary>Calls a global; overrides return <see cref="NotHandled"/> for those they leave to the
    /// built-in handling (containers, bytes, copyreg), which turns everything else into a <see cref="PyObject"/>.</summary>
    protected virtual object? Call(PyGlobal fn, PyTuple args) => NotHandled;

    /// <summary>Resolves a persistent id (BINPERSID); plain pickles have none.</summary>
    protected virtual object? PersistentLoad(object? pid) => throw Error($"unexpected persistent id {PyFormat.Repr(pid)}");

    object? Builtin(PyGlobal g, PyTuple args)
    {
        switch (g.FullName)
        {
            case "collections.OrderedDict" or "builtins.dict":
            {
                var d = new PyDict(g.FullName);
                if (args.Count > 0 && args[0] is IEnumerable<object?> pairs)
                    foreach (var p in pairs)
                        if (p is PyTuple { Count: 2 } kv) d.Set(kv[0], kv[1]);
                        else if (p is List<object?> { Count: 2 } kl) d.Set(kl[0], kl[1]);
                return d;
            }
            case "builtins.set" or "builtins.frozenset":
                return NewSet(g.FullName, args.Count > 0 && args[0] is IEnumerable<object?> e ? e.ToList() : null);
            case "builtins.list":
                return args.Count > 0 && args[0] is IEnumerable<object?> le ? le.ToList() : new List<object?>();
            case "builtins.tuple":
                return args.Count > 0 && args[0] is IEnumerable<object?> te ? new PyTuple(te.ToArray()) : PyTuple.Empty;
            case "builtins.bytes" or "builtins.bytearray" or "_codecs.encode":
                if (args.Count == 0) return Array.Empty<byte>();
                if (args[0] is byte[] raw) return raw;
                if (args[0] is string s)
                {
                    // Protocol 2 stores bytes as _codecs.encode(text, 'latin1').
                    var enc = args.Count > 1 ? args[1] as string : "utf-8";
                    return enc?.ToLowerInvariant().Replace('_', '-') switch
                    {
                        "latin1" or "latin-1" or "iso-8859-1" or "l1" => Encoding.Latin1.GetBytes(s),
                        "ascii" => Encoding.ASCII.GetBytes(s),
                        _ => Encoding.UTF8.GetBytes(s),
                    };
                }
                if (args[0] is List<object?> ints && ints.All(i => i is long))
                    return ints.Select(i => (byte)(long)i!).ToArray();
                break;
            case "copyreg._reconstructor" when args.Count >= 1 && args[0] is PyGlobal cls:
                return new PyObject(cls.FullName, args.Count > 2 && args[2] is not null ? new PyTuple(new[] { args[2] }) : PyTuple.Empty);
            case "copyreg.__newobj__" when args.Count >= 1 && args[0] is PyGlobal cls2:
                return New(cls2, new PyTuple(args.Skip(1).ToArray()));
        }
        return new PyObject(g.FullName, args);
    }
}

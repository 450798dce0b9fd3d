using System.Runtime.InteropServices;
using Lamina.Fuse.Wire;

namespace Lamina.Fuse;

/// <summary>
/// The reply buffer of a READDIR or READDIRPLUS request. A filesystem adds entries until
/// <see cref="TryAdd"/> returns false (the buffer is full); the kernel asks again from the
/// offset of the last entry it received.
/// </summary>
public ref struct DirEntryBuffer
{
    private readonly Span<byte> _buffer;
    private int _used;

    internal DirEntryBuffer(Span<byte> buffer, bool plus)
    {
        _buffer = buffer;
        _used = 0;
        IsPlus = plus;
    }

    /// <summary>True for READDIRPLUS: entries must be added with <see cref="TryAddPlus"/>.</summary>
    public bool IsPlus { get; }

    public int BytesUsed => _used;

    private static int Align8(int n) => (n + 7) & ~7;

    /// <summary>Adds a plain entry; <paramref name="nextOffset"/> is the cookie that resumes after it.</summary>
    public bool TryAdd(ulong ino, long nextOffset, uint type, scoped ReadOnlySpan<byte> name)
    {
        int header = Marshal.SizeOf<Dirent>();
        int size = Align8(header + name.Length);
        if (_used + size > _buffer.Length) return false;
        var slot = _buffer.Slice(_used, size);
        var d = new Dirent { Ino = ino, Off = (ulong)nextOffset, NameLen = (uint)name.Length, Type = type };
        MemoryMarshal.Write(slot, in d);
        name.CopyTo(slot[header..]);
        slot[(header + name.Length)..].Clear();
        _used += size;
        return true;
    }

    /// <summary>
    /// Adds an entry with its attributes (READDIRPLUS). When it returns true and
    /// <paramref name="entry"/> has a node id, the kernel holds one more lookup of that node,
    /// exactly as after LOOKUP; when it returns false, nothing was counted.
    /// </summary>
    public bool TryAddPlus(in EntryOut entry, long nextOffset, uint type, scoped ReadOnlySpan<byte> name)
    {
        int entrySize = Marshal.SizeOf<EntryOut>();
        int header = entrySize + Marshal.SizeOf<Dirent>();
        int size = Align8(header + name.Length);
        if (_used + size > _buffer.Length) return false;
        var slot = _buffer.Slice(_used, size);
        MemoryMarshal.Write(slot, in entry);
        var d = new Dirent { Ino = entry.Attr.Ino, Off = (ulong)nextOffset, NameLen = (uint)name.Length, Type = type };
        MemoryMarshal.Write(slot[entrySize..], in d);
        name.CopyTo(slot[header..]);
        slot[(header + name.Length)..].Clear();
        _used += size;
        return true;
    }
}

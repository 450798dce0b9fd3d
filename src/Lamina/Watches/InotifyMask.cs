namespace Lamina.Watches;

/// <summary>inotify's event bits and flags (linux/inotify.h), plus Lamina's recursive-watch flag.</summary>
public static class InotifyMask
{
    public const uint Access = 0x1, Modify = 0x2, Attrib = 0x4, CloseWrite = 0x8, CloseNoWrite = 0x10, Open = 0x20;
    public const uint MovedFrom = 0x40, MovedTo = 0x80, Create = 0x100, Delete = 0x200, DeleteSelf = 0x400, MoveSelf = 0x800;
    public const uint Unmount = 0x2000, QOverflow = 0x4000, Ignored = 0x8000;
    public const uint Close = CloseWrite | CloseNoWrite, Move = MovedFrom | MovedTo;
    public const uint AllEvents = 0xFFF;

    public const uint OnlyDir = 0x01000000, DontFollow = 0x02000000, ExclUnlink = 0x04000000;
    public const uint MaskCreate = 0x10000000, MaskAdd = 0x20000000, IsDir = 0x40000000, OneShot = 0x80000000;

    /// <summary>Lamina's own flag (a bit inotify leaves unused): the watch also covers every directory below.</summary>
    public const uint Recursive = 0x08000000;

    /// <summary>Bits a caller may pass to add-watch.</summary>
    public const uint Valid = AllEvents | OnlyDir | DontFollow | ExclUnlink | MaskCreate | MaskAdd | OneShot | Recursive;

    /// <summary>Events a directory watch also receives for its children (the kernel's FS_EVENTS_POSS_ON_CHILD).</summary>
    public const uint OnChild = Access | Modify | Attrib | CloseWrite | CloseNoWrite | Open;

    private static readonly (uint Bit, string Name)[] Names =
    [
        (Access, "ACCESS"), (Modify, "MODIFY"), (Attrib, "ATTRIB"), (CloseWrite, "CLOSE_WRITE"), (CloseNoWrite, "CLOSE_NOWRITE"),
        (Open, "OPEN"), (MovedFrom, "MOVED_FROM"), (MovedTo, "MOVED_TO"), (Create, "CREATE"), (Delete, "DELETE"),
        (DeleteSelf, "DELETE_SELF"), (Unmount, "UNMOUNT"), (QOverflow, "Q_OVERFLOW"), (Ignored, "IGNORED"),
        (Close, "CLOSE"), (MoveSelf, "MOVE_SELF"), (IsDir, "ISDIR"), (OneShot, "ONESHOT"),
    ];

    /// <summary>Event names in inotifytools' order and spelling: "CLOSE_WRITE,CLOSE", "CREATE,ISDIR", "MOVED_TO".</summary>
    public static string Format(uint mask, char separator = ',')
    {
        var parts = new List<string>();
        foreach (var (bit, name) in Names)
            if ((mask & bit) != 0) parts.Add(name);
        return string.Join(separator, parts);
    }

    /// <summary>Parses inotifywait's -e names (access, modify, close_write, close, move, create, delete, all_events, ...), case-insensitive.</summary>
    public static bool TryParse(string names, out uint mask)
    {
        mask = 0;
        foreach (var raw in names.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries))
        {
            string n = raw.Trim().ToUpperInvariant();
            uint bit = n switch
            {
                "MOVE" => Move,
                "ALL_EVENTS" or "ALL" => AllEvents,
                "MOVE_SELF" => MoveSelf,
                _ => n is "ISDIR" or "ONESHOT" ? 0 : Names.FirstOrDefault(x => x.Name == n).Bit,
            };
            if (bit == 0) return false;
            mask |= bit;
        }
        return mask != 0;
    }
}

using System.Runtime.InteropServices;

namespace Lamina.Fuse.Wire;

[StructLayout(LayoutKind.Sequential)] public struct NotifyInvalInodeOut { public ulong Ino; public long Off; public long Len; }
[StructLayout(LayoutKind.Sequential)] public struct NotifyInvalEntryOut { public ulong Parent; public uint NameLen; public uint Flags; }
[StructLayout(LayoutKind.Sequential)] public struct NotifyDeleteOut { public ulong Parent; public ulong Child; public uint NameLen; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct NotifyStoreOut { public ulong NodeId; public ulong Offset; public uint Size; public uint Padding; }
[StructLayout(LayoutKind.Sequential)] public struct NotifyRetrieveOut { public ulong NotifyUnique; public ulong NodeId; public ulong Offset; public uint Size; public uint Padding; }

/// <summary>struct fuse_notify_retrieve_in: the body of the NOTIFY_REPLY that answers a RETRIEVE.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct NotifyRetrieveIn { public ulong Dummy1; public ulong Offset; public uint Size; public uint Dummy2; public ulong Dummy3; public ulong Dummy4; }

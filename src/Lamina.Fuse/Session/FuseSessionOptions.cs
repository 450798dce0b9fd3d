namespace Lamina.Fuse;

/// <summary>What a session asks of the kernel at INIT. Only what both sides support is enabled.</summary>
public sealed record FuseSessionOptions
{
    /// <summary>
    /// Worker threads, each reading its own cloned /dev/fuse descriptor. One per CPU: the kernel wakes
    /// idle workers in turn, so more workers than CPUs only add wake-ups and contention (measured on 2
    /// CPUs: 4 workers read a file 25 % slower and serve parallel stat 15-35 % slower than 2). A call
    /// that waits for another party does not hold a worker (<see cref="IFuseFileSystem.SetLkWait"/>).
    /// </summary>
    public int Workers { get; init; } = Math.Clamp(Environment.ProcessorCount, 2, 16);

    /// <summary>Largest request in 4 KiB pages (256 = 1 MiB reads and writes).</summary>
    public ushort MaxPages { get; init; } = 256;

    /// <summary>Kernel passthrough of file I/O to backing files (root only, kernel 6.9+).</summary>
    public bool Passthrough { get; init; } = true;

    /// <summary>Stack depth declared for passthrough: 1 when backing files are on a plain filesystem, 2 when they are on an overlay.</summary>
    public uint PassthroughStackDepth { get; init; } = 1;

    /// <summary>Buffered writes cached in the kernel (disables passthrough).</summary>
    public bool WritebackCache { get; init; }

    /// <summary>POSIX byte-range locks answered by the filesystem (otherwise the kernel keeps them locally).</summary>
    public bool PosixLocks { get; init; }

    /// <summary>flock locks answered by the filesystem (otherwise the kernel keeps them locally).</summary>
    public bool FlockLocks { get; init; }

    public bool ReaddirPlus { get; init; } = true;
    public bool ExportSupport { get; init; } = true;
    public bool ParallelDirops { get; init; } = true;
    public bool AtomicOTrunc { get; init; } = true;

    /// <summary>The filesystem clears setuid/setgid on write, truncate and chown itself (otherwise the kernel asks with SETATTR).</summary>
    public bool HandleKillPriv { get; init; }

    /// <summary>Ask the kernel to send the caller's matching supplementary group with create calls.</summary>
    public bool CreateSupplementaryGroup { get; init; }

    /// <summary>
    /// Serve the requests of callers other than root without CAP_SYS_RESOURCE (when the daemon has
    /// it), so that their disk quotas and the root-reserved blocks of a filesystem apply to what
    /// the daemon does for them, as they would without the mount. Root's requests keep it. Backing
    /// files registered for passthrough carry the identity of the request that registered them.
    /// </summary>
    public bool CallerResourceLimits { get; init; } = true;

    /// <summary>Cache symlink targets in the kernel.</summary>
    public bool CacheSymlinks { get; init; } = true;

    /// <summary>Where the session reports what it cannot answer (null: nowhere).</summary>
    public Action<string>? Log { get; init; }
}

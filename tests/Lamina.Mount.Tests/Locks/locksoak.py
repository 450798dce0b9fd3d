#!/usr/bin/env python3
"""One free-running process of the lock soak: takes and releases random POSIX, OFD and flock
locks on a few files for a fixed time and checks mutual exclusion itself, through the contents.

    locksoak.py ID SECONDS SEED KIND:LAYER:PATH...

KIND is "range" (POSIX and OFD byte-range locks, which conflict with each other) or "flock"
(whole-file flock locks, which on Linux are independent of byte-range locks, so such a file gets
no range locks). LAYER is "lower" or "upper".

Every file starts as SIZE bytes of '.'. The rule every process keeps: a byte is '.' whenever no
exclusive lock covers it. So
  - an exclusive holder (write lock, LOCK_EX) writes its letter over its range, reads it back
    unchanged (nobody else wrote into it), writes '.' back, reads that back, and only then unlocks;
  - a shared holder (read lock, LOCK_SH) reads its range twice, a moment apart, and must find only
    '.': any letter is a writer that held an overlapping exclusive lock at the same time.
Lower files are, until their turn comes (lower file k of n at (k+1)/(n+1) of the run), only locked
shared through read-only descriptors; then the first process that wants an exclusive lock on one
opens it O_RDWR, which copies it up under the others' locks.

Requests: non-blocking (busy answers counted) and blocking, shared and exclusive, one lock or two
at once (the second on another file). A blocking second lock is asked only when both are POSIX
locks: the kernel detects deadlock cycles of POSIX owners only (EDEADLK, counted), and a cycle
through an OFD or flock lock would hang here as it would on any filesystem.
Ends with one JSON line on stdout; exit status 0 only when no violation was seen.
"""
import errno, fcntl, json, os, random, struct, sys, time

SIZE = 1024
FLOCK = "hhxxxxqqixxxx"  # struct flock on 64-bit Linux
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38

ident, seconds, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
specs = [a.split(":", 2) for a in sys.argv[4:]]
kinds = [k for k, _, _ in specs]
paths = [p for _, _, p in specs]
lower = [layer == "lower" for _, layer, _ in specs]
letter = bytes([ord("A") + ident])
rng = random.Random(seed)
start = time.monotonic()
deadline = start + seconds
lower_order = [i for i in range(len(paths)) if lower[i]]
writable_at = [start + seconds * (lower_order.index(i) + 1) / (len(lower_order) + 1) if lower[i] else start
               for i in range(len(paths))]

ro = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p in paths]
rw = [None] * len(paths)
stats = {"id": ident, "pid": os.getpid(), "iterations": 0, "read_locks": 0, "write_locks": 0,
         "posix_locks": 0, "ofd_locks": 0, "flock_locks": 0, "busy": 0,
         "blocking": 0, "waited": 0, "edeadlk": 0, "nested": 0, "opened_rw": 0, "checks": 0,
         "violations": 0, "errors": 0, "examples": []}


def problem(kind, text):
    stats[kind] += 1
    if len(stats["examples"]) < 10:
        line = f"{time.monotonic() - start:.3f}s {text}"
        stats["examples"].append(line)
        print(f"{kind[:-1]}: {line}", file=sys.stderr, flush=True)  # seen even if this process never gets to report


def lock(fd, how, typ, s, n, blocking):
    """how: "posix" or "ofd" (fcntl byte-range), "flock" (whole file; s and n unused)."""
    if how == "flock":
        op = {fcntl.F_RDLCK: fcntl.LOCK_SH, fcntl.F_WRLCK: fcntl.LOCK_EX, fcntl.F_UNLCK: fcntl.LOCK_UN}[typ]
        fcntl.flock(fd, op if blocking else op | fcntl.LOCK_NB)
        return
    if how == "ofd":
        cmd = F_OFD_SETLKW if blocking else F_OFD_SETLK
    else:
        cmd = fcntl.F_SETLKW if blocking else fcntl.F_SETLK
    fcntl.fcntl(fd, cmd, struct.pack(FLOCK, typ, os.SEEK_SET, s, n, 0))


def pread_all(fd, n, s):
    data = b""
    while len(data) < n:
        chunk = os.pread(fd, n - len(data), s + len(data))
        if not chunk:
            break
        data += chunk
    return data


def pwrite_all(fd, data, s):
    while data:
        done = os.pwrite(fd, data, s)
        data, s = data[done:], s + done


def others(data):
    return sorted({chr(b) for b in data if b != ord(".")})


def check(held):
    """The mutual-exclusion checks for every range held; held: list of (file, type, start, length)."""
    for f, how, fd, typ, s, n in held:
        span = (SIZE - s) if n == 0 else n
        where = f"{os.path.basename(paths[f])} [{s},{s + span})"
        if typ == fcntl.F_WRLCK:
            pwrite_all(rw[f], letter * span, s)
            if rng.random() < 0.3:
                time.sleep(rng.random() * 0.002)
            got = pread_all(rw[f], span, s)
            if got != letter * span:
                problem("violations", f"write lock {where}: read back letters {others(got)}, only {letter.decode()} belongs there")
            pwrite_all(rw[f], b"." * span, s)
            got = pread_all(rw[f], span, s)
            if got != b"." * span:
                problem("violations", f"write lock {where}: after restoring '.', found {others(got)}")
        else:
            for i in range(2):
                got = pread_all(ro[f], span, s)
                if len(got) != span or got != b"." * span:
                    problem("violations", f"read lock {where}: writers {others(got)} inside the range (read {len(got)} bytes, pass {i})")
                if i == 0:
                    time.sleep(rng.random() * 0.002)
        stats["checks"] += 1


def pick_range(f):
    if kinds[f] == "flock":
        return 0, 0  # the whole file
    if rng.random() < 0.05:
        s = rng.randrange(0, SIZE)
        return s, 0  # to the end of the file
    s = rng.randrange(0, SIZE - 1)
    return s, rng.randint(1, min(128, SIZE - s))


def acquire(f, want_write, how, blocking):
    """Takes one lock; returns (file, how, fd, type, start, length) or None when busy or refused."""
    typ = fcntl.F_WRLCK if want_write else fcntl.F_RDLCK
    if want_write and rw[f] is None:
        rw[f] = os.open(paths[f], os.O_RDWR | os.O_CLOEXEC)  # the first of a lower file copies it up
        stats["opened_rw"] += 1
    # An exclusive lock goes through the read-write descriptor, which also writes the check; a
    # shared one through the read-only descriptor (an fcntl read lock needs a readable descriptor).
    fd = rw[f] if want_write else ro[f]
    s, n = pick_range(f)
    t0 = time.monotonic()
    try:
        lock(fd, how, typ, s, n, blocking)
    except OSError as e:
        if not blocking and e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            stats["busy"] += 1
            return None
        if blocking and how == "posix" and e.errno == errno.EDEADLK:
            stats["edeadlk"] += 1
            return None
        problem("errors", f"{how} {'blocking' if blocking else 'non-blocking'} {'w' if want_write else 'r'} {os.path.basename(paths[f])} {s} {n}: {errno.errorcode.get(e.errno, e.errno)}")
        return None
    if blocking:
        stats["blocking"] += 1
        if time.monotonic() - t0 > 0.001:
            stats["waited"] += 1
    stats["write_locks" if want_write else "read_locks"] += 1
    stats[how + "_locks"] += 1
    return f, how, fd, typ, s, n


def release(held):
    for f, how, fd, typ, s, n in held:
        # A POSIX lock belongs to the process, so any descriptor of the file unlocks it; an OFD or
        # flock lock belongs to the open file description that took it.
        lock(ro[f] if how == "posix" else fd, how, fcntl.F_UNLCK, s, n, False)


def choose():
    f = rng.randrange(len(paths))
    want_write = rng.random() < 0.5 and time.monotonic() >= writable_at[f]
    how = "flock" if kinds[f] == "flock" else ("ofd" if rng.random() < 0.4 else "posix")
    return f, want_write, how


while time.monotonic() < deadline:
    stats["iterations"] += 1
    held = []
    try:
        f, w, how = choose()
        first = acquire(f, w, how, rng.random() < 0.5)
        if first:
            held.append(first)
            if rng.random() < 0.3:
                g, w2, how2 = choose()
                if g != f:
                    stats["nested"] += 1
                    second = acquire(g, w2, how2, how == "posix" and how2 == "posix" and rng.random() < 0.5)
                    if second:
                        held.append(second)
            check(held)
    except OSError as e:
        problem("errors", f"{errno.errorcode.get(e.errno, e.errno)}: {e}")
    finally:
        try:
            release(held)
        except OSError as e:
            problem("errors", f"unlock: {errno.errorcode.get(e.errno, e.errno)}")
    if rng.random() < 0.2:
        time.sleep(rng.random() * 0.001)

stats["seconds"] = round(time.monotonic() - start, 3)
for fd in ro + [fd for fd in rw if fd is not None]:
    os.close(fd)
print(json.dumps(stats), flush=True)
sys.exit(1 if stats["violations"] or stats["errors"] else 0)

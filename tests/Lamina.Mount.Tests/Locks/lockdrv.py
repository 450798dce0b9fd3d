#!/usr/bin/env python3
"""One lock owner for the lock tests: reads one command per line on stdin, answers one line.

Commands (fds are names the controller chooses):
  open NAME PATH r|rw|rwn      -> ok | err ERRNO   (rwn: O_RDWR|O_NONBLOCK)
  close NAME                   -> ok | err ERRNO
  lk NAME CMD TYPE START LEN   CMD: setlk setlkw getlk ofd_setlk ofd_setlkw ofd_getlk; TYPE: r w u
                               -> ok | err ERRNO | lk TYPE START LEN PID (getlk) | lk u
  flock NAME sh|ex|un [nb]     -> ok | err ERRNO
  write NAME OFFSET TEXT       -> ok N | err ERRNO
  truncate NAME SIZE           -> ok | err ERRNO
  lease NAME r|w|u             -> ok | err ERRNO   (F_SETLEASE)
  getlease NAME                -> lease r|w|u
  signals                      -> sigio N   (lease-break notifications received so far)
  alarm SECONDS                -> ok   (SIGALRM then interrupts a blocking call: err EINTR)
  pid                          -> PID
  exit
"""
import errno, fcntl, os, signal, struct, sys

F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_SETLEASE, F_GETLEASE = 1024, 1025
CMDS = {"setlk": fcntl.F_SETLK, "setlkw": fcntl.F_SETLKW, "getlk": fcntl.F_GETLK,
        "ofd_setlk": F_OFD_SETLK, "ofd_setlkw": F_OFD_SETLKW, "ofd_getlk": F_OFD_GETLK}
TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}
NAMES = {v: k for k, v in TYPES.items()}
FLOCK = "hhxxxxqqixxxx"  # struct flock on 64-bit Linux


class Interrupted(Exception):
    pass


def on_alarm(signum, frame):
    raise Interrupted()


signal.signal(signal.SIGALRM, on_alarm)
sigio = [0]


def on_sigio(signum, frame):
    sigio[0] += 1  # a lease holder is told to let go (the default action would end the process)


signal.signal(signal.SIGIO, on_sigio)
fds = {}


def err(e):
    if e.errno == errno.EDEADLK:
        return "err EDEADLK"  # errorcode names 35 EDEADLOCK, its alias
    return "err " + errno.errorcode.get(e.errno, str(e.errno))


def run(words):
    op = words[0]
    if op == "pid":
        return str(os.getpid())
    if op == "signals":
        return f"sigio {sigio[0]}"
    if op == "alarm":
        signal.setitimer(signal.ITIMER_REAL, float(words[1]))
        return "ok"
    if op == "open":
        flags = {"r": os.O_RDONLY, "rw": os.O_RDWR, "rwn": os.O_RDWR | os.O_NONBLOCK}[words[3]]
        fds[words[1]] = os.open(words[2], flags | os.O_CLOEXEC)
        return "ok"
    fd = fds[words[1]]
    if op == "close":
        del fds[words[1]]
        os.close(fd)
        return "ok"
    if op == "lk":
        cmd, typ, start, length = CMDS[words[2]], TYPES[words[3]], int(words[4]), int(words[5])
        res = fcntl.fcntl(fd, cmd, struct.pack(FLOCK, typ, os.SEEK_SET, start, length, 0))
        if cmd in (fcntl.F_GETLK, F_OFD_GETLK):
            t, _, s, l, p = struct.unpack(FLOCK, res)
            return "lk u" if t == fcntl.F_UNLCK else f"lk {NAMES[t]} {s} {l} {p}"
        return "ok"
    if op == "flock":
        how = {"sh": fcntl.LOCK_SH, "ex": fcntl.LOCK_EX, "un": fcntl.LOCK_UN}[words[2]]
        if len(words) > 3 and words[3] == "nb":
            how |= fcntl.LOCK_NB
        fcntl.flock(fd, how)
        return "ok"
    if op == "write":
        return "ok " + str(os.pwrite(fd, words[3].encode(), int(words[2])))
    if op == "truncate":
        os.ftruncate(fd, int(words[2]))
        return "ok"
    if op == "lease":
        fcntl.fcntl(fd, F_SETLEASE, TYPES[words[2]])
        return "ok"
    if op == "getlease":
        return "lease " + NAMES[fcntl.fcntl(fd, F_GETLEASE)]
    return "err EINVAL"


for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "exit":
        break
    try:
        answer = run(words)
    except Interrupted:
        answer = "err EINTR"
    except OSError as e:
        answer = err(e)
    finally:
        if words[0] != "alarm":
            signal.setitimer(signal.ITIMER_REAL, 0)
    sys.stdout.write(answer + "\n")
    sys.stdout.flush()

// lock/unlock pairs per second on one file: POSIX (F_SETLK), OFD (F_OFD_SETLK) or flock.
// usage: lockbench FILE posix|ofd|flock SECONDS
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int range(int fd, int cmd, short type, off_t start)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = 1 };
    return fcntl(fd, cmd, &fl);
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s FILE posix|ofd|flock SECONDS\n", argv[0]); return 2; }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror(argv[1]); return 1; }
    const char *mode = argv[2];
    double seconds = atof(argv[3]), start = now(), end = start + seconds;
    long pairs = 0;
    int cmd = strcmp(mode, "ofd") == 0 ? F_OFD_SETLK : F_SETLK;
    while (1) {
        for (int i = 0; i < 64; i++, pairs++) {
            off_t at = (pairs % 1024) * 2; // different ranges, so merging never hides the work
            int a, b;
            if (strcmp(mode, "flock") == 0) { a = flock(fd, LOCK_EX | LOCK_NB); b = flock(fd, LOCK_UN); }
            else { a = range(fd, cmd, F_WRLCK, at); b = range(fd, cmd, F_UNLCK, at); }
            if (a || b) { perror("lock"); return 1; }
        }
        if (now() >= end) break;
    }
    printf("%.0f\n", pairs / (now() - start));
    return 0;
}

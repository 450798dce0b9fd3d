/* Dataset generator and micro-benchmarks for bench/run. Every timed mode prints "<seconds> <count>".
 *
 * Generators (untimed, run on the branch directories themselves):
 *   gen-tree ROOT NLAYERS NFILES     ROOT/l0..l{N-1}: a source-like tree s%02d/m%02d/f%06d.c,
 *                                    file i in layer i%NLAYERS, every 50th also shadowed in l0;
 *                                    writes ROOT/paths.txt (the merged view's files, one a line)
 *   gen-readdir ROOT N               ROOT/r0..r2, each with big/: 0.4N names, overlapping by 0.1N,
 *                                    so the merged big/ holds exactly N names
 *   gen-depth ROOT NLAYERS K         ROOT/0..ROOT/{NLAYERS-2} (one file each) and ROOT/b with
 *                                    K files f%05d and K files g%05d (for warming the daemon up):
 *                                    the bottom layer of an NLAYERS stack
 *   gen-big FILE MIB                 a file of MIB MiB (non-zero bytes), written and fsynced
 * Timed modes (through a mount):
 *   seqwrite FILE MIB                MIB 1 MiB writes to a new file, then close (no fsync)
 *   seqread FILE                     1 MiB reads to the end; count = bytes
 *   randread FILE N                  N preads of 4 KiB at random 4 KiB-aligned offsets
 *   copyup FILE                      open(O_WRONLY) + pwrite 1 byte at 0 + close
 *   statlist ROOT LISTFILE           lstat of ROOT/<every line of LISTFILE>
 *   statn DIR K [P]                  lstat of DIR/P00000..P{K-1} (P defaults to f)
 *   probe DIR K                      the same, missing names allowed (warms a branch's dentries)
 *   create DIR N / list DIR / delete DIR N   small files DIR/c%06d (O_CREAT|O_EXCL, 100 bytes)
 *   readdir DIR                      count the entries of DIR (without . and ..)
 * Coherence (prints four numbers instead: name p50, name p99, data p50, data p99, in ms):
 *   coherence BRANCH MNT N           N times: a name made directly in BRANCH (missing through MNT
 *                                    just before, so a negative entry may be cached) until stat
 *                                    through MNT finds it; and BRANCH/data rewritten in place
 *                                    (read through MNT just before) until a read through MNT
 *                                    returns the new bytes. Each wait ends after 2 s (2000: never).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) { perror(what); exit(1); }

static void mkdirp(const char *p)
{
    char b[4096];
    snprintf(b, sizeof b, "%s", p);
    for (char *s = b + 1; *s; s++)
        if (*s == '/') { *s = 0; if (mkdir(b, 0755) && errno != EEXIST) die(b); *s = '/'; }
    if (mkdir(b, 0755) && errno != EEXIST) die(b);
}

static char buf[1 << 20];

static void writefile(const char *path, size_t size)
{
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(path);
    if (size && write(fd, buf, size) != (ssize_t)size) die(path);
    close(fd);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xs(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: ubench MODE ARGS (see the source)\n"); return 2; }
    const char *mode = argv[1];
    char path[8192];
    memset(buf, 'x', sizeof buf);
    for (size_t i = 0; i < sizeof buf; i += 64) buf[i] = '\n';
    double t0 = now();
    long count = 0;

    if (!strcmp(mode, "gen-tree")) {
        const char *root = argv[2]; int nl = atoi(argv[3]); long n = atol(argv[4]);
        snprintf(path, sizeof path, "%s/paths.txt", root);
        mkdirp(root);
        FILE *list = fopen(path, "w"); if (!list) die(path);
        for (long i = 0; i < n; i++) {
            long d = i / 500; int top = (int)(d / 20) % 100, mid = (int)(d % 20);
            int layers[2] = { (int)(i % nl), (i % 50 == 0 && i % nl) ? 0 : -1 };
            for (int k = 0; k < 2; k++) {
                if (layers[k] < 0) continue;
                snprintf(path, sizeof path, "%s/l%d/s%02d/m%02d", root, layers[k], top, mid);
                struct stat st;
                if (stat(path, &st)) mkdirp(path);
                snprintf(path + strlen(path), sizeof path - strlen(path), "/f%06ld.c", i);
                writefile(path, (size_t)((i * 37 + k * 11) % 1024));
            }
            fprintf(list, "s%02d/m%02d/f%06ld.c\n", top, mid, i);
            count++;
        }
        fclose(list);
    } else if (!strcmp(mode, "gen-readdir")) {
        const char *root = argv[2]; long n = atol(argv[3]);
        for (int l = 0; l < 3; l++) {
            long from = l * (n * 3 / 10), to = l == 2 ? n : from + n * 4 / 10;
            snprintf(path, sizeof path, "%s/r%d/big", root, l); mkdirp(path);
            for (long i = from; i < to; i++) {
                snprintf(path, sizeof path, "%s/r%d/big/entry-%07ld", root, l, i);
                writefile(path, 0); count++;
            }
        }
    } else if (!strcmp(mode, "gen-depth")) {
        const char *root = argv[2]; int nl = atoi(argv[3]); long k = atol(argv[4]);
        for (int l = 0; l < nl - 1; l++) {
            snprintf(path, sizeof path, "%s/%d", root, l); mkdirp(path);
            snprintf(path, sizeof path, "%s/%d/own%d", root, l, l); writefile(path, 10);
        }
        snprintf(path, sizeof path, "%s/b", root); mkdirp(path);
        for (long i = 0; i < k; i++) {
            snprintf(path, sizeof path, "%s/b/f%05ld", root, i); writefile(path, 10); count++;
            snprintf(path, sizeof path, "%s/b/g%05ld", root, i); writefile(path, 10);
        }
    } else if (!strcmp(mode, "gen-big")) {
        long mib = atol(argv[3]);
        int fd = open(argv[2], O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) die(argv[2]);
        for (long i = 0; i < mib; i++) if (write(fd, buf, sizeof buf) != sizeof buf) die("write");
        if (fsync(fd)) die("fsync");
        close(fd); count = mib;
    } else if (!strcmp(mode, "seqwrite")) {
        long mib = atol(argv[3]);
        int fd = open(argv[2], O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) die(argv[2]);
        for (long i = 0; i < mib; i++) if (write(fd, buf, sizeof buf) != sizeof buf) die("write");
        if (close(fd)) die("close");
        count = mib << 20;
    } else if (!strcmp(mode, "seqread")) {
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) die(argv[2]);
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) count += r;
        if (r < 0) die("read");
        close(fd);
    } else if (!strcmp(mode, "randread")) {
        long n = atol(argv[3]);
        int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
        if (fd < 0) die(argv[2]);
        struct stat st; if (fstat(fd, &st)) die("fstat");
        long blocks = st.st_size / 4096;
        if (blocks < 1) { fprintf(stderr, "randread: file too small\n"); return 1; }
        t0 = now();
        for (long i = 0; i < n; i++)
            if (pread(fd, buf, 4096, (off_t)(xs() % blocks) * 4096) != 4096) die("pread");
        close(fd); count = n;
    } else if (!strcmp(mode, "copyup")) {
        int fd = open(argv[2], O_WRONLY | O_CLOEXEC);
        if (fd < 0) die(argv[2]);
        if (pwrite(fd, "y", 1, 0) != 1) die("pwrite");
        if (close(fd)) die("close");
        count = 1;
    } else if (!strcmp(mode, "statlist")) {
        FILE *list = fopen(argv[3], "r"); if (!list) die(argv[3]);
        char line[4096]; struct stat st;
        size_t rl = strlen(argv[2]);
        memcpy(path, argv[2], rl); path[rl++] = '/';
        t0 = now();
        while (fgets(line, sizeof line, list)) {
            size_t l = strlen(line); if (l && line[l - 1] == '\n') line[--l] = 0;
            if (!l) continue;
            memcpy(path + rl, line, l + 1);
            if (lstat(path, &st)) die(path);
            count++;
        }
        fclose(list);
    } else if (!strcmp(mode, "statn") || !strcmp(mode, "probe")) {
        long k = atol(argv[3]); struct stat st; int probe = mode[0] == 'p';
        const char *prefix = argc > 4 ? argv[4] : "f";
        for (long i = 0; i < k; i++) {
            snprintf(path, sizeof path, "%s/%s%05ld", argv[2], prefix, i);
            if (lstat(path, &st)) { if (!probe || errno != ENOENT) die(path); }
            else count++;
        }
    } else if (!strcmp(mode, "create") || !strcmp(mode, "delete")) {
        long n = atol(argv[3]); int del = mode[0] == 'd';
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/c%06ld", argv[2], i);
            if (del) { if (unlink(path)) die(path); }
            else {
                int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
                if (fd < 0) die(path);
                if (write(fd, buf, 100) != 100) die(path);
                close(fd);
            }
            count++;
        }
    } else if (!strcmp(mode, "list") || !strcmp(mode, "readdir")) {
        DIR *d = opendir(argv[2]);
        if (!d) die(argv[2]);
        struct dirent *e;
        errno = 0;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) count++;
        if (errno) die("readdir");
        closedir(d);
    } else if (!strcmp(mode, "coherence")) {
        int n = atoi(argv[4]);
        double *names = calloc(n, sizeof *names), *datas = calloc(n, sizeof *datas);
        char mpath[8192], got[64], want[64];
        struct stat st;
        snprintf(path, sizeof path, "%s/data", argv[2]);
        snprintf(mpath, sizeof mpath, "%s/data", argv[3]);
        for (int i = 0; i < n; i++) {
            /* a name */
            snprintf(path, sizeof path, "%s/n%05d", argv[2], i);
            snprintf(mpath, sizeof mpath, "%s/n%05d", argv[3], i);
            if (lstat(mpath, &st) == 0) { fprintf(stderr, "%s exists already\n", mpath); return 1; }
            double t = now();
            writefile(path, 0);
            while (lstat(mpath, &st) != 0 && now() - t < 2) { struct timespec w = {0, 200000}; nanosleep(&w, NULL); }
            names[i] = (now() - t) * 1000;
            /* data, same length, in place */
            snprintf(path, sizeof path, "%s/data", argv[2]);
            snprintf(mpath, sizeof mpath, "%s/data", argv[3]);
            int fd = open(mpath, O_RDONLY | O_CLOEXEC);
            if (fd < 0) die(mpath);
            if (read(fd, got, sizeof got) < 0) die(mpath);
            close(fd);
            snprintf(want, sizeof want, "v%06d\n", i + 1);
            t = now();
            fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || pwrite(fd, want, strlen(want), 0) != (ssize_t)strlen(want)) die(path);
            close(fd);
            for (;;) {
                fd = open(mpath, O_RDONLY | O_CLOEXEC);
                if (fd < 0) die(mpath);
                ssize_t r = read(fd, got, sizeof got - 1);
                close(fd);
                if (r == (ssize_t)strlen(want) && !memcmp(got, want, r)) break;
                if (now() - t >= 2) break;
                struct timespec w = {0, 200000};
                nanosleep(&w, NULL);
            }
            datas[i] = (now() - t) * 1000;
        }
        int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
        qsort(names, n, sizeof *names, cmp);
        qsort(datas, n, sizeof *datas, cmp);
        int p99 = (int)(n * 0.99); if (p99 >= n) p99 = n - 1;
        printf("%.2f %.2f %.2f %.2f\n", names[n / 2], names[p99], datas[n / 2], datas[p99]);
        return 0;
    } else { fprintf(stderr, "ubench: unknown mode %s\n", mode); return 2; }
    printf("%.6f %ld\n", now() - t0, count);
    return 0;
}

/* Metadata micro-benchmarks for bench/loopback/run. Prints "<seconds> <count>" on success.
 *   lbench stat DIR N      N lstat calls cycling over the files DIR/s0000..s0099 (made beforehand)
 *   lbench create DIR N    creates N empty files DIR/f000000.. (O_CREAT|O_EXCL, then close)
 *   lbench list DIR        reads DIR with readdir and counts the entries (without . and ..)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: lbench stat|create|list DIR [N]\n"); return 2; }
    const char *mode = argv[1], *dir = argv[2];
    long n = argc > 3 ? atol(argv[3]) : 0;
    char path[4096];
    double t0 = now();
    long count = 0;
    if (strcmp(mode, "stat") == 0) {
        struct stat st;
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/s%04ld", dir, i % 100);
            if (lstat(path, &st) != 0) { perror(path); return 1; }
            count++;
        }
    } else if (strcmp(mode, "create") == 0) {
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/f%06ld", dir, i);
            int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
            if (fd < 0) { perror(path); return 1; }
            close(fd);
            count++;
        }
    } else if (strcmp(mode, "list") == 0) {
        DIR *d = opendir(dir);
        if (!d) { perror(dir); return 1; }
        struct dirent *e;
        errno = 0;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) count++;
        if (errno != 0) { perror("readdir"); return 1; }
        closedir(d);
    } else { fprintf(stderr, "lbench: unknown mode %s\n", mode); return 2; }
    printf("%.6f %ld\n", now() - t0, count);
    return 0;
}

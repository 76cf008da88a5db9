/* Spawn one command, wait for it, and write what it cost to the file argv[1]:
 * "wall_ns user_us sys_us maxrss_kib exit_status".
 *
 * Why C and not Python: Linux reports as a child's peak RSS the larger of its own
 * and that of the process that exec'd it, so a fat launcher (a Python benchmark
 * process) would be reported as the child's RSS.  This program's own peak is about
 * 1 MiB, below anything worth measuring. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
    struct timespec start, end;
    struct rusage usage;
    pid_t pid;
    int status;
    if (argc < 3) {
        fputs("usage: launch RESULT_FILE COMMAND [ARG...]\n", stderr);
        return 127;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ) != 0) {
        perror("posix_spawnp");
        return 127;
    }
    if (wait4(pid, &status, 0, &usage) < 0) {
        perror("wait4");
        return 127;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 127;
    }
    fprintf(out, "%lld %lld %lld %ld %d\n",
            (long long)(end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec),
            (long long)usage.ru_utime.tv_sec * 1000000LL + usage.ru_utime.tv_usec,
            (long long)usage.ru_stime.tv_sec * 1000000LL + usage.ru_stime.tv_usec,
            usage.ru_maxrss,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return fclose(out) == 0 ? 0 : 127;
}

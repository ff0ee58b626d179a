/* The baseline for `sigprobe bench`: the least a signal-latency measurement
 * can do. A parent starts a child program (fork + exec of itself, as the
 * runner starts a probe), which installs an SA_SIGINFO handler and says it
 * is ready; the parent stamps the clock and sends SIGINT; the handler stamps
 * the clock and reports the stamp through a pipe. One fresh child per
 * sample, like one sigprobe run. Prints one latency (ns) a line.
 *
 *   sigprobe-baseline [SAMPLES] [--fork-only] [--new-session]
 *   (the child: sigprobe-baseline --child FD)
 *
 * --fork-only skips the exec: the child is a copy of the parent, with its
 * pages and caches warm, which is cheaper than any freshly started program.
 * --new-session starts the child in a session of its own (setsid), as
 * sigprobe's no-tty host does, so that what the host costs is told apart
 * from what sigprobe adds: where the kernel has autogroups, a new session
 * is also a new scheduling group, and a signal sent across groups wakes its
 * target differently (README, `sigprobe bench`). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int g_out = -1;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Async-signal-safe: the clock, one write, _exit. */
static void on_sigint(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)si, (void)uc;
  int64_t t = now_ns();
  if (write(g_out, &t, sizeof t) < 0) _exit(2);
  _exit(0);
}

static int child(int fd) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigint;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGINT, &sa, NULL);
  g_out = fd;
  /* The same warm-up the probes do: the handler's first clock read must not
   * pay for the vDSO's first touch. */
  (void)now_ns();
  int64_t ready = 0;
  if (write(fd, &ready, sizeof ready) < 0) return 2;
  for (;;) pause();
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) return child(atoi(argv[2]));
  int samples = argc > 1 ? atoi(argv[1]) : 100;
  int fork_only = 0, new_session = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--fork-only") == 0) fork_only = 1;
    else if (strcmp(argv[i], "--new-session") == 0) new_session = 1;
    else {
      fprintf(stderr, "sigprobe-baseline: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  for (int i = 0; i < samples; i++) {
    int p[2];
    if (pipe(p) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      if (new_session && setsid() < 0) _exit(126);
      if (fork_only) _exit(child(p[1]));
      char fd[16];
      snprintf(fd, sizeof fd, "%d", p[1]);
      execl("/proc/self/exe", argv[0], "--child", fd, (char *)NULL);
      _exit(127);
    }
    int64_t t;
    if (read(p[0], &t, sizeof t) != sizeof t) return 1; /* ready */
    kill(pid, 0); /* as the runner does: the call's first use is not timed */
    int64_t sent = now_ns();
    kill(pid, SIGINT);
    if (read(p[0], &t, sizeof t) != sizeof t) return 1;
    waitpid(pid, NULL, 0);
    close(p[0]);
    close(p[1]);
    printf("%lld\n", (long long)(t - sent));
  }
  return 0;
}

/* The baseline for `sigprobe bench`: the least a signal-latency measurement
 * can do. A parent starts a child program (fork + exec of itself, as the
 * runner starts a probe), which installs an SA_SIGINFO handler, says it is
 * ready and waits in pause(); once the child sleeps there, the parent stamps
 * the clock and sends SIGINT; the handler stamps the clock and reports the
 * stamp through a pipe. One fresh child per sample, like one sigprobe run.
 * Prints one latency (ns) a line.
 *
 *   sigprobe-baseline [SAMPLES] [--fork-only] [--new-session]
 *   (the child: sigprobe-baseline --child FD)
 *
 * The parent waits for the child to be asleep (/proc/PID/stat) because its
 * "ready" alone does not say so: the write that says it wakes the parent,
 * which, in the same scheduling group, most often preempts the child before
 * it reaches pause(). The signal then finds a runnable child and wakes
 * nobody, which is not the latency of a process waiting for a signal. The
 * handler checks it: a sample whose child was not in pause() is an error.
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
static volatile sig_atomic_t g_pausing; /* set just before pause() */

/* What the handler reports: its stamp, and whether the child was in pause(). */
typedef struct report {
  int64_t t_ns, in_pause;
} report;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Async-signal-safe: the clock, one write, _exit. */
static void on_sigint(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)si, (void)uc;
  report r = {now_ns(), g_pausing};
  if (write(g_out, &r, sizeof r) < 0) _exit(2);
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
  report ready = {0, 0};
  if (write(fd, &ready, sizeof ready) < 0) return 2;
  g_pausing = 1; /* nothing between here and pause() can sleep */
  for (;;) pause();
}

/* Waits until the child sleeps (state S in /proc/PID/stat): after its
 * "ready", the only place it can is pause(). 0, or -1 after 2 s. */
static int await_asleep(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  const struct timespec step = {0, 20000};
  for (int64_t end = now_ns() + 2000000000; now_ns() < end; nanosleep(&step, NULL)) {
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *name_end = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    if (name_end && name_end[1] == ' ' && name_end[2] == 'S') return 0;
  }
  return -1;
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
    report r;
    if (read(p[0], &r, sizeof r) != sizeof r) return 1; /* ready */
    if (await_asleep(pid) != 0) {
      kill(pid, SIGKILL);
      fprintf(stderr, "sigprobe-baseline: the child never slept in pause() within 2 s\n");
      return 1;
    }
    kill(pid, 0); /* as the runner does: the call's first use is not timed */
    int64_t sent = now_ns();
    kill(pid, SIGINT);
    if (read(p[0], &r, sizeof r) != sizeof r) return 1;
    waitpid(pid, NULL, 0);
    close(p[0]);
    close(p[1]);
    if (!r.in_pause) {
      fprintf(stderr, "sigprobe-baseline: sample %d: the signal came before the child was in pause()\n", i + 1);
      return 1;
    }
    printf("%lld\n", (long long)(r.t_ns - sent));
  }
  return 0;
}

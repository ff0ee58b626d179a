/* The baseline for `sigprobe bench`: the least a signal-latency measurement
 * can do. A parent forks a child that installs an SA_SIGINFO handler and
 * says it is ready; the parent stamps the clock and sends SIGINT; the
 * handler stamps the clock and reports the stamp through a pipe. One fresh
 * child per sample, like one sigprobe run. Prints one latency (ns) a line. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int g_out = -1;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_sigint(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)si, (void)uc;
  int64_t t = now_ns();
  if (write(g_out, &t, sizeof t) < 0) _exit(2);
  _exit(0);
}

int main(int argc, char **argv) {
  int samples = argc > 1 ? atoi(argv[1]) : 100;
  for (int i = 0; i < samples; i++) {
    int p[2];
    if (pipe(p) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      struct sigaction sa = {0};
      sa.sa_sigaction = on_sigint;
      sa.sa_flags = SA_SIGINFO;
      sigaction(SIGINT, &sa, NULL);
      g_out = p[1];
      int64_t ready = 0;
      if (write(p[1], &ready, sizeof ready) < 0) _exit(2);
      for (;;) pause();
    }
    int64_t t;
    if (read(p[0], &t, sizeof t) != sizeof t) return 1; /* ready */
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

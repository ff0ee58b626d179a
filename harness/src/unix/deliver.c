/* Delivering an interrupt to a probe (POSIX). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "proc.h"

/* kill(2) through the pidfd where the kernel has one, so a reused pid can
 * never be hit; the siginfo the probe sees is the same (SI_USER). */
static int send_to_pid(sp_proc *p, int sig) {
#if defined(__linux__) && defined(SYS_pidfd_send_signal)
  if (p->pidfd >= 0) return (int)syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
#endif
  return kill(p->pid, sig);
}

/* The signal d sends (0: the checks only), to the probe or to its group. The
 * probe is unreaped until the run ends, so its group id is ours. */
static int send_signal(sp_proc *p, sp_delivery d, int sig) {
  return d == SP_DELIVERY_KILLPG ? killpg(p->pgid, sig) : send_to_pid(p, sig);
}

int sp_proc_deliver(sp_proc *p, sp_delivery d, int64_t *t_ns, sp_error *err) {
  switch (d) {
    case SP_DELIVERY_TTY_INTR: {
      struct termios t;
      if (p->host == SP_HOST_NO_TTY)
        return sp_fail(err, SP_EUNSUPPORTED, "host no-tty has no controlling terminal, so there is no INTR character to type");
      if (p->host_fd < 0 || tcgetattr(p->host_fd, &t) != 0)
        return sp_fail(err, SP_EFAIL, "tcgetattr(pty master): %s", strerror(errno));
      if (!(t.c_lflag & ISIG))
        return sp_fail(err, SP_EUNSUPPORTED, "the terminal is in raw mode (ISIG off): INTR generates no signal");
      char c = (char)t.c_cc[VINTR];
      (void)!write(p->host_fd, &c, 0); /* warms the call, as signal 0 does below */
      int64_t sent = sp_clock_ns();
      ssize_t k = write(p->host_fd, &c, 1);
      *t_ns = sent; /* stored after the call: a first write to its page is not timed */
      if (k != 1) return sp_fail(err, SP_EFAIL, "write(pty master): %s", strerror(errno));
      return 0;
    }
    case SP_DELIVERY_KILL:
    case SP_DELIVERY_SIGTERM:
    case SP_DELIVERY_KILLPG: {
      /* Signal 0 first (checks, sends nothing): the code of the call is
       * then mapped, and its first-use page fault is not timed. */
      (void)send_signal(p, d, 0);
      int64_t sent = sp_clock_ns();
      int rc = send_signal(p, d, sp_delivery_signal(d));
      *t_ns = sent; /* stored after the call, as above */
      if (rc != 0)
        return sp_fail(err, SP_EFAIL, "%s: %s", d == SP_DELIVERY_KILLPG ? "killpg" : "kill", strerror(errno));
      return 0;
    }
    default: return sp_fail(err, SP_EINVAL, "unknown delivery %d", (int)d);
  }
}

/* Reads one "Name:\t<hex mask>" line of /proc/PID/status. */
static bool status_mask(const char *status, const char *name, unsigned long long *mask) {
  const char *line = strstr(status, name);
  return line && sscanf(line + strlen(name), " %llx", mask) == 1;
}

bool sp_proc_signal_discarded(sp_proc *p, int sig) {
#ifdef __linux__
  char path[64], status[4096];
  snprintf(path, sizeof path, "/proc/%d/status", (int)p->pid);
  FILE *f = fopen(path, "re");
  if (!f) return false;
  size_t n = fread(status, 1, sizeof status - 1, f);
  fclose(f);
  status[n] = '\0';
  unsigned long long ignored, blocked;
  if (!status_mask(status, "\nSigIgn:", &ignored) || !status_mask(status, "\nSigBlk:", &blocked)) return false;
  unsigned long long bit = 1ULL << (sig - 1);
  return (ignored & bit) && !(blocked & bit);
#else
  (void)p;
  (void)sig;
  return false;
#endif
}

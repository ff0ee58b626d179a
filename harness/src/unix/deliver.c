/* Delivering an interrupt to a probe (POSIX). */
#define _GNU_SOURCE
#include <errno.h>
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
      *t_ns = sp_clock_ns();
      if (write(p->host_fd, &c, 1) != 1) return sp_fail(err, SP_EFAIL, "write(pty master): %s", strerror(errno));
      return 0;
    }
    case SP_DELIVERY_KILL:
    case SP_DELIVERY_SIGTERM:
      *t_ns = sp_clock_ns();
      if (send_to_pid(p, sp_delivery_signal(d)) != 0) return sp_fail(err, SP_EFAIL, "kill: %s", strerror(errno));
      return 0;
    case SP_DELIVERY_KILLPG:
      *t_ns = sp_clock_ns();
      /* The probe is unreaped until the run ends, so its group id is ours. */
      if (killpg(p->pgid, SIGINT) != 0) return sp_fail(err, SP_EFAIL, "killpg: %s", strerror(errno));
      return 0;
    default: return sp_fail(err, SP_EINVAL, "unknown delivery %d", (int)d);
  }
}

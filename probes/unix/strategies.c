/* The POSIX strategies (see strategies.h). Every handler here only reads
 * the clock, stores into the probe's preallocated slots and writes to a
 * pipe: all async-signal-safe (signal-safety(7)). */
#define _GNU_SOURCE
#include "strategies.h"
#include "sigprobe/unix_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/signalfd.h>
#endif

static void on_signal(int sig) {
  sp_probe_record("signal", sig, SP_NO_SI_CODE, -1, -1);
}

void sp_install_signal(void) {
  if (signal(SIGINT, on_signal) == SIG_ERR) sp_probe_fail("signal");
}

/* What a self-pipe handler writes: the facts it saw, stamped in the handler. */
typedef struct pipe_msg {
  int64_t t_ns, sender_pid, sender_uid;
  int signo, si_code;
  bool main_thread;
} pipe_msg;

static int g_self_pipe_w = -1;

static void feed_self_pipe(int sig, int si_code, int64_t sender_pid, int64_t sender_uid) {
  int64_t t = sp_clock_ns(); /* first: an initializer list's calls come in no set order */
  pipe_msg m = {t, sender_pid, sender_uid, sig, si_code, sp_probe_on_main_thread()};
  int saved = errno;
  /* sizeof m < PIPE_BUF, so the write is atomic. */
  if (write(g_self_pipe_w, &m, sizeof m) < 0) {
  }
  errno = saved;
}

static void on_sigaction(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  sp_probe_record("sigaction", sig, si->si_code, (int64_t)si->si_pid, (int64_t)si->si_uid);
  if (g_self_pipe_w >= 0) feed_self_pipe(sig, si->si_code, (int64_t)si->si_pid, (int64_t)si->si_uid);
}

void sp_install_sigaction(int self_pipe_fd) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigaction;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  g_self_pipe_w = self_pipe_fd;
  if (sigaction(SIGINT, &sa, NULL) != 0) sp_probe_fail("sigaction");
}

static void on_self_pipe_signal(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  feed_self_pipe(sig, si->si_code, (int64_t)si->si_pid, (int64_t)si->si_uid);
}

static void self_pipe_readable(int fd) {
  pipe_msg m;
  while (read(fd, &m, sizeof m) == (ssize_t)sizeof m)
    sp_probe_record_at("self-pipe", m.signo, m.si_code, m.sender_pid, m.sender_uid, m.t_ns, m.main_thread);
}

sp_watch sp_install_self_pipe(bool own_handler, int *write_fd) {
  int fds[2];
  if (sp_pipe(fds, 1) != 0) sp_probe_fail("pipe2");
  *write_fd = fds[1];
  if (own_handler) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_self_pipe_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    g_self_pipe_w = fds[1];
    if (sigaction(SIGINT, &sa, NULL) != 0) sp_probe_fail("sigaction");
  }
  return (sp_watch){fds[0], self_pipe_readable};
}

static void *sigwait_main(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  /* The waiting thread must have SIGINT blocked itself (sigwait(3)). */
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  for (;;) {
#ifdef __APPLE__
    /* macOS has sigwait() only: no siginfo, so no sender. */
    int sig;
    if (sigwait(&set, &sig) != 0) continue;
    sp_probe_record("sigwait-thread", sig, SP_NO_SI_CODE, -1, -1);
#else
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0) continue; /* EINTR */
    sp_probe_record("sigwait-thread", sig, si.si_code, (int64_t)si.si_pid, (int64_t)si.si_uid);
#endif
  }
  return NULL;
}

void sp_install_sigwait_thread(bool block_everywhere) {
  pthread_t t;
  sigset_t set, before;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  /* Block SIGINT before creating the thread, so that it is born with SIGINT
   * blocked: otherwise, until it reaches pthread_sigmask(), it is one more
   * thread the kernel may pick to run a process-wide handler on. */
  if (pthread_sigmask(SIG_BLOCK, &set, &before) != 0) sp_probe_fail("pthread_sigmask");
  int rc = pthread_create(&t, NULL, sigwait_main, NULL);
  if (rc != 0) {
    errno = rc;
    sp_probe_fail("pthread_create");
  }
  pthread_detach(t);
  if (!block_everywhere && pthread_sigmask(SIG_SETMASK, &before, NULL) != 0) sp_probe_fail("pthread_sigmask");
}

#ifdef __linux__
static void signalfd_readable(int fd) {
  struct signalfd_siginfo si;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si)
    sp_probe_record("signalfd", (int)si.ssi_signo, si.ssi_code, (int64_t)si.ssi_pid, (int64_t)si.ssi_uid);
}
#endif

bool sp_install_signalfd(bool block, sp_watch *watch, const char **why) {
#ifdef __linux__
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  if (block && pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) sp_probe_fail("pthread_sigmask");
  int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) sp_probe_fail("signalfd");
  *watch = (sp_watch){fd, signalfd_readable};
  (void)why;
  return true;
#else
  (void)block;
  (void)watch;
  *why = "signalfd is Linux-only";
  return false;
#endif
}

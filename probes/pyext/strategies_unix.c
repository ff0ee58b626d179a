/* The extension probe's strategies on POSIX (see strategy.h).
 *
 * Every handler here is async-signal-safe: it reads the clock, stores into
 * the probe's preallocated slots (sp_probe_record*) and writes to a pipe,
 * nothing else (signal-safety(7)). Every install saves what it replaces and
 * the matching remove puts it back, so a run leaves the process as it was. */
#define _GNU_SOURCE
#include "strategy.h"
#include "sigprobe/unix_compat.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif
#ifdef __linux__
#include <sys/signalfd.h>
#endif

static int fail_errno(sp_error *err, const char *call, int code) {
  return sp_fail(err, SP_EFAIL, "%s: %s", call, strerror(code));
}

static int install_sigint(void (*fn)(int, siginfo_t *, void *), struct sigaction *prev, sp_error *err) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fn;
  /* No SA_RESTART: the loop's poll() returns EINTR and re-checks at once. */
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGINT, &sa, prev) != 0) return fail_errno(err, "sigaction", errno);
  return 0;
}

/* ---- c-handler-per-call: sigaction at the start of every run (the hoomd fix) ---- */

static struct sigaction g_per_call_prev;

static void on_per_call(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  sp_probe_record("c-handler-per-call", sig, si->si_code, (int64_t)si->si_pid, (int64_t)si->si_uid);
}

int sp_py_per_call_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  return install_sigint(on_per_call, &g_per_call_prev, err);
}

void sp_py_per_call_remove(void) { sigaction(SIGINT, &g_per_call_prev, NULL); }

/* ---- self-pipe: the handler writes what it saw to a pipe the loop polls ---- */

typedef struct pipe_msg {
  int64_t t_ns, sender_pid, sender_uid;
  int signo, si_code;
  bool main_thread;
} pipe_msg;

static int g_pipe[2] = {-1, -1};
static struct sigaction g_pipe_prev;

static void on_self_pipe(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  int64_t t = sp_clock_ns(); /* first: an initializer list's calls come in no set order */
  pipe_msg m = {t, (int64_t)si->si_pid, (int64_t)si->si_uid, sig, si->si_code, sp_probe_on_main_thread()};
  int saved = errno;
  /* sizeof m < PIPE_BUF, so the write is atomic; a full pipe drops it. */
  if (write(g_pipe[1], &m, sizeof m) < 0) {
  }
  errno = saved;
}

static void self_pipe_readable(int fd) {
  pipe_msg m;
  while (read(fd, &m, sizeof m) == (ssize_t)sizeof m)
    sp_probe_record_at("self-pipe", m.signo, m.si_code, m.sender_pid, m.sender_uid, m.t_ns, m.main_thread);
}

static void close_pair(int p[2]) {
  for (int i = 0; i < 2; i++)
    if (p[i] >= 0) {
      close(p[i]);
      p[i] = -1;
    }
}

int sp_py_self_pipe_install(sp_watch *w, int *n, sp_error *err) {
  if (sp_pipe(g_pipe, 1) != 0) return fail_errno(err, "pipe2", errno);
  int rc = install_sigint(on_self_pipe, &g_pipe_prev, err);
  if (rc != 0) {
    close_pair(g_pipe);
    return rc;
  }
  w[0] = (sp_watch){g_pipe[0], self_pipe_readable};
  *n = 1;
  return 0;
}

void sp_py_self_pipe_remove(void) {
  sigaction(SIGINT, &g_pipe_prev, NULL);
  close_pair(g_pipe);
}

/* ---- signalfd-thread: SIGINT blocked in the calling thread, a helper thread reads a signalfd ---- */

#ifdef __linux__
static sigset_t g_sfd_prev_mask;
static int g_sfd = -1;
static int g_sfd_quit[2] = {-1, -1};
static pthread_t g_sfd_thread;

static void *signalfd_main(void *arg) {
  (void)arg;
  struct pollfd fds[2] = {{g_sfd, POLLIN, 0}, {g_sfd_quit[0], POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) continue; /* EINTR cannot happen (all blocked), but be safe */
    if (fds[0].revents) {
      struct signalfd_siginfo si;
      while (read(g_sfd, &si, sizeof si) == (ssize_t)sizeof si)
        sp_probe_record("signalfd-thread", (int)si.ssi_signo, si.ssi_code, (int64_t)si.ssi_pid, (int64_t)si.ssi_uid);
    }
    if (fds[1].revents) return NULL;
  }
}

int sp_py_signalfd_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  sigset_t set, all, mine;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  /* Block first, so no SIGINT slips to a handler between the two steps. */
  int rc = pthread_sigmask(SIG_BLOCK, &set, &g_sfd_prev_mask);
  if (rc != 0) return fail_errno(err, "pthread_sigmask", rc);
  g_sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (g_sfd < 0) {
    rc = fail_errno(err, "signalfd", errno);
    goto undo_mask;
  }
  if (sp_pipe(g_sfd_quit, 1) != 0) {
    rc = fail_errno(err, "pipe2", errno);
    goto undo_fd;
  }
  /* The helper is born with every signal blocked, so none of the process's
   * signals (Python's included) is ever delivered to it. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &mine);
  rc = pthread_create(&g_sfd_thread, NULL, signalfd_main, NULL);
  pthread_sigmask(SIG_SETMASK, &mine, NULL);
  if (rc != 0) {
    rc = fail_errno(err, "pthread_create", rc);
    close_pair(g_sfd_quit);
    goto undo_fd;
  }
  return 0;
undo_fd:
  close(g_sfd);
  g_sfd = -1;
undo_mask:
  pthread_sigmask(SIG_SETMASK, &g_sfd_prev_mask, NULL);
  return rc;
}

void sp_py_signalfd_remove(void) {
  if (write(g_sfd_quit[1], "q", 1) < 0) {
  }
  pthread_join(g_sfd_thread, NULL);
  close_pair(g_sfd_quit);
  close(g_sfd);
  g_sfd = -1;
  /* A SIGINT that arrived after the helper's last read is still pending and
   * is delivered to the previous handler right here, as it would have been. */
  pthread_sigmask(SIG_SETMASK, &g_sfd_prev_mask, NULL);
}
#else
int sp_py_signalfd_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  return sp_fail(err, SP_EUNSUPPORTED, "signalfd is Linux-only");
}
void sp_py_signalfd_remove(void) {}
#endif

/* ---- Windows-only strategies ---- */

int sp_py_event_thread_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  return sp_fail(err, SP_EUNSUPPORTED,
                 "event-thread waits on the JPY_INTERRUPT_EVENT handle, which jupyter_client creates only on Windows");
}

int sp_py_console_ctrl_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  return sp_fail(err, SP_EUNSUPPORTED, "SetConsoleCtrlHandler exists only on Windows");
}

void sp_py_event_thread_remove(void) {}
void sp_py_console_ctrl_remove(void) {}


/* ---- the SIGINT state, for "ready" and for the tests ---- */

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

void sp_py_sigint_state_now(sp_py_sigint_state *st, const void *own_object, const void *python_symbol) {
  struct sigaction sa;
  sigset_t mask;
  memset(st, 0, sizeof *st);
  st->disposition = SP_DISP_UNKNOWN;
  if (pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0) st->blocked = sigismember(&mask, SIGINT) == 1;
  if (sigaction(SIGINT, NULL, &sa) != 0) return;
  st->flags = sa.sa_flags;
  void *fn = (sa.sa_flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
  st->handler = (unsigned long long)(uintptr_t)fn;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) {
    st->disposition = SP_DISP_IGNORED;
    return;
  }
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) {
    st->disposition = SP_DISP_DEFAULT;
    return;
  }
  st->disposition = SP_DISP_CAUGHT;
  Dl_info fn_info, own_info, py_info;
  if (!dladdr(fn, &fn_info) || !fn_info.dli_fname) {
    sp_strlcpy(st->owner, "unknown", sizeof st->owner);
  } else if ((dladdr(own_object, &own_info) && own_info.dli_fbase == fn_info.dli_fbase) ||
             strncmp(base_name(fn_info.dli_fname), "sigprobe_pyext", 14) == 0) {
    sp_strlcpy(st->owner, "sigprobe", sizeof st->owner);
  } else if (dladdr(python_symbol, &py_info) && py_info.dli_fbase == fn_info.dli_fbase) {
    sp_strlcpy(st->owner, "python", sizeof st->owner);
  } else {
    sp_strlcpy(st->owner, base_name(fn_info.dli_fname), sizeof st->owner);
  }
}

int sp_py_on_initial_thread(void) {
#if defined(__linux__)
  return (pid_t)syscall(SYS_gettid) == getpid();
#elif defined(__APPLE__)
  return pthread_main_np() != 0;
#else
  return -1;
#endif
}

/* ---- c-handler-import (installed by the sigprobe_pyext_import module) ----
 * Async-signal-safe: sp_probe_record only stores into preallocated slots
 * with atomics and writes one byte to a pipe. */
static void on_import_sigint(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  sp_probe_record("c-handler-import", sig, si->si_code, (int64_t)si->si_pid, (int64_t)si->si_uid);
}

int sp_py_import_handler_install(const char **call) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_import_sigint;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  *call = "sigaction(SIGINT)";
  return sigaction(SIGINT, &sa, NULL) == 0 ? 0 : -1;
}

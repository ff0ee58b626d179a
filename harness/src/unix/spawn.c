/* Starting a probe under a host, waiting for it and owning its process
 * group (POSIX). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include "proc.h"

extern char **environ;

/* The report channel's descriptor number in the probe. */
#define SP_CHILD_CHANNEL_FD 3

int64_t sp_self_pid(void) { return (int64_t)getpid(); }
int64_t sp_proc_pid(const sp_proc *p) { return p->attached ? -1 : (int64_t)p->pid; }

int sp_proc_attach(sp_proc **out, const char *socket_path, sp_error *err) {
  struct sockaddr_un addr;
  *out = NULL;
  if (strlen(socket_path) >= sizeof addr.sun_path)
    return sp_fail(err, SP_EINVAL, "socket path too long (at most %zu bytes): %s", sizeof addr.sun_path - 1, socket_path);
  sp_proc *p = calloc(1, sizeof *p);
  if (!p) return sp_fail(err, SP_EFAIL, "calloc: out of memory");
  p->attached = true;
  p->pidfd = p->chan_fd = p->host_fd = p->listen_fd = -1;
  p->parent_fd = 0;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  sp_strlcpy(addr.sun_path, socket_path, sizeof addr.sun_path);
  p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd < 0) {
    int e = errno;
    free(p);
    return sp_fail(err, SP_EFAIL, "socket: %s", strerror(e));
  }
  if (bind(p->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(p->listen_fd, 4) != 0) {
    int e = errno;
    close(p->listen_fd);
    free(p);
    return sp_fail(err, SP_EFAIL, "bind/listen %s: %s", socket_path, strerror(e));
  }
  sp_strlcpy(p->socket_path, socket_path, sizeof p->socket_path);
  *out = p;
  return 0;
}

static int open_pty(int *master, char *slave, size_t n, sp_error *err) {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0) return sp_fail(err, SP_EFAIL, "posix_openpt: %s", strerror(errno));
  if (grantpt(m) != 0 || unlockpt(m) != 0) {
    int e = errno;
    close(m);
    return sp_fail(err, SP_EFAIL, "grantpt/unlockpt: %s", strerror(e));
  }
  const char *name = ptsname(m);
  if (!name) {
    int e = errno;
    close(m);
    return sp_fail(err, SP_EFAIL, "ptsname: %s", strerror(e));
  }
  sp_strlcpy(slave, name, n);
  fcntl(m, F_SETFD, FD_CLOEXEC);
  *master = m;
  return 0;
}

/* Builds environ plus SIGPROBE_REPORT=<fd>, before fork (no malloc after). */
static char **child_env(void) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "SIGPROBE_REPORT=", 16) != 0) env[k++] = environ[i];
  env[k++] = "SIGPROBE_REPORT=3";
  env[k] = NULL;
  return env;
}

/* In the child: report errno on the exec-error pipe and exit. */
static void child_fail(int errpipe, const char *call) {
  int e = errno;
  char msg[128];
  int len = snprintf(msg, sizeof msg, "%s: %s", call, strerror(e));
  if (len > 0 && write(errpipe, msg, (size_t)len) < 0) {
    /* Nothing more can be done in a failing child. */
  }
  _exit(127);
}

static void child_setup(sp_host host, const char *slave, int out_w, int chan, int errpipe) {
  /* Start from a clean slate whatever the runner inherited: default
   * dispositions and an empty mask, as libuv does for its children. */
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef __linux__
  /* If the runner dies, the probe dies with it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
  if (setsid() < 0) child_fail(errpipe, "setsid");
  if (slave) {
    int fd = open(slave, O_RDWR);
    if (fd < 0) child_fail(errpipe, "open pty slave");
#ifdef TIOCSCTTY
    if (ioctl(fd, TIOCSCTTY, 0) < 0) child_fail(errpipe, "ioctl(TIOCSCTTY)");
#endif
    for (int i = 0; i < 3; i++)
      if (dup2(fd, i) < 0) child_fail(errpipe, "dup2");
    if (fd > 2) close(fd);
  } else {
    int nul = open("/dev/null", O_RDONLY);
    if (nul < 0) child_fail(errpipe, "open /dev/null");
    if (dup2(nul, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0) child_fail(errpipe, "dup2");
    if (nul > 2) close(nul);
  }
  if (chan == SP_CHILD_CHANNEL_FD) {
    if (fcntl(chan, F_SETFD, 0) < 0) child_fail(errpipe, "fcntl");
  } else if (dup2(chan, SP_CHILD_CHANNEL_FD) < 0) {
    child_fail(errpipe, "dup2");
  }
  if (host == SP_HOST_BACKGROUND) {
    /* What a non-interactive shell does for `cmd &` (POSIX 2.11). */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
  }
}

int sp_proc_start(sp_proc **out, sp_host host, const char *path, sp_error *err) {
  char *const argv[] = {(char *)path, NULL};
  return sp_proc_spawn(out, host, argv, err);
}

int sp_proc_spawn(sp_proc **out, sp_host host, char *const argv[], sp_error *err) {
  const char *path = argv[0];
  int sv[2] = {-1, -1}, errp[2] = {-1, -1}, outp[2] = {-1, -1};
  int master = -1;
  char slave[128];
  char **env = NULL;
  int rc = SP_EFAIL;
  bool uses_tty = host == SP_HOST_TTY || host == SP_HOST_BACKGROUND;

  *out = NULL;
  if (access(path, X_OK) != 0) return sp_fail(err, SP_EFAIL, "%s: %s", path, strerror(errno));
  sp_proc *p = calloc(1, sizeof *p);
  if (!p) return sp_fail(err, SP_EFAIL, "calloc: out of memory");
  p->host = host;
  p->pidfd = p->chan_fd = p->host_fd = p->listen_fd = p->parent_fd = -1;

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    rc = sp_fail(err, SP_EFAIL, "socketpair: %s", strerror(errno));
    goto fail;
  }
  if (pipe2(errp, O_CLOEXEC) != 0) {
    rc = sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));
    goto fail;
  }
  if (uses_tty) {
    if ((rc = open_pty(&master, slave, sizeof slave, err)) != 0) goto fail;
  } else if (pipe2(outp, O_CLOEXEC) != 0) {
    rc = sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));
    goto fail;
  }
  if (!(env = child_env())) {
    rc = sp_fail(err, SP_EFAIL, "calloc: out of memory");
    goto fail;
  }
  pid_t pid = fork();
  if (pid < 0) {
    rc = sp_fail(err, SP_EFAIL, "fork: %s", strerror(errno));
    goto fail;
  }
  if (pid == 0) {
    child_setup(host, uses_tty ? slave : NULL, outp[1], sv[1], errp[1]);
    execve(path, argv, env);
    child_fail(errp[1], "execve");
  }
  free(env);
  env = NULL;
  close(errp[1]);
  errp[1] = -1;
  close(sv[1]);
  sv[1] = -1;
  if (outp[1] >= 0) {
    close(outp[1]);
    outp[1] = -1;
  }
  p->pid = pid;
  p->pgid = pid; /* setsid() made it the leader of its own session and group */
  p->chan_fd = sv[0];
  p->host_fd = uses_tty ? master : outp[0];
  sv[0] = master = outp[0] = -1;
#if defined(__linux__) && defined(SYS_pidfd_open)
  p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
  /* The exec-error pipe closes on a successful exec; otherwise it says why. */
  char msg[SP_ERROR_MAX];
  ssize_t k;
  do k = read(errp[0], msg, sizeof msg - 1);
  while (k < 0 && errno == EINTR);
  close(errp[0]);
  errp[0] = -1;
  if (k > 0) {
    msg[k] = '\0';
    sp_fail(err, SP_EFAIL, "%s", msg);
    sp_proc_free(p);
    return SP_EFAIL;
  }
  fcntl(p->chan_fd, F_SETFL, O_NONBLOCK);
  fcntl(p->host_fd, F_SETFL, O_NONBLOCK);
  *out = p;
  return 0;

fail:
  free(env);
  for (int i = 0; i < 2; i++) {
    if (sv[i] >= 0) close(sv[i]);
    if (errp[i] >= 0) close(errp[i]);
    if (outp[i] >= 0) close(outp[i]);
  }
  if (master >= 0) close(master);
  free(p);
  return rc;
}

static int remaining_ms(int64_t deadline_ns) {
  int64_t left = deadline_ns - sp_clock_ns();
  if (left <= 0) return 0;
  int64_t ms = (left + 999999) / 1000000;
  return ms > 1000000 ? 1000000 : (int)ms;
}

/* Has the probe exited? Looks without reaping, so its process group stays
 * reserved until the group has been killed. */
static bool exited(sp_proc *p) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
  return si.si_pid == p->pid;
}

static void reap(sp_proc *p, sp_exit *ex) {
  int status = 0;
  /* The zombie leader still holds the group id, so this hits only the
   * probe's own leftovers, never a reused group. */
  kill(-p->pgid, SIGKILL);
  pid_t r;
  do r = waitpid(p->pid, &status, 0);
  while (r < 0 && errno == EINTR);
  p->reaped = true;
  if (ex) *ex = r == p->pid ? sp_exit_from_wait_status(status) : (sp_exit){SP_EXIT_NONE, 0, 0, false};
}

int sp_proc_wait(sp_proc *p, int64_t deadline_ns, sp_exit *ex, sp_error *err) {
  (void)err;
  if (p->attached) {
    *ex = (sp_exit){SP_EXIT_NONE, 0, 0, false};
    return 0;
  }
  while (!exited(p)) {
    int ms = remaining_ms(deadline_ns);
    if (ms == 0) return SP_ETIMEOUT;
    if (p->pidfd >= 0) {
      struct pollfd pfd = {p->pidfd, POLLIN, 0};
      poll(&pfd, 1, ms);
    } else {
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
  }
  reap(p, ex);
  return 0;
}

void sp_proc_kill_tree(sp_proc *p) {
  if (!p || p->reaped || p->attached) return;
  if (kill(-p->pgid, SIGKILL) != 0) kill(p->pid, SIGKILL);
}

void sp_proc_free(sp_proc *p) {
  if (!p) return;
  if (p->attached) {
    if (p->listen_fd >= 0) close(p->listen_fd);
    if (p->socket_path[0]) unlink(p->socket_path);
  } else if (!p->reaped) {
    sp_proc_kill_tree(p);
    reap(p, NULL);
  }
  if (p->pidfd >= 0) close(p->pidfd);
  if (p->chan_fd >= 0) close(p->chan_fd);
  if (p->host_fd >= 0) close(p->host_fd);
  free(p);
}

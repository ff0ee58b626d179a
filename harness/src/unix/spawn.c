/* Starting a probe under a host, waiting for it and owning its process
 * group (POSIX). */
#define _GNU_SOURCE
#include <dirent.h>
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
#include "../os.h"
#include "sigprobe/unix_compat.h"

extern char **environ;

/* The report channel's descriptor number in the probe. */
#define SP_CHILD_CHANNEL_FD 3

int64_t sp_self_pid(void) { return (int64_t)getpid(); }
int64_t sp_proc_pid(const sp_proc *p) { return p->attached ? -1 : (int64_t)p->pid; }

/* ---- owning the probes' trees (sp_own_probe_trees) ------------------------
 *
 * live_groups holds the process group of every probe started and not yet
 * reaped. A probe's unreaped leader keeps its group id reserved, so these ids
 * are safe to kill; the signals below are blocked while a probe is forked and
 * while it is reaped, so the handler never sees a group id that is being
 * released. */
#define SP_LIVE_MAX 16
static volatile sig_atomic_t live_groups[SP_LIVE_MAX];
static volatile sig_atomic_t interrupted_by;
static bool owning, subreaper;
/* Written by the handler, read by every wait of the run (sp__interrupt_fd):
 * a signal that lands just before poll() would not interrupt it. */
static int interrupt_pipe[2] = {-1, -1};
static const int owner_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void block_owner_signals(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < SP_ARRAY_LEN(owner_signals); i++) sigaddset(&set, owner_signals[i]);
  sigprocmask(SIG_BLOCK, &set, old);
}

static void restore_signals(const sigset_t *old) { sigprocmask(SIG_SETMASK, old, NULL); }

/* Returns false when every slot is taken. */
static bool track_group(pid_t pgid, bool live) {
  for (int i = 0; i < SP_LIVE_MAX; i++)
    if (live_groups[i] == (live ? 0 : pgid)) {
      live_groups[i] = live ? pgid : 0;
      return true;
    }
  return false;
}

static bool is_live_probe(pid_t pid) {
  for (int i = 0; i < SP_LIVE_MAX; i++)
    if (live_groups[i] == pid) return true;
  return false;
}

/* Kills a probe's tree: its group, or, between fork() and the probe's
 * setsid() (no such group yet: ESRCH), the probe by pid. The probe is
 * unreaped, so neither id can have been reused. */
static void kill_tracked(pid_t pgid) {
  if (kill(-pgid, SIGKILL) != 0) kill(pgid, SIGKILL);
}

/* Safe in a signal handler: it only stores an int and calls kill(2) and
 * write(2), which are async-signal-safe; every group it kills is reserved. */
static void on_owner_signal(int sig) {
  int e = errno;
  if (!interrupted_by) interrupted_by = sig;
  for (int i = 0; i < SP_LIVE_MAX; i++)
    if (live_groups[i] > 0) kill_tracked((pid_t)live_groups[i]);
  if (interrupt_pipe[1] >= 0 && write(interrupt_pipe[1], "i", 1) < 0) {
    /* Full: a byte is already there, which is all a wait needs. */
  }
  errno = e;
}

int sp_interrupted(void) { return (int)interrupted_by; }

int sp__interrupt_fd(void) { return interrupt_pipe[0]; }

int sp_own_probe_trees(sp_error *err) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_owner_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < SP_ARRAY_LEN(owner_signals); i++) sigaddset(&sa.sa_mask, owner_signals[i]);
  /* No SA_RESTART: poll() and the waits return EINTR; a signal that comes
   * between two polls leaves a byte in the pipe the next one watches. */
  if (interrupt_pipe[0] < 0 && sp_pipe(interrupt_pipe, 1) != 0)
    return sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));
  for (size_t i = 0; i < SP_ARRAY_LEN(owner_signals); i++) {
    struct sigaction old;
    if (sigaction(owner_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    if (sigaction(owner_signals[i], &sa, NULL) != 0) return sp_fail(err, SP_EFAIL, "sigaction: %s", strerror(errno));
  }
  owning = true;
#ifdef __linux__
  subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) return sp_fail(err, SP_EFAIL, "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
  /* The parent may have died before the request: then nothing would come. */
  if (getppid() != parent || parent == 1) raise(SIGTERM);
#endif
  return 0;
}

#ifdef __linux__
/* Appends the pids in one /proc/self/task/<tid>/children file. */
static size_t read_children(const char *path, pid_t *pids, size_t n, size_t cap) {
  char buf[4096];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return n;
  ssize_t k = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (k <= 0) return n;
  buf[k] = '\0';
  for (char *p = buf, *end; n < cap; p = end) {
    long v = strtol(p, &end, 10);
    if (end == p) break;
    pids[n++] = (pid_t)v;
  }
  return n;
}

/* This process's children, every thread's: an orphan is re-parented to the
 * subreaper process, but listed under the thread that forked nothing. */
static size_t list_children(pid_t *pids, size_t cap) {
  char path[64];
  size_t n = 0;
  DIR *d = opendir("/proc/self/task");
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/task/%.16s/children", e->d_name);
    n = read_children(path, pids, n, cap);
  }
  closedir(d);
  return n;
}

/* Kills and reaps every child that is not a live probe: as a subreaper,
 * those are what escaped a probe's group (setsid, double fork) and were
 * re-parented here when their parent died. Killing one re-parents its own
 * children here in turn, so it goes round until none is left. A child is
 * unreaped until waitpid below, so its pid cannot have been reused. */
static void reap_escapees(void) {
  if (!subreaper) return;
  for (int round = 0; round < 1000; round++) {
    pid_t pids[256];
    size_t n = list_children(pids, SP_ARRAY_LEN(pids)), found = 0;
    for (size_t i = 0; i < n; i++) {
      if (is_live_probe(pids[i])) continue;
      found++;
      /* Its group too when it leads one (setsid): the leader is unreaped. */
      if (getpgid(pids[i]) == pids[i]) kill(-pids[i], SIGKILL);
      kill(pids[i], SIGKILL);
    }
    for (size_t i = 0; i < n; i++) {
      if (is_live_probe(pids[i])) continue;
      while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {
      }
    }
    if (!found) return;
  }
}
#else
static void reap_escapees(void) {}
#endif

/* Makes the private folder the socket lives in, beside where the caller asked
 * for it: mkdtemp gives it mode 0700, so no other user can connect. */
static int make_private_dir(sp_proc *p, const char *socket_path, char *path, size_t n, sp_error *err) {
  const char *slash = strrchr(socket_path, '/');
  const char *name = slash ? slash + 1 : socket_path;
  int dir_len = slash ? (int)(slash - socket_path) : 1;
  const char *dir = slash ? socket_path : ".";
  if (!*name) return sp_fail(err, SP_EINVAL, "--attach %s: the socket needs a file name", socket_path);
  int k = snprintf(p->private_dir, sizeof p->private_dir, "%.*s/sigprobe-XXXXXX", dir_len, dir);
  if (k < 0 || (size_t)k >= sizeof p->private_dir)
    return sp_fail(err, SP_EINVAL, "socket path too long (at most %zu bytes with the private folder): %s",
                   sizeof p->private_dir - 17, socket_path);
  if (!mkdtemp(p->private_dir)) {
    int e = errno;
    p->private_dir[0] = '\0';
    return sp_fail(err, SP_EFAIL, "mkdtemp(%.*s/sigprobe-XXXXXX): %s", dir_len, dir, strerror(e));
  }
  k = snprintf(path, n, "%s/%s", p->private_dir, name);
  if (k < 0 || (size_t)k >= n)
    return sp_fail(err, SP_EINVAL, "socket path too long (at most %zu bytes with the private folder): %s", n - 17,
                   socket_path);
  return 0;
}

static void close_attached(sp_proc *p) {
  if (p->listen_fd >= 0) close(p->listen_fd);
  for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++)
    if (p->pending[i].fd >= 0) close(p->pending[i].fd);
  if (p->socket_path[0]) unlink(p->socket_path);
  if (p->private_dir[0]) rmdir(p->private_dir);
}

int sp_proc_attach(sp_proc **out, const char *socket_path, sp_error *err) {
  struct sockaddr_un addr;
  *out = NULL;
  sp_proc *p = calloc(1, sizeof *p);
  if (!p) return sp_fail(err, SP_EFAIL, "calloc: out of memory");
  p->attached = true;
  p->pidfd = p->chan_fd = p->host_fd = p->listen_fd = -1;
  for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++) p->pending[i].fd = -1;
  p->parent_fd = 0;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  int rc = sp__token_new(p->token, err);
  if (rc == 0) rc = make_private_dir(p, socket_path, addr.sun_path, sizeof addr.sun_path, err);
  if (rc == 0 && (p->listen_fd = sp_unix_socket()) < 0) rc = sp_fail(err, SP_EFAIL, "socket: %s", strerror(errno));
  if (rc == 0 && (bind(p->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(p->listen_fd, 8) != 0))
    rc = sp_fail(err, SP_EFAIL, "bind/listen %s: %s", addr.sun_path, strerror(errno));
  if (rc == 0) {
    sp_strlcpy(p->socket_path, addr.sun_path, sizeof p->socket_path);
    fcntl(p->listen_fd, F_SETFL, O_NONBLOCK);
    snprintf(p->report_address, sizeof p->report_address, "%s%s#%s", SP_REPORT_UNIX_PREFIX, p->socket_path, p->token);
  }
  if (rc != 0) {
    close_attached(p);
    free(p);
    return rc;
  }
  *out = p;
  return 0;
}

const char *sp_proc_report_address(const sp_proc *p) { return p->report_address; }

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

  if (sp_unix_socketpair(sv) != 0) {
    rc = sp_fail(err, SP_EFAIL, "socketpair: %s", strerror(errno));
    goto fail;
  }
  if (sp_pipe(errp, 0) != 0) {
    rc = sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));
    goto fail;
  }
  if (uses_tty) {
    if ((rc = open_pty(&master, slave, sizeof slave, err)) != 0) goto fail;
  } else if (sp_pipe(outp, 0) != 0) {
    rc = sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));
    goto fail;
  }
  if (!(env = child_env())) {
    rc = sp_fail(err, SP_EFAIL, "calloc: out of memory");
    goto fail;
  }
  /* Blocked until the new group is tracked, so an interrupt either finds it
   * or comes before it exists; the child unblocks everything itself. */
  sigset_t old_mask;
  block_owner_signals(&old_mask);
  pid_t pid = fork();
  if (pid < 0) {
    rc = sp_fail(err, SP_EFAIL, "fork: %s", strerror(errno));
    restore_signals(&old_mask);
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
  bool tracked = !owning || track_group(pid, true);
  restore_signals(&old_mask);
  if (!tracked) {
    close(errp[0]);
    sp_fail(err, SP_EFAIL, "more than %d probes at once in one runner", SP_LIVE_MAX);
    sp_proc_free(p);
    return SP_EFAIL;
  }
  if (interrupted_by) kill_tracked(pid);
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
  sigset_t old_mask;
  /* The zombie leader still holds the group id, so this hits only the
   * probe's own leftovers, never a reused group. */
  kill(-p->pgid, SIGKILL);
  pid_t r;
  block_owner_signals(&old_mask);
  do r = waitpid(p->pid, &status, 0);
  while (r < 0 && errno == EINTR);
  p->reaped = true;
  if (owning) track_group(p->pgid, false);
  restore_signals(&old_mask);
  reap_escapees();
  if (ex) *ex = r == p->pid ? sp_exit_from_wait_status(status) : (sp_exit){SP_EXIT_NONE, 0, 0, false};
}

int sp_proc_wait(sp_proc *p, int64_t deadline_ns, sp_exit *ex, sp_error *err) {
  (void)err;
  if (p->attached) {
    *ex = (sp_exit){SP_EXIT_NONE, 0, 0, false};
    return 0;
  }
  while (!exited(p)) {
    int ms = sp_ms_until(deadline_ns);
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
  kill_tracked(p->pgid);
}

void sp_proc_free(sp_proc *p) {
  if (!p) return;
  if (p->attached) {
    close_attached(p);
  } else if (!p->reaped) {
    sp_proc_kill_tree(p);
    reap(p, NULL);
  }
  if (p->pidfd >= 0) close(p->pidfd);
  if (p->chan_fd >= 0) close(p->chan_fd);
  if (p->host_fd >= 0) close(p->host_fd);
  free(p);
}

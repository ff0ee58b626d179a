/* The probe runtime's primitives on POSIX (see harness/src/os.h):
 * the report channel is a descriptor (inherited, a file, or a unix: socket),
 * the wake-up is a non-blocking self-pipe, and the wait is poll(2). */
#define _GNU_SOURCE
#include "../os.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

#include "sigprobe/unix_compat.h"

#define SP_WATCH_MAX 8

static int g_chan = -1;
static bool g_chan_socket;
static int g_wake[2] = {-1, -1};

int64_t sp__thread_id(void) {
#ifdef __linux__
  return (int64_t)syscall(SYS_gettid); /* a raw system call: async-signal-safe */
#else
  return (int64_t)(intptr_t)pthread_self();
#endif
}

/* The GCC/Clang builtins are lock-free on long, so signal handlers may use them. */
long sp__atomic_add(sp__atomic *a, long v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
long sp__atomic_load(sp__atomic *a) { return __atomic_load_n(a, __ATOMIC_ACQUIRE); }
void sp__atomic_store(sp__atomic *a, long v) { __atomic_store_n(a, v, __ATOMIC_RELEASE); }

bool sp_probe_env(const char *name, char *buf, size_t size) {
  const char *v = getenv(name);
  if (!v || strlen(v) >= size) return false;
  sp_strlcpy(buf, v, size);
  return true;
}

int sp__wake_open(sp_error *err) {
  if (g_wake[0] >= 0) return 0;
  if (sp_pipe(g_wake, 1) != 0) return sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));
  return 0;
}

void sp__wake_set(void) {
  /* write(2) is async-signal-safe; a full pipe only means a wake is pending. */
  if (write(g_wake[1], "!", 1) < 0) {
  }
}

void sp__wake_clear(void) {
  char junk[64];
  while (read(g_wake[0], junk, sizeof junk) > 0) {
  }
}

static int connect_unix(const char *path, sp_error *err) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr.sun_path) return sp_fail(err, SP_EFAIL, "connect(%s): %s", path, strerror(ENAMETOOLONG));
  sp_strlcpy(addr.sun_path, path, sizeof addr.sun_path);
  int fd = sp_unix_socket();
  if (fd < 0) return sp_fail(err, SP_EFAIL, "socket(AF_UNIX): %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int saved = errno;
    close(fd);
    return sp_fail(err, SP_EFAIL, "connect(%s): %s", path, strerror(saved));
  }
  g_chan = fd;
  return 0;
}

int sp__chan_open(const char *where, bool *inherited, sp_error *err) {
  char *end;
  long fd = strtol(where, &end, 10);
  *inherited = *end == '\0' && end != where && fd >= 0;
  if (*inherited) {
    g_chan = (int)fd;
    fcntl(g_chan, F_SETFD, FD_CLOEXEC);
  } else if (strncmp(where, SP_REPORT_UNIX_PREFIX, strlen(SP_REPORT_UNIX_PREFIX)) == 0) {
    int rc = connect_unix(where + strlen(SP_REPORT_UNIX_PREFIX), err);
    if (rc != 0) return rc;
  } else {
    g_chan = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  }
  struct stat st;
  if (g_chan < 0 || fstat(g_chan, &st) != 0) {
    int saved = errno;
    if (g_chan >= 0 && !*inherited) close(g_chan);
    g_chan = -1;
    return sp_fail(err, SP_EFAIL, "cannot open the report channel '%s': %s", where, strerror(saved));
  }
  g_chan_socket = S_ISSOCK(st.st_mode);
  return 0;
}

bool sp__chan_is_open(void) { return g_chan >= 0; }

int sp__chan_fd(void) { return g_chan; }

void sp__chan_write(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t k = g_chan_socket ? send(g_chan, buf, len, MSG_NOSIGNAL) : write(g_chan, buf, len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return; /* the runner is gone; the loop notices */
    buf += k;
    len -= (size_t)k;
  }
}

void sp__chan_close(bool release) {
  if (g_chan >= 0 && release) close(g_chan);
  g_chan = -1;
}

void sp__run_prepare(void) {
  char junk[64];
  if (g_chan_socket)
    while (recv(g_chan, junk, sizeof junk, MSG_DONTWAIT) > 0) {
    }
}

const char *sp__wait(const sp_watch *watches, int n, int timeout_ms) {
  struct pollfd fds[2 + SP_WATCH_MAX];
  int nfds = 0, chan_i = -1;
  if (g_chan >= 0 && g_chan_socket) {
    chan_i = nfds;
    fds[nfds++] = (struct pollfd){g_chan, POLLIN, 0};
  }
  int wake_i = nfds;
  fds[nfds++] = (struct pollfd){g_wake[0], POLLIN, 0};
  int first_watch = nfds;
  for (int i = 0; i < n && i < SP_WATCH_MAX; i++) fds[nfds++] = (struct pollfd){watches[i].fd, POLLIN, 0};
  if (poll(fds, (nfds_t)nfds, timeout_ms) <= 0) return NULL; /* timeout, or EINTR: the caller checks */
  if (fds[wake_i].revents) sp__wake_clear();
  for (int i = first_watch; i < nfds; i++)
    if (fds[i].revents) watches[i - first_watch].on_readable(fds[i].fd);
  if (chan_i >= 0 && fds[chan_i].revents) {
    char cmd[16];
    ssize_t k = recv(g_chan, cmd, sizeof cmd, MSG_DONTWAIT);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) return "runner-gone";
    if (k > 0) return "runner";
  }
  return NULL;
}

static sp_disposition disposition_of(int sig) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) return SP_DISP_UNKNOWN;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) return SP_DISP_IGNORED;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) return SP_DISP_DEFAULT;
  return SP_DISP_CAUGHT;
}

sp_disposition sp__sigint_disposition(void) { return disposition_of(SIGINT); }

void sp__ready_facts(sp_event *ev) {
  ev->pid = getpid();
  ev->pgid = getpgrp();
  ev->sid = getsid(0);
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty >= 0) {
    const char *name = NULL;
    for (int i = 0; i < 3 && !name; i++)
      if (isatty(i)) name = ttyname(i);
    sp_strlcpy(ev->tty, name ? name : "/dev/tty", sizeof ev->tty);
    ev->foreground = tcgetpgrp(tty) == getpgrp();
    close(tty);
  }
}

void sp__done_facts(sp_event *ev, bool in_process) {
  static const int watched[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
  sigset_t pending;
  (void)in_process; /* looking at a disposition or the pending set changes neither */
  sigemptyset(&pending);
  sigpending(&pending);
  for (size_t i = 0; i < SP_ARRAY_LEN(watched); i++) {
    if (disposition_of(watched[i]) == SP_DISP_IGNORED) sp_name_list_add(&ev->ignored, sp_signal_name(watched[i]));
    if (sigismember(&pending, watched[i]) == 1) sp_name_list_add(&ev->pending, sp_signal_name(watched[i]));
  }
}

const char *sp__si_code_name(int code, char *buf, size_t n) {
  switch (code) {
    case SI_USER: return "SI_USER";
#ifdef SI_KERNEL
    case SI_KERNEL: return "SI_KERNEL";
#endif
#ifdef SI_TKILL
    case SI_TKILL: return "SI_TKILL";
#endif
    case SI_QUEUE: return "SI_QUEUE";
    case SI_TIMER: return "SI_TIMER";
    case SI_MESGQ: return "SI_MESGQ";
    case SI_ASYNCIO: return "SI_ASYNCIO";
    default: snprintf(buf, n, "SI_CODE(%d)", code); return buf;
  }
}

void sp__last_error(const char *call, char *buf, size_t n) { snprintf(buf, n, "%s: %s", call, strerror(errno)); }

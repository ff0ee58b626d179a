/* The probe runtime on POSIX (see probe.h). */
#define _GNU_SOURCE
#include "sigprobe/probe.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
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

#include "sigprobe/protocol.h"
#include "sigprobe/unix_compat.h"

#define SP_SLOTS 16

/* A slot is filled by a handler (or a strategy thread) and written out by
 * the main loop. Handlers only claim a slot with an atomic counter, fill
 * plain fields nobody else reads yet, and publish with a release store. */
typedef struct slot {
  atomic_int published;
  const char *handler;
  int signo;
  int si_code;
  int64_t sender_pid, sender_uid, tid, t_ns;
  bool main_thread;
  bool written;
} slot;

static slot g_slots[SP_SLOTS];
static atomic_int g_next_slot;
static int g_chan = -1;
static bool g_chan_socket;
static bool g_chan_owned; /* opened from a path (file or unix:), not inherited */
static int g_wake[2] = {-1, -1};
static int64_t g_main_tid;
static sp_disposition g_entry_disposition = SP_DISP_UNKNOWN;

static int64_t thread_id(void) {
#ifdef __linux__
  return (int64_t)syscall(SYS_gettid); /* a raw system call: async-signal-safe */
#else
  return (int64_t)(intptr_t)pthread_self();
#endif
}

bool sp_probe_on_main_thread(void) { return thread_id() == g_main_tid; }

int sp_probe_channel_fd(void) { return g_chan; }

static void write_all(const char *buf, size_t len) {
  while (len > 0) {
    ssize_t k = g_chan_socket ? send(g_chan, buf, len, MSG_NOSIGNAL) : write(g_chan, buf, len);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return; /* the runner is gone; the loop notices */
    buf += k;
    len -= (size_t)k;
  }
}

static void emit(const sp_event *ev) {
  char line[SP_LINE_MAX];
  int n = sp_event_encode(ev, line, sizeof line);
  if (n > 0) write_all(line, (size_t)n);
}

static sp_disposition disposition_of(int sig) {
  struct sigaction sa;
  if (sigaction(sig, NULL, &sa) != 0) return SP_DISP_UNKNOWN;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) return SP_DISP_IGNORED;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) return SP_DISP_DEFAULT;
  return SP_DISP_CAUGHT;
}

/* Touches everything a handler will touch, so that the first signal does
 * not pay for page faults (the slots live in zero-filled BSS) and cold
 * code: the latency measured is the signal's, not the probe's start-up. */
static void warm_up(void) {
  volatile char *p = (volatile char *)g_slots;
  for (size_t i = 0; i < sizeof g_slots; i += 64) p[i] = 0;
  (void)sp_clock_ns();
  (void)thread_id();
}

/* Opens the report channel named by `where` (see protocol.h for the forms)
 * into g_chan. Returns 0, or SP_EFAIL with err naming the failing call. */
static int open_channel(const char *where, sp_error *err) {
  char *end;
  long fd = strtol(where, &end, 10);
  g_chan_owned = true;
  if (*end == '\0' && end != where && fd >= 0) {
    g_chan = (int)fd;
    g_chan_owned = false;
    fcntl(g_chan, F_SETFD, FD_CLOEXEC);
  } else if (strncmp(where, SP_REPORT_UNIX_PREFIX, strlen(SP_REPORT_UNIX_PREFIX)) == 0) {
    const char *path = where + strlen(SP_REPORT_UNIX_PREFIX);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
      errno = ENAMETOOLONG;
      return sp_fail(err, SP_EFAIL, "connect(%s): %s", path, strerror(errno));
    }
    sp_strlcpy(addr.sun_path, path, sizeof addr.sun_path);
    g_chan = sp_unix_socket();
    if (g_chan < 0) return sp_fail(err, SP_EFAIL, "socket(AF_UNIX): %s", strerror(errno));
    if (connect(g_chan, (struct sockaddr *)&addr, sizeof addr) != 0) {
      int saved = errno;
      close(g_chan);
      g_chan = -1;
      errno = saved;
      return sp_fail(err, SP_EFAIL, "connect(%s): %s", path, strerror(saved));
    }
  } else {
    g_chan = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  }
  struct stat st;
  if (g_chan < 0 || fstat(g_chan, &st) != 0) {
    int saved = errno;
    if (g_chan >= 0 && g_chan_owned) close(g_chan);
    g_chan = -1;
    errno = saved;
    return sp_fail(err, SP_EFAIL, "cannot open the report channel '%s': %s", where, strerror(saved));
  }
  g_chan_socket = S_ISSOCK(st.st_mode);
  return 0;
}

void sp_probe_init(void) {
  /* Before anything is installed: what did the host leave us? */
  g_entry_disposition = disposition_of(SIGINT);
  g_main_tid = thread_id();
  warm_up();
  const char *where = getenv("SIGPROBE_REPORT");
  if (!where || !*where) {
    fprintf(stderr, "sigprobe probe: SIGPROBE_REPORT is not set (run probes through sigprobe-run)\n");
    exit(3);
  }
  sp_error err;
  if (open_channel(where, &err) != 0) {
    fprintf(stderr, "sigprobe probe: %s\n", err.msg);
    exit(3);
  }
  if (sp_pipe(g_wake, 1) != 0) sp_probe_fail("pipe2");
}

/* "error" or "unsupported" with its reason, when there is a channel. */
static void report_reason(sp_event_kind kind, const char *reason) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = kind;
  sp_strlcpy(ev.reason, reason, sizeof ev.reason);
  if (g_chan >= 0) emit(&ev);
}

void sp_probe_fail(const char *call) {
  char reason[SP_REASON_MAX];
  snprintf(reason, sizeof reason, "%s: %s", call, strerror(errno));
  report_reason(SP_EV_ERROR, reason);
  exit(3);
}

void sp_probe_unsupported(const char *reason) {
  report_reason(SP_EV_UNSUPPORTED, reason);
  exit(0);
}

static void add_name(sp_name_list *l, const char *name) {
  if (l->n < SP_LIST_MAX) sp_strlcpy(l->names[l->n++], name, SP_NAME_MAX);
}

/* The "ready" event: the host facts and the strategies registered. */
static void ready_event(sp_event *out, const char *const *strategies, int n) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_READY;
  ev.pid = getpid();
  ev.pgid = getpgrp();
  ev.sid = getsid(0);
  ev.foreground = -1;
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty >= 0) {
    const char *name = NULL;
    for (int i = 0; i < 3 && !name; i++)
      if (isatty(i)) name = ttyname(i);
    sp_strlcpy(ev.tty, name ? name : "/dev/tty", sizeof ev.tty);
    ev.foreground = tcgetpgrp(tty) == getpgrp();
    close(tty);
  }
  ev.disposition_on_entry = g_entry_disposition;
  for (int i = 0; i < n; i++) add_name(&ev.strategies, strategies[i]);
  ev.t_ns = sp_clock_ns();
  *out = ev;
}

void sp_probe_ready(const char *const *strategies, int n) {
  sp_event ev;
  ready_event(&ev, strategies, n);
  emit(&ev);
}

void sp_probe_record_at(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid, int64_t t_ns,
                        bool main_thread) {
  int i = atomic_fetch_add(&g_next_slot, 1);
  if (i >= SP_SLOTS) return;
  slot *s = &g_slots[i];
  s->handler = handler;
  s->signo = signo;
  s->si_code = si_code;
  s->sender_pid = sender_pid;
  s->sender_uid = sender_uid;
  s->t_ns = t_ns;
  s->main_thread = main_thread;
  s->tid = thread_id();
  atomic_store_explicit(&s->published, 1, memory_order_release);
  /* write(2) is async-signal-safe; a full pipe only means a wake is pending. */
  int saved = errno;
  if (write(g_wake[1], "!", 1) < 0) {
  }
  errno = saved;
}

void sp_probe_record(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid) {
  sp_probe_record_at(handler, signo, si_code, sender_pid, sender_uid, sp_clock_ns(), sp_probe_on_main_thread());
}

static const char *si_code_name(int code, char *buf, size_t n) {
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

/* Writes every published, unwritten slot, in the order they were claimed. */
static int flush_fired(void) {
  int n = atomic_load(&g_next_slot);
  if (n > SP_SLOTS) n = SP_SLOTS;
  for (int i = 0; i < n; i++) {
    slot *s = &g_slots[i];
    if (s->written || !atomic_load_explicit(&s->published, memory_order_acquire)) continue;
    sp_event ev;
    char code[32];
    memset(&ev, 0, sizeof ev);
    ev.kind = SP_EV_FIRED;
    sp_strlcpy(ev.handler, s->handler, sizeof ev.handler);
    sp_strlcpy(ev.sig, sp_signal_name(s->signo), sizeof ev.sig);
    if (s->si_code != SP_NO_SI_CODE) sp_strlcpy(ev.si_code, si_code_name(s->si_code, code, sizeof code), sizeof ev.si_code);
    ev.sender_pid = s->sender_pid;
    ev.sender_uid = s->sender_uid;
    ev.main_thread = s->main_thread;
    ev.tid = s->tid;
    ev.t_ns = s->t_ns;
    emit(&ev);
    s->written = true;
  }
  return n;
}

static int loop_ms(void) {
  const char *v = getenv("SIGPROBE_LOOP_MS");
  int ms = v ? atoi(v) : 0;
  return ms > 0 ? ms : 10000;
}

const char *sp_probe_loop(const sp_watch *watches, int n, int linger_ms) {
  const int64_t end = sp_clock_ns() + (int64_t)loop_ms() * 1000000;
  int64_t linger_end = 0;
  /* The loop works in bounded iterations and checks the flag (g_next_slot)
   * in each, like the seed's loop; one wait (sp_probe_wait) is the unit of
   * work, woken early by the wake pipe, the channel or a watched descriptor. */
  for (;;) {
    int64_t now = sp_clock_ns();
    if (atomic_load(&g_next_slot) > 0) {
      if (!linger_end) linger_end = now + (int64_t)linger_ms * 1000000;
      if (now >= linger_end) return g_slots[0].handler;
    }
    if (now >= end) return "loop-end";
    int64_t until = linger_end ? linger_end : end;
    int ms = (int)((until - now + 999999) / 1000000);
    const char *stop = sp_probe_wait(watches, n, ms > 10 ? 10 : ms);
    /* A stop that comes after something fired is too late to matter. */
    if (stop && (strcmp(stop, "runner-gone") == 0 || atomic_load(&g_next_slot) == 0)) return stop;
  }
}

/* Writes the pending "fired" events and then "done". */
static void report_done(const char *stopped_by) {
  static const int watched[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
  sp_event ev;
  sigset_t pending;
  flush_fired();
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_DONE;
  sp_strlcpy(ev.stopped_by, stopped_by, sizeof ev.stopped_by);
  sigemptyset(&pending);
  sigpending(&pending);
  for (size_t i = 0; i < SP_ARRAY_LEN(watched); i++) {
    if (disposition_of(watched[i]) == SP_DISP_IGNORED) add_name(&ev.ignored, sp_signal_name(watched[i]));
    if (sigismember(&pending, watched[i]) == 1) add_name(&ev.pending, sp_signal_name(watched[i]));
  }
  ev.t_ns = sp_clock_ns();
  emit(&ev);
}

int sp_probe_done(const char *stopped_by) {
  report_done(stopped_by);
  close(g_chan);
  g_chan = -1;
  return 0;
}

/* ---- In-process runs (see probe.h) ---- */

static const char *g_chan_where; /* the SIGPROBE_REPORT value g_chan was opened from */
static char g_chan_where_buf[512];

int sp_probe_begin(sp_error *err) {
  if (g_wake[0] < 0 && sp_pipe(g_wake, 1) != 0)
    return sp_fail(err, SP_EFAIL, "pipe2: %s", strerror(errno));

  /* Forget the previous run. Raising the counter first makes a handler that
   * runs meanwhile claim no slot (it drops its record) instead of racing the
   * clearing; records from between runs belong to no run. */
  atomic_store(&g_next_slot, SP_SLOTS);
  for (int i = 0; i < SP_SLOTS; i++) {
    atomic_store_explicit(&g_slots[i].published, 0, memory_order_relaxed);
    g_slots[i].written = false;
  }
  char junk[64];
  while (read(g_wake[0], junk, sizeof junk) > 0) {
  }
  g_main_tid = thread_id();
  g_entry_disposition = disposition_of(SIGINT);

  const char *where = getenv("SIGPROBE_REPORT");
  if (!where || !*where) {
    atomic_store(&g_next_slot, 0);
    return sp_fail(err, SP_EINVAL, "SIGPROBE_REPORT is not set (a file path, a descriptor number or unix:/path)");
  }
  /* An inherited descriptor stays open across runs; a different value, or a
   * path, is (re)opened now. */
  if (g_chan >= 0 && !(g_chan_where && strcmp(g_chan_where, where) == 0 && !g_chan_owned)) {
    if (g_chan_owned) close(g_chan);
    g_chan = -1;
  }
  if (g_chan < 0) {
    int rc = open_channel(where, err);
    if (rc != 0) {
      atomic_store(&g_next_slot, 0);
      return rc;
    }
    sp_strlcpy(g_chan_where_buf, where, sizeof g_chan_where_buf);
    g_chan_where = g_chan_where_buf;
  } else if (g_chan_socket) {
    /* A "stop" the runner sent after the previous run's "done" is stale. */
    while (recv(g_chan, junk, sizeof junk, MSG_DONTWAIT) > 0) {
    }
  }
  atomic_store(&g_next_slot, 0);
  return 0;
}

sp_disposition sp_probe_entry_disposition(void) { return g_entry_disposition; }

int sp_probe_ready_extra(const char *const *strategies, int n, const char *extra_members) {
  sp_event ev;
  char line[SP_LINE_MAX];
  ready_event(&ev, strategies, n);
  int len = sp_event_encode_extra(&ev, extra_members, line, sizeof line);
  if (len < 0) return len;
  write_all(line, (size_t)len);
  return 0;
}

void sp_probe_report_unsupported(const char *reason) { report_reason(SP_EV_UNSUPPORTED, reason); }

void sp_probe_report_error(const char *reason) { report_reason(SP_EV_ERROR, reason); }

int sp_probe_fired_count(void) {
  int n = atomic_load(&g_next_slot);
  return n > SP_SLOTS ? SP_SLOTS : n;
}

const char *sp_probe_fired_handler(int i) {
  if (i < 0 || i >= sp_probe_fired_count()) return NULL;
  if (!atomic_load_explicit(&g_slots[i].published, memory_order_acquire)) return NULL;
  return g_slots[i].handler;
}

const char *sp_probe_wait(const sp_watch *watches, int n, int timeout_ms) {
  struct pollfd fds[2 + 8];
  int nfds = 0, chan_i = -1;
  if (g_chan >= 0 && g_chan_socket) {
    chan_i = nfds;
    fds[nfds++] = (struct pollfd){g_chan, POLLIN, 0};
  }
  int wake_i = nfds;
  fds[nfds++] = (struct pollfd){g_wake[0], POLLIN, 0};
  int first_watch = nfds;
  for (int i = 0; i < n && i < 8; i++) fds[nfds++] = (struct pollfd){watches[i].fd, POLLIN, 0};
  if (poll(fds, (nfds_t)nfds, timeout_ms) <= 0) return NULL; /* timeout, or EINTR: the caller checks */
  if (fds[wake_i].revents) {
    char junk[64];
    while (read(g_wake[0], junk, sizeof junk) > 0) {
    }
  }
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

static void close_run_channel(void) {
  if (g_chan >= 0 && g_chan_owned) {
    close(g_chan);
    g_chan = -1;
    g_chan_where = NULL;
  }
}

void sp_probe_end(const char *stopped_by) {
  if (g_chan >= 0) report_done(stopped_by);
  close_run_channel();
}

void sp_probe_abort(void) { close_run_channel(); }

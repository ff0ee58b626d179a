/* The probe runtime on Windows (see probe.h and protocol.h).
 *
 * Windows delivers console events on a thread the system injects into the
 * process, and CRT signal() handlers run there too; they are ordinary
 * threads, so recording may use any thread-safe call. The slots still work
 * as on POSIX: a handler claims one with an interlocked counter, fills it and
 * publishes it; only the main loop writes report lines. No C11 atomics, so
 * older MSVC builds it too.
 *
 * In-process runs (sp_probe_begin ... sp_probe_end, for the Python extension
 * probe inside a kernel) are at the end of this file. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <windows.h>
#include <winternl.h>
#include <afunix.h> /* Windows 10 1803+ (and MinGW-w64) */

#include "sigprobe/probe.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/json.h"
#include "sigprobe/protocol.h"

#define SP_SLOTS 16
#define SP_WATCH_MAX 8

typedef struct slot {
  volatile LONG published;
  const char *handler;
  const char *sig_name; /* a console control type or an event; NULL: signo names it */
  int signo;
  int64_t tid, t_ns;
  bool main_thread;
  bool written;
} slot;

static slot g_slots[SP_SLOTS];
static volatile LONG g_next_slot;
static HANDLE g_chan = INVALID_HANDLE_VALUE;
static HANDLE g_wake;        /* set by every record: wakes the loop */
static HANDLE g_stop;        /* SIGPROBE_STOP: the runner asks the loop to end */
static HANDLE g_jpy;         /* JPY_INTERRUPT_EVENT, when set */
static DWORD g_main_tid;
static sp_disposition g_entry_disposition = SP_DISP_UNKNOWN;

/* The inherited "ignore Ctrl+C" flag: RTL_USER_PROCESS_PARAMETERS.ConsoleFlags
 * bit 0 (winternl.h calls the field Reserved2[1]). No API reads it; it is
 * what SetConsoleCtrlHandler(NULL, TRUE/FALSE) writes and what
 * CREATE_NEW_PROCESS_GROUP sets, on Windows and in Wine alike. */
static bool ctrl_c_ignored(void) {
  PPEB peb = NtCurrentTeb()->ProcessEnvironmentBlock;
  ULONG flags = (ULONG)(ULONG_PTR)peb->ProcessParameters->Reserved2[1];
  return (flags & 1) != 0;
}

static bool under_wine(void) {
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

bool sp_probe_env(const char *name, char *buf, size_t size) {
  DWORD n = GetEnvironmentVariableA(name, buf, (DWORD)size);
  return n > 0 && n < size;
}

void *sp_probe_env_handle(const char *name, const char **why) {
  char v[32];
  char *end;
  DWORD flags;
  if (!sp_probe_env(name, v, sizeof v) || !*v) {
    *why = "is not set";
    return NULL;
  }
  unsigned long n = strtoul(v, &end, 10);
  HANDLE h = ULongToHandle(n);
  if (*end || n == 0 || !GetHandleInformation(h, &flags)) {
    *why = "does not name a handle this process holds";
    return NULL;
  }
  return h;
}

bool sp_probe_on_main_thread(void) { return GetCurrentThreadId() == g_main_tid; }

int sp_probe_channel_fd(void) { return (int)HandleToLong(g_chan); }

static SOCKET g_sock = INVALID_SOCKET; /* the unix: channel of an in-process run */
static void write_sock(const char *buf, size_t len);
static bool channel_open(void) { return g_sock != INVALID_SOCKET || g_chan != INVALID_HANDLE_VALUE; }

static void write_all(const char *buf, size_t len) {
  if (g_sock != INVALID_SOCKET) {
    write_sock(buf, len);
    return;
  }
  while (len > 0) {
    DWORD k = 0;
    if (!WriteFile(g_chan, buf, (DWORD)len, &k, NULL) || k == 0) return; /* the runner is gone */
    buf += k;
    len -= k;
  }
}

static void emit(const sp_event *ev) {
  char line[SP_LINE_MAX];
  int n = sp_event_encode(ev, line, sizeof line);
  if (n > 0) write_all(line, (size_t)n);
}

void sp_probe_init(void) {
  /* Before anything is installed: what did the host leave us? */
  g_entry_disposition = ctrl_c_ignored() ? SP_DISP_IGNORED : SP_DISP_DEFAULT;
  g_main_tid = GetCurrentThreadId();
  char where[512];
  if (!sp_probe_env("SIGPROBE_REPORT", where, sizeof where) || !*where) {
    fprintf(stderr, "sigprobe probe: SIGPROBE_REPORT is not set (run probes through sigprobe-run)\n");
    exit(3);
  }
  char *end;
  unsigned long n = strtoul(where, &end, 10);
  if (*end == '\0' && n != 0) g_chan = ULongToHandle(n);
  else
    g_chan = CreateFileA(where, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_ALWAYS,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  if (g_chan == INVALID_HANDLE_VALUE || GetFileType(g_chan) == FILE_TYPE_UNKNOWN) {
    fprintf(stderr, "sigprobe probe: cannot open the report channel '%s': error %lu\n", where, GetLastError());
    exit(3);
  }
  /* As FD_CLOEXEC on POSIX: whatever the probe starts must not hold it. */
  SetHandleInformation(g_chan, HANDLE_FLAG_INHERIT, 0);
  const char *why;
  g_stop = sp_probe_env_handle("SIGPROBE_STOP", &why);
  if (g_stop) SetHandleInformation(g_stop, HANDLE_FLAG_INHERIT, 0);
  g_jpy = sp_probe_env_handle("JPY_INTERRUPT_EVENT", &why);
  g_wake = CreateEventA(NULL, FALSE, FALSE, NULL);
  if (!g_wake) sp_probe_fail("CreateEvent");
}

/* "error" or "unsupported" with its reason, when there is a channel. */
static void report_reason(sp_event_kind kind, const char *reason) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = kind;
  sp_strlcpy(ev.reason, reason, sizeof ev.reason);
  if (channel_open()) emit(&ev);
}

void sp_probe_fail(const char *call) {
  char reason[SP_REASON_MAX];
  DWORD code = GetLastError();
  int e = errno;
  if (code) snprintf(reason, sizeof reason, "%s: error %lu", call, (unsigned long)code);
  else snprintf(reason, sizeof reason, "%s: %s", call, strerror(e));
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

/* The "console" object of "ready" (protocol.h). */
static void describe_console(char *buf, size_t n) {
  DWORD pids[64];
  DWORD count = GetConsoleProcessList(pids, (DWORD)SP_ARRAY_LEN(pids));
  sp_jw w;
  sp_jw_init(&w, buf, n);
  sp_jw_begin_obj(&w);
  sp_jw_key(&w, "attached");
  sp_jw_bool(&w, count > 0);
  sp_jw_key(&w, "processes");
  sp_jw_int(&w, (int64_t)count);
  sp_jw_key(&w, "window");
  sp_jw_bool(&w, GetConsoleWindow() != NULL);
  sp_jw_key(&w, "ctrl_c_ignored");
  sp_jw_bool(&w, ctrl_c_ignored());
  sp_jw_key(&w, "jpy_interrupt_event");
  sp_jw_bool(&w, g_jpy != NULL);
  sp_jw_key(&w, "jpy_parent");
  char parent[32];
  sp_jw_bool(&w, sp_probe_env("JPY_PARENT_PID", parent, sizeof parent));
  sp_jw_key(&w, "wine");
  sp_jw_bool(&w, under_wine());
  sp_jw_end_obj(&w);
  if (sp_jw_finish(&w) < 0) buf[0] = '\0';
}

static void ready_event(sp_event *out, const char *const *strategies, int n) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_READY;
  ev.pid = (int64_t)GetCurrentProcessId();
  ev.pgid = ev.sid = -1; /* Windows has no API for a process's group id */
  ev.foreground = -1;
  ev.disposition_on_entry = g_entry_disposition;
  for (int i = 0; i < n; i++) add_name(&ev.strategies, strategies[i]);
  describe_console(ev.console, sizeof ev.console);
  ev.t_ns = sp_clock_ns();
  *out = ev;
}

void sp_probe_ready(const char *const *strategies, int n) {
  sp_event ev;
  ready_event(&ev, strategies, n);
  emit(&ev);
}

static void record(const char *handler, const char *sig_name, int signo, int64_t t_ns, bool main_thread) {
  LONG i = InterlockedIncrement(&g_next_slot) - 1;
  if (i >= SP_SLOTS) return;
  slot *s = &g_slots[i];
  s->handler = handler;
  s->sig_name = sig_name;
  s->signo = signo;
  s->t_ns = t_ns;
  s->main_thread = main_thread;
  s->tid = (int64_t)GetCurrentThreadId();
  InterlockedExchange(&s->published, 1); /* a full barrier: the fields are visible first */
  SetEvent(g_wake);
}

void sp_probe_record_at(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid, int64_t t_ns,
                        bool main_thread) {
  (void)si_code; /* Windows handlers have no siginfo */
  (void)sender_pid;
  (void)sender_uid;
  record(handler, NULL, signo, t_ns, main_thread);
}

void sp_probe_record(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid) {
  sp_probe_record_at(handler, signo, si_code, sender_pid, sender_uid, sp_clock_ns(), sp_probe_on_main_thread());
}

void sp_probe_record_named(const char *handler, const char *what) {
  record(handler, what, 0, sp_clock_ns(), sp_probe_on_main_thread());
}

/* Writes every published, unwritten slot, in the order they were claimed. */
static void flush_fired(void) {
  LONG n = InterlockedCompareExchange(&g_next_slot, 0, 0);
  if (n > SP_SLOTS) n = SP_SLOTS;
  for (LONG i = 0; i < n; i++) {
    slot *s = &g_slots[i];
    if (s->written || !InterlockedCompareExchange(&s->published, 1, 1)) continue;
    sp_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = SP_EV_FIRED;
    sp_strlcpy(ev.handler, s->handler, sizeof ev.handler);
    sp_strlcpy(ev.sig, s->sig_name ? s->sig_name : sp_signal_name(s->signo), sizeof ev.sig);
    ev.sender_pid = ev.sender_uid = -1;
    ev.main_thread = s->main_thread;
    ev.tid = s->tid;
    ev.t_ns = s->t_ns;
    emit(&ev);
    s->written = true;
  }
}

static int loop_ms(void) {
  char v[32];
  int ms = sp_probe_env("SIGPROBE_LOOP_MS", v, sizeof v) ? atoi(v) : 0;
  return ms > 0 ? ms : 10000;
}

/* Watches are handles on Windows (kernel handles fit in 32 bits, so an int
 * holds one: HandleToLong/LongToHandle); on_readable runs when signalled. */
const char *sp_probe_loop(const sp_watch *watches, int n, int linger_ms) {
  HANDLE h[2 + SP_WATCH_MAX];
  DWORD nh = 0;
  int stop_i = -1;
  h[nh++] = g_wake;
  if (g_stop) {
    stop_i = (int)nh;
    h[nh++] = g_stop;
  }
  DWORD first_watch = nh;
  for (int i = 0; i < n && i < SP_WATCH_MAX; i++) h[nh++] = LongToHandle(watches[i].fd);

  const int64_t end = sp_clock_ns() + (int64_t)loop_ms() * 1000000;
  int64_t linger_end = 0;
  /* Bounded iterations that check the flag (g_next_slot) each time, like
   * the POSIX loop; the wait is the unit of work, woken early by a record,
   * the runner's stop or a watch. */
  for (;;) {
    int64_t now = sp_clock_ns();
    if (InterlockedCompareExchange(&g_next_slot, 0, 0) > 0) {
      if (!linger_end) linger_end = now + (int64_t)linger_ms * 1000000;
      if (now >= linger_end) return g_slots[0].handler;
    }
    if (now >= end) return "loop-end";
    int64_t until = linger_end ? linger_end : end;
    DWORD ms = (DWORD)((until - now + 999999) / 1000000);
    if (ms > 10) ms = 10;
    DWORD r = WaitForMultipleObjects(nh, h, FALSE, ms);
    if (r == WAIT_TIMEOUT || r == WAIT_FAILED || r < WAIT_OBJECT_0 + 1) continue;
    DWORD i = r - WAIT_OBJECT_0;
    if ((int)i == stop_i) {
      if (InterlockedCompareExchange(&g_next_slot, 0, 0) == 0) return "runner";
    } else if (i >= first_watch && i < nh) {
      watches[i - first_watch].on_readable(watches[i - first_watch].fd);
    }
  }
}

/* The "done" event after the pending "fired" ones. peek_jpy: look at
 * JPY_INTERRUPT_EVENT without consuming it (in-process: the kernel's poller
 * may still need it). */
static void report_done(const char *stopped_by, bool peek_jpy) {
  sp_event ev;
  flush_fired();
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_DONE;
  sp_strlcpy(ev.stopped_by, stopped_by, sizeof ev.stopped_by);
  if (ctrl_c_ignored()) add_name(&ev.ignored, "CTRL_C_EVENT");
  /* Set and never consumed (nobody waited on it). This consumes it, which no
   * longer matters at the end. */
  if (g_jpy && WaitForSingleObject(g_jpy, 0) == WAIT_OBJECT_0) {
    add_name(&ev.pending, "JPY_INTERRUPT_EVENT");
    /* Signalled with nobody waiting (a waiter would have taken it at once):
     * put it back, so looking leaves the state as it was. */
    if (peek_jpy) SetEvent(g_jpy);
  }
  ev.t_ns = sp_clock_ns();
  emit(&ev);
}

int sp_probe_done(const char *stopped_by) {
  report_done(stopped_by, false);
  CloseHandle(g_chan);
  g_chan = INVALID_HANDLE_VALUE;
  return 0;
}

/* ---- In-process runs (see probe.h) ----
 * The channel forms on Windows: an inherited handle number (kept open across
 * runs, like an inherited descriptor on POSIX; SIGPROBE_STOP, when set, is
 * the runner's stop), a file path (opened per run), and unix:<path>, an
 * AF_UNIX stream socket (Windows 10 1803+, winsock) opened per run: what
 * `sigprobe-run --attach` listens on; the runner writes "stop\n" on it
 * (tcp:127.0.0.1:<port> is the same over loopback TCP, for Wine). */

static bool g_chan_owned;     /* opened from a path or unix: for this run */
static HANDLE g_sock_event;   /* WSAEventSelect: FD_READ | FD_CLOSE on g_sock */
static bool g_wsa_started;
static char g_chan_where[512]; /* the SIGPROBE_REPORT value an inherited g_chan came from */

/* WSAEventSelect made the socket non-blocking: a full send buffer waits,
 * briefly, for room (report lines are small; a runner that reads nothing for
 * a second is gone for our purposes). */
static void write_sock(const char *buf, size_t len) {
  while (len > 0) {
    int k = send(g_sock, buf, len > 65536 ? 65536 : (int)len, 0);
    if (k == SOCKET_ERROR && WSAGetLastError() == WSAEWOULDBLOCK) {
      fd_set w;
      struct timeval tv = {1, 0};
      FD_ZERO(&w);
      FD_SET(g_sock, &w);
      if (select(0, NULL, &w, NULL, &tv) <= 0) return;
      continue;
    }
    if (k <= 0) return; /* the runner is gone; the wait notices */
    buf += k;
    len -= (size_t)k;
  }
}

static int fail_win(sp_error *err, const char *what, const char *where, unsigned long code) {
  return sp_fail(err, SP_EFAIL, "%s(%s): error %lu", what, where, code);
}

static void close_socket_channel(void) {
  if (g_sock != INVALID_SOCKET) closesocket(g_sock);
  g_sock = INVALID_SOCKET;
  if (g_sock_event) WSACloseEvent(g_sock_event);
  g_sock_event = NULL;
  if (g_wsa_started) WSACleanup();
  g_wsa_started = false;
}

/* Connects the run's channel to a stream socket: AF_UNIX (unix:<path>) or
 * loopback TCP (tcp:127.0.0.1:<port>, where winsock has no AF_UNIX). */
static int open_socket_channel(const char *where, sp_error *err) {
  struct sockaddr_un un;
  struct sockaddr_in in;
  struct sockaddr *addr;
  int len, family;
  WSADATA wsa;
  if (strncmp(where, SP_REPORT_TCP_PREFIX, strlen(SP_REPORT_TCP_PREFIX)) == 0) {
    int port = sp_report_tcp_port(where, false);
    if (port < 0) return sp_fail(err, SP_EINVAL, "SIGPROBE_REPORT=%s: a TCP channel is tcp:127.0.0.1:PORT", where);
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons((unsigned short)port);
    addr = (struct sockaddr *)&in;
    len = (int)sizeof in;
    family = AF_INET;
  } else {
    const char *path = where + strlen(SP_REPORT_UNIX_PREFIX);
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof un.sun_path) return sp_fail(err, SP_EFAIL, "connect(%s): path too long", path);
    sp_strlcpy(un.sun_path, path, sizeof un.sun_path);
    addr = (struct sockaddr *)&un;
    len = (int)sizeof un;
    family = AF_UNIX;
  }
  int rc = WSAStartup(MAKEWORD(2, 2), &wsa);
  if (rc != 0) return fail_win(err, "WSAStartup", where, (unsigned long)rc);
  g_wsa_started = true;
  g_sock = socket(family, SOCK_STREAM, 0);
  if (g_sock == INVALID_SOCKET) {
    rc = fail_win(err, "socket", where, (unsigned long)WSAGetLastError());
    close_socket_channel();
    return rc;
  }
  /* Whatever a kernel cell starts must not hold the runner's connection. */
  SetHandleInformation((HANDLE)g_sock, HANDLE_FLAG_INHERIT, 0);
  if (connect(g_sock, addr, len) != 0) {
    rc = fail_win(err, "connect", where, (unsigned long)WSAGetLastError());
    close_socket_channel();
    return rc;
  }
  g_sock_event = WSACreateEvent();
  if (g_sock_event == WSA_INVALID_EVENT || WSAEventSelect(g_sock, g_sock_event, FD_READ | FD_CLOSE) != 0) {
    if (g_sock_event == WSA_INVALID_EVENT) g_sock_event = NULL;
    rc = fail_win(err, "WSAEventSelect", where, (unsigned long)WSAGetLastError());
    close_socket_channel();
    return rc;
  }
  return 0;
}

/* Opens SIGPROBE_REPORT's channel for a run (see the forms above). */
static int open_run_channel(const char *where, sp_error *err) {
  char *end;
  unsigned long n = strtoul(where, &end, 10);
  g_chan_owned = true;
  if (*end == '\0' && end != where && n != 0) {
    DWORD flags;
    HANDLE h = ULongToHandle(n);
    if (!GetHandleInformation(h, &flags) || GetFileType(h) == FILE_TYPE_UNKNOWN)
      return sp_fail(err, SP_EFAIL, "SIGPROBE_REPORT=%s is not a handle this process holds", where);
    g_chan = h;
    g_chan_owned = false;
    SetHandleInformation(g_chan, HANDLE_FLAG_INHERIT, 0);
    sp_strlcpy(g_chan_where, where, sizeof g_chan_where);
    return 0;
  }
  if (strncmp(where, SP_REPORT_UNIX_PREFIX, strlen(SP_REPORT_UNIX_PREFIX)) == 0 ||
      strncmp(where, SP_REPORT_TCP_PREFIX, strlen(SP_REPORT_TCP_PREFIX)) == 0)
    return open_socket_channel(where, err);
  HANDLE h = CreateFileA(where, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_ALWAYS,
                         FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) return fail_win(err, "cannot open the report channel CreateFile", where, GetLastError());
  SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
  g_chan = h;
  return 0;
}

static void close_run_channel(void) {
  if (!g_chan_owned) return; /* an inherited handle stays for the next run */
  close_socket_channel();
  if (g_chan != INVALID_HANDLE_VALUE) CloseHandle(g_chan);
  g_chan = INVALID_HANDLE_VALUE;
  g_chan_owned = false;
}

int sp_probe_begin(sp_error *err) {
  if (!g_wake) {
    g_wake = CreateEventA(NULL, FALSE, FALSE, NULL);
    if (!g_wake) return sp_fail(err, SP_EFAIL, "CreateEvent: error %lu", GetLastError());
  }
  /* Forget the previous run. Raising the counter first makes a handler that
   * runs meanwhile claim no slot (it drops its record) instead of racing the
   * clearing; records from between runs belong to no run. */
  InterlockedExchange(&g_next_slot, SP_SLOTS);
  for (int i = 0; i < SP_SLOTS; i++) {
    InterlockedExchange(&g_slots[i].published, 0);
    g_slots[i].written = false;
  }
  ResetEvent(g_wake);
  g_main_tid = GetCurrentThreadId();
  /* As for the native probes: Windows has no SIGINT disposition to read
   * without changing it; what the host decides is the "ignore Ctrl+C" flag. */
  g_entry_disposition = ctrl_c_ignored() ? SP_DISP_IGNORED : SP_DISP_DEFAULT;
  const char *why;
  g_jpy = sp_probe_env_handle("JPY_INTERRUPT_EVENT", &why);

  char where[512];
  if (!sp_probe_env("SIGPROBE_REPORT", where, sizeof where) || !*where) {
    InterlockedExchange(&g_next_slot, 0);
    return sp_fail(err, SP_EINVAL, "SIGPROBE_REPORT is not set (a file path, a handle number or unix:<path>)");
  }
  /* An inherited handle stays open across runs; a different value, or a path,
   * is (re)opened now. */
  if (channel_open() && !(!g_chan_owned && strcmp(g_chan_where, where) == 0)) {
    if (g_chan_owned) close_run_channel();
    else g_chan = INVALID_HANDLE_VALUE; /* another handle now: the old one is not ours to close */
  }
  if (!channel_open()) {
    g_chan = INVALID_HANDLE_VALUE;
    int rc = open_run_channel(where, err);
    if (rc != 0) {
      InterlockedExchange(&g_next_slot, 0);
      return rc;
    }
  }
  g_stop = sp_probe_env_handle("SIGPROBE_STOP", &why);
  if (g_stop) {
    SetHandleInformation(g_stop, HANDLE_FLAG_INHERIT, 0);
    ResetEvent(g_stop); /* a stop set after the previous run's "done" is stale */
  }
  InterlockedExchange(&g_next_slot, 0);
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
  LONG n = InterlockedCompareExchange(&g_next_slot, 0, 0);
  return n > SP_SLOTS ? SP_SLOTS : (int)n;
}

const char *sp_probe_fired_handler(int i) {
  if (i < 0 || i >= sp_probe_fired_count()) return NULL;
  if (!InterlockedCompareExchange(&g_slots[i].published, 1, 1)) return NULL;
  return g_slots[i].handler;
}

/* Watches are handles here, as in sp_probe_loop. */
const char *sp_probe_wait(const sp_watch *watches, int n, int timeout_ms) {
  HANDLE h[3 + SP_WATCH_MAX];
  DWORD nh = 0;
  int stop_i = -1, sock_i = -1;
  h[nh++] = g_wake;
  if (g_stop) {
    stop_i = (int)nh;
    h[nh++] = g_stop;
  }
  if (g_sock != INVALID_SOCKET && g_sock_event) {
    sock_i = (int)nh;
    h[nh++] = g_sock_event;
  }
  DWORD first_watch = nh;
  for (int i = 0; i < n && i < SP_WATCH_MAX; i++) h[nh++] = LongToHandle(watches[i].fd);
  DWORD r = WaitForMultipleObjects(nh, h, FALSE, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
  if (r == WAIT_TIMEOUT || r == WAIT_FAILED || r >= WAIT_OBJECT_0 + nh) return NULL;
  DWORD i = r - WAIT_OBJECT_0;
  if (i == 0) return NULL; /* a record: the caller checks */
  if ((int)i == stop_i) return "runner";
  if ((int)i == sock_i) {
    WSANETWORKEVENTS ne;
    if (WSAEnumNetworkEvents(g_sock, g_sock_event, &ne) != 0) return "runner-gone";
    if (ne.lNetworkEvents & FD_READ) {
      char cmd[16];
      int k = recv(g_sock, cmd, (int)sizeof cmd, 0);
      if (k > 0) return "runner";
      if (k == 0 || WSAGetLastError() != WSAEWOULDBLOCK) return "runner-gone";
    }
    if (ne.lNetworkEvents & FD_CLOSE) return "runner-gone";
    return NULL;
  }
  if (i >= first_watch && i < nh) watches[i - first_watch].on_readable(watches[i - first_watch].fd);
  return NULL;
}

void sp_probe_end(const char *stopped_by) {
  if (channel_open()) report_done(stopped_by, true);
  close_run_channel();
}

void sp_probe_abort(void) { close_run_channel(); }

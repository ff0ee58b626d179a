/* The probe runtime on Windows (see probe.h and protocol.h).
 *
 * Windows delivers console events on a thread the system injects into the
 * process, and CRT signal() handlers run there too; they are ordinary
 * threads, so recording may use any thread-safe call. The slots still work
 * as on POSIX: a handler claims one with an interlocked counter, fills it and
 * publishes it; only the main loop writes report lines. No C11 atomics, so
 * older MSVC builds it too. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <winternl.h>

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

/* A handle inherited by value through the environment, or NULL. */
static HANDLE env_handle(const char *name) {
  const char *v = getenv(name);
  char *end;
  DWORD flags;
  if (!v || !*v) return NULL;
  unsigned long n = strtoul(v, &end, 10);
  if (*end || n == 0) return NULL;
  HANDLE h = ULongToHandle(n);
  return GetHandleInformation(h, &flags) ? h : NULL;
}

bool sp_probe_on_main_thread(void) { return GetCurrentThreadId() == g_main_tid; }

int sp_probe_channel_fd(void) { return (int)HandleToLong(g_chan); }

static void write_all(const char *buf, size_t len) {
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
  const char *where = getenv("SIGPROBE_REPORT");
  if (!where || !*where) {
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
  g_stop = env_handle("SIGPROBE_STOP");
  if (g_stop) SetHandleInformation(g_stop, HANDLE_FLAG_INHERIT, 0);
  g_jpy = env_handle("JPY_INTERRUPT_EVENT");
  g_wake = CreateEventA(NULL, FALSE, FALSE, NULL);
  if (!g_wake) sp_probe_fail("CreateEvent");
}

void sp_probe_fail(const char *call) {
  sp_event ev;
  DWORD code = GetLastError();
  int e = errno;
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_ERROR;
  if (code) snprintf(ev.reason, sizeof ev.reason, "%s: error %lu", call, (unsigned long)code);
  else snprintf(ev.reason, sizeof ev.reason, "%s: %s", call, strerror(e));
  if (g_chan != INVALID_HANDLE_VALUE) emit(&ev);
  exit(3);
}

void sp_probe_unsupported(const char *reason) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_UNSUPPORTED;
  sp_strlcpy(ev.reason, reason, sizeof ev.reason);
  emit(&ev);
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
  sp_jw_bool(&w, getenv("JPY_PARENT_PID") != NULL);
  sp_jw_key(&w, "wine");
  sp_jw_bool(&w, under_wine());
  sp_jw_end_obj(&w);
  if (sp_jw_finish(&w) < 0) buf[0] = '\0';
}

void sp_probe_ready(const char *const *strategies, int n) {
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
  const char *v = getenv("SIGPROBE_LOOP_MS");
  int ms = v ? atoi(v) : 0;
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

int sp_probe_done(const char *stopped_by) {
  sp_event ev;
  flush_fired();
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_DONE;
  sp_strlcpy(ev.stopped_by, stopped_by, sizeof ev.stopped_by);
  if (ctrl_c_ignored()) add_name(&ev.ignored, "CTRL_C_EVENT");
  /* Set and never consumed (nobody waited on it). This consumes it, which no
   * longer matters at the end. */
  if (g_jpy && WaitForSingleObject(g_jpy, 0) == WAIT_OBJECT_0) add_name(&ev.pending, "JPY_INTERRUPT_EVENT");
  ev.t_ns = sp_clock_ns();
  emit(&ev);
  CloseHandle(g_chan);
  g_chan = INVALID_HANDLE_VALUE;
  return 0;
}

/* The Python extension probe's Windows strategy layer (probes/pyext/
 * strategies_win.c), without Python: each strategy is installed through the
 * Windows in-process probe runtime (sp_probe_begin ... sp_probe_end), the
 * run reports on a real channel (a file, an inherited pipe handle, a unix:
 * socket), the interrupt is really sent (SetEvent on an inheritable
 * auto-reset event in JPY_INTERRUPT_EVENT, as jupyter_client creates it;
 * GenerateConsoleCtrlEvent(CTRL_C_EVENT) in this process's own console), and
 * the report is read back and checked. The module glue (run.c, the two
 * modules) needs a Windows CPython: tests/py/test_windows_python.py runs it
 * in the embeddable CPython under Wine. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <windows.h>
#include <afunix.h>

#include "tap.h"

#include <signal.h>

#include "sigprobe/probe.h"
#include "sigprobe/protocol.h"
#include "strategy.h"

enum trigger { NOTHING, SET_EVENT, CTRL_C };

static HANDLE g_jpy; /* the inheritable auto-reset event in JPY_INTERRUPT_EVENT */
static char g_tmp[MAX_PATH];
static int g_file_n;

static void set_env(const char *name, const char *value) {
  _putenv_s(name, value ? value : "");
}

static void new_report_file(char *path, size_t n) {
  snprintf(path, n, "%ssp-pyext-%lu-%d.jsonl", g_tmp, (unsigned long)GetCurrentProcessId(), ++g_file_n);
  DeleteFileA(path);
  set_env("SIGPROBE_REPORT", path);
}

/* The events in a report file, decoded. Returns how many. */
static int read_events(const char *path, sp_event *evs, int max) {
  FILE *f = fopen(path, "rb");
  char line[SP_LINE_MAX + 2];
  int n = 0;
  sp_error err;
  if (!f) return 0;
  while (n < max && fgets(line, sizeof line, f)) {
    if (sp_event_decode(line, strlen(line), &evs[n], &err) == 0) n++;
    else printf("# undecodable line (%s): %s", err.msg, line);
  }
  fclose(f);
  return n;
}

static const sp_event *find_ev(const sp_event *evs, int n, sp_event_kind kind) {
  for (int i = 0; i < n; i++)
    if (evs[i].kind == kind) return &evs[i];
  return NULL;
}

static void trigger(enum trigger t) {
  if (t == SET_EVENT) SetEvent(g_jpy);
  /* Group 0: every process on this console, i.e. this test alone (its own
   * console, made in main). */
  else if (t == CTRL_C) GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0);
}

/* The run loop of run.c, without Python: ends when a record is complete,
 * when the runner asks, or after loop_ms. */
static const char *loop(const sp_watch *w, int n, int loop_ms) {
  int64_t end = sp_clock_ns() + (int64_t)loop_ms * 1000000;
  for (;;) {
    if (sp_probe_fired_count() > 0 && sp_probe_fired_handler(0)) return sp_probe_fired_handler(0);
    if (sp_clock_ns() >= end) return "loop-end";
    const char *stop = sp_probe_wait(w, n, 1);
    if (stop) return stop;
  }
}

typedef struct run_result {
  int install_rc;
  char reason[SP_ERROR_MAX];
  const char *stopped_by;
  sp_event evs[16];
  int n;
} run_result;

/* One run of strategy `name` with the report in a new file. */
static void run_strategy(const char *name, enum trigger t, int loop_ms, run_result *r) {
  char path[MAX_PATH];
  sp_error err;
  sp_watch w[SP_PY_MAX_WATCHES];
  int nw = 0;
  const sp_py_strategy *s = sp_py_strategy_find(name);
  memset(r, 0, sizeof *r);
  new_report_file(path, sizeof path);
  if (!s) {
    tap_ok(0, "%s: strategy exists", name);
    return;
  }
  if (sp_probe_begin(&err) != 0) {
    tap_ok(0, "%s: sp_probe_begin (%s)", name, err.msg);
    return;
  }
  if (s->install) r->install_rc = s->install(w, &nw, &err);
  if (r->install_rc != 0) {
    sp_strlcpy(r->reason, err.msg, sizeof r->reason);
    if (r->install_rc == SP_EUNSUPPORTED) sp_probe_report_unsupported(err.msg);
    else sp_probe_report_error(err.msg);
    sp_probe_abort();
  } else {
    const char *names[1];
    names[0] = s->name;
    sp_probe_ready_extra(names, 1, "\"python_handler\":\"none\",\"nogil\":false");
    trigger(t);
    r->stopped_by = loop(w, nw, loop_ms);
    sp_probe_end(r->stopped_by);
    if (s->remove) s->remove();
  }
  r->n = read_events(path, r->evs, (int)SP_ARRAY_LEN(r->evs));
  DeleteFileA(path);
}

/* A strategy that must see the interrupt: ready, one fired (handler, what,
 * thread), done stopped by it. */
static void expect_fired(const char *name, enum trigger t, const char *what, bool on_main) {
  run_result r;
  run_strategy(name, t, 3000, &r);
  const sp_event *ready = find_ev(r.evs, r.n, SP_EV_READY);
  const sp_event *fired = find_ev(r.evs, r.n, SP_EV_FIRED);
  const sp_event *done = find_ev(r.evs, r.n, SP_EV_DONE);
  tap_ok(r.install_rc == 0, "%s: installs (%s)", name, r.install_rc ? r.reason : "ok");
  tap_ok(ready && ready->strategies.n == 1 && strcmp(ready->strategies.names[0], name) == 0,
         "%s: reports ready naming it", name);
  tap_ok(fired && strcmp(fired->handler, name) == 0 && strcmp(fired->sig, what) == 0, "%s: fired, saw %s (got %s %s)",
         name, what, fired ? fired->handler : "-", fired ? fired->sig : "-");
  tap_ok(fired && fired->main_thread == on_main, "%s: ran on the %s thread", name, on_main ? "run's" : "other");
  tap_ok(done && strcmp(done->stopped_by, name) == 0, "%s: done, stopped by it (got %s)", name,
         done ? done->stopped_by : "-");
}

/* ---- handlers the test installs itself ---- */

static volatile LONG g_sentinel_hits, g_guard_hits;

static void sentinel(int sig) {
  (void)sig;
  InterlockedIncrement(&g_sentinel_hits);
}

static BOOL WINAPI guard(DWORD type) {
  (void)type;
  InterlockedIncrement(&g_guard_hits);
  return TRUE;
}

/* sigprobe_pyext_import's pattern: a CRT handler installed once, before any
 * run, re-installing itself (the CRT resets the action before calling it). */
static void import_time(int sig) {
  signal(SIGINT, import_time);
  sp_probe_record("c-handler-import", sig, SP_NO_SI_CODE, -1, -1);
}

/* ---- the poller race: ipykernel's ParentPollerWindows on the same event ---- */

static volatile LONG g_poller_hits;
static HANDLE g_poller_quit;

static DWORD WINAPI poller(LPVOID arg) {
  HANDLE h[2];
  (void)arg;
  h[0] = g_poller_quit;
  h[1] = g_jpy;
  for (;;) {
    DWORD r = WaitForMultipleObjects(2, h, FALSE, INFINITE);
    if (r != WAIT_OBJECT_0 + 1) return 0;
    InterlockedIncrement(&g_poller_hits);
  }
}

static void race(void) {
  const int trials = 20;
  int ours = 0, both = 0, none = 0;
  g_poller_quit = CreateEventA(NULL, TRUE, FALSE, NULL);
  HANDLE t = CreateThread(NULL, 0, poller, NULL, 0, NULL);
  Sleep(50); /* the poller waits first, as the kernel's does before any cell */
  for (int i = 0; i < trials; i++) {
    run_result r;
    LONG before = InterlockedCompareExchange(&g_poller_hits, 0, 0);
    run_strategy("event-thread", SET_EVENT, 300, &r);
    bool fired = find_ev(r.evs, r.n, SP_EV_FIRED) != NULL;
    bool polled = InterlockedCompareExchange(&g_poller_hits, 0, 0) > before;
    if (fired && polled) both++;
    else if (fired) ours++;
    else if (!polled) none++;
  }
  SetEvent(g_poller_quit);
  WaitForSingleObject(t, 5000);
  CloseHandle(t);
  CloseHandle(g_poller_quit);
  printf("# race on the auto-reset event, %d SetEvents: event-thread took %d, the poller took %d\n", trials, ours,
         trials - ours - both - none);
  tap_ok(both == 0 && none == 0, "auto-reset JPY_INTERRUPT_EVENT: each SetEvent released exactly one of the two "
                                  "waiters (both %d, neither %d)", both, none);
}

/* ---- channels ---- */

static void inherited_handle_channel(void) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE r = NULL, w = NULL, stop = CreateEventA(&sa, TRUE, FALSE, NULL);
  char num[32], buf[8192];
  sp_error err;
  DWORD k = 0, got = 0;
  if (!CreatePipe(&r, &w, &sa, 1 << 16) || !stop) {
    tap_ok(0, "handle channel: CreatePipe/CreateEvent");
    return;
  }
  snprintf(num, sizeof num, "%lu", (unsigned long)HandleToUlong(w));
  set_env("SIGPROBE_REPORT", num);
  snprintf(num, sizeof num, "%lu", (unsigned long)HandleToUlong(stop));
  set_env("SIGPROBE_STOP", num);
  const char *names[] = {"none"};
  int ok = 1;
  for (int run = 0; run < 2 && ok; run++) {
    ok = sp_probe_begin(&err) == 0;
    if (!ok) break;
    sp_probe_ready_extra(names, 1, NULL);
    SetEvent(stop);
    const char *why = loop(NULL, 0, 2000);
    ok = why && strcmp(why, "runner") == 0;
    sp_probe_end(why ? why : "?");
  }
  tap_ok(ok, "handle channel: two runs on one inherited handle, each stopped by SIGPROBE_STOP (%s)",
         ok ? "ok" : err.msg);
  while (PeekNamedPipe(r, NULL, 0, NULL, &k, NULL) && k > 0 && got < sizeof buf - 1) {
    DWORD n = 0;
    if (!ReadFile(r, buf + got, (DWORD)(sizeof buf - 1 - got), &n, NULL) || n == 0) break;
    got += n;
  }
  buf[got] = '\0';
  int dones = 0;
  for (const char *p = buf; (p = strstr(p, "\"stopped_by\":\"runner\"")) != NULL; p++) dones++;
  tap_ok(dones == 2, "handle channel: both runs' done reached the reader (%d)", dones);
  set_env("SIGPROBE_STOP", NULL);
  CloseHandle(w); /* the runtime keeps its copy only while SIGPROBE_REPORT names it */
  CloseHandle(r);
  CloseHandle(stop);
}

static void unix_channel(void) {
  WSADATA wsa;
  struct sockaddr_un addr;
  char path[MAX_PATH], where[MAX_PATH + 8], buf[8192];
  sp_error err;
  if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) {
    tap_skip("unix: channel", "WSAStartup failed");
    return;
  }
  SOCKET l = socket(AF_UNIX, SOCK_STREAM, 0);
  if (l == INVALID_SOCKET) {
    tap_skip("unix: channel", "no AF_UNIX sockets here (Windows 10 1803+ has them)");
    WSACleanup();
    return;
  }
  snprintf(path, sizeof path, "%ssp-%lu.sock", g_tmp, (unsigned long)GetCurrentProcessId());
  DeleteFileA(path);
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  sp_strlcpy(addr.sun_path, path, sizeof addr.sun_path);
  if (bind(l, (struct sockaddr *)&addr, (int)sizeof addr) != 0 || listen(l, 2) != 0) {
    tap_ok(0, "unix: channel: bind/listen %s: error %d", path, WSAGetLastError());
    closesocket(l);
    WSACleanup();
    return;
  }
  snprintf(where, sizeof where, "unix:%s", path);
  set_env("SIGPROBE_REPORT", where);
  const char *names[] = {"event-thread"};
  const sp_py_strategy *s = sp_py_strategy_find("event-thread");
  sp_watch w[SP_PY_MAX_WATCHES];
  int nw = 0;
  int rc = sp_probe_begin(&err);
  tap_ok(rc == 0, "unix: channel: the run connects (%s)", rc ? err.msg : "ok");
  if (rc != 0) {
    closesocket(l);
    WSACleanup();
    return;
  }
  SOCKET c = accept(l, NULL, NULL);
  s->install(w, &nw, &err);
  sp_probe_ready_extra(names, 1, NULL);
  send(c, "stop\n", 5, 0); /* the runner's stop, as sigprobe-run --attach sends it */
  const char *why = loop(w, nw, 3000);
  sp_probe_end(why);
  s->remove();
  tap_ok(strcmp(why, "runner") == 0, "unix: channel: the runner's stop ends the loop (got %s)", why);
  int got = 0, k;
  while (got < (int)sizeof buf - 1 && (k = recv(c, buf + got, (int)sizeof buf - 1 - got, 0)) > 0) got += k;
  buf[got] = '\0';
  tap_ok(strstr(buf, "\"ev\":\"ready\"") && strstr(buf, "\"stopped_by\":\"runner\""),
         "unix: channel: ready and done reached the listener, then EOF (%d bytes)", got);

  /* The runner closing its end: the next wait says runner-gone. */
  rc = sp_probe_begin(&err);
  c = rc == 0 ? accept(l, NULL, NULL) : INVALID_SOCKET;
  closesocket(c);
  why = rc == 0 ? loop(NULL, 0, 3000) : "begin failed";
  sp_probe_end(why);
  tap_ok(strcmp(why, "runner-gone") == 0, "unix: channel: a closed runner end reads runner-gone (got %s)", why);
  closesocket(l);
  DeleteFileA(path);
  WSACleanup();
}

int main(void) {
  char num[32];
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  run_result r;
  /* The console trap: without a terminal, Wine gives no
   * real console; a new windowless one makes GenerateConsoleCtrlEvent work.
   * On Windows this also keeps the Ctrl+C away from whatever started us. */
  FreeConsole();
  if (!AllocConsole()) printf("# AllocConsole: error %lu\n", (unsigned long)GetLastError());
  SetConsoleCtrlHandler(NULL, FALSE); /* Ctrl+C enabled, whatever we inherited */
  GetTempPathA(sizeof g_tmp, g_tmp);
  setvbuf(stdout, NULL, _IONBF, 0);

  /* jupyter_client's create_interrupt_event(): inheritable, auto-reset,
   * initially unset, unnamed. */
  g_jpy = CreateEventA(&sa, FALSE, FALSE, NULL);
  snprintf(num, sizeof num, "%lu", (unsigned long)HandleToUlong(g_jpy));
  set_env("JPY_INTERRUPT_EVENT", num);

  expect_fired("event-thread", SET_EVENT, "JPY_INTERRUPT_EVENT", false);
  expect_fired("console-ctrl", CTRL_C, "CTRL_C_EVENT", false);
  expect_fired("self-pipe", CTRL_C, "SIGINT", false);

  /* c-handler-per-call: installed over a sentinel, which is back afterwards. */
  signal(SIGINT, sentinel);
  expect_fired("c-handler-per-call", CTRL_C, "SIGINT", false);
  void (*now)(int) = signal(SIGINT, SIG_DFL);
  tap_ok(now == sentinel, "c-handler-per-call: the previous CRT handler is restored");
  tap_ok(g_sentinel_hits == 0, "c-handler-per-call: the previous handler did not see the run's Ctrl+C");

  /* console-ctrl is removed after its run: a Ctrl+C now reaches only the
   * test's own guard, and the run records nothing. */
  SetConsoleCtrlHandler(guard, TRUE);
  run_strategy("none", CTRL_C, 500, &r);
  Sleep(100);
  tap_ok(g_guard_hits == 1 && !find_ev(r.evs, r.n, SP_EV_FIRED) && strcmp(r.stopped_by, "loop-end") == 0,
         "console-ctrl is unregistered after its run (guard %ld, stopped by %s)", (long)g_guard_hits,
         r.stopped_by ? r.stopped_by : "-");
  SetConsoleCtrlHandler(guard, FALSE);

  /* The import-time pattern: installed before any run, recorded in the run. */
  signal(SIGINT, import_time);
  run_strategy("none", CTRL_C, 3000, &r);
  const sp_event *f = find_ev(r.evs, r.n, SP_EV_FIRED);
  tap_ok(f && strcmp(f->handler, "c-handler-import") == 0 && strcmp(f->sig, "SIGINT") == 0 &&
             strcmp(r.stopped_by, "c-handler-import") == 0,
         "an import-time CRT handler (sigprobe_pyext_import's pattern) is recorded in a later run");
  signal(SIGINT, SIG_DFL);

  /* Strategies that install nothing. */
  run_strategy("none", NOTHING, 200, &r);
  tap_ok(r.install_rc == 0 && strcmp(r.stopped_by, "loop-end") == 0 && !find_ev(r.evs, r.n, SP_EV_FIRED) &&
             find_ev(r.evs, r.n, SP_EV_DONE),
         "none: ready, nothing fired, done at loop-end");
  const sp_py_strategy *cs = sp_py_strategy_find("check-signals");
  tap_ok(cs && cs->check == SP_PY_CHECK_EVERY_ITERATION && !cs->install,
         "check-signals: nothing installed; the loop calls PyErr_CheckSignals (Python: real Windows only)");

  /* Unsupported, with the reason on the channel. */
  run_strategy("signalfd-thread", NOTHING, 200, &r);
  const sp_event *u = find_ev(r.evs, r.n, SP_EV_UNSUPPORTED);
  tap_ok(r.install_rc == SP_EUNSUPPORTED && u && strstr(u->reason, "Linux"), "signalfd-thread: unsupported (%s)",
         u ? u->reason : "-");
  set_env("JPY_INTERRUPT_EVENT", NULL);
  run_strategy("event-thread", NOTHING, 200, &r);
  u = find_ev(r.evs, r.n, SP_EV_UNSUPPORTED);
  tap_ok(r.install_rc == SP_EUNSUPPORTED && u && strstr(u->reason, "JPY_INTERRUPT_EVENT"),
         "event-thread without JPY_INTERRUPT_EVENT: unsupported (%s)", u ? u->reason : "-");
  set_env("JPY_INTERRUPT_EVENT", num);

  tap_ok(sp_py_strategy_find("c-handler-import") == NULL && sp_py_strategy_names[0] != NULL,
         "c-handler-import lives in its own module, not in the table");

  race();
  inherited_handle_channel();
  unix_channel();
  CloseHandle(g_jpy);
  return tap_done();
}

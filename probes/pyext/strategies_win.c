/* The extension probe's strategies on Windows (see strategy.h).
 *
 * Windows has no signals in the POSIX sense. The CRT's signal(SIGINT) is
 * driven by a console control handler the CRT registers: the console calls
 * it on a thread it injects into the process for CTRL_C_EVENT, and the CRT
 * resets the action to SIG_DFL before calling the handler (one shot). A
 * Jupyter kernel interrupt is neither: jupyter_client sets the inheritable
 * auto-reset event named by JPY_INTERRUPT_EVENT, and ipykernel's
 * ParentPollerWindows turns it into _thread.interrupt_main(), which only sets
 * CPython's flag (no CRT handler runs, no console event exists).
 *
 * Every handler here runs on an ordinary thread (the injected console thread
 * or our own), so it may call SetEvent; it only records. Every install saves
 * what it replaces and the matching remove puts it back, so a run leaves the
 * process as it was. No C11 atomics, no GCC extensions: MSVC builds it. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "strategy.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "../../harness/src/win/utf16.h"

typedef void (*crt_handler)(int);

static int fail_last(sp_error *err, const char *call) {
  return sp_fail(err, SP_EFAIL, "%s: error %lu", call, (unsigned long)GetLastError());
}

static int install_crt(crt_handler fn, crt_handler *prev, sp_error *err) {
  crt_handler old = signal(SIGINT, fn);
  if (old == SIG_ERR) return sp_fail(err, SP_EFAIL, "signal(SIGINT) failed");
  *prev = old;
  return 0;
}

/* ---- c-handler-per-call: CRT signal(SIGINT) at the start of every run ---- */

static crt_handler g_per_call_prev = SIG_DFL;

static void on_per_call(int sig) {
  sp_probe_record("c-handler-per-call", sig, SP_NO_SI_CODE, -1, -1);
}

int sp_py_per_call_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  return install_crt(on_per_call, &g_per_call_prev, err);
}

void sp_py_per_call_remove(void) { signal(SIGINT, g_per_call_prev); }

/* ---- self-pipe, the Windows way: a CRT handler sets an event the loop waits on ----
 * There are no pipes to poll next to a wait on Windows; the equivalent of
 * the self-pipe trick is what CPython itself does for SIGINT (its
 * sigint_event): the handler stamps what it saw and sets an auto-reset event
 * that is one of the loop's waits; the loop records it. */

static HANDLE g_sp_event;
static crt_handler g_sp_prev = SIG_DFL;
static volatile LONG g_sp_pending; /* 1 when t/main below are filled and not yet recorded */
static int64_t g_sp_t_ns;
static bool g_sp_main;
static int g_sp_sig;

static void on_self_pipe(int sig) {
  if (InterlockedCompareExchange(&g_sp_pending, 0, 0) == 0) {
    g_sp_t_ns = sp_clock_ns();
    g_sp_main = sp_probe_on_main_thread();
    g_sp_sig = sig;
    InterlockedExchange(&g_sp_pending, 1); /* a full barrier: the fields first */
  }
  SetEvent(g_sp_event);
}

static void self_pipe_signalled(int fd) {
  (void)fd;
  if (InterlockedCompareExchange(&g_sp_pending, 0, 1) == 1)
    sp_probe_record_at("self-pipe", g_sp_sig, SP_NO_SI_CODE, -1, -1, g_sp_t_ns, g_sp_main);
}

int sp_py_self_pipe_install(sp_watch *w, int *n, sp_error *err) {
  g_sp_event = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!g_sp_event) return fail_last(err, "CreateEvent");
  InterlockedExchange(&g_sp_pending, 0);
  int rc = install_crt(on_self_pipe, &g_sp_prev, err);
  if (rc != 0) {
    CloseHandle(g_sp_event);
    g_sp_event = NULL;
    return rc;
  }
  /* Kernel handles fit in 32 bits: sp_watch carries one in its int. */
  w[0].fd = (int)HandleToLong(g_sp_event);
  w[0].on_readable = self_pipe_signalled;
  *n = 1;
  return 0;
}

void sp_py_self_pipe_remove(void) {
  signal(SIGINT, g_sp_prev);
  CloseHandle(g_sp_event);
  g_sp_event = NULL;
}

/* ---- signalfd-thread: Linux only ---- */

int sp_py_signalfd_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  return sp_fail(err, SP_EUNSUPPORTED, "signalfd is Linux-only");
}

void sp_py_signalfd_remove(void) {}

/* ---- event-thread: a thread waits on the JPY_INTERRUPT_EVENT handle ----
 * The event is auto-reset (jupyter_client <= 8.9.1) and ipykernel's
 * ParentPollerWindows waits on the same handle: one SetEvent releases one
 * waiter. Whichever the system wakes takes it; the other sees nothing. When
 * this thread wins, the kernel never raises KeyboardInterrupt for it. */

static HANDLE g_ev_jpy, g_ev_quit, g_ev_thread;

static DWORD WINAPI event_main(LPVOID arg) {
  HANDLE h[2];
  (void)arg;
  h[0] = g_ev_quit; /* first: a quit ends the thread even if both are set */
  h[1] = g_ev_jpy;
  for (;;) {
    DWORD r = WaitForMultipleObjects(2, h, FALSE, INFINITE);
    if (r == WAIT_OBJECT_0 + 1) sp_probe_record_named("event-thread", "JPY_INTERRUPT_EVENT");
    else return 0;
  }
}

int sp_py_event_thread_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  const char *why;
  HANDLE h = sp_probe_env_handle("JPY_INTERRUPT_EVENT", &why);
  if (!h) {
    char v[32];
    if (!sp_probe_env("JPY_INTERRUPT_EVENT", v, sizeof v))
      return sp_fail(err, SP_EUNSUPPORTED,
                     "JPY_INTERRUPT_EVENT is not set: no Jupyter-style launcher started this process");
    return sp_fail(err, SP_EUNSUPPORTED, "JPY_INTERRUPT_EVENT=%s %s", v, why);
  }
  g_ev_jpy = h;
  g_ev_quit = CreateEventW(NULL, TRUE, FALSE, NULL);
  if (!g_ev_quit) return fail_last(err, "CreateEvent");
  g_ev_thread = CreateThread(NULL, 0, event_main, NULL, 0, NULL);
  if (!g_ev_thread) {
    int rc = fail_last(err, "CreateThread");
    CloseHandle(g_ev_quit);
    g_ev_quit = NULL;
    return rc;
  }
  return 0;
}

void sp_py_event_thread_remove(void) {
  SetEvent(g_ev_quit);
  WaitForSingleObject(g_ev_thread, INFINITE);
  CloseHandle(g_ev_thread);
  CloseHandle(g_ev_quit);
  g_ev_thread = g_ev_quit = NULL;
  g_ev_jpy = NULL; /* inherited: not ours to close */
}

/* ---- console-ctrl: SetConsoleCtrlHandler, registered per run ---- */

static BOOL WINAPI on_console_ctrl(DWORD type) {
  sp_probe_record_named("console-ctrl", sp_console_event_name(type));
  return TRUE; /* handled: the CRT's (and CPython's) handler does not run */
}

int sp_py_console_ctrl_install(sp_watch *w, int *n, sp_error *err) {
  (void)w;
  *n = 0;
  if (!SetConsoleCtrlHandler(on_console_ctrl, TRUE)) return fail_last(err, "SetConsoleCtrlHandler");
  return 0;
}

void sp_py_console_ctrl_remove(void) { SetConsoleCtrlHandler(on_console_ctrl, FALSE); }


/* ---- the SIGINT state, for "ready" and for the tests ----
 * The CRT has no call that reads an action without setting one, so this
 * swaps SIG_DFL in and the old action straight back: for those few
 * instructions a Ctrl+C would get the default action. (SIG_GET is in the
 * headers but not a documented query on every CRT; Wine's msvcrt stores it.) */

/* The module's file name (UTF-8), without its folder. */
static void base_name_of(HMODULE m, char *out, size_t n) {
  static wchar_t path[32768];
  DWORD k = GetModuleFileNameW(m, path, (DWORD)SP_ARRAY_LEN(path));
  if (k == 0 || k >= SP_ARRAY_LEN(path)) {
    sp_strlcpy(out, "unknown", n);
    return;
  }
  const wchar_t *slash = wcsrchr(path, L'\\'), *fslash = wcsrchr(path, L'/');
  if (fslash > slash) slash = fslash;
  if (sp__utf8("the module's name", slash ? slash + 1 : path, out, n, NULL) != 0) sp_strlcpy(out, "unknown", n);
}

static HMODULE module_of(const void *addr) {
  HMODULE m = NULL;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          (LPCWSTR)addr, &m))
    return NULL;
  return m;
}

void sp_py_sigint_state_now(sp_py_sigint_state *st, const void *own_object, const void *python_symbol) {
  memset(st, 0, sizeof *st);
  st->disposition = SP_DISP_UNKNOWN;
  crt_handler cur = signal(SIGINT, SIG_DFL);
  if (cur == SIG_ERR) return;
  signal(SIGINT, cur);
  /* A function pointer as an integer and an address: through uintptr_t
   * (implementation-defined in ISO C, defined by both Windows compilers). */
  st->handler = (unsigned long long)(uintptr_t)cur;
  st->flags = 0;
  st->blocked = false; /* no signal masks on Windows */
  if (cur == SIG_IGN) {
    st->disposition = SP_DISP_IGNORED;
    return;
  }
  if (cur == SIG_DFL) {
    st->disposition = SP_DISP_DEFAULT;
    return;
  }
  st->disposition = SP_DISP_CAUGHT;
  HMODULE fn_mod = module_of((const void *)(uintptr_t)cur);
  if (!fn_mod) {
    sp_strlcpy(st->owner, "unknown", sizeof st->owner);
    return;
  }
  char name[MAX_PATH];
  base_name_of(fn_mod, name, sizeof name);
  if ((own_object && module_of(own_object) == fn_mod) || _strnicmp(name, "sigprobe_pyext", 14) == 0)
    sp_strlcpy(st->owner, "sigprobe", sizeof st->owner);
  else if (python_symbol && module_of(python_symbol) == fn_mod)
    sp_strlcpy(st->owner, "python", sizeof st->owner);
  else
    sp_strlcpy(st->owner, name, sizeof st->owner);
}

/* Windows names no initial thread. */
int sp_py_on_initial_thread(void) { return -1; }

/* ---- c-handler-import (installed by the sigprobe_pyext_import module) ----
 * The CRT's signal(SIGINT), which the CRT calls on the thread the console
 * injects for CTRL_C_EVENT, after resetting the action to SIG_DFL (one
 * shot): the handler re-installs itself, as Windows code that wants a
 * lasting handler does, so it stays until something replaces it. */
static void on_import_sigint(int sig) {
  signal(SIGINT, on_import_sigint);
  sp_probe_record("c-handler-import", sig, SP_NO_SI_CODE, -1, -1);
}

int sp_py_import_handler_install(const char **call) {
  *call = "signal(SIGINT)";
  return signal(SIGINT, on_import_sigint) == SIG_ERR ? -1 : 0;
}

/* The probe runtime's primitives on Windows (see harness/src/os.h).
 *
 * Windows delivers console events on a thread the system injects into the
 * process, and CRT signal() handlers run there too; they are ordinary
 * threads, so the primitives a handler calls (the interlocked functions,
 * SetEvent) may be any thread-safe call.
 *
 * The channel forms: an inherited handle number (kept open across in-process
 * runs; SIGPROBE_STOP, when set, is the runner's stop), a file path, and
 * unix:<path>, an AF_UNIX stream socket (Windows 10 1803+, winsock): what
 * `sigprobe-run --attach` listens on; the runner writes "stop\n" on it
 * (tcp:127.0.0.1:<port> is the same over loopback TCP, for Wine). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <windows.h>
#include <winternl.h>
#include <afunix.h> /* Windows 10 1803+ (and MinGW-w64) */

#include "../os.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/json.h"
#include "utf16.h"

#define SP_WATCH_MAX 8

static HANDLE g_chan = INVALID_HANDLE_VALUE;
static SOCKET g_sock = INVALID_SOCKET; /* the unix: or tcp: channel of an in-process run */
static HANDLE g_sock_event;            /* WSAEventSelect: FD_READ | FD_CLOSE on g_sock */
static bool g_wsa_started;
static HANDLE g_wake; /* set by every record: wakes the wait */
static HANDLE g_stop; /* SIGPROBE_STOP: the runner asks the loop to end */
static HANDLE g_jpy;  /* JPY_INTERRUPT_EVENT, when set */

int64_t sp__thread_id(void) { return (int64_t)GetCurrentThreadId(); }

long sp__atomic_add(sp__atomic *a, long v) { return InterlockedExchangeAdd(a, v); }
long sp__atomic_load(sp__atomic *a) { return InterlockedCompareExchange(a, 0, 0); } /* a full barrier */
void sp__atomic_store(sp__atomic *a, long v) { InterlockedExchange(a, v); }        /* a full barrier */

/* Not getenv(): that reads one C runtime's copy, which misses what another
 * runtime's putenv set (an extension built against msvcrt inside a ucrt
 * Python). The value comes back as UTF-8. */
bool sp_probe_env(const char *name, char *buf, size_t size) {
  wchar_t wname[64], value[2048];
  if (sp__utf16("the variable name", name, wname, SP_ARRAY_LEN(wname), NULL) != 0) return false;
  DWORD n = GetEnvironmentVariableW(wname, value, (DWORD)SP_ARRAY_LEN(value));
  return n > 0 && n < SP_ARRAY_LEN(value) && sp__utf8(name, value, buf, size, NULL) == 0;
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

int sp__wake_open(sp_error *err) {
  if (g_wake) return 0;
  g_wake = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!g_wake) return sp_fail(err, SP_EFAIL, "CreateEventW: error %lu", GetLastError());
  return 0;
}

void sp__wake_set(void) { SetEvent(g_wake); }

void sp__wake_clear(void) { ResetEvent(g_wake); }

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
 * loopback TCP (tcp:127.0.0.1:<port>, where winsock has no AF_UNIX). Paths
 * in sockaddr_un are bytes: winsock takes them as UTF-8. */
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

int sp__chan_open(const char *where, bool *inherited, sp_error *err) {
  char *end;
  unsigned long n = strtoul(where, &end, 10);
  *inherited = *end == '\0' && end != where && n != 0;
  if (*inherited) {
    DWORD flags;
    HANDLE h = ULongToHandle(n);
    if (!GetHandleInformation(h, &flags) || GetFileType(h) == FILE_TYPE_UNKNOWN)
      return sp_fail(err, SP_EFAIL, "SIGPROBE_REPORT=%s is not a handle this process holds", where);
    g_chan = h;
  } else if (strncmp(where, SP_REPORT_UNIX_PREFIX, strlen(SP_REPORT_UNIX_PREFIX)) == 0 ||
             strncmp(where, SP_REPORT_TCP_PREFIX, strlen(SP_REPORT_TCP_PREFIX)) == 0) {
    return open_socket_channel(where, err);
  } else {
    static wchar_t path[32768];
    int rc = sp__utf16("the report channel's path (SIGPROBE_REPORT)", where, path, SP_ARRAY_LEN(path), err);
    if (rc != 0) return rc;
    HANDLE h = CreateFileW(path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) return fail_win(err, "cannot open the report channel: CreateFileW", where, GetLastError());
    g_chan = h;
  }
  /* As FD_CLOEXEC on POSIX: whatever the probe starts must not hold it. */
  SetHandleInformation(g_chan, HANDLE_FLAG_INHERIT, 0);
  return 0;
}

bool sp__chan_is_open(void) { return g_sock != INVALID_SOCKET || g_chan != INVALID_HANDLE_VALUE; }

int sp__chan_fd(void) { return g_sock != INVALID_SOCKET ? (int)g_sock : (int)HandleToLong(g_chan); }

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

void sp__chan_write(const char *buf, size_t len) {
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

void sp__chan_close(bool release) {
  if (release) {
    close_socket_channel();
    if (g_chan != INVALID_HANDLE_VALUE) CloseHandle(g_chan);
  }
  g_chan = INVALID_HANDLE_VALUE;
}

void sp__run_prepare(void) {
  const char *why;
  g_jpy = sp_probe_env_handle("JPY_INTERRUPT_EVENT", &why);
  g_stop = sp_probe_env_handle("SIGPROBE_STOP", &why);
  if (g_stop) {
    SetHandleInformation(g_stop, HANDLE_FLAG_INHERIT, 0);
    ResetEvent(g_stop); /* a stop set after the previous run's "done" is stale */
  }
}

/* Watches are handles on Windows (kernel handles fit in 32 bits, so an int
 * holds one: HandleToLong/LongToHandle); on_readable runs when signalled. */
const char *sp__wait(const sp_watch *watches, int n, int timeout_ms) {
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
  if (i == 0) return NULL; /* a record (the auto-reset wake-up is consumed): the caller checks */
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

/* The inherited "ignore Ctrl+C" flag: RTL_USER_PROCESS_PARAMETERS.ConsoleFlags
 * bit 0 (winternl.h calls the field Reserved2[1]). No API reads it; it is
 * what SetConsoleCtrlHandler(NULL, TRUE/FALSE) writes and what
 * CREATE_NEW_PROCESS_GROUP sets, on Windows and in Wine alike. */
static bool ctrl_c_ignored(void) {
  PPEB peb = NtCurrentTeb()->ProcessEnvironmentBlock;
  ULONG flags = (ULONG)(ULONG_PTR)peb->ProcessParameters->Reserved2[1];
  return (flags & 1) != 0;
}

/* Windows has no SIGINT disposition to read without changing it; what the
 * host decides is the "ignore Ctrl+C" flag. */
sp_disposition sp__sigint_disposition(void) { return ctrl_c_ignored() ? SP_DISP_IGNORED : SP_DISP_DEFAULT; }

/* The "console" object of "ready" (protocol.h). */
static void describe_console(char *buf, size_t n) {
  DWORD pids[64];
  DWORD count = GetConsoleProcessList(pids, (DWORD)SP_ARRAY_LEN(pids));
  char parent[32];
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
  sp_jw_bool(&w, sp_probe_env("JPY_PARENT_PID", parent, sizeof parent));
  sp_jw_key(&w, "wine");
  sp_jw_bool(&w, sp_platform_is_wine());
  sp_jw_end_obj(&w);
  if (sp_jw_finish(&w) < 0) buf[0] = '\0';
}

void sp__ready_facts(sp_event *ev) {
  ev->pid = (int64_t)GetCurrentProcessId();
  ev->pgid = ev->sid = -1; /* Windows has no API for a process's group id */
  describe_console(ev->console, sizeof ev->console);
}

void sp__done_facts(sp_event *ev, bool in_process) {
  if (ctrl_c_ignored()) sp_name_list_add(&ev->ignored, "CTRL_C_EVENT");
  /* Set and never consumed (nobody waited on it). Looking consumes it, which
   * no longer matters at the end of a native probe. */
  if (g_jpy && WaitForSingleObject(g_jpy, 0) == WAIT_OBJECT_0) {
    sp_name_list_add(&ev->pending, "JPY_INTERRUPT_EVENT");
    /* Signalled with nobody waiting (a waiter would have taken it at once):
     * in a kernel put it back, so looking leaves the state as it was (the
     * kernel's poller may still need it). */
    if (in_process) SetEvent(g_jpy);
  }
}

/* Windows handlers have no siginfo: the runtime never asks. */
const char *sp__si_code_name(int code, char *buf, size_t n) {
  snprintf(buf, n, "SI_CODE(%d)", code);
  return buf;
}

void sp__last_error(const char *call, char *buf, size_t n) {
  DWORD code = GetLastError();
  int e = errno;
  if (code) snprintf(buf, n, "%s: error %lu", call, (unsigned long)code);
  else snprintf(buf, n, "%s: %s", call, strerror(e));
}

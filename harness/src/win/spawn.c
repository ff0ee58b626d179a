/* Starting a probe under a host, waiting for it and owning its process tree
 * with a kill-on-close Job Object (Windows). See proc.h for the launcher. */
#include "proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/outcome.h"
#include "../os.h"
#include "utf16.h"

#include <afunix.h> /* sigprobe-run --attach: AF_UNIX through winsock (Windows 10 1803+) */

int64_t sp_self_pid(void) { return (int64_t)GetCurrentProcessId(); }
int64_t sp_proc_pid(const sp_proc *p) { return p->attached ? -1 : (int64_t)p->probe_pid; }

/* CreateProcess flags per host, in the order of sp_host; the launcher
 * passes them to CreateProcess for the probe. jupyter-launch is what
 * jupyter_client's launcher.py does: no creation flags at all. */
static DWORD host_flags(sp_host h) {
  switch (h) {
    case SP_HOST_CONSOLE: return CREATE_NEW_CONSOLE;
    case SP_HOST_NEW_GROUP: return CREATE_NEW_PROCESS_GROUP;
    case SP_HOST_NO_WINDOW: return CREATE_NO_WINDOW;
    case SP_HOST_DETACHED: return DETACHED_PROCESS;
    default: return 0;
  }
}

static int fail_last(sp_error *err, const char *call) {
  char why[200];
  return sp_fail(err, SP_EFAIL, "%s: %s", call, sp__win_strerror(GetLastError(), why, sizeof why));
}

int sp__win_helper_path(const sp_proc *p, const char *exe, char *buf, size_t n) {
  int k = snprintf(buf, n, "%s\\%s", p->helper_dir, exe);
  return k > 0 && (size_t)k < n ? 0 : SP_EINVAL;
}

/* The current environment with SIGPROBE_REPORT, SIGPROBE_STOP and
 * JPY_INTERRUPT_EVENT replaced by ours, as a CreateProcessW block (UTF-16,
 * CREATE_UNICODE_ENVIRONMENT): the other variables pass through unchanged
 * whatever their characters. */
static wchar_t *env_block(HANDLE chan_w, HANDLE stop, HANDLE interrupt) {
  static const wchar_t *const ours[] = {L"SIGPROBE_REPORT=", L"SIGPROBE_STOP=", L"JPY_INTERRUPT_EVENT=",
                                        L"IPY_INTERRUPT_EVENT=", L"JPY_PARENT_PID="};
  wchar_t add[3][64];
  swprintf(add[0], SP_ARRAY_LEN(add[0]), L"SIGPROBE_REPORT=%lu", (unsigned long)HandleToUlong(chan_w));
  swprintf(add[1], SP_ARRAY_LEN(add[1]), L"SIGPROBE_STOP=%lu", (unsigned long)HandleToUlong(stop));
  swprintf(add[2], SP_ARRAY_LEN(add[2]), L"JPY_INTERRUPT_EVENT=%lu", (unsigned long)HandleToUlong(interrupt));
  wchar_t *env = GetEnvironmentStringsW();
  if (!env) return NULL;
  size_t total = 0;
  for (const wchar_t *e = env; *e; e += wcslen(e) + 1) total += wcslen(e) + 1;
  wchar_t *block = malloc((total + SP_ARRAY_LEN(add) * SP_ARRAY_LEN(add[0]) + 2) * sizeof *block), *out = block;
  if (block) {
    for (const wchar_t *e = env; *e; e += wcslen(e) + 1) {
      bool skip = false;
      for (size_t i = 0; i < SP_ARRAY_LEN(ours); i++)
        if (_wcsnicmp(e, ours[i], wcslen(ours[i])) == 0) skip = true;
      if (skip) continue;
      size_t l = wcslen(e) + 1;
      memcpy(out, e, l * sizeof *out);
      out += l;
    }
    for (size_t i = 0; i < SP_ARRAY_LEN(add); i++) {
      size_t l = wcslen(add[i]) + 1;
      memcpy(out, add[i], l * sizeof *out);
      out += l;
    }
    *out = L'\0';
  }
  FreeEnvironmentStringsW(env);
  return block;
}

int sp__win_start_in_job(HANDLE job, const char *exe, const char *const argv[], DWORD flags, HANDLE in, HANDLE out,
                         wchar_t *env, PROCESS_INFORMATION *pi, sp_error *err) {
  static wchar_t wexe[32768], warg[32768], cmd[32768];
  size_t len = 0;
  int rc = sp__utf16("the program's path", exe, wexe, SP_ARRAY_LEN(wexe), err);
  for (int i = 0; rc == 0 && argv[i]; i++) {
    rc = sp__utf16("an argument", argv[i], warg, SP_ARRAY_LEN(warg), err);
    if (rc == 0 && sp__argv_quote(warg, cmd, SP_ARRAY_LEN(cmd), &len) != 0)
      rc = sp_fail(err, SP_EFAIL, "the command line of %s is longer than 32767 characters", exe);
  }
  if (rc != 0) return rc;
  STARTUPINFOW si;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = in;
  si.hStdOutput = si.hStdError = out;
  if (!CreateProcessW(wexe, cmd, NULL, NULL, TRUE, flags | CREATE_SUSPENDED | (env ? CREATE_UNICODE_ENVIRONMENT : 0),
                      env, NULL, &si, pi)) {
    char why[200];
    return sp_fail(err, SP_EFAIL, "CreateProcessW(%s): %s", exe, sp__win_strerror(GetLastError(), why, sizeof why));
  }
  if (job && !AssignProcessToJobObject(job, pi->hProcess)) {
    char why[200];
    rc = sp_fail(err, SP_EFAIL, "AssignProcessToJobObject(%s): %s", exe,
                 sp__win_strerror(GetLastError(), why, sizeof why));
    TerminateProcess(pi->hProcess, 1);
    CloseHandle(pi->hThread);
    CloseHandle(pi->hProcess);
    return rc;
  }
  ResumeThread(pi->hThread);
  CloseHandle(pi->hThread);
  pi->hThread = NULL;
  return 0;
}

/* What a reader thread does with what it read: appends k bytes (k <= 0:
 * the stream ended) to one of p's buffers under the lock, and wakes
 * sp_proc_next_event. Returns true when the stream is over: ended, or
 * overflowed (the rest would be unreadable). */
static bool take_read(sp_proc *p, char *buf, size_t *len, size_t cap, bool *eof, bool *overflow, const char *data,
                      long k) {
  EnterCriticalSection(&p->lock);
  if (k <= 0) {
    *eof = true;
  } else if (*len + (size_t)k > cap) {
    *overflow = true;
    *eof = true;
  } else {
    memcpy(buf + *len, data, (size_t)k);
    *len += (size_t)k;
  }
  bool over = *eof;
  LeaveCriticalSection(&p->lock);
  SetEvent(p->data);
  return over;
}

static DWORD WINAPI chan_reader(LPVOID arg) {
  sp_proc *p = arg;
  char tmp[1024];
  for (;;) {
    DWORD k = 0;
    /* !ok is ERROR_BROKEN_PIPE: every writer closed its end. */
    BOOL ok = ReadFile(p->chan_r, tmp, sizeof tmp, &k, NULL);
    if (take_read(p, p->buf, &p->buf_len, sizeof p->buf, &p->chan_eof, &p->chan_overflow, tmp, ok ? (long)k : 0))
      return 0;
  }
}

static DWORD WINAPI host_drain(LPVOID arg) {
  sp_proc *p = arg;
  char junk[1024];
  DWORD k;
  while (ReadFile(p->host_r, junk, sizeof junk, &k, NULL) && k > 0) {
  }
  return 0;
}

/* A pipe whose write end the child inherits and whose read end it does not. */
static int inheritable_pipe(HANDLE *r, HANDLE *w, sp_error *err) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  if (!CreatePipe(r, w, &sa, 0)) return fail_last(err, "CreatePipe");
  if (!SetHandleInformation(*r, HANDLE_FLAG_INHERIT, 0)) return fail_last(err, "SetHandleInformation");
  return 0;
}

static void close_handle(HANDLE *h) {
  if (*h && *h != INVALID_HANDLE_VALUE) CloseHandle(*h);
  *h = NULL;
}

int sp_proc_start(sp_proc **out, sp_host host, const char *path, sp_error *err) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE chan_w = NULL, host_w = NULL, nul = NULL;
  wchar_t *env = NULL;
  static wchar_t wpath[32768];
  char exe[SP_WIN_PATH_MAX + 32], flags[16];
  int rc;
  *out = NULL;

  /* A crash in a probe must end it with its NTSTATUS, never open a dialog;
   * the error mode is inherited by every process the runner starts. */
  SetErrorMode(GetErrorMode() | SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
  if ((rc = sp__utf16("the probe's path", path, wpath, SP_ARRAY_LEN(wpath), err)) != 0) return rc;
  if (GetFileAttributesW(wpath) == INVALID_FILE_ATTRIBUTES) return fail_last(err, path);
  if (strlen(path) >= sizeof ((sp_proc *)0)->helper_dir) return sp_fail(err, SP_EINVAL, "probe path too long: %s", path);

  sp_proc *p = calloc(1, sizeof *p);
  if (!p) return sp_fail(err, SP_EFAIL, "calloc: out of memory");
  p->host = host;
  InitializeCriticalSection(&p->lock);
  sp_strlcpy(p->helper_dir, path, sizeof p->helper_dir);
  char *slash = strrchr(p->helper_dir, '\\'), *fslash = strrchr(p->helper_dir, '/');
  if (fslash > slash) slash = fslash;
  if (slash) *slash = '\0';
  else sp_strlcpy(p->helper_dir, ".", sizeof p->helper_dir);

  p->job = CreateJobObjectW(NULL, NULL);
  if (!p->job) {
    rc = fail_last(err, "CreateJobObject");
    goto fail;
  }
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION lim;
  memset(&lim, 0, sizeof lim);
  lim.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
  if (!SetInformationJobObject(p->job, JobObjectExtendedLimitInformation, &lim, sizeof lim)) {
    rc = fail_last(err, "SetInformationJobObject");
    goto fail;
  }
  if ((rc = inheritable_pipe(&p->chan_r, &chan_w, err)) != 0) goto fail;
  if ((rc = inheritable_pipe(&p->host_r, &host_w, err)) != 0) goto fail;
  nul = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING, 0, NULL);
  p->stop_event = CreateEventW(&sa, TRUE, FALSE, NULL);
  /* jupyter_client's create_interrupt_event(): inheritable, auto-reset,
   * initially unset, unnamed. */
  p->interrupt_event = CreateEventW(&sa, FALSE, FALSE, NULL);
  p->data = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (nul == INVALID_HANDLE_VALUE || !p->stop_event || !p->interrupt_event || !p->data) {
    rc = fail_last(err, nul == INVALID_HANDLE_VALUE ? "CreateFile(NUL)" : "CreateEvent");
    goto fail;
  }
  if (!(env = env_block(chan_w, p->stop_event, p->interrupt_event))) {
    rc = fail_last(err, "GetEnvironmentStrings");
    goto fail;
  }
  if (sp__win_helper_path(p, SP_WIN_HOST_EXE, exe, sizeof exe) != 0) {
    rc = sp_fail(err, SP_EFAIL, "probe path too long: %s", path);
    goto fail;
  }
  snprintf(flags, sizeof flags, "%lx", (unsigned long)host_flags(host));
  const char *const argv[] = {exe, flags, host == SP_HOST_JUPYTER_LAUNCH ? "1" : "0", path, NULL};
  PROCESS_INFORMATION pi;
  /* The launcher gets its own windowless console. */
  if ((rc = sp__win_start_in_job(p->job, exe, argv, CREATE_NO_WINDOW, nul, host_w, env, &pi, err)) != 0) goto fail;
  p->launcher = pi.hProcess;
  p->launcher_pid = pi.dwProcessId;
  free(env);
  env = NULL;
  /* Only the launcher and the probe hold the write ends now: the channel
   * reads EOF when they are gone. */
  close_handle(&chan_w);
  close_handle(&host_w);
  close_handle(&nul);
  p->chan_thread = CreateThread(NULL, 0, chan_reader, p, 0, NULL);
  p->host_thread = CreateThread(NULL, 0, host_drain, p, 0, NULL);
  if (!p->chan_thread || !p->host_thread) {
    rc = fail_last(err, "CreateThread");
    sp_proc_free(p);
    return rc;
  }
  *out = p;
  return 0;

fail:
  free(env);
  close_handle(&chan_w);
  close_handle(&host_w);
  close_handle(&nul);
  sp_proc_free(p);
  return rc;
}

/* Called when "ready" names the probe: opens it, and checks that the pid
 * is a process of our job (so a reused pid can never be hit). */
void sp__win_adopt_probe(sp_proc *p, DWORD pid) {
  if (p->probe || pid == 0) return;
  HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_INFORMATION, FALSE, pid);
  BOOL in_job = FALSE;
  if (!h) return;
  /* PROCESS_QUERY_INFORMATION, not the limited right: Wine's
   * IsProcessInJob needs it (error 5 otherwise). */
  if (!IsProcessInJob(h, p->job, &in_job) || !in_job) {
    CloseHandle(h);
    return;
  }
  p->probe = h;
  p->probe_pid = pid;
}

int sp_proc_wait(sp_proc *p, int64_t deadline_ns, sp_exit *ex, sp_error *err) {
  if (p->attached) {
    if (ex) *ex = (sp_exit){SP_EXIT_NONE, 0, 0, false};
    return 0;
  }
  /* The probe's own handle when "ready" gave it (its exit code is then
   * exact); before that the launcher's, which relays the probe's code. */
  HANDLE h = p->probe ? p->probe : p->launcher;
  DWORD r = WaitForSingleObject(h, (DWORD)sp_ms_until(deadline_ns));
  if (r == WAIT_TIMEOUT) return SP_ETIMEOUT;
  if (r != WAIT_OBJECT_0) return fail_last(err, "WaitForSingleObject");
  DWORD code = 0;
  if (!GetExitCodeProcess(h, &code)) return fail_last(err, "GetExitCodeProcess");
  if (ex) *ex = sp_exit_from_win_code((uint32_t)code);
  sp_proc_kill_tree(p);
  p->ended = true;
  return 0;
}

/* The exit code of whatever the harness itself kills with the job: 128 + 9,
 * as a shell shows SIGKILL, so it is not the terminate delivery's code. */
#define SP_WIN_KILL_TREE_CODE 137u

void sp_proc_kill_tree(sp_proc *p) {
  if (p && p->job) TerminateJobObject(p->job, SP_WIN_KILL_TREE_CODE);
}

/* The kill-on-close Job Object already owns every probe's tree, and dies
 * with this process. */
int sp_own_probe_trees(sp_error *err) {
  (void)err;
  return 0;
}

int sp_interrupted(void) { return 0; }

static void join(HANDLE *thread) {
  if (!*thread) return;
  if (WaitForSingleObject(*thread, 2000) != WAIT_OBJECT_0) {
    /* A writer outlived the job (it cannot: the job owns them all); do not
     * hang on it. */
    CancelSynchronousIo(*thread);
    WaitForSingleObject(*thread, 2000);
  }
  close_handle(thread);
}

static void free_attached(sp_proc *p);

void sp_proc_free(sp_proc *p) {
  if (!p) return;
  if (p->attached) {
    free_attached(p);
    return;
  }
  sp_proc_kill_tree(p);
  /* Every process of the job holds no pipe end any more: the readers end. */
  if (p->launcher) WaitForSingleObject(p->launcher, 2000);
  if (p->probe) WaitForSingleObject(p->probe, 2000);
  join(&p->chan_thread);
  join(&p->host_thread);
  close_handle(&p->chan_r);
  close_handle(&p->host_r);
  close_handle(&p->probe);
  close_handle(&p->launcher);
  close_handle(&p->stop_event);
  close_handle(&p->interrupt_event);
  close_handle(&p->data);
  close_handle(&p->job); /* kill-on-close: nothing of the tree survives this */
  DeleteCriticalSection(&p->lock);
  free(p);
}

/* A probe that is a whole command line (sigprobe-run --exec) needs the
 * launcher to pass arguments on; not built yet, so said plainly. */
int sp_proc_spawn(sp_proc **out, sp_host host, char *const argv[], sp_error *err) {
  if (argv[1]) {
    *out = NULL;
    return sp_fail(err, SP_EUNSUPPORTED, "a probe with arguments (--exec) is not supported on Windows yet");
  }
  return sp_proc_start(out, host, argv[0], err);
}

/* ---- sigprobe-run --attach (a probe inside a Jupyter kernel) ----
 * AF_UNIX stream sockets exist on Windows 10 1803+ (winsock, afunix.h).
 * Wine 8 has none: there the runner listens on a loopback TCP port instead
 * (--attach tcp:127.0.0.1:0), the same stream to the probe. */

/* Only the probe gets in (protocol.h): every connection waits here until its
 * first line is the run's hello; the first that says it becomes the report
 * channel and every other is closed. One that says anything else, ends, or
 * says nothing for SP_HELLO_MS is closed, so a rogue client can neither feed
 * events nor hold the place. Returns the probe's socket, with what it sent
 * behind its hello appended to p->buf, or INVALID_SOCKET when the listening
 * socket was closed (the run is over). */
static SOCKET accept_probe(sp_proc *p) {
  struct {
    SOCKET s;
    int64_t deadline_ns;
    char buf[128];
    size_t len;
  } pend[SP_HELLO_PENDING_MAX];
  SOCKET probe = INVALID_SOCKET;
  for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++) pend[i].s = INVALID_SOCKET;
  while (probe == INVALID_SOCKET) {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p->listen_sock, &r);
    int64_t now = sp_clock_ns(), wake = now + 1000000000LL;
    for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++) {
      if (pend[i].s == INVALID_SOCKET) continue;
      if (pend[i].deadline_ns <= now) {
        closesocket(pend[i].s); /* said nothing in time */
        pend[i].s = INVALID_SOCKET;
        continue;
      }
      if (pend[i].deadline_ns < wake) wake = pend[i].deadline_ns;
      FD_SET(pend[i].s, &r);
    }
    int ms = sp_ms_until(wake);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (select(0, &r, NULL, NULL, &tv) == SOCKET_ERROR) break; /* the listening socket was closed */
    for (size_t i = 0; i < SP_HELLO_PENDING_MAX && probe == INVALID_SOCKET; i++) {
      if (pend[i].s == INVALID_SOCKET || !FD_ISSET(pend[i].s, &r)) continue;
      int k = recv(pend[i].s, pend[i].buf + pend[i].len, (int)(sizeof pend[i].buf - pend[i].len), 0);
      size_t line = 0;
      int said = SP_EINVAL; /* the connection ended or failed before its hello */
      if (k > 0) {
        pend[i].len += (size_t)k;
        said = sp_hello_scan(pend[i].buf, pend[i].len, sizeof pend[i].buf, p->token, &line);
      }
      if (said < 0) {
        closesocket(pend[i].s);
        pend[i].s = INVALID_SOCKET;
      } else if (said > 0) {
        probe = pend[i].s;
        pend[i].s = INVALID_SOCKET;
        if (pend[i].len > line) /* events sent right behind the hello */
          take_read(p, p->buf, &p->buf_len, sizeof p->buf, &p->chan_eof, &p->chan_overflow, pend[i].buf + line,
                    (long)(pend[i].len - line));
      }
    }
    if (probe == INVALID_SOCKET && FD_ISSET(p->listen_sock, &r)) {
      SOCKET c = accept(p->listen_sock, NULL, NULL);
      if (c == INVALID_SOCKET) continue;
      SetHandleInformation((HANDLE)c, HANDLE_FLAG_INHERIT, 0);
      size_t slot = 0;
      for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++) {
        if (pend[i].s == INVALID_SOCKET) {
          slot = i;
          break;
        }
        if (pend[i].deadline_ns < pend[slot].deadline_ns) slot = i; /* full: push out the oldest */
      }
      if (pend[slot].s != INVALID_SOCKET) closesocket(pend[slot].s);
      pend[slot].s = c;
      pend[slot].len = 0;
      pend[slot].deadline_ns = sp_clock_ns() + (int64_t)SP_HELLO_MS * 1000000;
    }
  }
  for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++)
    if (pend[i].s != INVALID_SOCKET) closesocket(pend[i].s);
  return probe;
}

static DWORD WINAPI sock_reader(LPVOID arg) {
  sp_proc *p = arg;
  char tmp[1024];
  SOCKET c = accept_probe(p);
  EnterCriticalSection(&p->lock);
  p->chan_sock = c;
  if (c == INVALID_SOCKET) p->chan_eof = true;
  LeaveCriticalSection(&p->lock);
  SetEvent(p->data);
  if (c == INVALID_SOCKET) return 0;
  for (;;) {
    int k = recv(c, tmp, (int)sizeof tmp, 0);
    if (take_read(p, p->buf, &p->buf_len, sizeof p->buf, &p->chan_eof, &p->chan_overflow, tmp, k)) return 0;
  }
}

static DWORD WINAPI parent_reader(LPVOID arg) {
  sp_proc *p = arg;
  HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
  char tmp[1024];
  for (;;) {
    DWORD k = 0;
    BOOL ok = in && in != INVALID_HANDLE_VALUE && ReadFile(in, tmp, sizeof tmp, &k, NULL);
    if (take_read(p, p->pbuf, &p->pbuf_len, sizeof p->pbuf, &p->parent_eof, &p->parent_overflow, tmp,
                  ok ? (long)k : 0))
      return 0;
  }
}

/* Binds the listening socket: AF_UNIX at path, or loopback TCP for tcp:127.0.0.1:PORT. */
static int bind_listener(sp_proc *p, const char *where, sp_error *err) {
  if (strncmp(where, SP_REPORT_TCP_PREFIX, strlen(SP_REPORT_TCP_PREFIX)) == 0) {
    struct sockaddr_in in;
    int len = (int)sizeof in;
    int port = sp_report_tcp_port(where, true);
    if (port < 0)
      return sp_fail(err, SP_EINVAL, "--attach %s: a TCP endpoint must be tcp:127.0.0.1:PORT (loopback only)", where);
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons((unsigned short)port);
    p->listen_sock = socket(AF_INET, SOCK_STREAM, 0);
    if (p->listen_sock == INVALID_SOCKET)
      return sp_fail(err, SP_EFAIL, "socket(AF_INET): error %d", WSAGetLastError());
    SetHandleInformation((HANDLE)p->listen_sock, HANDLE_FLAG_INHERIT, 0);
    if (bind(p->listen_sock, (struct sockaddr *)&in, len) != 0 || listen(p->listen_sock, 8) != 0 ||
        getsockname(p->listen_sock, (struct sockaddr *)&in, &len) != 0)
      return sp_fail(err, SP_EFAIL, "bind/listen %s: error %d", where, WSAGetLastError());
    snprintf(p->report_address, sizeof p->report_address, "%s127.0.0.1:%u#%s", SP_REPORT_TCP_PREFIX,
             (unsigned)ntohs(in.sin_port), p->token);
    return 0;
  }
  struct sockaddr_un addr;
  if (strlen(where) >= sizeof addr.sun_path)
    return sp_fail(err, SP_EINVAL, "socket path too long (at most %u bytes): %s", (unsigned)(sizeof addr.sun_path - 1),
                   where);
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  sp_strlcpy(addr.sun_path, where, sizeof addr.sun_path);
  p->listen_sock = socket(AF_UNIX, SOCK_STREAM, 0);
  if (p->listen_sock == INVALID_SOCKET)
    return sp_fail(err, SP_EFAIL,
                   "socket(AF_UNIX): error %d (AF_UNIX needs Windows 10 1803 or later; under Wine use "
                   "--attach tcp:127.0.0.1:0)",
                   WSAGetLastError());
  SetHandleInformation((HANDLE)p->listen_sock, HANDLE_FLAG_INHERIT, 0);
  if (bind(p->listen_sock, (struct sockaddr *)&addr, (int)sizeof addr) != 0 || listen(p->listen_sock, 8) != 0)
    return sp_fail(err, SP_EFAIL, "bind/listen %s: error %d", where, WSAGetLastError());
  sp_strlcpy(p->socket_path, where, sizeof p->socket_path); /* bound: ours to delete */
  snprintf(p->report_address, sizeof p->report_address, "%s%s#%s", SP_REPORT_UNIX_PREFIX, where, p->token);
  return 0;
}

const char *sp_proc_report_address(const sp_proc *p) { return p->report_address; }

int sp_proc_attach(sp_proc **out, const char *socket_path, sp_error *err) {
  WSADATA wsa;
  *out = NULL;
  int rc = WSAStartup(MAKEWORD(2, 2), &wsa);
  if (rc != 0) return sp_fail(err, SP_EFAIL, "WSAStartup: error %d", rc);
  sp_proc *p = calloc(1, sizeof *p);
  if (!p) {
    WSACleanup();
    return sp_fail(err, SP_EFAIL, "calloc: out of memory");
  }
  p->attached = true;
  p->listen_sock = p->chan_sock = INVALID_SOCKET;
  InitializeCriticalSection(&p->lock);
  rc = sp__token_new(p->token, err);
  if (rc == 0) rc = bind_listener(p, socket_path, err);
  if (rc != 0) {
    free_attached(p);
    return rc;
  }
  p->data = CreateEventW(NULL, FALSE, FALSE, NULL);
  if (!p->data) {
    rc = fail_last(err, "CreateEvent");
    free_attached(p);
    return rc;
  }
  p->sock_thread = CreateThread(NULL, 0, sock_reader, p, 0, NULL);
  p->parent_thread = CreateThread(NULL, 0, parent_reader, p, 0, NULL);
  if (!p->sock_thread || !p->parent_thread) {
    rc = fail_last(err, "CreateThread");
    free_attached(p);
    return rc;
  }
  *out = p;
  return 0;
}

static void free_attached(sp_proc *p) {
  bool ended = true;
  EnterCriticalSection(&p->lock);
  SOCKET l = p->listen_sock, c = p->chan_sock;
  p->listen_sock = p->chan_sock = INVALID_SOCKET;
  LeaveCriticalSection(&p->lock);
  /* Closing the sockets ends accept()/recv() in the reader. */
  if (l != INVALID_SOCKET) closesocket(l);
  if (c != INVALID_SOCKET) closesocket(c);
  if (p->sock_thread) {
    if (WaitForSingleObject(p->sock_thread, 2000) != WAIT_OBJECT_0) ended = false;
    close_handle(&p->sock_thread);
  }
  if (p->parent_thread) {
    /* A blocking ReadFile on stdin: cancel it. */
    if (WaitForSingleObject(p->parent_thread, 0) != WAIT_OBJECT_0) {
      CancelSynchronousIo(p->parent_thread);
      if (WaitForSingleObject(p->parent_thread, 2000) != WAIT_OBJECT_0) ended = false;
    }
    close_handle(&p->parent_thread);
  }
  wchar_t wsock[SP_ARRAY_LEN(p->socket_path)];
  if (p->socket_path[0] && sp__utf16("the socket path", p->socket_path, wsock, SP_ARRAY_LEN(wsock), NULL) == 0)
    DeleteFileW(wsock);
  WSACleanup();
  /* A reader that did not end still points at p: leave p to the process's
   * exit rather than free it under the thread. */
  if (!ended) return;
  close_handle(&p->data);
  DeleteCriticalSection(&p->lock);
  free(p);
}

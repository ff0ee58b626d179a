/* Internal to the Windows back-end: the sp_proc behind platform.h, and the
 * one place GetLastError() codes become text. */
#ifndef SIGPROBE_WIN_PROC_H
#define SIGPROBE_WIN_PROC_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h> /* before windows.h: sigprobe-run --attach listens on AF_UNIX */
#include <windows.h>
#include <stdbool.h>

#include "sigprobe/platform.h"

/* The longest path (UTF-8 bytes) the runner handles: Windows' own limit is
 * 32767 UTF-16 units, MAX_PATH (260) only that of the ANSI functions. */
#define SP_WIN_PATH_MAX 4096

/* The helpers beside the probes (see harness/runner/win/). */
#define SP_WIN_HOST_EXE "sigprobe-host.exe"
#define SP_WIN_SEND_EXE "sigprobe-send.exe"

/* A probe runs as the child of sigprobe-host.exe, the "parent" every host
 * describes (a shell, a Jupyter server), which the runner starts on its own
 * windowless console (CREATE_NO_WINDOW). So hosts that share their parent's
 * console (new-group, jupyter-launch) share the launcher's, never the
 * runner's, and console events sent there can never reach the runner. */
struct sp_proc {
  sp_host host;
  HANDLE job;             /* kill-on-close: owns the launcher, the probe, the senders and all they start */
  HANDLE launcher;        /* sigprobe-host.exe */
  DWORD launcher_pid;
  HANDLE probe;           /* opened when "ready" names the probe's pid (checked to be in the job); NULL before */
  DWORD probe_pid;
  HANDLE stop_event;      /* SIGPROBE_STOP: manual reset, set by sp_proc_request_stop */
  HANDLE interrupt_event; /* JPY_INTERRUPT_EVENT: auto reset, set by the set-event delivery */
  char helper_dir[SP_WIN_PATH_MAX]; /* UTF-8 */
  bool ended;             /* the probe's end was observed and the job killed */

  /* The report channel: a reader thread appends to buf and sets data. */
  HANDLE chan_r, chan_thread, data;
  CRITICAL_SECTION lock;
  char buf[2 * SP_LINE_MAX];
  size_t buf_len;
  bool chan_eof, chan_overflow;
  /* The host's stdout/stderr pipe, drained (and discarded) by a thread. */
  HANDLE host_r, host_thread;

  /* Attached (sigprobe-run --attach): no process and no job. The probe
   * connects to listen_sock (AF_UNIX); a thread accepts it and fills buf
   * from chan_sock. The parent's events arrive on stdin, which another
   * thread reads into pbuf. Both threads set data. */
  bool attached;
  SOCKET listen_sock, chan_sock;
  char socket_path[MAX_PATH];    /* AF_UNIX: the path to delete at the end */
  char token[SP_TOKEN_HEX + 1];  /* what the probe's hello must carry (protocol.h) */
  char report_address[MAX_PATH + SP_TOKEN_HEX + 2]; /* SIGPROBE_REPORT for the probe, token included */
  HANDLE sock_thread, parent_thread;
  char pbuf[SP_LINE_MAX];
  size_t pbuf_len;
  bool parent_eof, parent_overflow;
};

/* "error 6 (The handle is invalid)": the text for a GetLastError() code. */
const char *sp__win_strerror(unsigned long code, char *buf, size_t n);

/* Called when "ready" names the probe's pid: opens the probe, after
 * checking it is a process of our job, so a reused pid is never hit. */
void sp__win_adopt_probe(sp_proc *p, DWORD pid);

/* Where the runner's helper executables are (the probe's folder). */
int sp__win_helper_path(const sp_proc *p, const char *exe, char *buf, size_t n);

/* Starts exe (UTF-8) with the arguments argv (UTF-8, NULL-terminated;
 * argv[0] is the program's name), quoted as CommandLineToArgvW reads them,
 * suspended, puts it in the job (job NULL: the caller's job holds it
 * already) and only then lets it run, so that it is in the job before it
 * can start anything. stdin is in (NULL for none), stdout
 * and stderr are out; env is a UTF-16 environment block or NULL for ours.
 * Fills *pi (the thread handle is already closed). Returns 0, or SP_EFAIL
 * (SP_EINVAL when a string is not UTF-8) with err naming the failing call. */
int sp__win_start_in_job(HANDLE job, const char *exe, const char *const argv[], DWORD flags, HANDLE in, HANDLE out,
                         wchar_t *env, PROCESS_INFORMATION *pi, sp_error *err);

/* A console control handler that returns TRUE: a helper on a console that
 * receives an event it sends or relays survives it, without setting the
 * inherited ignore flag. */
BOOL WINAPI sp__win_swallow(DWORD type);

#endif

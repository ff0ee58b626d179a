/* Delivering an interrupt to a probe (Windows).
 *
 * Console events are sent by sigprobe-send.exe, a helper started without a
 * console (DETACHED_PROCESS) that attaches to the probe's console, ignores
 * the event itself and generates it there: the runner's own console is never
 * touched. The helper stamps the time just before it sends, on the clock all
 * processes share, and reports one line on stdout:
 *   "ok <t_ns>", "unsupported <reason>" or "error <reason>". */
#include "proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_SEND_TIMEOUT_MS 10000

static int fail_last(sp_error *err, const char *call) {
  char why[200];
  return sp_fail(err, SP_EFAIL, "%s: %s", call, sp__win_strerror(GetLastError(), why, sizeof why));
}

/* The process whose console the event goes to: the probe's own console for
 * the hosts that create one; the launcher's (the parent's) otherwise, which
 * is the probe's too, except for detached, which has none: that is the
 * console a user would press Ctrl+C in. */
static DWORD console_owner(const sp_proc *p) {
  return (p->host == SP_HOST_CONSOLE || p->host == SP_HOST_NO_WINDOW) ? p->probe_pid : p->launcher_pid;
}

static int run_sender(sp_proc *p, const char *what, DWORD group, int64_t *t_ns, sp_error *err) {
  char exe[SP_WIN_PATH_MAX + 32], owner[16], grp[16], line[SP_ERROR_MAX + 32];
  HANDLE r = NULL, w = NULL;
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  int rc;
  if (!p->probe_pid) return sp_fail(err, SP_EFAIL, "the probe's pid is unknown (no ready, or not in the job)");
  if (sp__win_helper_path(p, SP_WIN_SEND_EXE, exe, sizeof exe) != 0) return sp_fail(err, SP_EFAIL, "path too long");
  snprintf(owner, sizeof owner, "%lu", (unsigned long)console_owner(p));
  snprintf(grp, sizeof grp, "%lu", (unsigned long)group);
  const char *const argv[] = {exe, what, owner, grp, NULL};
  if (!CreatePipe(&r, &w, &sa, 0)) return fail_last(err, "CreatePipe");
  SetHandleInformation(r, HANDLE_FLAG_INHERIT, 0);

  PROCESS_INFORMATION pi;
  rc = sp__win_start_in_job(p->job, exe, argv, DETACHED_PROCESS, NULL, w, NULL, &pi, err);
  CloseHandle(w);
  if (rc != 0) {
    CloseHandle(r);
    return rc;
  }
  if (WaitForSingleObject(pi.hProcess, SP_SEND_TIMEOUT_MS) != WAIT_OBJECT_0) {
    TerminateProcess(pi.hProcess, 1);
    rc = sp_fail(err, SP_EFAIL, SP_WIN_SEND_EXE " did not finish within %d ms", SP_SEND_TIMEOUT_MS);
  }
  CloseHandle(pi.hProcess);
  if (rc != 0) {
    CloseHandle(r);
    return rc;
  }
  /* It has exited, so its few bytes are all in the pipe. */
  DWORD k = 0, total = 0;
  while (total < sizeof line - 1 && ReadFile(r, line + total, (DWORD)(sizeof line - 1 - total), &k, NULL) && k > 0)
    total += k;
  CloseHandle(r);
  line[total] = '\0';
  while (total && (line[total - 1] == '\n' || line[total - 1] == '\r')) line[--total] = '\0';
  if (strncmp(line, "ok ", 3) == 0) {
    *t_ns = _strtoi64(line + 3, NULL, 10);
    return 0;
  }
  if (strncmp(line, "unsupported ", 12) == 0) return sp_fail(err, SP_EUNSUPPORTED, "%s", line + 12);
  if (strncmp(line, "error ", 6) == 0) return sp_fail(err, SP_EFAIL, "%s", line + 6);
  return sp_fail(err, SP_EFAIL, SP_WIN_SEND_EXE " said nothing understandable: '%.80s'", line);
}

int sp_proc_deliver(sp_proc *p, sp_delivery d, int64_t *t_ns, sp_error *err) {
  switch (d) {
    case SP_DELIVERY_CTRL_C:
      /* CTRL_C_EVENT cannot be limited to a group: 0, every process on the console. */
      return run_sender(p, "ctrl-c", 0, t_ns, err);
    case SP_DELIVERY_CTRL_BREAK:
      /* To the probe's group where it leads one; otherwise the whole
       * console, as the Ctrl+Break key does. */
      return run_sender(p, "ctrl-break", p->host == SP_HOST_NEW_GROUP ? p->probe_pid : 0, t_ns, err);
    case SP_DELIVERY_CLOSE:
      return run_sender(p, "close", 0, t_ns, err);
    case SP_DELIVERY_SET_EVENT:
      /* jupyter_client's win_interrupt.send_interrupt(): just SetEvent. */
      *t_ns = sp_clock_ns();
      if (!SetEvent(p->interrupt_event)) return fail_last(err, "SetEvent(JPY_INTERRUPT_EVENT)");
      return 0;
    case SP_DELIVERY_TERMINATE:
      if (!p->probe) return sp_fail(err, SP_EFAIL, "the probe's handle is unknown (no ready, or not in the job)");
      *t_ns = sp_clock_ns();
      if (!TerminateProcess(p->probe, SP_WIN_TERMINATE_CODE)) return fail_last(err, "TerminateProcess");
      return 0;
    default: return sp_fail(err, SP_EINVAL, "unknown delivery %d", (int)d);
  }
}

/* Windows has no record of a discarded console event to read. */
bool sp_proc_signal_discarded(sp_proc *p, int sig) {
  (void)p;
  (void)sig;
  return false;
}

/* sigprobe-host: the parent a Windows host describes (a shell, a Jupyter
 * server). The runner starts it on its own windowless console
 * (CREATE_NO_WINDOW), inside the run's Job Object; it starts the probe with
 * the host's creation flags and waits for it.
 *
 *   sigprobe-host.exe FLAGS JUPYTER PROBE
 *     FLAGS    CreateProcess creation flags for the probe, in hex
 *     JUPYTER  1: add jupyter_client's JPY_PARENT_PID (an inheritable handle
 *              to this process) and the IPY_INTERRUPT_EVENT alias
 *     PROBE    the probe executable
 *
 * Exit status: the probe's exit code, relayed exactly; 3 when the probe could
 * not be started (an "error" event on the report channel says why). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/protocol.h"

/* Console events sent to the probe's console reach this process too when
 * they share it; it must survive them, and only a handler does that without
 * setting the inherited ignore flag (which would change the probe's host). */
static BOOL WINAPI swallow(DWORD type) {
  (void)type;
  return TRUE;
}

static void report_error(const char *call, const char *what) {
  char reason[SP_REASON_MAX], line[SP_LINE_MAX];
  sp_event ev;
  const char *chan = getenv("SIGPROBE_REPORT");
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_ERROR;
  snprintf(reason, sizeof reason, "sigprobe-host: %s(%s): error %lu", call, what, (unsigned long)GetLastError());
  sp_strlcpy(ev.reason, reason, sizeof ev.reason);
  int n = sp_event_encode(&ev, line, sizeof line);
  DWORD k;
  if (chan && n > 0) WriteFile(ULongToHandle(strtoul(chan, NULL, 10)), line, (DWORD)n, &k, NULL);
  fprintf(stderr, "%s\n", reason);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: sigprobe-host.exe FLAGS JUPYTER PROBE\n");
    return 2;
  }
  DWORD flags = (DWORD)strtoul(argv[1], NULL, 16);
  int jupyter = atoi(argv[2]);
  const char *probe = argv[3];

  /* Every host starts from what a plain console parent gives: Ctrl+C
   * enabled, whatever the runner inherited (CI agents often run in a new
   * process group, which disables it all the way down). */
  SetConsoleCtrlHandler(NULL, FALSE);
  SetConsoleCtrlHandler(swallow, TRUE);

  if (jupyter) {
    /* jupyter_client launcher.py on win32: JPY_PARENT_PID is an inheritable
     * handle to the parent process, not a pid. */
    HANDLE self;
    char num[32];
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &self, 0, TRUE,
                         DUPLICATE_SAME_ACCESS)) {
      report_error("DuplicateHandle", "JPY_PARENT_PID");
      return 3;
    }
    snprintf(num, sizeof num, "%lu", (unsigned long)HandleToUlong(self));
    SetEnvironmentVariableA("JPY_PARENT_PID", num);
    const char *ev = getenv("JPY_INTERRUPT_EVENT");
    if (ev) SetEnvironmentVariableA("IPY_INTERRUPT_EVENT", ev);
  }

  char cmd[MAX_PATH + 8];
  snprintf(cmd, sizeof cmd, "\"%s\"", probe);
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  /* bInheritHandles TRUE for every host: the report channel, the stop event
   * and JPY_INTERRUPT_EVENT travel by inheritance (jupyter_client's
   * close_fds=False). */
  if (!CreateProcessA(probe, cmd, NULL, NULL, TRUE, flags, NULL, NULL, &si, &pi)) {
    report_error("CreateProcess", probe);
    return 3;
  }
  CloseHandle(pi.hThread);
  /* From now on the report channel's end is the probe's alone. */
  const char *chan = getenv("SIGPROBE_REPORT");
  if (chan) CloseHandle(ULongToHandle(strtoul(chan, NULL, 10)));

  DWORD code = 3;
  WaitForSingleObject(pi.hProcess, INFINITE);
  GetExitCodeProcess(pi.hProcess, &code);
  CloseHandle(pi.hProcess);
  ExitProcess(code);
}

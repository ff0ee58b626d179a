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
#include "../../src/win/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/protocol.h"

static void report_error(const char *why) {
  char reason[SP_REASON_MAX], line[SP_LINE_MAX];
  sp_event ev;
  const char *chan = getenv("SIGPROBE_REPORT");
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_ERROR;
  snprintf(reason, sizeof reason, "sigprobe-host: %s", why);
  sp_strlcpy(ev.reason, reason, sizeof ev.reason);
  int n = sp_event_encode(&ev, line, sizeof line);
  DWORD k;
  if (chan && n > 0) WriteFile(ULongToHandle(strtoul(chan, NULL, 10)), line, (DWORD)n, &k, NULL);
  fprintf(stderr, "%s\n", reason);
}

int main(void) {
  /* The arguments as UTF-8: the probe's path may hold any character. */
  int argc = 0;
  char **argv = NULL;
  sp_error err;
  if (sp_main_args(&argc, &argv, &err) != 0) {
    fprintf(stderr, "sigprobe-host: %s\n", err.msg);
    return 2;
  }
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
  /* Console events sent to the probe's console reach this process too when
   * they share it; it must survive them, and only a handler does that
   * without setting the inherited ignore flag (which would change the
   * probe's host). */
  SetConsoleCtrlHandler(sp__win_swallow, TRUE);

  if (jupyter) {
    /* jupyter_client launcher.py on win32: JPY_PARENT_PID is an inheritable
     * handle to the parent process, not a pid. */
    HANDLE self;
    wchar_t num[32], ev[32];
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &self, 0, TRUE,
                         DUPLICATE_SAME_ACCESS)) {
      char code[160], why[200];
      snprintf(why, sizeof why, "DuplicateHandle(JPY_PARENT_PID): %s", sp__win_strerror(GetLastError(), code, sizeof code));
      report_error(why);
      return 3;
    }
    swprintf(num, SP_ARRAY_LEN(num), L"%lu", (unsigned long)HandleToUlong(self));
    SetEnvironmentVariableW(L"JPY_PARENT_PID", num);
    DWORD k = GetEnvironmentVariableW(L"JPY_INTERRUPT_EVENT", ev, (DWORD)SP_ARRAY_LEN(ev));
    if (k > 0 && k < SP_ARRAY_LEN(ev)) SetEnvironmentVariableW(L"IPY_INTERRUPT_EVENT", ev);
  }

  /* bInheritHandles TRUE for every host: the report channel, the stop event
   * and JPY_INTERRUPT_EVENT travel by inheritance (jupyter_client's
   * close_fds=False). The probe is in the run's job already: ours. */
  const char *const probe_argv[] = {probe, NULL};
  PROCESS_INFORMATION pi;
  if (sp__win_start_in_job(NULL, probe, probe_argv, flags, GetStdHandle(STD_INPUT_HANDLE),
                           GetStdHandle(STD_OUTPUT_HANDLE), NULL, &pi, &err) != 0) {
    report_error(err.msg);
    return 3;
  }
  /* From now on the report channel's end is the probe's alone. */
  const char *chan = getenv("SIGPROBE_REPORT");
  if (chan) CloseHandle(ULongToHandle(strtoul(chan, NULL, 10)));

  DWORD code = 3;
  WaitForSingleObject(pi.hProcess, INFINITE);
  GetExitCodeProcess(pi.hProcess, &code);
  CloseHandle(pi.hProcess);
  ExitProcess(code);
}

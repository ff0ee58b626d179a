/* sigprobe-send: sends one console event into another process's console,
 * so the runner never generates one in its own.
 *
 *   sigprobe-send.exe ctrl-c|ctrl-break|close PID GROUP
 *     PID    a process on the target console (AttachConsole(PID))
 *     GROUP  the process group for ctrl-break (0: every process on it)
 *
 * Started with DETACHED_PROCESS (no console of its own). Prints one line:
 *   "ok <t_ns>"  sent; t_ns is sp_clock_ns() just before sending
 *   "unsupported <reason>"   exit 2: this console cannot carry the event
 *   "error <reason>"         exit 1: a call failed */
#include "../../src/win/proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *call, DWORD code) {
  char why[200];
  printf("error %s: %s\n", call, sp__win_strerror(code, why, sizeof why));
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    printf("error usage: sigprobe-send.exe ctrl-c|ctrl-break|close PID GROUP\n");
    return 1;
  }
  const char *what = argv[1];
  DWORD pid = (DWORD)strtoul(argv[2], NULL, 10);
  DWORD group = (DWORD)strtoul(argv[3], NULL, 10);
  char call[96];

  FreeConsole(); /* nothing to free when detached; required before AttachConsole otherwise */
  if (!AttachConsole(pid)) {
    snprintf(call, sizeof call, "AttachConsole(%lu)", (unsigned long)pid);
    return fail(call, GetLastError());
  }
  /* After AttachConsole, which resets the handler table. The sender is on
   * the target console while it sends: it must not be interrupted by its own
   * event (Ctrl+Break is not covered by the ignore flag, so a handler too). */
  SetConsoleCtrlHandler(NULL, TRUE);
  SetConsoleCtrlHandler(sp__win_swallow, TRUE);

  int64_t t = 0;
  if (strcmp(what, "close") == 0) {
    HWND win = GetConsoleWindow();
    if (!win) {
      printf("unsupported the probe's console has no window (GetConsoleWindow() is NULL), so there is no window to close "
             "and CTRL_CLOSE_EVENT cannot be sent\n");
      return 2;
    }
    t = sp_clock_ns();
    if (!PostMessageW(win, WM_CLOSE, 0, 0)) return fail("PostMessage(WM_CLOSE)", GetLastError());
  } else {
    DWORD ev = strcmp(what, "ctrl-break") == 0 ? CTRL_BREAK_EVENT : CTRL_C_EVENT;
    snprintf(call, sizeof call, "GenerateConsoleCtrlEvent(%s, %lu)",
             ev == CTRL_C_EVENT ? "CTRL_C_EVENT" : "CTRL_BREAK_EVENT", (unsigned long)group);
    t = sp_clock_ns();
    if (!GenerateConsoleCtrlEvent(ev, group)) return fail(call, GetLastError());
  }
  printf("ok %lld\n", (long long)t);
  fflush(stdout);
  /* Stay attached until the console has dispatched the event: leaving at
   * once can detach before the injection reaches this console. */
  Sleep(50);
  return 0;
}

/* The Windows strategies (see strategies.h). The handlers here run on a
 * thread the system injects for the console event (the CRT calls its
 * signal() handlers from there too): ordinary threads, so they may record
 * with any thread-safe call. They only record. */
#include "strategies.h"

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <signal.h>
#include <stdlib.h>

static void on_signal(int sig) {
  /* The CRT reset the action to SIG_DFL before calling us: one shot. */
  sp_probe_record("signal", sig, SP_NO_SI_CODE, -1, -1);
}

void sp_install_signal(void) {
  if (signal(SIGINT, on_signal) == SIG_ERR) sp_probe_fail("signal(SIGINT)");
  if (signal(SIGBREAK, on_signal) == SIG_ERR) sp_probe_fail("signal(SIGBREAK)");
}

static BOOL WINAPI on_console_ctrl(DWORD type) {
  sp_probe_record_named("console-ctrl", sp_console_event_name(type));
  if (type == CTRL_CLOSE_EVENT || type == CTRL_LOGOFF_EVENT || type == CTRL_SHUTDOWN_EVENT)
    Sleep(INFINITE); /* returning would end the process now (libuv and Go do the same) */
  return TRUE;
}

void sp_install_console_ctrl(void) {
  if (!SetConsoleCtrlHandler(on_console_ctrl, TRUE)) sp_probe_fail("SetConsoleCtrlHandler");
}

static DWORD WINAPI event_main(LPVOID arg) {
  HANDLE h = arg;
  for (;;) {
    if (WaitForSingleObject(h, INFINITE) != WAIT_OBJECT_0) return 1;
    sp_probe_record_named("event", "JPY_INTERRUPT_EVENT");
  }
}

bool sp_install_event(const char **why) {
  const char *what;
  char v[32];
  HANDLE h = sp_probe_env_handle("JPY_INTERRUPT_EVENT", &what);
  if (!h) {
    *why = sp_probe_env("JPY_INTERRUPT_EVENT", v, sizeof v)
               ? "JPY_INTERRUPT_EVENT does not name a handle this process inherited"
               : "JPY_INTERRUPT_EVENT is not set: there is no event to wait on (only a Jupyter-style launcher "
                 "provides one)";
    return false;
  }
  HANDLE t = CreateThread(NULL, 0, event_main, h, 0, NULL);
  if (!t) sp_probe_fail("CreateThread");
  CloseHandle(t);
  return true;
}

/* This platform's names and facts on Windows, and where Wine differs from
 * it (see harness/src/os.h). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "../os.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *const sp__host_names[SP_HOST_COUNT] = {"console", "new-group", "no-window", "detached", "jupyter-launch"};
const char *const sp__strategy_names[SP_STRATEGY_COUNT] = {"none", "signal", "console-ctrl", "event", "all"};
const char *const sp__delivery_names[SP_DELIVERY_COUNT] = {"ctrl-c", "ctrl-break", "set-event", "close", "terminate"};

const sp__signal sp__signals[] = {
    {SIGINT, "SIGINT"}, {SIGTERM, "SIGTERM"}, {SIGABRT, "SIGABRT"}, {SIGSEGV, "SIGSEGV"},
    {SIGILL, "SIGILL"}, {SIGFPE, "SIGFPE"},   {SIGBREAK, "SIGBREAK"},
};
const size_t sp__signal_count = SP_ARRAY_LEN(sp__signals);

const char sp__exe_suffix[] = ".exe";

int sp_platform_is_wine(void) {
  /* Wine's ntdll exports wine_get_version; Windows' never has. */
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

const char *sp_platform_name(void) { return sp_platform_is_wine() ? "windows-wine" : "windows"; }

bool sp__platform_accepts(const char *name, size_t len) {
  return (len == 7 && strncmp(name, "windows", 7) == 0) || (len == 12 && strncmp(name, "windows-wine", 12) == 0);
}

const char *sp_console_event_name(unsigned long type) {
  switch (type) {
    case CTRL_C_EVENT: return "CTRL_C_EVENT";
    case CTRL_BREAK_EVENT: return "CTRL_BREAK_EVENT";
    case CTRL_CLOSE_EVENT: return "CTRL_CLOSE_EVENT";
    case CTRL_LOGOFF_EVENT: return "CTRL_LOGOFF_EVENT";
    case CTRL_SHUTDOWN_EVENT: return "CTRL_SHUTDOWN_EVENT";
    default: return "CTRL_UNKNOWN_EVENT";
  }
}

int sp_delivery_signal(sp_delivery d) {
  switch (d) {
    case SP_DELIVERY_CTRL_C: return CTRL_C_EVENT;
    case SP_DELIVERY_CTRL_BREAK: return CTRL_BREAK_EVENT;
    case SP_DELIVERY_CLOSE: return CTRL_CLOSE_EVENT;
    default: return -1;
  }
}

const char *sp_delivery_what(sp_delivery d) {
  static const char *const what[SP_DELIVERY_COUNT] = {"CTRL_C_EVENT", "CTRL_BREAK_EVENT", "JPY_INTERRUPT_EVENT",
                                                      "CTRL_CLOSE_EVENT", "TerminateProcess"};
  return (unsigned)d < SP_DELIVERY_COUNT ? what[d] : "?";
}

int sp_delivery_default_exit(sp_delivery d, uint32_t *code) {
  switch (d) {
    case SP_DELIVERY_CTRL_C:
    case SP_DELIVERY_CTRL_BREAK:
    case SP_DELIVERY_CLOSE: *code = SP_WIN_STATUS_CONTROL_C_EXIT; return 1;
    case SP_DELIVERY_TERMINATE: *code = SP_WIN_TERMINATE_CODE; return 1;
    default: return 0;
  }
}

/* Every Windows host can be sent every delivery; where one cannot arrive
 * (a console event to a detached process, CTRL_CLOSE without a console
 * window) the run measures it and says so. */
const char *sp_cell_unsupported_reason(const sp_cell *cell) {
  (void)cell;
  return NULL;
}

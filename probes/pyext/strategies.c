/* The extension probe's strategies: one table, the same on every platform;
 * what installs each is the platform's (strategies_unix.c, strategies_win.c). */
#include <stddef.h>
#include <string.h>

#include "strategy.h"

const char *const sp_py_strategy_names[] = {"c-handler-import", "c-handler-per-call", "check-signals",
                                            "recommended",      "self-pipe",          "signalfd-thread",
                                            "event-thread",     "console-ctrl",       "none",
                                            NULL};

static const sp_py_strategy g_strategies[] = {
    {"c-handler-per-call", SP_PY_CHECK_NONE, sp_py_per_call_install, sp_py_per_call_remove},
    {"check-signals", SP_PY_CHECK_EVERY_ITERATION, NULL, NULL},
    {"recommended", SP_PY_CHECK_INTERRUPTIBLE, NULL, NULL},
    {"self-pipe", SP_PY_CHECK_NONE, sp_py_self_pipe_install, sp_py_self_pipe_remove},
    {"signalfd-thread", SP_PY_CHECK_NONE, sp_py_signalfd_install, sp_py_signalfd_remove},
    {"event-thread", SP_PY_CHECK_NONE, sp_py_event_thread_install, sp_py_event_thread_remove},
    {"console-ctrl", SP_PY_CHECK_NONE, sp_py_console_ctrl_install, sp_py_console_ctrl_remove},
    {"none", SP_PY_CHECK_NONE, NULL, NULL},
};

const sp_py_strategy *sp_py_strategy_find(const char *name) {
  for (size_t i = 0; i < sizeof g_strategies / sizeof g_strategies[0]; i++)
    if (strcmp(g_strategies[i].name, name) == 0) return &g_strategies[i];
  return NULL;
}

/* The strategies of the Python extension probe: how native code inside a
 * Python process listens for an interrupt. This layer knows nothing of
 * Python; run.c drives it. Every handler only stores into the probe's
 * preallocated slots or writes to a pipe (async-signal-safe). */
#ifndef SIGPROBE_PYEXT_STRATEGY_H
#define SIGPROBE_PYEXT_STRATEGY_H

#include <stdbool.h>

#include "sigprobe/probe.h"

#define SP_PY_MAX_WATCHES 2

typedef enum sp_py_check { SP_PY_CHECK_NONE, SP_PY_CHECK_EVERY_ITERATION, SP_PY_CHECK_INTERRUPTIBLE } sp_py_check;

typedef struct sp_py_strategy {
  const char *name;
  /* How the loop itself checks for an interrupt: not at all (a handler
   * does), PyErr_CheckSignals() in every iteration, or through
   * sigprobe/interruptible.h, the recommended pattern. */
  sp_py_check check;
  /* Installs the strategy for one run and names the descriptors the loop must
   * poll. Returns 0; SP_EUNSUPPORTED with the reason in err; or SP_EFAIL with
   * err naming the failing call, having undone whatever it changed. NULL
   * when the strategy installs nothing per run. */
  int (*install)(sp_watch *watches, int *n_watches, sp_error *err);
  /* Restores every handler, mask, thread and descriptor install changed. */
  void (*remove)(void);
} sp_py_strategy;

/* The strategy called name, or NULL. c-handler-import is not here: it lives
 * in its own module (sigprobe_pyext_import) so that nothing else installs it. */
const sp_py_strategy *sp_py_strategy_find(const char *name);

/* Every strategy name, NULL-terminated, c-handler-import included. */
extern const char *const sp_py_strategy_names[];

/* What each platform's file (strategies_unix.c, strategies_win.c) provides
 * for the one table in strategies.c: a strategy that does not exist there
 * installs SP_EUNSUPPORTED with the reason. */
int sp_py_per_call_install(sp_watch *w, int *n, sp_error *err);
void sp_py_per_call_remove(void);
int sp_py_self_pipe_install(sp_watch *w, int *n, sp_error *err);
void sp_py_self_pipe_remove(void);
int sp_py_signalfd_install(sp_watch *w, int *n, sp_error *err);
void sp_py_signalfd_remove(void);
int sp_py_event_thread_install(sp_watch *w, int *n, sp_error *err);
void sp_py_event_thread_remove(void);
int sp_py_console_ctrl_install(sp_watch *w, int *n, sp_error *err);
void sp_py_console_ctrl_remove(void);

/* Describes the OS-level SIGINT action now: *disposition, and for a function
 * whose it is ("sigprobe" when it lives in own_object, "python" when it lives
 * in the same object as python_symbol, else the object's file name, or
 * "unknown"), written into owner (size n); "" for SIG_DFL and SIG_IGN. Also
 * returns the raw handler address, sa_flags and whether SIGINT is blocked in
 * the calling thread. */
typedef struct sp_py_sigint_state {
  sp_disposition disposition;
  char owner[64];
  unsigned long long handler;
  int flags;
  bool blocked;
} sp_py_sigint_state;
void sp_py_sigint_state_now(sp_py_sigint_state *st, const void *own_object, const void *python_symbol);

/* 1 when called on the process's initial thread, 0 on another, -1 when the
 * platform cannot tell (Windows names no initial thread: the caller asks
 * Python which thread is its main one). */
int sp_py_on_initial_thread(void);

/* Installs c-handler-import's SIGINT handler, which records
 * "c-handler-import" and stays until something replaces it. Returns 0, or -1
 * with errno set and *call naming the failing call. */
int sp_py_import_handler_install(const char **call);

#endif

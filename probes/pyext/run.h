/* One run of the Python extension probe: the part that knows Python. Both
 * modules (sigprobe_pyext and sigprobe_pyext_import) compile it in. */
#ifndef SIGPROBE_PYEXT_RUN_H
#define SIGPROBE_PYEXT_RUN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "strategy.h"

/* Runs strategy s once (see README.md): begin, install, "ready", the loop,
 * "done", remove. Returns the result dict, or NULL with an exception set:
 * KeyboardInterrupt (or whatever a Python handler raised) for check-signals,
 * OSError when the report channel or an install step fails, RuntimeError
 * when a run is already in progress. */
PyObject *sp_py_run(const sp_py_strategy *s, int loop_ms, int nogil);

/* Adds BUILT_FOR (the interpreter named at build time) and HEADERS_VERSION
 * (PY_VERSION of the headers compiled against) to module m. Returns 0 or -1
 * with an exception set. */
int sp_py_add_build_facts(PyObject *m);

/* sigint_state() -> dict: the OS-level SIGINT action and mask right now. */
PyObject *sp_py_sigint_state_dict(PyObject *self, PyObject *unused);

#define SP_PY_SIGINT_STATE_DOC                                                                              \
  "sigint_state() -> dict\n\n"                                                                                \
  "The OS-level SIGINT state of the calling thread now, which signal.getsignal() cannot see:\n"              \
  "{'disposition': 'default'|'ignored'|'caught', 'owner': 'sigprobe'|'python'|<object file>|'unknown'|'',\n" \
  " 'handler': <address>, 'flags': <sa_flags>, 'blocked': <SIGINT in the thread's mask>}"

#endif

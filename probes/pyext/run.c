/* One run of the Python extension probe (see run.h). */
#include "run.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sigprobe/interruptible.h"

/* Runs share the probe runtime's process-wide state, so they must not
 * overlap; with the GIL released another thread could try. */
static int g_running;

/* What signal.getsignal(SIGINT) returns, in the protocol's words. Returns
 * NULL with an exception set when Python cannot tell. It asks _signal, the
 * built-in module that signal wraps, when there is one: the same handler
 * objects (SIG_DFL and SIG_IGN as plain ints, which compare equal to
 * signal's enums), without signal's import of enum, which is about a third
 * of what a python-* run costs an interpreter that has not imported it. */
static const char *python_handler_name(void) {
  PyObject *mod = PyImport_ImportModule("_signal");
  if (!mod && PyErr_ExceptionMatches(PyExc_ImportError)) {
    PyErr_Clear();
    mod = PyImport_ImportModule("signal");
  }
  if (!mod) return NULL;
  const char *name = NULL;
  PyObject *h = PyObject_CallMethod(mod, "getsignal", "i", SIGINT);
  PyObject *dih = PyObject_GetAttrString(mod, "default_int_handler");
  PyObject *ign = PyObject_GetAttrString(mod, "SIG_IGN");
  PyObject *dfl = PyObject_GetAttrString(mod, "SIG_DFL");
  if (h && dih && ign && dfl) {
    int is_ign = 0, is_dfl = 0;
    if (h == dih) name = "default_int_handler";
    else if ((is_ign = PyObject_RichCompareBool(h, ign, Py_EQ)) == 1) name = "SIG_IGN";
    else if (is_ign == 0 && (is_dfl = PyObject_RichCompareBool(h, dfl, Py_EQ)) == 1) name = "SIG_DFL";
    else if (is_ign == 0 && is_dfl == 0) name = "other"; /* a Python function, or None (set outside Python) */
  }
  Py_XDECREF(h);
  Py_XDECREF(dih);
  Py_XDECREF(ign);
  Py_XDECREF(dfl);
  Py_DECREF(mod);
  return name;
}

/* "main" on the process's initial thread (the only one where CPython runs
 * Python signal handlers), "other" elsewhere, NULL where we cannot tell. */
static const char *run_thread(void) {
  int initial = sp_py_on_initial_thread();
  if (initial >= 0) return initial ? "main" : "other";
  /* The platform names no initial thread (Windows): CPython's main thread
   * (threading.main_thread()) is the one that runs signal handlers. */
  const char *answer = NULL;
  PyObject *mod = PyImport_ImportModule("threading");
  PyObject *main_thread = mod ? PyObject_CallMethod(mod, "main_thread", NULL) : NULL;
  PyObject *ident = main_thread ? PyObject_GetAttrString(main_thread, "ident") : NULL;
  if (ident && PyLong_Check(ident))
    answer = PyLong_AsUnsignedLong(ident) == PyThread_get_thread_ident() ? "main" : "other";
  if (PyErr_Occurred()) PyErr_Clear();
  Py_XDECREF(ident);
  Py_XDECREF(main_thread);
  Py_XDECREF(mod);
  return answer;
}

static const char *const g_disp_names[] = {"unknown", "default", "ignored", "caught"};

static void state_now(sp_py_sigint_state *st) {
  sp_py_sigint_state_now(st, (const void *)&sp_py_run, (const void *)&PyErr_CheckSignals);
}

/* Records the exception a check raised (the GIL held) as handler's firing,
 * stamped with t, the moment the check returned. */
static const char *raised_by(const char *handler, int64_t t, bool *raised) {
  int sig = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) ? SIGINT : 0;
  sp_probe_record_at(handler, sig, SP_NO_SI_CODE, -1, -1, t, sp_probe_on_main_thread());
  *raised = true;
  return handler;
}

/* The loop: bounded in time, one short wait per iteration (sp_probe_wait,
 * woken at once by a record, the runner's "stop" or EINTR), the strategy's
 * own check in every iteration: PyErr_CheckSignals() (check-signals), or the
 * header's check (recommended), which with the GIL held lets go of it now and
 * then, and without it takes it only to check. */
static const char *loop(const sp_py_strategy *s, const sp_watch *w, int n, int loop_ms, int nogil,
                        long long *iterations, bool *raised) {
  const int64_t end = sp_clock_ns() + (int64_t)loop_ms * 1000000;
  sp_interruptible it;
  sp_interruptible_init(&it, SP_INTERRUPTIBLE_DEFAULT_US);
  for (;;) {
    if (sp_probe_fired_count() > 0) {
      const char *first = sp_probe_fired_handler(0);
      if (first) return first;
      /* else: a handler on another thread is still filling its slot */
    }
    if (s->check == SP_PY_CHECK_EVERY_ITERATION && PyErr_CheckSignals() < 0)
      return raised_by(s->name, sp_clock_ns(), raised);
    if (s->check == SP_PY_CHECK_INTERRUPTIBLE && !nogil && sp_interruptible_check(&it))
      return raised_by(s->name, sp_clock_ns(), raised);
    if (sp_clock_ns() >= end) return "loop-end";
    const char *stop;
    int stop_check = 0;
    if (nogil) {
      Py_BEGIN_ALLOW_THREADS
      stop = sp_probe_wait(w, n, 1);
      if (!stop && s->check == SP_PY_CHECK_INTERRUPTIBLE) stop_check = sp_interruptible_check_nogil(&it);
      Py_END_ALLOW_THREADS
    } else {
      stop = sp_probe_wait(w, n, 1);
    }
    ++*iterations;
    if (stop_check) return raised_by(s->name, sp_clock_ns(), raised);
    if (stop) return stop;
  }
}

static PyObject *unsupported_result(const char *reason) {
  return Py_BuildValue("{s:s}", "unsupported", reason);
}

PyObject *sp_py_run(const sp_py_strategy *s, int loop_ms, int nogil) {
  if (loop_ms < 0) {
    PyErr_SetString(PyExc_ValueError, "loop_ms must be >= 0");
    return NULL;
  }
  if (g_running) {
    PyErr_SetString(PyExc_RuntimeError, "a sigprobe run is already in progress in this process");
    return NULL;
  }
  sp_error err;
  sp_py_sigint_state entry;
  state_now(&entry); /* before begin reads the same thing for "ready" */
  if (sp_probe_begin(&err) != 0) {
    PyErr_Format(PyExc_OSError, "sigprobe: %s", err.msg);
    return NULL;
  }
  const char *py_handler = python_handler_name();
  if (!py_handler) {
    sp_probe_report_error("signal.getsignal(SIGINT) failed");
    sp_probe_abort();
    return NULL;
  }

  sp_watch watches[SP_PY_MAX_WATCHES];
  int n_watches = 0;
  if (s->install) {
    int rc = s->install(watches, &n_watches, &err);
    if (rc == SP_EUNSUPPORTED) {
      sp_probe_report_unsupported(err.msg);
      sp_probe_abort();
      return unsupported_result(err.msg);
    }
    if (rc != 0) {
      sp_probe_report_error(err.msg);
      sp_probe_abort();
      PyErr_Format(PyExc_OSError, "sigprobe %s: %s", s->name, err.msg);
      return NULL;
    }
  }
  g_running = 1;

  /* From here to remove() nothing may return early. */
  char extra[256];
  size_t k = (size_t)snprintf(extra, sizeof extra, "\"python_handler\":\"%s\",\"nogil\":%s", py_handler,
                              nogil ? "true" : "false");
  const char *thread = run_thread();
  if (thread && k < sizeof extra) k += (size_t)snprintf(extra + k, sizeof extra - k, ",\"run_thread\":\"%s\"", thread);
  if (entry.disposition == SP_DISP_CAUGHT && k < sizeof extra)
    snprintf(extra + k, sizeof extra - k, ",\"entry_handler\":\"%s\"", entry.owner);
  const char *names[] = {s->name};
  sp_probe_ready_extra(names, 1, extra);

  long long iterations = 0;
  bool raised = false;
  const char *stopped_by = loop(s, watches, n_watches, loop_ms, nogil, &iterations, &raised);
  sp_probe_end(stopped_by);
  const char *fired[16];
  int n_fired = 0;
  for (int i = 0; i < sp_probe_fired_count() && n_fired < (int)SP_ARRAY_LEN(fired); i++) {
    const char *h = sp_probe_fired_handler(i);
    if (h) fired[n_fired++] = h;
  }
  if (s->remove) s->remove();
  g_running = 0;

  if (raised) {
    /* The exception PyErr_CheckSignals() set propagates, marked as raised
     * inside the native call: from Python it is otherwise indistinguishable
     * from one the eval loop raises right after the call returns. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && PyObject_SetAttrString(value, "sigprobe_inside_call", Py_True) != 0) PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return NULL;
  }
  PyObject *list = PyList_New(0);
  if (!list) return NULL;
  for (int i = 0; i < n_fired; i++) {
    PyObject *str = PyUnicode_FromString(fired[i]);
    if (!str || PyList_Append(list, str) != 0) {
      Py_XDECREF(str);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(str);
  }
  return Py_BuildValue("{s:s,s:L,s:N}", "stopped_by", stopped_by, "iterations", iterations, "fired", list);
}

PyObject *sp_py_sigint_state_dict(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  sp_py_sigint_state st;
  state_now(&st);
  return Py_BuildValue("{s:s,s:s,s:K,s:i,s:O}", "disposition", g_disp_names[st.disposition], "owner", st.owner,
                       "handler", st.handler, "flags", st.flags, "blocked", st.blocked ? Py_True : Py_False);
}

#ifndef SP_PY_EXECUTABLE
#define SP_PY_EXECUTABLE ""
#endif

int sp_py_add_build_facts(PyObject *m) {
  if (PyModule_AddStringConstant(m, "BUILT_FOR", SP_PY_EXECUTABLE) != 0) return -1;
  return PyModule_AddStringConstant(m, "HEADERS_VERSION", PY_VERSION);
}

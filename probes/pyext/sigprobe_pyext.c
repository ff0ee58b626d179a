/* Module sigprobe_pyext: the Python extension probe. A C extension doing
 * bounded native work that must notice Ctrl+C / Jupyter's "interrupt
 * kernel", with one strategy per run (see README.md). */
#include "run.h"

PyDoc_STRVAR(run_doc,
             "run(strategy, loop_ms=2000, nogil=False) -> dict\n\n"
             "Install `strategy` for this call, report 'ready' on SIGPROBE_REPORT, loop up to loop_ms\n"
             "milliseconds in ~1 ms waits checking the strategy's flag (with the GIL released around\n"
             "each wait when nogil), report 'done', restore everything the strategy changed, and\n"
             "return {'stopped_by': str, 'iterations': int, 'fired': [handler names]}.\n"
             "Windows-only strategies return {'unsupported': reason} elsewhere. check-signals lets\n"
             "the KeyboardInterrupt raised by PyErr_CheckSignals() propagate. 'c-handler-import'\n"
             "imports sigprobe_pyext_import (installing its handler then, if not imported before)\n"
             "and calls its run().");

static PyObject *run(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"strategy", "loop_ms", "nogil", NULL};
  const char *name;
  int loop_ms = 2000, nogil = 0;
  (void)self;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|ip:run", kwlist, &name, &loop_ms, &nogil)) return NULL;
  if (strcmp(name, "c-handler-import") == 0) {
    PyObject *mod = PyImport_ImportModule("sigprobe_pyext_import");
    if (!mod) return NULL;
    PyObject *res = PyObject_CallMethod(mod, "run", "iO", loop_ms, nogil ? Py_True : Py_False);
    Py_DECREF(mod);
    return res;
  }
  const sp_py_strategy *s = sp_py_strategy_find(name);
  if (!s) return PyErr_Format(PyExc_ValueError, "unknown strategy '%s'", name);
  return sp_py_run(s, loop_ms, nogil);
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_VARARGS | METH_KEYWORDS, run_doc},
    {"sigint_state", sp_py_sigint_state_dict, METH_NOARGS, SP_PY_SIGINT_STATE_DOC},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sigprobe_pyext",
    "sigprobe's Python extension probe: which native interrupt strategy notices Ctrl+C / Jupyter's interrupt.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_sigprobe_pyext(void);

PyMODINIT_FUNC PyInit_sigprobe_pyext(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  if (sp_py_add_build_facts(m) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  size_t n = 0;
  while (sp_py_strategy_names[n]) n++;
  PyObject *names = PyTuple_New((Py_ssize_t)n);
  if (!names) goto fail;
  for (size_t i = 0; i < n; i++) {
    PyObject *str = PyUnicode_FromString(sp_py_strategy_names[i]);
    if (!str) {
      Py_DECREF(names);
      goto fail;
    }
    PyTuple_SET_ITEM(names, (Py_ssize_t)i, str);
  }
  if (PyModule_AddObject(m, "STRATEGIES", names) != 0) {
    Py_DECREF(names);
    goto fail;
  }
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}

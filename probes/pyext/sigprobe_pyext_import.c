/* Module sigprobe_pyext_import: strategy c-handler-import. Importing it
 * installs a C SIGINT handler once, the way many extensions do at import;
 * it is never reinstalled. It is a module of its own so that importing the
 * other strategies can never install it. */
#include "run.h" /* Python.h first: it sets the feature macros */

#include <errno.h>
#include <signal.h>

static const sp_py_strategy g_import = {"c-handler-import", false, NULL, NULL};

PyDoc_STRVAR(run_doc,
             "run(loop_ms=2000, nogil=False) -> dict\n\n"
             "Run strategy c-handler-import (the handler installed when this module was imported):\n"
             "report 'ready', loop up to loop_ms checking the handler's flag, report 'done', return\n"
             "{'stopped_by': str, 'iterations': int, 'fired': [handler names]}.");

static PyObject *run(PyObject *self, PyObject *args, PyObject *kwargs) {
  static char *kwlist[] = {"loop_ms", "nogil", NULL};
  int loop_ms = 2000, nogil = 0;
  (void)self;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|ip:run", kwlist, &loop_ms, &nogil)) return NULL;
  return sp_py_run(&g_import, loop_ms, nogil);
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_VARARGS | METH_KEYWORDS, run_doc},
    {"sigint_state", sp_py_sigint_state_dict, METH_NOARGS, SP_PY_SIGINT_STATE_DOC},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sigprobe_pyext_import",
    "sigprobe strategy c-handler-import: a C SIGINT handler installed once, at import.", -1, methods, NULL, NULL, NULL,
    NULL,
};

PyMODINIT_FUNC PyInit_sigprobe_pyext_import(void);

PyMODINIT_FUNC PyInit_sigprobe_pyext_import(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  if (sp_py_add_build_facts(m) != 0) {
    Py_DECREF(m);
    return NULL;
  }
  /* What the handler replaced, as the module attribute REPLACED. */
  PyObject *replaced = sp_py_sigint_state_dict(m, NULL);
  if (!replaced || PyModule_AddObject(m, "REPLACED", replaced) != 0) {
    Py_XDECREF(replaced);
    Py_DECREF(m);
    return NULL;
  }
  /* The handler lives in the strategy layer (strategies_unix.c,
   * strategies_win.c) with the others. */
  const char *call = "";
  if (sp_py_import_handler_install(&call) != 0) {
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, call);
    Py_DECREF(m);
    return NULL;
  }
  return m;
}

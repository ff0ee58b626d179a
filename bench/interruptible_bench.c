/* The cost of sigprobe/interruptible.h, for `sigprobe bench`: a Python
 * extension module (sigprobe_interruptible_bench) whose functions time, with
 * the clock every process shares, what the header adds to a loop:
 *   fast_path(n)        ns per check when no check is due (the common case);
 *   release(n)          ns per GIL release + re-take, with no thread waiting;
 *   release_contended(n) the same while another Python thread wants the GIL;
 *   loop(n, interval_us, checked) ns for a tight numeric loop of n iterations,
 *                        with a check in every iteration or without. */
#include "sigprobe/interruptible.h"

static volatile double g_sink;

static PyObject *fast_path(PyObject *self, PyObject *arg) {
  (void)self;
  long long n = PyLong_AsLongLong(arg);
  if (n <= 0) return PyErr_Occurred() ? NULL : PyFloat_FromDouble(0);
  sp_interruptible it;
  sp_interruptible_init(&it, 3600L * 1000000); /* an hour: never due while we measure */
  int64_t t0 = sp_interruptible_now_ns();
  int stop = 0;
  for (long long i = 0; i < n; i++) stop |= sp_interruptible_check(&it);
  int64_t t1 = sp_interruptible_now_ns();
  if (stop) return NULL;
  return PyFloat_FromDouble((double)(t1 - t0) / (double)n);
}

static PyObject *release(PyObject *self, PyObject *arg) {
  (void)self;
  long long n = PyLong_AsLongLong(arg);
  if (n <= 0) return PyErr_Occurred() ? NULL : PyFloat_FromDouble(0);
  int64_t t0 = sp_interruptible_now_ns();
  for (long long i = 0; i < n; i++) {
    Py_BEGIN_ALLOW_THREADS
    Py_END_ALLOW_THREADS
  }
  int64_t t1 = sp_interruptible_now_ns();
  return PyFloat_FromDouble((double)(t1 - t0) / (double)n);
}

static PyObject *loop(PyObject *self, PyObject *args) {
  (void)self;
  long long n;
  long interval_us;
  int checked;
  if (!PyArg_ParseTuple(args, "Llp", &n, &interval_us, &checked)) return NULL;
  sp_interruptible it;
  sp_interruptible_init(&it, interval_us);
  double x = 1.0;
  int64_t t0 = sp_interruptible_now_ns();
  if (checked) {
    for (long long i = 0; i < n; i++) {
      if (sp_interruptible_check(&it)) return NULL;
      x = x * 1.0000001 + 1e-9;
    }
  } else {
    for (long long i = 0; i < n; i++) x = x * 1.0000001 + 1e-9;
  }
  int64_t t1 = sp_interruptible_now_ns();
  g_sink = x;
  return PyFloat_FromDouble((double)(t1 - t0));
}

static PyMethodDef methods[] = {
    {"fast_path", fast_path, METH_O, "ns per check when none is due"},
    {"release", release, METH_O, "ns per GIL release + re-take (run it with a thread waiting for the contended figure)"},
    {"loop", loop, METH_VARARGS, "loop(n, interval_us, checked): ns for a tight numeric loop"},
    {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "sigprobe_interruptible_bench", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_sigprobe_interruptible_bench(void);
PyMODINIT_FUNC PyInit_sigprobe_interruptible_bench(void) {
  PyObject *m = PyModule_Create(&module);
  if (m && PyModule_AddIntConstant(m, "DEFAULT_US", SP_INTERRUPTIBLE_DEFAULT_US) != 0) Py_CLEAR(m);
  return m;
}

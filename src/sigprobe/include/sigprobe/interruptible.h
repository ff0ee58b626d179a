/* sigprobe/interruptible.h: make a long native loop in a Python extension
 * stop promptly on Ctrl+C and on Jupyter's "interrupt kernel", everywhere.
 *
 * Copy this one file into your extension, or take it from the installed
 * package (sigprobe.get_include()). C99, nothing beyond Python.h and the C
 * library; POSIX, MinGW and MSVC.
 *
 * Why (measured by sigprobe, see its reference): a C-level SIGINT handler is
 * defeated somewhere. ipykernel puts Python's own handler back around every
 * message, so one installed at import is gone by the next cell; on Windows a
 * kernel has no console and is interrupted through an event that ipykernel's
 * poller thread turns into interrupt_main(), which needs the GIL; in message
 * mode the kernel's control thread needs the GIL to act at all. What works in
 * every one of those cells is code that calls PyErr_CheckSignals() and lets
 * go of the GIL now and then. This header is that pattern, tested:
 *
 *     sp_interruptible it;
 *     sp_interruptible_init(&it, SP_INTERRUPTIBLE_DEFAULT_US);
 *     for (i = 0; i < n; i++) {
 *         if (sp_interruptible_check(&it)) return NULL;  // KeyboardInterrupt is set
 *         work(i);
 *     }
 *
 * and, for code that already runs without the GIL:
 *
 *     int stop = 0;
 *     Py_BEGIN_ALLOW_THREADS
 *     for (i = 0; i < n && !(stop = sp_interruptible_check_nogil(&it)); i++) work(i);
 *     Py_END_ALLOW_THREADS
 *     if (stop) return NULL;
 *
 * What it guarantees, on the thread that calls it: the GIL variant calls
 * PyErr_CheckSignals() whenever it reads the clock (about
 * SP_INTERRUPTIBLE_READS times per interval: a signal that Python's handler
 * has caught is seen within about interval/READS), and every
 * SP_INTERRUPTIBLE_HANDOVER_US (or every interval, if longer) releases and
 * re-takes the GIL first, so a thread waiting for it (ipykernel's poller or
 * control thread) gets it. Not more often: CPython hands the GIL to a thread
 * that waits for it only once that thread has waited a whole switch interval
 * (sys.getswitchinterval(), 5 ms) without a release; each release wakes it,
 * and this thread, still running, takes the GIL back first. Released every
 * 1 ms, a Windows kernel's poller under Wine got it after 0.1 s to over
 * 0.9 s (and the interrupt missed a 0.9 s call 1 time in 8); released every
 * 10 ms, after 15 to 39 ms (6 of 6). The no-GIL variant takes the
 * GIL once per interval to call PyErr_CheckSignals(). Both return nonzero when
 * that raised (the exception is set; unwind and return NULL). Python runs
 * signal handlers only on the main thread: elsewhere the check never stops the
 * loop, as for any Python code. Between clock reads a call costs a decrement
 * and a branch: the clock is read only every `stride` calls, a stride that
 * adapts so that it is read about SP_INTERRUPTIBLE_READS times per interval.
 * An interval of 0 checks on every call. sigprobe measures it as the `recommended` and `recommended+nogil`
 * strategies in every Python and Jupyter cell; its bench reports the cost per
 * call and per release.
 *
 * Preconditions, checked by assert() in debug builds (NDEBUG unset) whenever
 * a check is due: sp_interruptible_check() with the GIL held,
 * sp_interruptible_check_nogil() without it. */
#ifndef SIGPROBE_INTERRUPTIBLE_H
#define SIGPROBE_INTERRUPTIBLE_H

#include <Python.h>

#include <assert.h>
#include <stdint.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <time.h>
#endif

/* The default interval between checks, in microseconds: far below what a
 * person notices (about 100 ms), and far above what a check and a GIL
 * release cost (sigprobe bench: nanoseconds on the fast path, microseconds
 * per release), so a tight loop that checks every iteration slows by far
 * less than 2 %. Define it before including this file to change it. */
#ifndef SP_INTERRUPTIBLE_DEFAULT_US
#define SP_INTERRUPTIBLE_DEFAULT_US 1000L
#endif

/* The GIL variant's hand-over period, in microseconds: it must be longer
 * than CPython's switch interval (sys.getswitchinterval(), 5 ms unless a
 * program changes it), for the reason above. */
#ifndef SP_INTERRUPTIBLE_HANDOVER_US
#define SP_INTERRUPTIBLE_HANDOVER_US 10000L
#endif

/* How many clock reads the stride aims at per interval. */
#ifndef SP_INTERRUPTIBLE_READS
#define SP_INTERRUPTIBLE_READS 8
#endif

#define SP_INTERRUPTIBLE_MAX_STRIDE 65536u

typedef struct sp_interruptible {
  int64_t interval_ns; /* 0: check on every call */
  int64_t due_ns;      /* the monotonic time of the next check */
  int64_t read_ns;     /* when the clock was last read */
  int64_t handover_ns; /* the GIL variant's next GIL hand-over, not before */
  unsigned stride;     /* calls between clock reads */
  unsigned countdown;  /* calls left until the next clock read */
} sp_interruptible;

static inline int64_t sp_interruptible_now_ns(void) {
#ifdef _WIN32
  static LARGE_INTEGER freq; /* constant for the life of the system */
  LARGE_INTEGER t;
  if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&t);
  return (int64_t)(t.QuadPart / freq.QuadPart) * 1000000000 +
         (int64_t)(t.QuadPart % freq.QuadPart) * 1000000000 / freq.QuadPart;
#else
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
#endif
}

/* The GIL variant's hand-over period: SP_INTERRUPTIBLE_HANDOVER_US, or the
 * interval if longer. */
static inline int64_t sp_interruptible__handover_every_ns(const sp_interruptible *it) {
  const int64_t every = (int64_t)SP_INTERRUPTIBLE_HANDOVER_US * 1000;
  return it->interval_ns > every ? it->interval_ns : every;
}

/* Starts a loop's checks, the first one interval_us from now (a negative
 * interval is taken as 0: check on every call). */
static inline void sp_interruptible_init(sp_interruptible *it, long interval_us) {
  it->interval_ns = interval_us > 0 ? (int64_t)interval_us * 1000 : 0;
  it->read_ns = sp_interruptible_now_ns();
  it->due_ns = it->read_ns + it->interval_ns;
  it->handover_ns = it->read_ns + sp_interruptible__handover_every_ns(it);
  it->stride = 1;
  it->countdown = 1;
}

/* What this call has to do: 0 nothing, SP_INTERRUPTIBLE__READ the clock was
 * read (a cheap look for a signal is in order), SP_INTERRUPTIBLE__DUE a
 * check with its GIL hand-over is due. Adapts the stride. The GIL does not
 * matter. */
#define SP_INTERRUPTIBLE__READ 1
#define SP_INTERRUPTIBLE__DUE 2
static inline int sp_interruptible__tick(sp_interruptible *it) {
  if (it->interval_ns == 0) {
    it->read_ns = sp_interruptible_now_ns(); /* for the hand-over's period */
    return SP_INTERRUPTIBLE__DUE;
  }
  if (--it->countdown != 0) return 0;
  int64_t now = sp_interruptible_now_ns();
  int64_t since = now - it->read_ns;
  it->read_ns = now;
  /* Aim at SP_INTERRUPTIBLE_READS reads per interval: more calls between
   * reads while they are quick, fewer once they take long. */
  if (since < it->interval_ns / (2 * SP_INTERRUPTIBLE_READS) && it->stride < SP_INTERRUPTIBLE_MAX_STRIDE)
    it->stride *= 2;
  else if (since > it->interval_ns / SP_INTERRUPTIBLE_READS && it->stride > 1)
    it->stride /= 2;
  it->countdown = it->stride;
  if (now < it->due_ns) return SP_INTERRUPTIBLE__READ;
  it->due_ns = now + it->interval_ns;
  return SP_INTERRUPTIBLE__DUE;
}

/* With the GIL held: 0 to go on; nonzero when PyErr_CheckSignals() raised
 * (KeyboardInterrupt is set: return NULL). */
static inline int sp_interruptible_check(sp_interruptible *it) {
  int tick = sp_interruptible__tick(it);
  if (tick == 0) return 0;
  assert(PyGILState_Check()); /* checked when the clock is read: the fast path stays a decrement */
  if (tick == SP_INTERRUPTIBLE__DUE && it->read_ns >= it->handover_ns) {
    /* A thread waiting for the GIL (ipykernel's poller on Windows, its
     * control thread in message mode) gets it here: that is how its
     * interrupt reaches this thread. */
    it->handover_ns = it->read_ns + sp_interruptible__handover_every_ns(it);
    Py_BEGIN_ALLOW_THREADS
    Py_END_ALLOW_THREADS
  }
  /* With nothing pending this is an atomic load: a signal already caught
   * by Python's handler needs no GIL hand-over to be seen. */
  return PyErr_CheckSignals() != 0;
}

/* Without the GIL (between Py_BEGIN_ALLOW_THREADS and Py_END_ALLOW_THREADS):
 * 0 to go on; nonzero when PyErr_CheckSignals() raised. The GIL is taken
 * only for the check and let go again; the exception stays set for when the
 * caller takes it back and returns NULL. */
static inline int sp_interruptible_check_nogil(sp_interruptible *it) {
  if (sp_interruptible__tick(it) != SP_INTERRUPTIBLE__DUE) return 0;
  assert(!PyGILState_Check());
  PyGILState_STATE g = PyGILState_Ensure();
  int raised = PyErr_CheckSignals() != 0;
  PyGILState_Release(g);
  return raised;
}

#endif

/* The shared monotonic clock on Windows. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "sigprobe/common.h"

int64_t sp_clock_ns(void) {
  /* QueryPerformanceCounter is system-wide (the same counter in every
   * process) and safe on any thread, including a console control handler's. */
  static volatile LONGLONG freq;
  LARGE_INTEGER c, f;
  if (!freq) {
    QueryPerformanceFrequency(&f);
    freq = f.QuadPart;
  }
  QueryPerformanceCounter(&c);
  /* Split to avoid overflowing counter * 1e9. */
  int64_t q = c.QuadPart / freq, r = c.QuadPart % freq;
  return q * 1000000000 + r * 1000000000 / freq;
}

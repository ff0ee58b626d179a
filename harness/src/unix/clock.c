/* The shared monotonic clock on POSIX. */
#include <time.h>

#include "sigprobe/common.h"

int64_t sp_clock_ns(void) {
  struct timespec ts;
  /* clock_gettime is async-signal-safe (signal-safety(7)). */
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

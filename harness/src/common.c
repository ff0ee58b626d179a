/* Error formatting and string helpers shared by every part of the harness. */
#include "sigprobe/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sp_fail(sp_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

char *sp_strlcpy(char *dst, const char *src, size_t n) {
  if (n == 0) return dst;
  size_t k = strlen(src);
  if (k >= n) k = n - 1;
  memcpy(dst, src, k);
  dst[k] = '\0';
  return dst;
}

int sp_ms_until(int64_t deadline_ns) {
  int64_t left = deadline_ns - sp_clock_ns();
  if (left <= 0) return 0;
  int64_t ms = (left + 999999) / 1000000;
  return ms > 1000000 ? 1000000 : (int)ms;
}

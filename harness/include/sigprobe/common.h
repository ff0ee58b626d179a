/* sigprobe: shared definitions.
 *
 * Error convention, used by every sp_ function: 0 (or a documented
 * non-negative value) on success, a negative SP_E* code on failure. Functions
 * that can fail take an sp_error* and fill it with one line naming the failing
 * call, e.g. "posix_openpt: No such device".
 */
#ifndef SIGPROBE_COMMON_H
#define SIGPROBE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define SP_OK 0
#define SP_EFAIL (-1)        /* a system call failed; the sp_error says which */
#define SP_EINVAL (-2)       /* bad input: unknown name, malformed line */
#define SP_ETIMEOUT (-3)     /* a deadline passed */
#define SP_EOF (-4)          /* the other side closed the channel */
#define SP_EUNSUPPORTED (-5) /* does not exist on this platform or host */

#define SP_ERROR_MAX 256

typedef struct sp_error {
  char msg[SP_ERROR_MAX];
} sp_error;

/* Formats msg into err (when err is not NULL) and returns code. */
int sp_fail(sp_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Monotonic time in nanoseconds, from the clock every process on the machine
 * shares (CLOCK_MONOTONIC; QueryPerformanceCounter on Windows), so times taken
 * in different processes can be subtracted. Async-signal-safe. */
int64_t sp_clock_ns(void);

/* Whole milliseconds from now until deadline_ns (sp_clock_ns time), rounded
 * up: 0 once it has passed, at most 1000000 (a wait's unit, not a limit). */
int sp_ms_until(int64_t deadline_ns);

/* Copies src into dst (size n), always NUL-terminating. Returns dst. */
char *sp_strlcpy(char *dst, const char *src, size_t n);

#define SP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif

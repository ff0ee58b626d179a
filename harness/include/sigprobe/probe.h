/* sigprobe: the probe side. A probe registers one strategy, reports
 * "ready", works in a bounded loop polling its flag, and reports every
 * handler that fired and how the loop ended.
 *
 * The probe state is process-wide (signal handlers have no context
 * argument), so there is no handle: call sp_probe_init() once in main().
 */
#ifndef SIGPROBE_PROBE_H
#define SIGPROBE_PROBE_H

#include <stdbool.h>
#include "sigprobe/common.h"

/* Opens the report channel named by SIGPROBE_REPORT and records the SIGINT
 * disposition found on entry, before the caller installs anything. On
 * failure prints one line on stderr and exits 3. */
void sp_probe_init(void);

/* Reports "ready" with the host facts and the strategies registered (in
 * registration order). Call it after installing them. */
void sp_probe_ready(const char *const *strategies, int n);

/* Reports "unsupported" with the reason and exits 0. */
void sp_probe_unsupported(const char *reason);

/* Reports "error" (reason: "<call>: <strerror>") and exits 3. */
void sp_probe_fail(const char *call);

/* Records that `handler` (a string literal) saw signal `signo`, stamping the
 * time now. si_code is the raw code (or SP_NO_SI_CODE when the handler has
 * no siginfo), sender_pid/sender_uid -1 when unknown. Async-signal-safe: it writes
 * only to a preallocated slot array with atomics and one byte to a pipe. */
#define SP_NO_SI_CODE (-100000)
void sp_probe_record(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid);

/* Same, with the time and thread taken elsewhere (a self-pipe handler stamps
 * them and the main loop records them). Async-signal-safe. */
void sp_probe_record_at(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid,
                        int64_t t_ns, bool main_thread);

#ifdef _WIN32
/* Windows: records that `handler` saw `what` (both string literals), e.g. a
 * console control type ("CTRL_C_EVENT") or "JPY_INTERRUPT_EVENT", which no
 * signal number names. Safe on any thread, including one the system injects
 * for a console control handler. */
void sp_probe_record_named(const char *handler, const char *what);
#endif

/* True when called on the thread that called sp_probe_init(). Async-signal-safe. */
bool sp_probe_on_main_thread(void);

/* A descriptor the loop polls besides its own; on_readable is called on the
 * main thread when it is readable. */
typedef struct sp_watch {
  int fd;
  void (*on_readable)(int fd);
} sp_watch;

/* The bounded work loop. Each iteration polls the report channel (for the
 * runner's "stop"), the probe's own wake pipe and the watches, and checks the
 * flag. It ends when something fired (after lingering linger_ms for others
 * to fire too), when the runner asks, when the runner goes away, or after
 * SIGPROBE_LOOP_MS (default 10000). Returns the stopped_by name. */
const char *sp_probe_loop(const sp_watch *watches, int n, int linger_ms);

/* Writes the pending "fired" events and "done", closes the channel and
 * returns the exit code for main (0). */
int sp_probe_done(const char *stopped_by);

/* The report channel descriptor (closed in children that must not hold it). */
int sp_probe_channel_fd(void);

#endif

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
#include "sigprobe/protocol.h"

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

/* Records that `handler` saw `what` (both string literals), which no signal
 * number names: on Windows a console control type ("CTRL_C_EVENT") or
 * "JPY_INTERRUPT_EVENT". Safe on any thread, including one the system injects
 * for a console control handler, and async-signal-safe. */
void sp_probe_record_named(const char *handler, const char *what);

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

/* ---- In-process runs ----
 * For a probe that lives inside a long-lived process (the Python extension
 * probe): many runs one after another, each one "ready" ... "done" sequence,
 * and nothing here exits the process. Use these instead of sp_probe_init(),
 * sp_probe_loop() and sp_probe_done(); the record functions above are shared.
 * Runs must not overlap (the state is process-wide). */

/* Starts a run: forgets every record made before (records made between runs
 * belong to no run), makes the calling thread the "main" thread of the run,
 * records the SIGINT disposition found now, and opens the report channel
 * named by SIGPROBE_REPORT as it is now. An inherited descriptor number stays
 * open across runs (a "stop" left unread on it is discarded here); a file path
 * or unix: socket is opened here and closed by sp_probe_end() or
 * sp_probe_abort(). Returns 0, or a negative code with err naming the failing
 * call; nothing is reported then (there may be no channel). */
int sp_probe_begin(sp_error *err);

/* The SIGINT disposition sp_probe_begin() found. */
sp_disposition sp_probe_entry_disposition(void);

/* Like sp_probe_ready(), and appends extra_members (NULL, or JSON members
 * without braces, e.g. "\"python_handler\":\"SIG_IGN\"") to the event.
 * Returns 0, or SP_EINVAL when the line does not fit. */
int sp_probe_ready_extra(const char *const *strategies, int n, const char *extra_members);

/* Report "unsupported" / "error" with the reason, and return. */
void sp_probe_report_unsupported(const char *reason);
void sp_probe_report_error(const char *reason);

/* How many records this run has so far (published or still being filled),
 * and the handler name of record i in claim order (NULL while it is still
 * being filled). Async-signal-safe. */
int sp_probe_fired_count(void);
const char *sp_probe_fired_handler(int i);

/* One wait of the run's loop: polls the report channel, the wake pipe (fed by
 * every record) and the watches for up to timeout_ms, and calls on_readable
 * for the watches that are readable. Returns NULL (woken, timed out or
 * interrupted: the caller checks its flags), "runner" when the runner wrote
 * on the channel ("stop"), or "runner-gone" when it closed it. Touches no
 * state but the probe's, so it may run with the Python GIL released. */
const char *sp_probe_wait(const sp_watch *watches, int n, int timeout_ms);

/* Ends the run: writes the pending "fired" events and "done", then closes a
 * per-run channel (an inherited descriptor stays open for the next run). */
void sp_probe_end(const char *stopped_by);

/* Ends a run that reported "unsupported" or "error" instead of "done". */
void sp_probe_abort(void);

/* NAME's value from the process's environment, as UTF-8, into buf (true), or
 * false when unset, not convertible or longer than size. On Windows not
 * getenv(): that reads one C runtime's copy, which misses what another
 * runtime's putenv set (an extension built against msvcrt inside a ucrt
 * Python). */
bool sp_probe_env(const char *name, char *buf, size_t size);

#ifdef _WIN32
/* The handle an environment variable names by number, as Jupyter passes
 * JPY_INTERRUPT_EVENT, if this process holds it. Returns NULL and sets *why
 * ("is not set" / "does not name a handle this process holds") otherwise. */
void *sp_probe_env_handle(const char *name, const char **why);
#endif

#endif

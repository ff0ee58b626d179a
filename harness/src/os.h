/* sigprobe: the platform primitives, internal to the harness.
 *
 * Everything in the .c files of harness/src/ is portable; what differs per platform is
 * one of the functions or tables below, implemented once in
 * harness/src/unix/ and once in harness/src/win/ (CMake picks the folder).
 * Besides these, the platform folders implement the public platform
 * interface (harness/include/sigprobe/platform.h: spawn, deliver, channel,
 * wait), and these public functions, which differ by platform: the catalog
 * of cell.h (sp_platform_name, sp_platform_is_wine, sp_delivery_signal,
 * sp_delivery_what, sp_delivery_default_exit, sp_cell_unsupported_reason)
 * and sp_probe_env of probe.h. No other function is defined in both folders.
 *
 * ---- The probe runtime ----
 * harness/src/probe.c holds the probe runtime once: the slots, the events,
 * the fired bookkeeping, the loop and the run semantics (see probe.h). It
 * asks the platform only for what follows, implemented by
 * harness/src/unix/probe.c and harness/src/win/probe.c (CMake picks one).
 * Nothing else is defined in both of those files, except sp_probe_env(),
 * which probe.h declares.
 *
 * The channel, the wake-up and the host's per-run objects (Windows:
 * SIGPROBE_STOP, JPY_INTERRUPT_EVENT) are the platform file's own state;
 * the runtime reaches them only through these functions. Functions return 0
 * on success and a negative SP_E* code with err naming the failing call,
 * unless said otherwise.
 */
#ifndef SIGPROBE_OS_H
#define SIGPROBE_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sigprobe/cell.h"
#include "sigprobe/json.h"
#include "sigprobe/outcome.h"
#include "sigprobe/probe.h"
#include "sigprobe/protocol.h"

/* ---- Threads and atomics: async-signal-safe, and safe on any thread ---- */

/* The calling thread's id (Linux: the kernel's tid). */
int64_t sp__thread_id(void);

/* A counter that signal handlers and injected threads update. add returns
 * the value before and is a full barrier; load acquires; store releases. */
typedef volatile long sp__atomic;
long sp__atomic_add(sp__atomic *a, long v);
long sp__atomic_load(sp__atomic *a);
void sp__atomic_store(sp__atomic *a, long v);

/* ---- The wake-up that every record sets and the wait watches ---- */

/* Creates it once (later calls return 0 at once). */
int sp__wake_open(sp_error *err);
/* Sets it. Async-signal-safe; a wake already pending is enough. */
void sp__wake_set(void);
/* Clears every wake pending. */
void sp__wake_clear(void);

/* ---- The report channel (the forms are in protocol.h) ---- */

/* Opens the channel SIGPROBE_REPORT names (`where`). *inherited is true for
 * a descriptor or handle number the process inherited: the runtime keeps it
 * open across in-process runs. Any other form is opened for this run. */
int sp__chan_open(const char *where, bool *inherited, sp_error *err);
bool sp__chan_is_open(void);
/* Writes the whole buffer; a runner that is gone is noticed by the wait. */
void sp__chan_write(const char *buf, size_t len);
/* Closes the channel (release: close the descriptor or handle; otherwise
 * only forget it, for an inherited one that is not this run's to close). */
void sp__chan_close(bool release);
/* The channel as an int: a descriptor, or a Windows handle's value. */
int sp__chan_fd(void);

/* Called at the start of every run once the channel is open: picks up the
 * host's per-run objects and discards a "stop" the runner sent after the
 * previous run's "done" (it is stale). */
void sp__run_prepare(void);

/* One wait: the channel (the runner's stop, or its going away), the wake-up
 * and the watches, for up to timeout_ms; calls on_readable for the watches
 * that are ready. Returns NULL (woken, timed out or interrupted), "runner"
 * or "runner-gone" (see sp_probe_wait in probe.h). */
const char *sp__wait(const sp_watch *watches, int n, int timeout_ms);

/* ---- Host facts ---- */

/* What the host left for SIGINT / Ctrl+C, read without changing it. */
sp_disposition sp__sigint_disposition(void);
/* Fills the host facts of "ready": pid, pgid, sid, tty and foreground on
 * POSIX, the "console" object on Windows. */
void sp__ready_facts(sp_event *ev);
/* Fills "done"'s ignored and pending lists. in_process: the probe lives in
 * a host that may still need what is looked at (a kernel's interrupt event),
 * so looking must leave it as it was. */
void sp__done_facts(sp_event *ev, bool in_process);
/* The name of a siginfo si_code (e.g. "SI_KERNEL"), or "SI_CODE(n)" in buf. */
const char *sp__si_code_name(int code, char *buf, size_t n);
/* "<call>: <the last error's text>" into buf (errno, or GetLastError()). */
void sp__last_error(const char *call, char *buf, size_t n);

/* ---- Names and facts (harness/src/unix/platform.c, harness/src/win/platform.c) ---- */

/* The host, strategy and delivery names, in the order of cell.h's enums. */
extern const char *const sp__host_names[SP_HOST_COUNT];
extern const char *const sp__strategy_names[SP_STRATEGY_COUNT];
extern const char *const sp__delivery_names[SP_DELIVERY_COUNT];

/* The signals this platform names, for sp_signal_name and sp_signal_parse. */
typedef struct sp__signal {
  int signo;
  const char *name;
} sp__signal;
extern const sp__signal sp__signals[];
extern const size_t sp__signal_count;

/* True when a cell id's platform part (len bytes of name) is one this
 * runner runs: its own name; on Windows "windows" and "windows-wine" alike
 * (the same cells run on both, see cell.h). */
bool sp__platform_accepts(const char *name, size_t len);

/* What an executable's file name ends with ("" or ".exe"). */
extern const char sp__exe_suffix[];

/* ---- How a probe ended (harness/src/unix/exit.c, harness/src/win/exit.c) ---- */

/* "exited with code N" in the platform's words (Windows: the NTSTATUS name
 * when the code is one), and the exit's "code" member (plus "ntstatus") of
 * the outcome's JSON. */
void sp__exit_code_text(const sp_exit *ex, char *buf, size_t n);
void sp__exit_code_json(sp_jw *w, const sp_exit *ex);

/* Where this platform, as run here, is known to differ from the reference
 * behaviour (Wine), the note for the outcome; NULL otherwise. */
const char *sp__outcome_note(const sp_outcome *o);

/* ---- The run's token (harness/src/token.c over harness/src/{unix,win}/self.c) ---- */

/* n bytes from the OS's CSPRNG (getrandom, BCryptGenRandom). Returns 0 or
 * SP_EFAIL naming the call; never a weaker source. */
int sp__random_bytes(void *buf, size_t n, sp_error *err);

/* A new token: SP_TOKEN_HEX lowercase hexadecimal digits of 32 random bytes. */
int sp__token_new(char out[SP_TOKEN_HEX + 1], sp_error *err);

#endif

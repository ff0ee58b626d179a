/* sigprobe: outcomes, how a probe ended, and verdicts.
 *
 * An outcome is what happened in one run of a cell. The verdict is derived
 * from the outcome by sp_outcome_derive_verdict() and nowhere else. */
#ifndef SIGPROBE_OUTCOME_H
#define SIGPROBE_OUTCOME_H

#include <stdbool.h>
#include "sigprobe/cell.h"
#include "sigprobe/protocol.h"

typedef enum sp_verdict {
  SP_VERDICT_HANDLED,       /* a handler saw it and the work stopped cleanly */
  SP_VERDICT_DEFERRED,      /* the native work did not notice; it took effect after the call returned */
  SP_VERDICT_KILLED,        /* the default action ended the process: it arrived, no handler ran */
  SP_VERDICT_IGNORED,       /* it reached the process but the disposition was SIG_IGN */
  SP_VERDICT_NOT_DELIVERED, /* nothing reached the probe */
  SP_VERDICT_LOST,          /* accepted by the host but had no effect at all */
  SP_VERDICT_HUNG,          /* no answer before the deadline; the harness cleaned up */
  SP_VERDICT_UNSUPPORTED,   /* does not exist on this platform or host; with the reason */
  SP_VERDICT_ERROR,         /* the harness could not run it; with the reason */
  SP_VERDICT_COUNT
} sp_verdict;

const char *sp_verdict_name(sp_verdict v);
int sp_verdict_parse(const char *name);

typedef enum sp_exit_kind {
  SP_EXIT_NONE,     /* the probe was never started, or its end was not observed */
  SP_EXIT_EXITED,   /* exited with code */
  SP_EXIT_SIGNALED, /* killed by signal (core or not) */
  SP_EXIT_TIMEOUT   /* the deadline passed; the harness killed it */
} sp_exit_kind;

typedef struct sp_exit {
  sp_exit_kind kind;
  int code;   /* SP_EXIT_EXITED; on Windows the bits of the DWORD exit code (see sp_exit_win_code) */
  int signal; /* SP_EXIT_SIGNALED */
  bool core;  /* SP_EXIT_SIGNALED */
} sp_exit;

/* Windows: the exit code as the DWORD it is (0xC000013A, not negative). The
 * outcome JSON prints it so, with "ntstatus" naming it when sp_ntstatus_name
 * knows it: {"kind":"exited","code":3221225786,"ntstatus":"STATUS_CONTROL_C_EXIT"}. */
#define sp_exit_win_code(ex) ((uint32_t)(ex)->code)

/* Decodes a POSIX wait status exactly. */
sp_exit sp_exit_from_wait_status(int status);

/* Decodes a Windows exit code (GetExitCodeProcess) exactly, naming the
 * NTSTATUS codes a crash or a console event ends a process with. */
sp_exit sp_exit_from_win_code(uint32_t code);
/* The NTSTATUS name of code, or NULL when it is none sigprobe knows. */
const char *sp_ntstatus_name(uint32_t code);
const char *sp_exit_kind_name(sp_exit_kind k);

typedef struct sp_fired {
  char handler[SP_NAME_MAX];
  char sig[SP_NAME_MAX];
  char si_code[SP_NAME_MAX];
  int64_t sender_pid, sender_uid;
  bool main_thread;
  int64_t t_ns;
  int64_t latency_ns; /* t_ns - delivered_t_ns */
} sp_fired;

#define SP_FIRED_MAX 16

/* The names a run is reported under. Native cells take them from their
 * sp_cell; cells whose probe lives in Python or a kernel pass their own
 * (sigprobe-run --label), since their hosts are not native hosts. */
typedef struct sp_labels {
  char id[128];
  char host[SP_NAME_MAX];
  char strategy[2 * SP_NAME_MAX];
  char delivery[SP_NAME_MAX];
} sp_labels;

/* Fills labels from a native cell. */
void sp_labels_from_cell(sp_labels *l, const sp_cell *cell);
/* Fills labels from an id "platform/host/strategy/delivery" with any names.
 * Returns SP_EINVAL (err says why) when the id does not have four parts. */
int sp_labels_parse(sp_labels *l, const char *id, sp_error *err);

/* What the harness knows about one run. The flags say which steps were
 * reached; sp_outcome_derive_verdict() reads only these fields. */
typedef struct sp_outcome {
  sp_cell cell;
  sp_labels label;
  /* The probe was not started by the runner (a kernel's, reached through
   * sigprobe-run --attach): its host keeps running after the run. */
  bool attached;
  /* Set when the run could not even start, or the host cannot carry the
   * delivery: the verdict is then unsupported/error with this reason. */
  bool unsupported;
  bool harness_error;
  char reason[SP_REASON_MAX];

  bool ready_seen;
  sp_event ready; /* valid when ready_seen */
  bool delivered;
  int delivered_signal;
  int64_t delivered_t_ns;
  int64_t window_from_ns; /* the window's start: delivery, or when an attached runner heard of it */
  int64_t runner_pid;
  bool stop_requested; /* the runner asked the loop to end: nothing noticed in the window */
  bool kernel_discarded; /* ... or at once: the kernel had discarded the signal (SigIgn, not blocked) */

  int n_fired;
  sp_fired fired[SP_FIRED_MAX];
  bool done_seen;
  sp_event done; /* valid when done_seen */
  bool result_seen;
  sp_event result; /* valid when result_seen: the Python side's account */

  sp_exit exit;
  int64_t spawn_t_ns, end_t_ns;

  sp_verdict verdict;
  /* A known platform deviation that shaped this outcome (e.g. a Wine
   * behaviour that differs from Windows), said in a sentence; "" when none.
   * A note never changes the verdict. Set by sp_outcome_annotate(). */
  char note[SP_REASON_MAX];
} sp_outcome;

void sp_outcome_init(sp_outcome *o, const sp_cell *cell);

/* Records a fired event, computing its latency from delivered_t_ns. */
void sp_outcome_add_fired(sp_outcome *o, const sp_event *fired);

/* Derives the verdict from the outcome's facts, storing it (and, where one
 * applies, the reason) in the outcome. The rules, in order:
 *   unsupported                     -> unsupported
 *   harness error                   -> error
 *   ended by the deadline           -> hung
 *   the kernel never replied        -> hung
 *   a handler fired, ended cleanly  -> handled
 *   killed by the delivered signal  -> killed
 *   Windows: ended, without "done", by the exit code of the delivery's
 *   default action (STATUS_CONTROL_C_EXIT, the terminate code) -> killed
 *   ended cleanly after "done", nothing fired:
 *     delivered signal ignored      -> ignored
 *     KeyboardInterrupt after the
 *     native call returned          -> deferred
 *     delivered signal pending      -> lost
 *     accepted by an attached host
 *     and no effect anywhere        -> lost
 *     otherwise                     -> not-delivered
 *   anything else (crash, odd exit) -> error, with the reason.
 * "Ended cleanly" is exit code 0, or, for an attached probe whose host
 * lives on, a result from the Python side. A KeyboardInterrupt raised from
 * inside the native call is reported by the probe as a fired "check-signals". */
sp_verdict sp_outcome_derive_verdict(sp_outcome *o);

/* Adds the note for a known platform deviation, from the outcome's facts and
 * verdict (Wine: see sp_outcome.note). Does nothing off Windows. */
void sp_outcome_annotate(sp_outcome *o);

/* Writes the outcome as one JSON line (with trailing newline) into buf.
 * Returns the length or SP_EINVAL if buf is too small. */
int sp_outcome_to_json(const sp_outcome *o, char *buf, size_t n);

#endif

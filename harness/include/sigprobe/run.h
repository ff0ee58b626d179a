/* sigprobe: running one cell. */
#ifndef SIGPROBE_RUN_H
#define SIGPROBE_RUN_H

#include "sigprobe/outcome.h"

/* Waiting windows, in milliseconds. Every one is multiplied by the
 * environment variable SIGPROBE_TIMEOUT_MULTIPLIER (default 1) by
 * sp_run_options_default(). */
typedef struct sp_run_options {
  const char *probe_dir; /* where the sigprobe-probe-<strategy> executables are */
  int ready_ms;          /* spawn -> "ready" */
  int window_ms;         /* delivery -> first "fired": after it, nothing noticed; the loop is asked to stop */
  int deadline_ms;       /* delivery -> exit, the whole run's end */
} sp_run_options;

/* A probe's start is not measured, so its window is generous: a loaded
 * machine, or a new console under Wine, takes seconds to start one, and a probe
 * that reports ready early costs nothing of it. */
#define SP_READY_MS_DEFAULT 10000
#define SP_WINDOW_MS_DEFAULT 100
#define SP_DEADLINE_MS_DEFAULT 3000

/* The largest SIGPROBE_TIMEOUT_MULTIPLIER: the longest default (10 s) times it
 * stays far inside an int of milliseconds. */
#define SP_TIMEOUT_MULTIPLIER_MAX 1000

/* Reads SIGPROBE_TIMEOUT_MULTIPLIER into *k (1 when unset or empty). Returns
 * SP_EINVAL, with *k = 1, unless it is a number above 0 and at most
 * SP_TIMEOUT_MULTIPLIER_MAX. */
int sp_timeout_multiplier(double *k, sp_error *err);

/* Fills the defaults, scaled by SIGPROBE_TIMEOUT_MULTIPLIER (ignored when
 * invalid: sp_timeout_multiplier says why). */
void sp_run_options_default(sp_run_options *opt, const char *probe_dir);

/* Runs one cell from start to end and fills o, verdict included. Never
 * leaves the probe or anything it started running. Returns 0; the outcome
 * carries every failure (verdict error/hung/unsupported with a reason). */
int sp_run_cell(const sp_cell *cell, const sp_run_options *opt, sp_outcome *o);

/* Runs a cell whose probe is a whole command line (argv[0] the program),
 * e.g. a Python interpreter running the extension probe, under the native
 * host and delivery of `cell`, and reports it under `label`. */
int sp_run_exec(const sp_cell *cell, const sp_labels *label, char *const argv[], const sp_run_options *opt,
                sp_outcome *o);

/* Runs a cell whose probe someone else started (inside a Jupyter kernel):
 * listens on socket_path and talks with the parent on stdin/stdout.
 * Protocol, one JSON line each: the runner prints {"ev":"listening",
 * "report":"<SIGPROBE_REPORT for the probe, the run's token included>"}; the
 * probe connects, says hello with the token (protocol.h) and reports ready; the runner prints {"ev":"deliver"}; the
 * parent delivers, then writes {"ev":"delivered","t_ns":..,"sig":..,
 * "sender_pid":..} and, when the call has ended, {"ev":"result",...} to the
 * runner's stdin; the runner prints the outcome. A "result" before ready
 * (the cell failed) ends the run as an error. */
int sp_run_attached(const char *socket_path, const sp_labels *label, const sp_run_options *opt, sp_outcome *o);

#endif

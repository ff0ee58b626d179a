/* A few lines of TAP for the Windows cell tests (no Criterion for MinGW).
 * Each test executable prints "ok N - name" / "not ok N - name" lines with
 * "# why" diagnostics and exits 0 only when every check passed. */
#ifndef SIGPROBE_TESTS_WIN_TAP_H
#define SIGPROBE_TESTS_WIN_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "sigprobe/cell.h"
#include "sigprobe/platform.h"
#include "sigprobe/run.h"

static int tap_n, tap_failed;

static inline void tap_ok(int pass, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%sok %d - ", pass ? "" : "not ", ++tap_n);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!pass) tap_failed++;
  fflush(stdout);
}

static inline void tap_skip(const char *name, const char *why) {
  printf("ok %d - %s # SKIP %s\n", ++tap_n, name, why);
  fflush(stdout);
}

static inline int tap_done(void) {
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}

/* The probes are in probes\ beside the test executables (and sigprobe-run). */
static inline const char *tap_probe_dir(void) {
  static char dir[4096 + 16];
  if (sp_self_dir(dir, sizeof dir - 16, NULL) != 0) sp_strlcpy(dir, ".", sizeof dir);
  strncat(dir, "\\probes", sizeof dir - strlen(dir) - 1);
  return dir;
}

/* Runs one cell ("host/strategy/delivery") and prints its outcome as a TAP
 * diagnostic. Returns 0, or -1 when the id does not parse. */
static inline int tap_run(const char *id, sp_outcome *o) {
  sp_cell cell;
  sp_error err;
  sp_run_options opt;
  char line[16384];
  if (sp_cell_parse(id, &cell, &err) != 0) {
    tap_ok(0, "%s parses (%s)", id, err.msg);
    return -1;
  }
  sp_run_options_default(&opt, tap_probe_dir());
  sp_run_cell(&cell, &opt, o);
  if (sp_outcome_to_json(o, line, sizeof line) > 0) printf("# %s", line);
  return 0;
}

/* The first fired handler's facts, or NULL. */
static inline const sp_fired *tap_first(const sp_outcome *o) { return o->n_fired > 0 ? &o->fired[0] : NULL; }

#endif

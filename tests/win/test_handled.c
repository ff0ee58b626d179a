/* Cells whose interrupt a handler sees: the verdict, which handler fired,
 * what it saw and on which kind of thread. These hold on Windows and are
 * what Wine reproduces faithfully (the notes in harness/src/win/exit.c). */
#include "tap.h"

typedef struct expect {
  const char *cell;
  const char *handler, *what;
} expect;

static const expect cases[] = {
    /* SetConsoleCtrlHandler runs on a thread the system injects. */
    {"console/console-ctrl/ctrl-c", "console-ctrl", "CTRL_C_EVENT"},
    {"no-window/console-ctrl/ctrl-c", "console-ctrl", "CTRL_C_EVENT"},
    {"jupyter-launch/console-ctrl/ctrl-c", "console-ctrl", "CTRL_C_EVENT"},
    /* The CRT maps CTRL_C_EVENT to SIGINT and calls the handler from the
     * same injected thread. */
    {"console/signal/ctrl-c", "signal", "SIGINT"},
    {"jupyter-launch/signal/ctrl-c", "signal", "SIGINT"},
    /* Registered after the CRT's handler, console-ctrl is called first and
     * returning TRUE ends the chain: the signal() handler never runs. */
    {"console/all/ctrl-c", "console-ctrl", "CTRL_C_EVENT"},
    /* The inherited event works with every creation flag. */
    {"console/event/set-event", "event", "JPY_INTERRUPT_EVENT"},
    {"new-group/event/set-event", "event", "JPY_INTERRUPT_EVENT"},
    {"no-window/event/set-event", "event", "JPY_INTERRUPT_EVENT"},
    {"detached/event/set-event", "event", "JPY_INTERRUPT_EVENT"},
    {"jupyter-launch/event/set-event", "event", "JPY_INTERRUPT_EVENT"},
    {"jupyter-launch/all/set-event", "event", "JPY_INTERRUPT_EVENT"},
};

int main(void) {
  for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
    const expect *e = &cases[i];
    sp_outcome o;
    if (tap_run(e->cell, &o) != 0) continue;
    const sp_fired *f = tap_first(&o);
    tap_ok(o.verdict == SP_VERDICT_HANDLED, "%s is handled (got %s: %s)", e->cell, sp_verdict_name(o.verdict), o.reason);
    tap_ok(o.n_fired == 1, "%s: exactly one handler fired (got %d)", e->cell, o.n_fired);
    tap_ok(f && strcmp(f->handler, e->handler) == 0 && strcmp(f->sig, e->what) == 0, "%s: %s saw %s", e->cell,
           e->handler, e->what);
    tap_ok(f && !f->main_thread, "%s: %s ran on another thread than main", e->cell, e->handler);
    tap_ok(o.exit.kind == SP_EXIT_EXITED && o.exit.code == 0, "%s: the probe exited 0", e->cell);
  }
  return tap_done();
}

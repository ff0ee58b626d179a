/* End-to-end cells: a real probe under a real host, a real delivery. Each
 * asserts the verdict, the handler that fired and the sender. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "sigprobe/run.h"

static sp_outcome run(const char *id) {
  sp_cell cell;
  sp_error err;
  sp_run_options opt;
  sp_outcome o;
  cr_assert_eq(sp_cell_parse(id, &cell, &err), 0, "%s", err.msg);
  sp_run_options_default(&opt, SP_PROBE_DIR);
  sp_run_cell(&cell, &opt, &o);
  return o;
}

#define assert_verdict(o, v) \
  cr_assert_eq((o).verdict, (v), "verdict %s (%s)", sp_verdict_name((o).verdict), (o).reason)

Test(cells, no_tty_sigaction_kill_is_handled_and_names_the_runner, .timeout = 10) {
  sp_outcome o = run("no-tty/sigaction/kill");
  assert_verdict(o, SP_VERDICT_HANDLED);
  cr_assert_eq(o.n_fired, 1);
  cr_assert_str_eq(o.fired[0].handler, "sigaction");
  cr_assert_str_eq(o.fired[0].si_code, "SI_USER");
  cr_assert_eq(o.fired[0].sender_pid, getpid());
  cr_assert(o.fired[0].main_thread);
  cr_assert_gt(o.fired[0].latency_ns, 0);
  cr_assert_eq(o.ready.foreground, -1, "no-tty has no terminal");
}

Test(cells, tty_sigaction_tty_intr_is_sent_by_the_kernel, .timeout = 10) {
  sp_outcome o = run("tty/sigaction/tty-intr");
  assert_verdict(o, SP_VERDICT_HANDLED);
  cr_assert_str_eq(o.fired[0].handler, "sigaction");
  cr_assert_str_eq(o.fired[0].si_code, "SI_KERNEL");
  cr_assert_eq(o.fired[0].sender_pid, 0);
  cr_assert_eq(o.ready.foreground, 1);
  cr_assert(o.ready.tty[0]);
}

Test(cells, no_tty_none_kill_is_killed_by_sigint, .timeout = 10) {
  sp_outcome o = run("no-tty/none/kill");
  assert_verdict(o, SP_VERDICT_KILLED);
  cr_assert_eq(o.exit.kind, SP_EXIT_SIGNALED);
  cr_assert_eq(o.exit.signal, SIGINT);
  cr_assert_eq(o.n_fired, 0);
}

Test(cells, background_none_kill_is_ignored, .timeout = 10) {
  sp_outcome o = run("background/none/kill");
  assert_verdict(o, SP_VERDICT_IGNORED);
  cr_assert_eq(o.ready.disposition_on_entry, SP_DISP_IGNORED);
  cr_assert_str_eq(o.done.stopped_by, "runner");
#ifdef __linux__
  /* The kernel's record (SigIgn, not blocked) ends the wait at once. */
  cr_assert(o.kernel_discarded);
#endif
}

Test(cells, background_signal_kill_reports_sigint_ignored_on_entry, .timeout = 10) {
  sp_outcome o = run("background/signal/kill");
  cr_assert_eq(o.ready.disposition_on_entry, SP_DISP_IGNORED);
  /* signal() overrides the inherited SIG_IGN, so the handler runs. */
  assert_verdict(o, SP_VERDICT_HANDLED);
  cr_assert_str_eq(o.fired[0].handler, "signal");
  cr_assert_str_eq(o.fired[0].si_code, "", "ISO C signal() handlers get no siginfo");
}

/* With every strategy registered, one SIGINT is taken exactly once: either
 * by the process-wide handler on the main thread (sigaction, then the
 * self-pipe it feeds), or by the thread sitting in sigwaitinfo(), which the
 * kernel may pick as well (measured: about 1 run in 5 here). signalfd never
 * sees it, since SIGINT is not blocked everywhere. */
Test(cells, tty_all_tty_intr_is_taken_once_by_the_handler_or_the_waiting_thread, .timeout = 10) {
  sp_outcome o = run("tty/all/tty-intr");
  assert_verdict(o, SP_VERDICT_HANDLED);
  cr_assert_eq(o.ready.strategies.n, 5);
  cr_assert_str_eq(o.ready.strategies.names[0], "signal");
  if (strcmp(o.fired[0].handler, "sigaction") == 0) {
    cr_assert_eq(o.n_fired, 2, "fired %d", o.n_fired);
    cr_assert_str_eq(o.fired[1].handler, "self-pipe");
    cr_assert_leq(o.fired[0].t_ns, o.fired[1].t_ns);
    cr_assert(o.fired[0].main_thread);
  } else {
    cr_assert_str_eq(o.fired[0].handler, "sigwait-thread");
    cr_assert_eq(o.n_fired, 1, "fired %d", o.n_fired);
    cr_assert_not(o.fired[0].main_thread);
  }
  for (int i = 0; i < o.n_fired; i++) {
    cr_assert_str_eq(o.fired[i].si_code, "SI_KERNEL");
    cr_assert_str_neq(o.fired[i].handler, "signal", "signal() was replaced by sigaction()");
    cr_assert_str_neq(o.fired[i].handler, "signalfd");
  }
}

Test(cells, no_tty_tty_intr_is_unsupported_without_spawning, .timeout = 10) {
  sp_outcome o = run("no-tty/sigaction/tty-intr");
  assert_verdict(o, SP_VERDICT_UNSUPPORTED);
  cr_assert(strstr(o.reason, "no controlling terminal"), "%s", o.reason);
  cr_assert_not(o.ready_seen);
}

Test(cells, sigterm_is_not_covered_by_a_sigint_handler, .timeout = 10) {
  sp_outcome o = run("no-tty/sigaction/sigterm");
  assert_verdict(o, SP_VERDICT_KILLED);
  cr_assert_eq(o.exit.signal, SIGTERM);
}

Test(cells, killpg_reaches_the_sigwait_thread_off_the_main_thread, .timeout = 10) {
  sp_outcome o = run("no-tty/sigwait-thread/killpg");
  assert_verdict(o, SP_VERDICT_HANDLED);
  cr_assert_str_eq(o.fired[0].handler, "sigwait-thread");
  cr_assert_not(o.fired[0].main_thread);
  cr_assert_eq(o.fired[0].sender_pid, getpid());
}

Test(cells, missing_probe_is_an_error_naming_the_path, .timeout = 10) {
  sp_cell cell = {SP_HOST_NO_TTY, SP_STRATEGY_NONE, SP_DELIVERY_KILL};
  sp_run_options opt;
  sp_outcome o;
  sp_run_options_default(&opt, "/nonexistent-sigprobe");
  sp_run_cell(&cell, &opt, &o);
  assert_verdict(o, SP_VERDICT_ERROR);
  cr_assert(strstr(o.reason, "/nonexistent-sigprobe/sigprobe-probe-none"), "%s", o.reason);
}

Test(cells, a_blocked_ignored_signal_is_not_taken_for_discarded, .timeout = 10) {
  /* SIGINT is ignored on entry but blocked for sigwaitinfo(): the kernel
   * queues it, the waiting thread takes it. */
  sp_outcome o = run("background/sigwait-thread/kill");
  assert_verdict(o, SP_VERDICT_HANDLED);
  cr_assert_not(o.kernel_discarded);
  cr_assert_str_eq(o.fired[0].handler, "sigwait-thread");
}

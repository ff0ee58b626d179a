#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sigprobe/outcome.h"

/* A real wait status from a child that does `how`. */
static int status_of(void (*how)(void)) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    how();
    _exit(99);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return status;
}

static void exit_3(void) { _exit(3); }
static void die_by_sigint(void) {
  signal(SIGINT, SIG_DFL);
  raise(SIGINT);
}
static void abort_with_core(void) {
  struct rlimit r = {RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_CORE, &r);
  if (chdir("/tmp") != 0) _exit(98);
  signal(SIGABRT, SIG_DFL);
  abort();
}

Test(outcome, exit_code_is_decoded) {
  sp_exit ex = sp_exit_from_wait_status(status_of(exit_3));
  cr_assert_eq(ex.kind, SP_EXIT_EXITED);
  cr_assert_eq(ex.code, 3);
}

Test(outcome, killed_by_sigint_is_decoded) {
  sp_exit ex = sp_exit_from_wait_status(status_of(die_by_sigint));
  cr_assert_eq(ex.kind, SP_EXIT_SIGNALED);
  cr_assert_eq(ex.signal, SIGINT);
  cr_assert_not(ex.core);
}

Test(outcome, abort_is_decoded_as_sigabrt) {
  sp_exit ex = sp_exit_from_wait_status(status_of(abort_with_core));
  cr_assert_eq(ex.kind, SP_EXIT_SIGNALED);
  cr_assert_eq(ex.signal, SIGABRT);
}

/* ---- verdict derivation ---- */

static sp_outcome base(void) {
  sp_outcome o;
  sp_cell c = {SP_HOST_NO_TTY, SP_STRATEGY_SIGACTION, SP_DELIVERY_KILL};
  sp_outcome_init(&o, &c);
  o.ready_seen = true;
  o.delivered = true;
  o.delivered_signal = SIGINT;
  o.delivered_t_ns = 1000;
  o.done_seen = true;
  strcpy(o.done.stopped_by, "runner");
  o.exit = (sp_exit){SP_EXIT_EXITED, 0, 0, false};
  return o;
}

static void fire(sp_outcome *o) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  strcpy(ev.handler, "sigaction");
  strcpy(ev.sig, "SIGINT");
  ev.main_thread = 1;
  ev.t_ns = 3500;
  sp_outcome_add_fired(o, &ev);
}

Test(verdict, handler_fired_and_clean_exit_is_handled) {
  sp_outcome o = base();
  fire(&o);
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_HANDLED);
  cr_assert_eq(o.fired[0].latency_ns, 2500);
}

Test(verdict, killed_by_the_delivered_signal_is_killed) {
  sp_outcome o = base();
  o.done_seen = false;
  o.exit = (sp_exit){SP_EXIT_SIGNALED, 0, SIGINT, false};
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_KILLED);
}

Test(verdict, killed_by_another_signal_is_an_error) {
  sp_outcome o = base();
  o.done_seen = false;
  o.exit = (sp_exit){SP_EXIT_SIGNALED, 0, SIGSEGV, true};
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_ERROR);
  cr_assert(strstr(o.reason, "crashed: killed by SIGSEGV (core dumped)"), "%s", o.reason);
}

Test(verdict, ignored_disposition_is_ignored) {
  sp_outcome o = base();
  o.done.ignored.n = 1;
  strcpy(o.done.ignored.names[0], "SIGINT");
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_IGNORED);
}

Test(verdict, pending_and_unconsumed_is_lost) {
  sp_outcome o = base();
  o.done.pending.n = 1;
  strcpy(o.done.pending.names[0], "SIGINT");
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_LOST);
}

Test(verdict, nothing_at_all_is_not_delivered) {
  sp_outcome o = base();
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_NOT_DELIVERED);
  cr_assert(o.reason[0]);
}

Test(verdict, ignoring_another_signal_does_not_count) {
  sp_outcome o = base();
  o.cell.delivery = SP_DELIVERY_SIGTERM;
  o.delivered_signal = SIGTERM;
  o.done.ignored.n = 1;
  strcpy(o.done.ignored.names[0], "SIGINT");
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_NOT_DELIVERED);
}

Test(verdict, deadline_is_hung) {
  sp_outcome o = base();
  o.done_seen = false;
  o.exit.kind = SP_EXIT_TIMEOUT;
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_HUNG);
  cr_assert(o.reason[0]);
}

Test(verdict, unsupported_wins_over_everything) {
  sp_outcome o = base();
  o.unsupported = true;
  o.harness_error = true;
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_UNSUPPORTED);
}

Test(verdict, harness_error_keeps_its_reason) {
  sp_outcome o = base();
  o.harness_error = true;
  strcpy(o.reason, "malformed report: x");
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_ERROR);
  cr_assert_str_eq(o.reason, "malformed report: x");
}

Test(verdict, dying_before_ready_is_an_error) {
  sp_outcome o = base();
  o.ready_seen = false;
  o.delivered = false;
  o.exit = (sp_exit){SP_EXIT_EXITED, 3, 0, false};
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_ERROR);
  cr_assert(strstr(o.reason, "exited with code 3 before reporting ready"), "%s", o.reason);
}

Test(verdict, handler_then_odd_exit_is_an_error) {
  sp_outcome o = base();
  fire(&o);
  o.exit = (sp_exit){SP_EXIT_EXITED, 1, 0, false};
  cr_assert_eq(sp_outcome_derive_verdict(&o), SP_VERDICT_ERROR);
}

Test(verdict, names_round_trip) {
  for (int v = 0; v < SP_VERDICT_COUNT; v++) cr_assert_eq(sp_verdict_parse(sp_verdict_name((sp_verdict)v)), v);
  cr_assert_str_eq(sp_verdict_name(SP_VERDICT_NOT_DELIVERED), "not-delivered");
  cr_assert_eq(sp_verdict_parse("flaky"), SP_EINVAL);
}

Test(outcome, json_has_units_and_the_exit) {
  sp_outcome o = base();
  fire(&o);
  sp_outcome_derive_verdict(&o);
  char buf[4096];
  cr_assert_gt(sp_outcome_to_json(&o, buf, sizeof buf), 0);
  cr_assert(strstr(buf, "\"verdict\":\"handled\""), "%s", buf);
  cr_assert(strstr(buf, "\"latency_us\":2.500"), "%s", buf);
  cr_assert(strstr(buf, "\"exit\":{\"kind\":\"exited\",\"code\":0}"), "%s", buf);
}

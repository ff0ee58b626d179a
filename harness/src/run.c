/* Running one cell: the portable state machine on top of platform.h. */
#include "sigprobe/run.h"

#include "os.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/json.h"
#include "sigprobe/platform.h"

int sp_timeout_multiplier(double *k, sp_error *err) {
  const char *m = getenv("SIGPROBE_TIMEOUT_MULTIPLIER");
  char *end;
  *k = 1.0;
  if (!m || !*m) return 0;
  double v = strtod(m, &end);
  /* NaN fails both comparisons; the bound keeps ms * k within an int. */
  if (*end || !(v > 0 && v <= SP_TIMEOUT_MULTIPLIER_MAX))
    return sp_fail(err, SP_EINVAL, "SIGPROBE_TIMEOUT_MULTIPLIER must be a number above 0 and at most %d, not '%.40s'",
                   SP_TIMEOUT_MULTIPLIER_MAX, m);
  *k = v;
  return 0;
}

static int scaled(int ms) {
  double k;
  sp_timeout_multiplier(&k, NULL);
  return (int)(ms * k);
}

void sp_run_options_default(sp_run_options *opt, const char *probe_dir) {
  opt->probe_dir = probe_dir;
  opt->ready_ms = scaled(SP_READY_MS_DEFAULT);
  opt->window_ms = scaled(SP_WINDOW_MS_DEFAULT);
  opt->deadline_ms = scaled(SP_DEADLINE_MS_DEFAULT);
}

static int64_t after_ms(int64_t t, int ms) { return t + (int64_t)ms * 1000000; }

/* After the parent's result, how long a probe's words already sent may take to be read. */
#define SP_LATE_WORDS_MS 500

static void harness_error(sp_outcome *o, const char *what, const char *detail) {
  o->harness_error = true;
  /* A reason longer than the field is cut: the outcome carries what fits. */
  sp_strlcpy(o->reason, what, sizeof o->reason);
  if (!detail) return;
  size_t k = strlen(o->reason);
  sp_strlcpy(o->reason + k, ": ", sizeof o->reason - k);
  k = strlen(o->reason);
  sp_strlcpy(o->reason + k, detail, sizeof o->reason - k);
}

/* Handles an event that is not expected at this point of the run. */
static void protocol_error(sp_outcome *o, const sp_event *ev, const char *when) {
  char what[96];
  if (ev->kind == SP_EV_UNSUPPORTED) {
    o->unsupported = true;
    sp_strlcpy(o->reason, ev->reason, sizeof o->reason);
    return;
  }
  if (ev->kind == SP_EV_ERROR) {
    harness_error(o, "the probe reported an error", ev->reason);
    return;
  }
  snprintf(what, sizeof what, "protocol: \"%s\" %s", sp_event_kind_name(ev->kind), when);
  harness_error(o, what, NULL);
}

/* Waits for "ready". Returns 1 when it came, 0 when the run is over. */
static int await_ready(sp_proc *p, const sp_run_options *opt, sp_outcome *o) {
  sp_error err;
  sp_event ev;
  int rc = sp_proc_next_event(p, &ev, after_ms(sp_clock_ns(), opt->ready_ms), &err);
  if (rc == 0 && ev.kind == SP_EV_RESULT && o->attached) {
    /* The parent's result before ready: the cell has ended. The probe may
     * have said why before it did (unsupported, an error) with its words
     * not read yet, on a loaded machine its connection not even taken: they
     * decide when they come within a short grace; else it never got going. */
    o->result_seen = true;
    o->result = ev;
    const sp_event result = ev;
    int64_t grace = after_ms(sp_clock_ns(), SP_LATE_WORDS_MS);
    while ((rc = sp_proc_next_event(p, &ev, grace, &err)) == 0 && ev.kind == SP_EV_RESULT) {
    }
    if (rc == 0 && (ev.kind == SP_EV_UNSUPPORTED || ev.kind == SP_EV_ERROR)) {
      protocol_error(o, &ev, "before ready");
      return 0;
    }
    harness_error(o, "the probe never reported ready",
                  result.reason[0] ? result.reason : (result.ename[0] ? result.ename : result.status));
    return 0;
  }
  if (rc == 0 && ev.kind == SP_EV_READY) {
    o->ready_seen = true;
    o->ready = ev;
    return 1;
  }
  if (rc == 0) protocol_error(o, &ev, "before ready");
  else if (rc == SP_ETIMEOUT) {
    char why[96];
    snprintf(why, sizeof why, "no \"ready\" within %d ms", opt->ready_ms);
    sp_strlcpy(o->reason, why, sizeof o->reason);
    o->exit.kind = SP_EXIT_TIMEOUT;
  } else if (rc == SP_EINVAL) harness_error(o, "malformed report", err.msg);
  else if (rc != SP_EOF) harness_error(o, "report channel", err.msg);
  /* SP_EOF: the probe ended before ready; its exit says how. */
  return 0;
}

/* Stores an event that may come at any time after ready; returns 0, or 1
 * when the event does not belong here (protocol error recorded). */
static int take(sp_outcome *o, const sp_event *ev, const char *when) {
  if (ev->kind == SP_EV_FIRED && !o->done_seen) {
    sp_outcome_add_fired(o, ev);
  } else if (ev->kind == SP_EV_DONE && !o->done_seen) {
    o->done_seen = true;
    o->done = *ev;
  } else if (ev->kind == SP_EV_RESULT && !o->result_seen) {
    o->result_seen = true;
    o->result = *ev;
  } else if (ev->kind == SP_EV_DELIVERED && o->attached && !o->delivered) {
    o->delivered = true;
    o->delivered_t_ns = ev->t_ns;
    /* The window starts when the parent says it delivered, which may be
     * later than the delivery: a kernel in message mode signals itself only
     * once its control thread has handled the request, and the driver says
     * so then (the latency still counts from the request). */
    int64_t now = sp_clock_ns();
    o->window_from_ns = now > ev->t_ns ? now : ev->t_ns;
    o->delivered_signal = sp_signal_parse(ev->sig);
    o->runner_pid = ev->sender_pid_of_delivery;
  } else {
    protocol_error(o, ev, o->done_seen ? "after done" : when);
    return 1;
  }
  return 0;
}

/* After delivery: collects "fired", "done" (and "result") until the channel
 * closes, or, attached, until the parent's result. The window starts at
 * delivery: if nothing fired by its end, the probe's loop is asked to stop. */
static void collect(sp_proc *p, const sp_run_options *opt, sp_outcome *o) {
  sp_error err;
  sp_event ev;
  for (;;) {
    if (o->attached && o->result_seen) break;
    int64_t base = o->delivered ? o->delivered_t_ns : sp_clock_ns();
    int64_t window = after_ms(o->delivered ? o->window_from_ns : base, opt->window_ms);
    int64_t deadline = after_ms(o->attached && !o->delivered ? o->spawn_t_ns : base, opt->deadline_ms);
    int waiting_window = o->delivered && o->n_fired == 0 && !o->stop_requested && !o->done_seen;
    int rc = sp_proc_next_event(p, &ev, waiting_window ? window : deadline, &err);
    if (rc == SP_EOF) break;
    if (rc == SP_ETIMEOUT) {
      if (!waiting_window) {
        /* The deadline: a spawned probe is judged by sp_proc_wait; an
         * attached one whose parent never answered has hung. */
        if (o->attached) o->exit.kind = SP_EXIT_TIMEOUT;
        break;
      }
      /* Nothing noticed the interrupt within the window: end the loop. A
       * stop that cannot be sent finds the probe gone: what it wrote before
       * it went is still in the channel, read up to its end (until the
       * deadline), never dropped (a handler that fired just before would be
       * lost). */
      o->stop_requested = true;
      (void)sp_proc_request_stop(p, &err);
      continue;
    }
    if (rc == SP_EINVAL) {
      harness_error(o, "malformed report", err.msg);
      break;
    }
    if (rc != 0) {
      /* poll failed, or the runner itself was interrupted. */
      harness_error(o, "report channel", err.msg);
      break;
    }
    if (take(o, &ev, "after delivery")) break;
  }
  /* Events may arrive before the parent says when it delivered. */
  for (int i = 0; i < o->n_fired; i++) o->fired[i].latency_ns = o->fired[i].t_ns - o->delivered_t_ns;
}

static void probe_path(const sp_cell *cell, const sp_run_options *opt, char *path, size_t n) {
  snprintf(path, n, "%s/sigprobe-probe-%s%s", opt->probe_dir, sp_strategy_name(cell->strategy), sp__exe_suffix);
}

/* The run of a spawned probe: ready, delivery, collection, exit. */
static void run_spawned(const sp_cell *cell, char *const argv[], const sp_run_options *opt, sp_outcome *o) {
  sp_error err;
  sp_proc *p = NULL;
  if (sp_proc_spawn(&p, cell->host, argv, &err) != 0) {
    harness_error(o, "could not start the probe", err.msg);
    return;
  }
  if (await_ready(p, opt, o)) {
    /* Read before sending: reading /proc/PID/status takes the same lock the
     * kernel needs to deliver, and would add its time to the latency. */
    bool discarded = sp_proc_signal_discarded(p, sp_delivery_signal(cell->delivery));
    int rc = sp_proc_deliver(p, cell->delivery, &o->delivered_t_ns, &err);
    if (rc == SP_EUNSUPPORTED) {
      o->unsupported = true;
      sp_strlcpy(o->reason, err.msg, sizeof o->reason);
    } else if (rc != 0) {
      harness_error(o, "delivery failed", err.msg);
    } else {
      o->delivered = true;
      o->window_from_ns = o->delivered_t_ns;
      o->delivered_signal = sp_delivery_signal(cell->delivery);
      /* Where the kernel's own record says the signal was discarded on
       * arrival, nothing can notice it: the loop is asked to stop now rather
       * than after the window. The probe's account still decides the verdict. */
      if (discarded) {
        o->kernel_discarded = true;
        o->stop_requested = sp_proc_request_stop(p, &err) == 0;
      }
      collect(p, opt, o);
    }
  }
  if (o->exit.kind != SP_EXIT_TIMEOUT) {
    int64_t base = o->delivered ? o->delivered_t_ns : sp_clock_ns();
    /* After a protocol failure the probe is not waited for: it is killed. */
    int64_t end = (o->harness_error || o->unsupported || !o->ready_seen) ? after_ms(sp_clock_ns(), 200)
                                                                        : after_ms(base, opt->deadline_ms);
    if (o->harness_error || o->unsupported) sp_proc_kill_tree(p);
    if (sp_proc_wait(p, end, &o->exit, &err) == SP_ETIMEOUT) {
      sp_proc_kill_tree(p);
      o->exit.kind = SP_EXIT_TIMEOUT;
    }
  }
  sp_proc_free(p);
}

static int start(sp_outcome *o, const sp_cell *cell) {
  sp_outcome_init(o, cell);
  o->runner_pid = sp_self_pid();
  o->spawn_t_ns = sp_clock_ns();
  const char *why = sp_cell_unsupported_reason(cell);
  if (!why) return 1;
  o->unsupported = true;
  sp_strlcpy(o->reason, why, sizeof o->reason);
  return 0;
}

static int finish(sp_outcome *o) {
  o->end_t_ns = sp_clock_ns();
  sp_outcome_derive_verdict(o);
  sp_outcome_annotate(o);
  return 0;
}

int sp_run_cell(const sp_cell *cell, const sp_run_options *opt, sp_outcome *o) {
  char path[1024];
  if (start(o, cell)) {
    probe_path(cell, opt, path, sizeof path);
    char *const argv[] = {path, NULL};
    run_spawned(cell, argv, opt, o);
  }
  return finish(o);
}

int sp_run_exec(const sp_cell *cell, const sp_labels *label, char *const argv[], const sp_run_options *opt,
                sp_outcome *o) {
  if (start(o, cell)) run_spawned(cell, argv, opt, o);
  o->label = *label;
  return finish(o);
}

/* Maps a child's end, as the kernel saw it, into the outcome's exit. */
static void exit_from_result(sp_outcome *o) {
  const sp_event *r = &o->result;
  if (strcmp(r->exit_kind, "exited") == 0) o->exit = (sp_exit){SP_EXIT_EXITED, (int)r->exit_code, 0, false};
  else if (strcmp(r->exit_kind, "signaled") == 0)
    o->exit = (sp_exit){SP_EXIT_SIGNALED, 0, sp_signal_parse(r->exit_signal), false};
}

int sp_run_attached(const char *socket_path, const sp_labels *label, const sp_run_options *opt, sp_outcome *o) {
  sp_error err;
  sp_proc *p = NULL;
  sp_outcome_init(o, NULL);
  o->label = *label;
  o->attached = true;
  o->spawn_t_ns = sp_clock_ns();
  if (sp_proc_attach(&p, socket_path, &err) != 0) {
    harness_error(o, "could not listen for the probe", err.msg);
    return finish(o);
  }
  /* The parent starts the probe once it sees this line, with
   * SIGPROBE_REPORT=<report>. */
  char line[SP_LINE_MAX];
  sp_jw w;
  sp_jw_init(&w, line, sizeof line);
  sp_jw_begin_obj(&w);
  sp_jw_key(&w, "ev");
  sp_jw_str(&w, "listening");
  sp_jw_key(&w, "report");
  sp_jw_str(&w, sp_proc_report_address(p));
  sp_jw_end_obj(&w);
  if (sp_jw_finish(&w) < 0) sp_strlcpy(line, "{\"ev\":\"listening\"}", sizeof line);
  fprintf(stdout, "%s\n", line);
  fflush(stdout);
  if (await_ready(p, opt, o)) {
    /* The parent delivers the interrupt now and answers "delivered". */
    fputs("{\"ev\":\"deliver\"}\n", stdout);
    fflush(stdout);
    collect(p, opt, o);
    if (o->result_seen) exit_from_result(o);
  }
  sp_proc_free(p);
  return finish(o);
}

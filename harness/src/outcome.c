/* Outcomes: exit decoding, the one place verdicts are derived, and the
 * outcome's JSON form (see outcome.h). */
#include "sigprobe/outcome.h"

#include <stdio.h>
#include <string.h>

#include "os.h"
#include "sigprobe/json.h"

static const char *const verdict_names[SP_VERDICT_COUNT] = {
    "handled", "deferred", "killed", "ignored", "not-delivered", "lost", "hung", "unsupported", "error"};

const char *sp_verdict_name(sp_verdict v) { return (unsigned)v < SP_VERDICT_COUNT ? verdict_names[v] : "?"; }

int sp_verdict_parse(const char *name) {
  for (int i = 0; i < SP_VERDICT_COUNT; i++)
    if (strcmp(verdict_names[i], name) == 0) return i;
  return SP_EINVAL;
}

static const char *const exit_kind_names[] = {"none", "exited", "signaled", "timeout"};

const char *sp_exit_kind_name(sp_exit_kind k) {
  return (unsigned)k < SP_ARRAY_LEN(exit_kind_names) ? exit_kind_names[k] : "?";
}

/* The NTSTATUS codes a process can end with: a console event's default
 * action, crashes, and loader failures. */
static const struct {
  uint32_t code;
  const char *name;
} ntstatus_names[] = {
    {0xC000013Au, "STATUS_CONTROL_C_EXIT"},
    {0xC0000005u, "STATUS_ACCESS_VIOLATION"},
    {0xC0000006u, "STATUS_IN_PAGE_ERROR"},
    {0xC0000008u, "STATUS_INVALID_HANDLE"},
    {0xC0000017u, "STATUS_NO_MEMORY"},
    {0xC000001Du, "STATUS_ILLEGAL_INSTRUCTION"},
    {0xC0000025u, "STATUS_NONCONTINUABLE_EXCEPTION"},
    {0xC000008Cu, "STATUS_ARRAY_BOUNDS_EXCEEDED"},
    {0xC000008Eu, "STATUS_FLOAT_DIVIDE_BY_ZERO"},
    {0xC0000094u, "STATUS_INTEGER_DIVIDE_BY_ZERO"},
    {0xC0000095u, "STATUS_INTEGER_OVERFLOW"},
    {0xC0000096u, "STATUS_PRIVILEGED_INSTRUCTION"},
    {0xC00000FDu, "STATUS_STACK_OVERFLOW"},
    {0xC0000135u, "STATUS_DLL_NOT_FOUND"},
    {0xC0000139u, "STATUS_ENTRYPOINT_NOT_FOUND"},
    {0xC0000142u, "STATUS_DLL_INIT_FAILED"},
    {0xC000007Bu, "STATUS_INVALID_IMAGE_FORMAT"},
    {0xC0000374u, "STATUS_HEAP_CORRUPTION"},
    {0xC0000409u, "STATUS_STACK_BUFFER_OVERRUN"},
    {0xC0000420u, "STATUS_ASSERTION_FAILURE"},
    {0x80000003u, "STATUS_BREAKPOINT"},
    {0x40010004u, "DBG_TERMINATE_PROCESS"},
    {0x40010005u, "DBG_CONTROL_C"},
};

const char *sp_ntstatus_name(uint32_t code) {
  for (size_t i = 0; i < SP_ARRAY_LEN(ntstatus_names); i++)
    if (ntstatus_names[i].code == code) return ntstatus_names[i].name;
  return NULL;
}

sp_exit sp_exit_from_win_code(uint32_t code) {
  sp_exit ex = {SP_EXIT_EXITED, (int)code, 0, false};
  return ex;
}

void sp_labels_from_cell(sp_labels *l, const sp_cell *cell) {
  sp_cell_format(cell, l->id, sizeof l->id);
  sp_strlcpy(l->host, sp_host_name(cell->host), sizeof l->host);
  sp_strlcpy(l->strategy, sp_strategy_name(cell->strategy), sizeof l->strategy);
  sp_strlcpy(l->delivery, sp_delivery_name(cell->delivery), sizeof l->delivery);
}

int sp_labels_parse(sp_labels *l, const char *id, sp_error *err) {
  char tmp[sizeof l->id];
  char *part[4];
  int n = 0;
  int slashes = 0;
  if (strlen(id) >= sizeof tmp) return sp_fail(err, SP_EINVAL, "label '%.40s...' is too long", id);
  /* Exactly four parts: the split below stops at the fourth and would
   * silently drop a fifth ("a/b/c/d/e" read as delivery "d"). */
  for (const char *c = id; *c; c++) slashes += *c == '/';
  if (slashes != 3) return sp_fail(err, SP_EINVAL, "bad label '%.80s': expected platform/host/strategy/delivery", id);
  sp_strlcpy(tmp, id, sizeof tmp);
  for (char *p = tmp, *slash; n < 4; p = slash + 1) {
    part[n++] = p;
    if (!(slash = strchr(p, '/'))) break;
    *slash = '\0';
  }
  if (n != 4 || strchr(part[3], '/') || !*part[0] || !*part[1] || !*part[2] || !*part[3])
    return sp_fail(err, SP_EINVAL, "bad label '%.80s': expected platform/host/strategy/delivery", id);
  sp_strlcpy(l->id, id, sizeof l->id);
  sp_strlcpy(l->host, part[1], sizeof l->host);
  sp_strlcpy(l->strategy, part[2], sizeof l->strategy);
  sp_strlcpy(l->delivery, part[3], sizeof l->delivery);
  return 0;
}

void sp_outcome_init(sp_outcome *o, const sp_cell *cell) {
  memset(o, 0, sizeof *o);
  if (cell) {
    o->cell = *cell;
    sp_labels_from_cell(&o->label, cell);
  }
  o->verdict = SP_VERDICT_ERROR;
}

void sp_outcome_add_fired(sp_outcome *o, const sp_event *ev) {
  if (o->n_fired >= SP_FIRED_MAX) return;
  sp_fired *f = &o->fired[o->n_fired++];
  sp_strlcpy(f->handler, ev->handler, sizeof f->handler);
  sp_strlcpy(f->sig, ev->sig, sizeof f->sig);
  sp_strlcpy(f->si_code, ev->si_code, sizeof f->si_code);
  f->sender_pid = ev->sender_pid;
  f->sender_uid = ev->sender_uid;
  f->main_thread = ev->main_thread == 1;
  f->t_ns = ev->t_ns;
  f->latency_ns = o->delivered ? ev->t_ns - o->delivered_t_ns : 0;
}

static int list_has(const sp_name_list *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (strcmp(l->names[i], name) == 0) return 1;
  return 0;
}

static sp_verdict conclude(sp_outcome *o, sp_verdict v, const char *reason) {
  o->verdict = v;
  if (reason && !o->reason[0]) sp_strlcpy(o->reason, reason, sizeof o->reason);
  return v;
}

static void describe_exit(const sp_exit *ex, char *buf, size_t n) {
  switch (ex->kind) {
    case SP_EXIT_EXITED: sp__exit_code_text(ex, buf, n); break;
    case SP_EXIT_SIGNALED:
      snprintf(buf, n, "killed by %s%s", sp_signal_name(ex->signal), ex->core ? " (core dumped)" : "");
      break;
    case SP_EXIT_TIMEOUT: snprintf(buf, n, "deadline passed"); break;
    default: snprintf(buf, n, "end not observed"); break;
  }
}

/* What was delivered, in the words the probe uses for it: a signal name on
 * POSIX, a console control type or the event on Windows. An attached run
 * (a kernel's probe) learns the signal from whoever delivered it. */
static const char *delivered_name(const sp_outcome *o) {
  return o->attached ? sp_signal_name(o->delivered_signal) : sp_delivery_what(o->cell.delivery);
}

sp_verdict sp_outcome_derive_verdict(sp_outcome *o) {
  char why[SP_REASON_MAX], how[96];
  if (o->unsupported) return conclude(o, SP_VERDICT_UNSUPPORTED, NULL);
  if (o->harness_error) return conclude(o, SP_VERDICT_ERROR, NULL);
  if (o->exit.kind == SP_EXIT_TIMEOUT) return conclude(o, SP_VERDICT_HUNG, "the probe did not finish before the deadline");
  if (o->result_seen && o->result.hung)
    return conclude(o, SP_VERDICT_HUNG, o->result.reason[0] ? o->result.reason : "the kernel did not reply before the deadline");
  describe_exit(&o->exit, how, sizeof how);
  if (!o->ready_seen) {
    snprintf(why, sizeof why, "the probe %s before reporting ready", how);
    return conclude(o, SP_VERDICT_ERROR, why);
  }
  if (!o->delivered) return conclude(o, SP_VERDICT_ERROR, "the interrupt was not delivered");
  const char *sig = delivered_name(o);
  bool clean = (o->exit.kind == SP_EXIT_EXITED && o->exit.code == 0) ||
               (o->attached && o->exit.kind == SP_EXIT_NONE && o->result_seen);
  if (o->n_fired > 0) {
    if (clean && o->done_seen) return conclude(o, SP_VERDICT_HANDLED, NULL);
    snprintf(why, sizeof why, "a handler ran but the probe %s%s", how, o->done_seen ? "" : " without reporting done");
    return conclude(o, SP_VERDICT_ERROR, why);
  }
  /* Windows: the default action of a console event ends the process with a code, not a signal. */
  uint32_t default_exit;
  if (o->exit.kind == SP_EXIT_EXITED && !o->done_seen && sp_delivery_default_exit(o->cell.delivery, &default_exit) &&
      sp_exit_win_code(&o->exit) == default_exit)
    return conclude(o, SP_VERDICT_KILLED, NULL);
  if (o->exit.kind == SP_EXIT_SIGNALED) {
    if (o->exit.signal == o->delivered_signal) return conclude(o, SP_VERDICT_KILLED, NULL);
    snprintf(why, sizeof why, "the probe crashed: %s", how);
    return conclude(o, SP_VERDICT_ERROR, why);
  }
  if (!clean || !o->done_seen) {
    snprintf(why, sizeof why, "the probe %s%s", how, o->done_seen ? "" : " without reporting done");
    return conclude(o, SP_VERDICT_ERROR, why);
  }
  if (list_has(&o->done.ignored, sig)) return conclude(o, SP_VERDICT_IGNORED, NULL);
  if (o->result_seen && strcmp(o->result.where, "after-return") == 0) {
    snprintf(why, sizeof why, "%s raised only after the native call returned",
             o->result.exception[0] ? o->result.exception : "the interrupt");
    return conclude(o, SP_VERDICT_DEFERRED, why);
  }
  if (list_has(&o->done.pending, sig)) {
    snprintf(why, sizeof why, "%s stayed pending: blocked and never consumed", sig);
    return conclude(o, SP_VERDICT_LOST, why);
  }
  if (o->attached) return conclude(o, SP_VERDICT_LOST, "the host accepted the interrupt; nothing noticed it");
  snprintf(why, sizeof why, "no handler fired and %s was neither ignored nor pending", sig);
  return conclude(o, SP_VERDICT_NOT_DELIVERED, why);
}

/* Where the platform as run here differs from the reference (Wine), the
 * platform's exit.c says so; the verdict stays what was measured. */
void sp_outcome_annotate(sp_outcome *o) {
  const char *note = sp__outcome_note(o);
  if (note) sp_strlcpy(o->note, note, sizeof o->note);
}

/* ---- JSON ---- */

static void put_str_field(sp_jw *w, const char *key, const char *value) {
  sp_jw_key(w, key);
  sp_jw_str(w, value);
}

int sp_outcome_to_json(const sp_outcome *o, char *buf, size_t n) {
  sp_jw w;
  sp_jw_init(&w, buf, n);
  sp_jw_begin_obj(&w);
  put_str_field(&w, "id", o->label.id);
  put_str_field(&w, "host", o->label.host);
  put_str_field(&w, "strategy", o->label.strategy);
  put_str_field(&w, "delivery", o->label.delivery);
  put_str_field(&w, "verdict", sp_verdict_name(o->verdict));
  if (o->reason[0]) put_str_field(&w, "reason", o->reason);
  if (o->note[0]) put_str_field(&w, "note", o->note);

  sp_jw_key(&w, "fired");
  sp_jw_begin_arr(&w);
  for (int i = 0; i < o->n_fired; i++) {
    const sp_fired *f = &o->fired[i];
    sp_jw_begin_obj(&w);
    put_str_field(&w, "handler", f->handler);
    put_str_field(&w, "signal", f->sig);
    put_str_field(&w, "thread", f->main_thread ? "main" : "other");
    if (f->si_code[0]) {
      put_str_field(&w, "si_code", f->si_code);
      sp_jw_key(&w, "si_pid");
      sp_jw_int(&w, f->sender_pid);
      sp_jw_key(&w, "si_uid");
      sp_jw_int(&w, f->sender_uid);
    }
    sp_jw_key(&w, "latency_us");
    sp_jw_double(&w, (double)f->latency_ns / 1000.0, 3);
    sp_jw_end_obj(&w);
  }
  sp_jw_end_arr(&w);

  sp_jw_key(&w, "exit");
  sp_jw_begin_obj(&w);
  put_str_field(&w, "kind", sp_exit_kind_name(o->exit.kind));
  if (o->exit.kind == SP_EXIT_EXITED) {
    sp__exit_code_json(&w, &o->exit);
  } else if (o->exit.kind == SP_EXIT_SIGNALED) {
    put_str_field(&w, "signal", sp_signal_name(o->exit.signal));
    sp_jw_key(&w, "core");
    sp_jw_bool(&w, o->exit.core);
  }
  sp_jw_end_obj(&w);

  if (o->ready_seen) {
    put_str_field(&w, "disposition_on_entry", sp_disposition_name(o->ready.disposition_on_entry));
    sp_jw_key(&w, "probe");
    sp_jw_begin_obj(&w);
    sp_jw_key(&w, "pid"); sp_jw_int(&w, o->ready.pid);
    sp_jw_key(&w, "pgid");
    if (o->ready.pgid < 0) sp_jw_null(&w); else sp_jw_int(&w, o->ready.pgid);
    sp_jw_key(&w, "sid");
    if (o->ready.sid < 0) sp_jw_null(&w); else sp_jw_int(&w, o->ready.sid);
    sp_jw_key(&w, "tty");
    if (o->ready.tty[0]) sp_jw_str(&w, o->ready.tty); else sp_jw_null(&w);
    sp_jw_key(&w, "foreground");
    if (o->ready.foreground < 0) sp_jw_null(&w); else sp_jw_bool(&w, o->ready.foreground);
    sp_jw_key(&w, "strategies");
    sp_jw_begin_arr(&w);
    for (int i = 0; i < o->ready.strategies.n; i++) sp_jw_str(&w, o->ready.strategies.names[i]);
    sp_jw_end_arr(&w);
    sp_jw_end_obj(&w);
    if (o->ready.console[0]) {
      sp_jw_key(&w, "console");
      sp_jw_raw(&w, o->ready.console);
      w.need_comma = 1;
    }
  }
  if (o->delivered) {
    sp_jw_key(&w, "delivered");
    sp_jw_begin_obj(&w);
    put_str_field(&w, "signal", delivered_name(o));
    sp_jw_key(&w, "sender_pid");
    sp_jw_int(&w, o->runner_pid);
    sp_jw_end_obj(&w);
  }
  if (o->done_seen) put_str_field(&w, "stopped_by", o->done.stopped_by);
  if (o->kernel_discarded) {
    sp_jw_key(&w, "kernel_discarded");
    sp_jw_bool(&w, true);
  }
  if (o->result_seen) {
    const sp_event *r = &o->result;
    sp_jw_key(&w, "python");
    sp_jw_begin_obj(&w);
    if (r->where[0]) put_str_field(&w, "took_effect", r->where);
    if (r->exception[0]) put_str_field(&w, "exception", r->exception);
    if (r->status[0]) put_str_field(&w, "execute_reply_status", r->status);
    if (r->ename[0]) put_str_field(&w, "ename", r->ename);
    if (r->kernel_pid) {
      sp_jw_key(&w, "kernel_pid");
      sp_jw_int(&w, r->kernel_pid);
    }
    sp_jw_end_obj(&w);
  }
  if (o->end_t_ns > o->spawn_t_ns && o->spawn_t_ns > 0) {
    sp_jw_key(&w, "wall_us");
    sp_jw_double(&w, (double)(o->end_t_ns - o->spawn_t_ns) / 1000.0, 1);
  }
  sp_jw_end_obj(&w);
  sp_jw_raw(&w, "\n");
  return sp_jw_finish(&w);
}

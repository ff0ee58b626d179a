/* The probe runtime (see probe.h): the slots handlers record into, the
 * report events, the work loop and the in-process runs. Written once for
 * every platform; what differs is behind the primitives of os.h.
 *
 * A slot is filled by a handler (a signal handler, a strategy thread, or a
 * thread Windows injects for a console control handler) and written out by
 * the main loop. A handler only claims a slot with an atomic counter, fills
 * plain fields nobody else reads yet, and publishes it with a release store;
 * then it sets the wake-up. Nothing a handler calls takes a lock or
 * allocates, so recording is async-signal-safe. */
#include "sigprobe/probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "sigprobe/protocol.h"

#define SP_SLOTS 16

typedef struct slot {
  sp__atomic published;
  const char *handler;
  const char *sig_name; /* a console control type or an event; NULL: signo names it */
  int signo;
  int si_code;
  int64_t sender_pid, sender_uid, tid, t_ns;
  bool main_thread;
  bool written;
} slot;

static slot g_slots[SP_SLOTS];
static sp__atomic g_next_slot;
static int64_t g_main_tid;
static sp_disposition g_entry_disposition = SP_DISP_UNKNOWN;
static bool g_chan_inherited;       /* kept open across in-process runs */
static char g_chan_where[512];      /* the SIGPROBE_REPORT value the channel came from */

bool sp_probe_on_main_thread(void) { return sp__thread_id() == g_main_tid; }

int sp_probe_channel_fd(void) { return sp__chan_fd(); }

static void emit(const sp_event *ev) {
  char line[SP_LINE_MAX];
  int n = sp_event_encode(ev, line, sizeof line);
  if (n > 0) sp__chan_write(line, (size_t)n);
}

/* Touches everything a handler will touch, so that the first signal does
 * not pay for page faults (the slots live in zero-filled BSS) and cold
 * code: the latency measured is the signal's, not the probe's start-up. */
static void warm_up(void) {
  volatile char *p = (volatile char *)g_slots;
  for (size_t i = 0; i < sizeof g_slots; i += 64) p[i] = 0;
  (void)sp_clock_ns();
  (void)sp__thread_id();
}

/* Opens SIGPROBE_REPORT's channel and remembers where it came from. A
 * runner's socket address carries the run's token: the first line proves
 * this is the probe the runner waits for (protocol.h). */
static int open_channel(const char *where, sp_error *err) {
  char addr[sizeof g_chan_where], token[SP_TOKEN_HEX + 1], hello[128];
  int has_token = sp_report_split(where, addr, sizeof addr, token);
  if (has_token < 0) return sp_fail(err, SP_EINVAL, "SIGPROBE_REPORT is longer than %u bytes", (unsigned)sizeof addr - 1);
  int rc = sp__chan_open(addr, &g_chan_inherited, err);
  if (rc != 0) return rc;
  if (has_token) {
    int n = sp_hello_encode(token, hello, sizeof hello);
    if (n > 0) sp__chan_write(hello, (size_t)n);
  }
  sp_strlcpy(g_chan_where, where, sizeof g_chan_where);
  return 0;
}

void sp_probe_init(void) {
  /* Before anything is installed: what did the host leave us? */
  g_entry_disposition = sp__sigint_disposition();
  g_main_tid = sp__thread_id();
  warm_up();
  char where[sizeof g_chan_where];
  sp_error err;
  if (!sp_probe_env("SIGPROBE_REPORT", where, sizeof where) || !*where) {
    fprintf(stderr, "sigprobe probe: SIGPROBE_REPORT is not set (run probes through sigprobe-run)\n");
    exit(3);
  }
  if (open_channel(where, &err) != 0) {
    fprintf(stderr, "sigprobe probe: %s\n", err.msg);
    exit(3);
  }
  sp__run_prepare();
  if (sp__wake_open(&err) != 0) {
    sp_probe_report_error(err.msg);
    exit(3);
  }
}

/* "error" or "unsupported" with its reason, when there is a channel. */
static void report_reason(sp_event_kind kind, const char *reason) {
  sp_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = kind;
  sp_strlcpy(ev.reason, reason, sizeof ev.reason);
  if (sp__chan_is_open()) emit(&ev);
}

void sp_probe_fail(const char *call) {
  char reason[SP_REASON_MAX];
  sp__last_error(call, reason, sizeof reason);
  report_reason(SP_EV_ERROR, reason);
  exit(3);
}

void sp_probe_unsupported(const char *reason) {
  report_reason(SP_EV_UNSUPPORTED, reason);
  exit(0);
}

void sp_probe_report_unsupported(const char *reason) { report_reason(SP_EV_UNSUPPORTED, reason); }

void sp_probe_report_error(const char *reason) { report_reason(SP_EV_ERROR, reason); }

/* The "ready" event: the host facts and the strategies registered. */
static void ready_event(sp_event *ev, const char *const *strategies, int n) {
  memset(ev, 0, sizeof *ev);
  ev->kind = SP_EV_READY;
  ev->foreground = -1;
  sp__ready_facts(ev);
  ev->disposition_on_entry = g_entry_disposition;
  for (int i = 0; i < n; i++) sp_name_list_add(&ev->strategies, strategies[i]);
  ev->t_ns = sp_clock_ns();
}

void sp_probe_ready(const char *const *strategies, int n) {
  sp_event ev;
  ready_event(&ev, strategies, n);
  emit(&ev);
}

int sp_probe_ready_extra(const char *const *strategies, int n, const char *extra_members) {
  sp_event ev;
  char line[SP_LINE_MAX];
  ready_event(&ev, strategies, n);
  int len = sp_event_encode_extra(&ev, extra_members, line, sizeof line);
  if (len < 0) return len;
  sp__chan_write(line, (size_t)len);
  return 0;
}

/* ---- Recording: async-signal-safe ---- */

static void record(const char *handler, const char *sig_name, int signo, int si_code, int64_t sender_pid,
                   int64_t sender_uid, int64_t t_ns, bool main_thread) {
  long i = sp__atomic_add(&g_next_slot, 1);
  if (i >= SP_SLOTS) return;
  slot *s = &g_slots[i];
  s->handler = handler;
  s->sig_name = sig_name;
  s->signo = signo;
  s->si_code = si_code;
  s->sender_pid = sender_pid;
  s->sender_uid = sender_uid;
  s->t_ns = t_ns;
  s->main_thread = main_thread;
  s->tid = sp__thread_id();
  sp__atomic_store(&s->published, 1); /* the fields are visible before the flag */
  int saved = errno;
  sp__wake_set();
  errno = saved;
}

void sp_probe_record_at(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid, int64_t t_ns,
                        bool main_thread) {
  record(handler, NULL, signo, si_code, sender_pid, sender_uid, t_ns, main_thread);
}

void sp_probe_record(const char *handler, int signo, int si_code, int64_t sender_pid, int64_t sender_uid) {
  int64_t t = sp_clock_ns(); /* first: the latency ends here, not after a system call */
  record(handler, NULL, signo, si_code, sender_pid, sender_uid, t, sp_probe_on_main_thread());
}

void sp_probe_record_named(const char *handler, const char *what) {
  int64_t t = sp_clock_ns();
  record(handler, what, 0, SP_NO_SI_CODE, -1, -1, t, sp_probe_on_main_thread());
}

int sp_probe_fired_count(void) {
  long n = sp__atomic_load(&g_next_slot);
  return n > SP_SLOTS ? SP_SLOTS : (int)n;
}

const char *sp_probe_fired_handler(int i) {
  if (i < 0 || i >= sp_probe_fired_count()) return NULL;
  if (!sp__atomic_load(&g_slots[i].published)) return NULL;
  return g_slots[i].handler;
}

/* Writes every published, unwritten slot, in the order they were claimed;
 * so_far: only up to the first slot still being filled in (by a handler
 * running now on another thread), so the order stays the claims' order. */
static void flush_fired(bool so_far) {
  int n = sp_probe_fired_count();
  for (int i = 0; i < n; i++) {
    slot *s = &g_slots[i];
    if (so_far && !sp__atomic_load(&s->published)) return;
    if (s->written || !sp__atomic_load(&s->published)) continue;
    sp_event ev;
    char code[32];
    memset(&ev, 0, sizeof ev);
    ev.kind = SP_EV_FIRED;
    sp_strlcpy(ev.handler, s->handler, sizeof ev.handler);
    sp_strlcpy(ev.sig, s->sig_name ? s->sig_name : sp_signal_name(s->signo), sizeof ev.sig);
    if (s->si_code != SP_NO_SI_CODE)
      sp_strlcpy(ev.si_code, sp__si_code_name(s->si_code, code, sizeof code), sizeof ev.si_code);
    ev.sender_pid = s->sender_pid;
    ev.sender_uid = s->sender_uid;
    ev.main_thread = s->main_thread;
    ev.tid = s->tid;
    ev.t_ns = s->t_ns;
    emit(&ev);
    s->written = true;
  }
}

/* ---- The loop ---- */

static int loop_ms(void) {
  char v[32];
  int ms = sp_probe_env("SIGPROBE_LOOP_MS", v, sizeof v) ? atoi(v) : 0;
  return ms > 0 ? ms : 10000;
}

const char *sp_probe_wait(const sp_watch *watches, int n, int timeout_ms) {
  return sp__wait(watches, n, timeout_ms);
}

const char *sp_probe_loop(const sp_watch *watches, int n, int linger_ms) {
  const int64_t end = sp_clock_ns() + (int64_t)loop_ms() * 1000000;
  int64_t linger_end = 0;
  /* The loop works in bounded iterations and checks the flag (the slot
   * counter) in each, like the seed's loop; one wait is the unit of work,
   * woken early by a record, the channel or a watch. */
  for (;;) {
    int64_t now = sp_clock_ns();
    if (sp__atomic_load(&g_next_slot) > 0) {
      /* Reported as they come, not after the linger: the runner's window
       * (delivery -> first handler) is judged by the first "fired" it reads. */
      flush_fired(true);
      if (!linger_end) linger_end = now + (int64_t)linger_ms * 1000000;
      if (now >= linger_end) return g_slots[0].handler;
    }
    if (now >= end) return "loop-end";
    int64_t until = linger_end ? linger_end : end;
    int ms = (int)((until - now + 999999) / 1000000);
    const char *stop = sp__wait(watches, n, ms > 10 ? 10 : ms);
    /* A stop that comes after something fired is too late to matter. */
    if (stop && (strcmp(stop, "runner-gone") == 0 || sp__atomic_load(&g_next_slot) == 0)) return stop;
  }
}

/* Writes the pending "fired" events and then "done". */
static void report_done(const char *stopped_by, bool in_process) {
  sp_event ev;
  flush_fired(false);
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_DONE;
  sp_strlcpy(ev.stopped_by, stopped_by, sizeof ev.stopped_by);
  sp__done_facts(&ev, in_process);
  ev.t_ns = sp_clock_ns();
  emit(&ev);
}

int sp_probe_done(const char *stopped_by) {
  report_done(stopped_by, false);
  sp__chan_close(true);
  return 0;
}

/* ---- In-process runs (see probe.h) ---- */

int sp_probe_begin(sp_error *err) {
  int rc = sp__wake_open(err);
  if (rc != 0) return rc;
  /* Forget the previous run. Raising the counter first makes a handler that
   * runs meanwhile claim no slot (it drops its record) instead of racing the
   * clearing; records from between runs belong to no run. */
  sp__atomic_store(&g_next_slot, SP_SLOTS);
  for (int i = 0; i < SP_SLOTS; i++) {
    sp__atomic_store(&g_slots[i].published, 0);
    g_slots[i].written = false;
  }
  sp__wake_clear();
  g_main_tid = sp__thread_id();
  g_entry_disposition = sp__sigint_disposition();

  char where[sizeof g_chan_where];
  if (!sp_probe_env("SIGPROBE_REPORT", where, sizeof where) || !*where) {
    sp__atomic_store(&g_next_slot, 0);
    return sp_fail(err, SP_EINVAL, "SIGPROBE_REPORT is not set (a file path, a descriptor or handle number, or unix:<path>)");
  }
  /* An inherited descriptor stays open across runs; a different value, or a
   * path, is (re)opened now. An inherited one that is no longer named is not
   * this process's to close. */
  if (sp__chan_is_open() && !(g_chan_inherited && strcmp(g_chan_where, where) == 0)) sp__chan_close(!g_chan_inherited);
  if (!sp__chan_is_open()) {
    rc = open_channel(where, err);
    if (rc != 0) {
      sp__atomic_store(&g_next_slot, 0);
      return rc;
    }
  }
  sp__run_prepare();
  sp__atomic_store(&g_next_slot, 0);
  return 0;
}

sp_disposition sp_probe_entry_disposition(void) { return g_entry_disposition; }

static void close_run_channel(void) {
  if (sp__chan_is_open() && !g_chan_inherited) sp__chan_close(true);
}

void sp_probe_end(const char *stopped_by) {
  if (sp__chan_is_open()) report_done(stopped_by, true);
  close_run_channel();
}

void sp_probe_abort(void) { close_run_channel(); }

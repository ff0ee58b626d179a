/* Encoding and decoding of report events (see protocol.h). */
#include "sigprobe/protocol.h"

#include <stdio.h>
#include <string.h>

#include "os.h"
#include "sigprobe/json.h"

/* The signal table is the platform's (harness/src/unix/platform.c,
 * harness/src/win/platform.c). */
const char *sp_signal_name(int signo) {
  for (size_t i = 0; i < sp__signal_count; i++)
    if (sp__signals[i].signo == signo) return sp__signals[i].name;
  return "SIG?";
}

int sp_report_tcp_port(const char *where, bool allow_any) {
  static const char host[] = SP_REPORT_TCP_PREFIX "127.0.0.1:";
  if (strncmp(where, host, sizeof host - 1) != 0) return -1;
  const char *p = where + sizeof host - 1;
  long port = 0;
  if (!*p || strlen(p) > 5) return -1;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    port = port * 10 + (*p - '0');
  }
  if (port > 65535 || (port == 0 && !allow_any)) return -1;
  return (int)port;
}

int sp_signal_parse(const char *name) {
  for (size_t i = 0; i < sp__signal_count; i++)
    if (strcmp(sp__signals[i].name, name) == 0) return sp__signals[i].signo;
  return SP_EINVAL;
}

static const char *const kind_names[] = {"ready", "fired", "done", "unsupported", "error", "result", "delivered"};
static const char *const disp_names[] = {"unknown", "default", "ignored", "caught"};

const char *sp_event_kind_name(sp_event_kind k) {
  return (unsigned)k < SP_ARRAY_LEN(kind_names) ? kind_names[k] : "?";
}

const char *sp_disposition_name(sp_disposition d) {
  return (unsigned)d < SP_ARRAY_LEN(disp_names) ? disp_names[d] : "unknown";
}

/* ---- decoding ---- */

typedef struct decode_ctx {
  sp_event *ev;
  int have_ev;
  sp_error *err;
} decode_ctx;

static int key_is(const char *key, size_t len, const char *name) {
  return strlen(name) == len && strncmp(key, name, len) == 0;
}

static int list_item(const char *s, void *ctx) {
  sp_name_list *l = ctx;
  if (l->n >= SP_LIST_MAX) return SP_EINVAL;
  sp_strlcpy(l->names[l->n++], s, SP_NAME_MAX);
  return 0;
}

static int bad_member(decode_ctx *c, const char *key, size_t len) {
  return sp_fail(c->err, SP_EINVAL, "bad value for \"%.*s\"", (int)(len > 32 ? 32 : len), key);
}

static int decode_member(const char *key, size_t len, const sp_jvalue *v, void *vctx) {
  decode_ctx *c = vctx;
  sp_event *ev = c->ev;
  char tmp[SP_REASON_MAX];
  bool b;
  int rc = 0;
  if (key_is(key, len, "ev")) {
    if (sp_json_string(v, tmp, sizeof tmp) != 0) return bad_member(c, key, len);
    for (size_t i = 0; i < SP_ARRAY_LEN(kind_names); i++)
      if (strcmp(tmp, kind_names[i]) == 0) {
        ev->kind = (sp_event_kind)i;
        c->have_ev = 1;
        return 0;
      }
    return sp_fail(c->err, SP_EINVAL, "unknown event \"%.32s\"", tmp);
  }
  if (key_is(key, len, "t_ns")) rc = sp_json_int(v, &ev->t_ns);
  else if (key_is(key, len, "pid")) rc = sp_json_int(v, &ev->pid);
  else if (key_is(key, len, "pgid")) rc = v->type == SP_J_NULL ? 0 : sp_json_int(v, &ev->pgid);
  else if (key_is(key, len, "sid")) rc = v->type == SP_J_NULL ? 0 : sp_json_int(v, &ev->sid);
  else if (key_is(key, len, "console")) {
    /* Kept as raw JSON (already validated by the walker) and passed through. */
    if (v->type != SP_J_OBJECT || v->len >= sizeof ev->console) rc = SP_EINVAL;
    else {
      memcpy(ev->console, v->start, v->len);
      ev->console[v->len] = '\0';
    }
  }
  else if (key_is(key, len, "tid")) rc = sp_json_int(v, &ev->tid);
  else if (key_is(key, len, "si_pid")) rc = sp_json_int(v, &ev->sender_pid);
  else if (key_is(key, len, "si_uid")) rc = sp_json_int(v, &ev->sender_uid);
  else if (key_is(key, len, "tty")) rc = v->type == SP_J_NULL ? 0 : sp_json_string(v, ev->tty, sizeof ev->tty);
  else if (key_is(key, len, "handler")) rc = sp_json_string(v, ev->handler, sizeof ev->handler);
  else if (key_is(key, len, "sig")) rc = sp_json_string(v, ev->sig, sizeof ev->sig);
  else if (key_is(key, len, "si_code")) rc = sp_json_string(v, ev->si_code, sizeof ev->si_code);
  else if (key_is(key, len, "stopped_by")) rc = sp_json_string(v, ev->stopped_by, sizeof ev->stopped_by);
  else if (key_is(key, len, "reason")) rc = sp_json_string(v, ev->reason, sizeof ev->reason);
  else if (key_is(key, len, "where")) rc = sp_json_string(v, ev->where, sizeof ev->where);
  else if (key_is(key, len, "exception")) rc = v->type == SP_J_NULL ? 0 : sp_json_string(v, ev->exception, sizeof ev->exception);
  else if (key_is(key, len, "status")) rc = sp_json_string(v, ev->status, sizeof ev->status);
  else if (key_is(key, len, "ename")) rc = v->type == SP_J_NULL ? 0 : sp_json_string(v, ev->ename, sizeof ev->ename);
  else if (key_is(key, len, "kernel_pid")) rc = sp_json_int(v, &ev->kernel_pid);
  else if (key_is(key, len, "exit_kind")) rc = sp_json_string(v, ev->exit_kind, sizeof ev->exit_kind);
  else if (key_is(key, len, "exit_code")) rc = sp_json_int(v, &ev->exit_code);
  else if (key_is(key, len, "exit_signal")) rc = sp_json_string(v, ev->exit_signal, sizeof ev->exit_signal);
  else if (key_is(key, len, "sender_pid")) rc = sp_json_int(v, &ev->sender_pid_of_delivery);
  else if (key_is(key, len, "hung")) {
    if ((rc = sp_json_bool(v, &b)) == 0) ev->hung = b;
  } else if (key_is(key, len, "strategies")) rc = sp_json_string_array(v, list_item, &ev->strategies);
  else if (key_is(key, len, "ignored")) rc = sp_json_string_array(v, list_item, &ev->ignored);
  else if (key_is(key, len, "pending")) rc = sp_json_string_array(v, list_item, &ev->pending);
  else if (key_is(key, len, "foreground")) {
    if (v->type == SP_J_NULL) ev->foreground = -1;
    else if ((rc = sp_json_bool(v, &b)) == 0) ev->foreground = b;
  } else if (key_is(key, len, "thread")) {
    if ((rc = sp_json_string(v, tmp, sizeof tmp)) == 0) {
      if (strcmp(tmp, "main") == 0) ev->main_thread = 1;
      else if (strcmp(tmp, "other") == 0) ev->main_thread = 0;
      else rc = SP_EINVAL;
    }
  } else if (key_is(key, len, "disposition_on_entry")) {
    rc = SP_EINVAL;
    if (sp_json_string(v, tmp, sizeof tmp) == 0)
      for (size_t i = 0; i < SP_ARRAY_LEN(disp_names); i++)
        if (strcmp(tmp, disp_names[i]) == 0) {
          ev->disposition_on_entry = (sp_disposition)i;
          rc = 0;
        }
  }
  /* Other members (future facts) are ignored, so
   * older runners can read newer probes. */
  return rc ? bad_member(c, key, len) : 0;
}

int sp_event_decode(const char *line, size_t len, sp_event *ev, sp_error *err) {
  memset(ev, 0, sizeof *ev);
  ev->foreground = -1;
  ev->pgid = ev->sid = -1;
  ev->sender_pid = ev->sender_uid = -1;
  ev->main_thread = -1;
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  if (len == 0) return sp_fail(err, SP_EINVAL, "empty report line");
  decode_ctx c = {ev, 0, err};
  int rc = sp_json_object_walk(line, len, decode_member, &c, err);
  if (rc) return rc;
  if (!c.have_ev) return sp_fail(err, SP_EINVAL, "report line has no \"ev\"");
  switch (ev->kind) {
    case SP_EV_READY:
      if (ev->pid <= 0) return sp_fail(err, SP_EINVAL, "\"ready\" without a pid");
      break;
    case SP_EV_FIRED:
      if (!ev->handler[0] || !ev->sig[0] || ev->t_ns <= 0 || ev->main_thread < 0)
        return sp_fail(err, SP_EINVAL, "\"fired\" needs handler, sig, thread and t_ns");
      break;
    case SP_EV_DONE:
      if (!ev->stopped_by[0]) return sp_fail(err, SP_EINVAL, "\"done\" without stopped_by");
      break;
    case SP_EV_UNSUPPORTED:
    case SP_EV_ERROR:
      if (!ev->reason[0]) return sp_fail(err, SP_EINVAL, "\"%s\" without a reason", kind_names[ev->kind]);
      break;
    case SP_EV_RESULT:
      if (!ev->hung && strcmp(ev->where, "inside-call") != 0 && strcmp(ev->where, "after-return") != 0 &&
          strcmp(ev->where, "nowhere") != 0)
        return sp_fail(err, SP_EINVAL, "\"result\" needs where: inside-call, after-return or nowhere");
      break;
    case SP_EV_DELIVERED:
      if (ev->t_ns <= 0 || sp_signal_parse(ev->sig) < 0)
        return sp_fail(err, SP_EINVAL, "\"delivered\" needs t_ns and a signal name");
      break;
  }
  return 0;
}

/* ---- encoding ---- */

static void put_list(sp_jw *w, const char *key, const sp_name_list *l) {
  sp_jw_key(w, key);
  sp_jw_begin_arr(w);
  for (int i = 0; i < l->n; i++) sp_jw_str(w, l->names[i]);
  sp_jw_end_arr(w);
}

int sp_event_encode(const sp_event *ev, char *buf, size_t n) {
  sp_jw w;
  sp_jw_init(&w, buf, n);
  sp_jw_begin_obj(&w);
  sp_jw_key(&w, "ev");
  sp_jw_str(&w, sp_event_kind_name(ev->kind));
  switch (ev->kind) {
    case SP_EV_READY:
      sp_jw_key(&w, "pid"); sp_jw_int(&w, ev->pid);
      sp_jw_key(&w, "pgid");
      if (ev->pgid < 0) sp_jw_null(&w); else sp_jw_int(&w, ev->pgid);
      sp_jw_key(&w, "sid");
      if (ev->sid < 0) sp_jw_null(&w); else sp_jw_int(&w, ev->sid);
      sp_jw_key(&w, "tty");
      if (ev->tty[0]) sp_jw_str(&w, ev->tty); else sp_jw_null(&w);
      sp_jw_key(&w, "foreground");
      if (ev->foreground < 0) sp_jw_null(&w); else sp_jw_bool(&w, ev->foreground);
      sp_jw_key(&w, "disposition_on_entry"); sp_jw_str(&w, sp_disposition_name(ev->disposition_on_entry));
      put_list(&w, "strategies", &ev->strategies);
      if (ev->console[0]) {
        sp_jw_key(&w, "console");
        sp_jw_raw(&w, ev->console);
        w.need_comma = 1;
      }
      break;
    case SP_EV_FIRED:
      sp_jw_key(&w, "handler"); sp_jw_str(&w, ev->handler);
      sp_jw_key(&w, "sig"); sp_jw_str(&w, ev->sig);
      if (ev->si_code[0]) {
        sp_jw_key(&w, "si_code"); sp_jw_str(&w, ev->si_code);
        sp_jw_key(&w, "si_pid"); sp_jw_int(&w, ev->sender_pid);
        sp_jw_key(&w, "si_uid"); sp_jw_int(&w, ev->sender_uid);
      }
      sp_jw_key(&w, "thread"); sp_jw_str(&w, ev->main_thread ? "main" : "other");
      sp_jw_key(&w, "tid"); sp_jw_int(&w, ev->tid);
      break;
    case SP_EV_DONE:
      sp_jw_key(&w, "stopped_by"); sp_jw_str(&w, ev->stopped_by);
      put_list(&w, "ignored", &ev->ignored);
      put_list(&w, "pending", &ev->pending);
      break;
    case SP_EV_UNSUPPORTED:
    case SP_EV_ERROR:
      sp_jw_key(&w, "reason"); sp_jw_str(&w, ev->reason);
      break;
    case SP_EV_RESULT:
      sp_jw_key(&w, "where"); sp_jw_str(&w, ev->where);
      if (ev->exception[0]) { sp_jw_key(&w, "exception"); sp_jw_str(&w, ev->exception); }
      if (ev->status[0]) { sp_jw_key(&w, "status"); sp_jw_str(&w, ev->status); }
      if (ev->ename[0]) { sp_jw_key(&w, "ename"); sp_jw_str(&w, ev->ename); }
      if (ev->kernel_pid) { sp_jw_key(&w, "kernel_pid"); sp_jw_int(&w, ev->kernel_pid); }
      if (ev->hung) { sp_jw_key(&w, "hung"); sp_jw_bool(&w, true); }
      break;
    case SP_EV_DELIVERED:
      sp_jw_key(&w, "sig"); sp_jw_str(&w, ev->sig);
      sp_jw_key(&w, "sender_pid"); sp_jw_int(&w, ev->sender_pid_of_delivery);
      break;
  }
  if (ev->t_ns) {
    sp_jw_key(&w, "t_ns");
    sp_jw_int(&w, ev->t_ns);
  }
  sp_jw_end_obj(&w);
  sp_jw_raw(&w, "\n");
  return sp_jw_finish(&w);
}

int sp_event_encode_extra(const sp_event *ev, const char *extra_members, char *buf, size_t n) {
  int len = sp_event_encode(ev, buf, n);
  if (len < 2 || !extra_members || !*extra_members) return len;
  /* The encoded line ends in "}\n": splice ",<extra>}\n" in its place. */
  size_t extra = strlen(extra_members);
  if ((size_t)len + extra + 1 >= n) return SP_EINVAL;
  len -= 2;
  buf[len++] = ',';
  memcpy(buf + len, extra_members, extra);
  len += (int)extra;
  buf[len++] = '}';
  buf[len++] = '\n';
  return len;
}

int sp_event_take_line(char *buf, size_t *len, size_t cap, sp_event *ev, sp_error *err) {
  char *nl = memchr(buf, '\n', *len);
  if (!nl) {
    if (*len >= cap || *len >= SP_LINE_MAX) {
      *len = 0;
      return sp_fail(err, SP_EINVAL, "report line longer than %d bytes", SP_LINE_MAX);
    }
    return 0;
  }
  size_t n = (size_t)(nl - buf) + 1;
  int rc = n > SP_LINE_MAX ? sp_fail(err, SP_EINVAL, "report line longer than %d bytes", SP_LINE_MAX)
                           : sp_event_decode(buf, n, ev, err);
  memmove(buf, buf + n, *len - n);
  *len -= n;
  return rc ? rc : 1;
}

void sp_name_list_add(sp_name_list *l, const char *name) {
  if (l->n < SP_LIST_MAX) sp_strlcpy(l->names[l->n++], name, SP_NAME_MAX);
}

static bool is_token(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return false;
  return n == SP_TOKEN_HEX;
}

int sp_report_split(const char *where, char *addr, size_t addr_n, char token[SP_TOKEN_HEX + 1]) {
  const char *hash = strrchr(where, '#');
  bool has = hash && is_token(hash + 1);
  size_t len = has ? (size_t)(hash - where) : strlen(where);
  if (len >= addr_n) return SP_EINVAL;
  memcpy(addr, where, len);
  addr[len] = '\0';
  if (!has) {
    token[0] = '\0';
    return 0;
  }
  memcpy(token, hash + 1, SP_TOKEN_HEX + 1);
  return 1;
}

int sp_hello_encode(const char *token, char *buf, size_t n) {
  int k = snprintf(buf, n, "{\"ev\":\"hello\",\"proto\":%d,\"token\":\"%s\"}\n", SP_PROTOCOL_VERSION, token);
  return k > 0 && (size_t)k < n ? k : SP_EINVAL;
}

bool sp_hello_check(const char *line, size_t len, const char *token) {
  char want[128];
  int n = sp_hello_encode(token, want, sizeof want);
  if (n < 0 || !is_token(token) || len != (size_t)n) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < len; i++) diff |= (unsigned char)(line[i] ^ want[i]);
  return diff == 0;
}

int sp_hello_scan(const char *buf, size_t len, size_t cap, const char *token, size_t *line_len) {
  const char *nl = memchr(buf, '\n', len);
  if (!nl) return len >= cap ? SP_EINVAL : 0;
  *line_len = (size_t)(nl - buf) + 1;
  return sp_hello_check(buf, *line_len, token) ? 1 : SP_EINVAL;
}

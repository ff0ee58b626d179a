/* The JSON writer and flat-object reader (see json.h). */
#include "sigprobe/json.h"

#include <stdio.h>
#include <string.h>

void sp_jw_init(sp_jw *w, char *buf, size_t cap) {
  w->buf = buf;
  w->cap = cap;
  w->len = 0;
  w->overflow = cap == 0;
  w->need_comma = 0;
  if (cap) buf[0] = '\0';
}

static void put(sp_jw *w, const char *s, size_t n) {
  if (w->overflow) return;
  if (w->len + n + 1 > w->cap) {
    w->overflow = 1;
    return;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

static void comma(sp_jw *w) {
  if (w->need_comma) put(w, ",", 1);
  w->need_comma = 1;
}

void sp_jw_raw(sp_jw *w, const char *s) { put(w, s, strlen(s)); }

/* An object or array opens after a comma when it is a value in a list, and
 * its first member needs none; once closed, it is a value like any other. */
static void open_with(sp_jw *w, const char *bracket) {
  comma(w);
  put(w, bracket, 1);
  w->need_comma = 0;
}

static void close_with(sp_jw *w, const char *bracket) {
  put(w, bracket, 1);
  w->need_comma = 1;
}

void sp_jw_begin_obj(sp_jw *w) { open_with(w, "{"); }
void sp_jw_end_obj(sp_jw *w) { close_with(w, "}"); }
void sp_jw_begin_arr(sp_jw *w) { open_with(w, "["); }
void sp_jw_end_arr(sp_jw *w) { close_with(w, "]"); }

static void put_string(sp_jw *w, const char *s) {
  put(w, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    switch (*p) {
      case '"': put(w, "\\\"", 2); break;
      case '\\': put(w, "\\\\", 2); break;
      case '\n': put(w, "\\n", 2); break;
      case '\r': put(w, "\\r", 2); break;
      case '\t': put(w, "\\t", 2); break;
      default:
        if (*p < 0x20) {
          snprintf(esc, sizeof esc, "\\u%04x", *p);
          put(w, esc, 6);
        } else {
          put(w, (const char *)p, 1);
        }
    }
  }
  put(w, "\"", 1);
}

void sp_jw_key(sp_jw *w, const char *key) {
  comma(w);
  put_string(w, key);
  put(w, ":", 1);
  w->need_comma = 0;
}

void sp_jw_str(sp_jw *w, const char *s) {
  comma(w);
  put_string(w, s);
}

void sp_jw_int(sp_jw *w, int64_t v) {
  char tmp[32];
  comma(w);
  int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  put(w, tmp, (size_t)n);
}

void sp_jw_double(sp_jw *w, double v, int decimals) {
  char tmp[64];
  comma(w);
  int n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
  put(w, tmp, (size_t)n);
}

void sp_jw_bool(sp_jw *w, bool v) {
  comma(w);
  put(w, v ? "true" : "false", v ? 4 : 5);
}

void sp_jw_null(sp_jw *w) {
  comma(w);
  put(w, "null", 4);
}

int sp_jw_finish(sp_jw *w) { return w->overflow ? SP_EINVAL : (int)w->len; }

/* ---- reader ---- */

typedef struct reader {
  const char *p, *end;
  sp_error *err;
} reader;

#define SP_JSON_DEPTH_MAX 16

static void skip_ws(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int bad(reader *r, const char *what) {
  return sp_fail(r->err, SP_EINVAL, "malformed JSON: %s", what);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Scans a string starting at the opening quote; leaves p after the closing one. */
static int scan_string(reader *r) {
  if (r->p >= r->end || *r->p != '"') return bad(r, "expected a string");
  r->p++;
  while (r->p < r->end) {
    unsigned char c = (unsigned char)*r->p++;
    if (c == '"') return 0;
    if (c < 0x20) return bad(r, "control character in a string");
    if (c == '\\') {
      if (r->p >= r->end) break;
      char e = *r->p++;
      if (e == 'u') {
        for (int i = 0; i < 4; i++) {
          if (r->p >= r->end || hexval(*r->p) < 0) return bad(r, "bad \\u escape");
          r->p++;
        }
      } else if (e == '\0' || !strchr("\"\\/bfnrt", e)) { /* strchr finds the terminator */
        return bad(r, "bad escape");
      }
    }
  }
  return bad(r, "unterminated string");
}

static int scan_value(reader *r, sp_jvalue *v, int depth);

static int scan_number(reader *r) {
  const char *s = r->p;
  if (r->p < r->end && *r->p == '-') r->p++;
  if (r->p >= r->end || *r->p < '0' || *r->p > '9') return bad(r, "bad number");
  if (*r->p == '0') {
    r->p++;
  } else {
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
  }
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') return bad(r, "bad number");
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') return bad(r, "bad number");
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
  }
  return r->p > s ? 0 : bad(r, "bad number");
}

static int scan_literal(reader *r, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0) return bad(r, "unexpected token");
  r->p += n;
  return 0;
}

static int scan_container(reader *r, int depth, char close, int is_object) {
  r->p++; /* opening bracket */
  skip_ws(r);
  if (r->p < r->end && *r->p == close) {
    r->p++;
    return 0;
  }
  for (;;) {
    sp_jvalue v;
    int rc;
    skip_ws(r);
    if (is_object) {
      if ((rc = scan_string(r)) != 0) return rc;
      skip_ws(r);
      if (r->p >= r->end || *r->p != ':') return bad(r, "expected ':'");
      r->p++;
    }
    if ((rc = scan_value(r, &v, depth + 1)) != 0) return rc;
    skip_ws(r);
    if (r->p >= r->end) return bad(r, "unterminated container");
    if (*r->p == ',') {
      r->p++;
      continue;
    }
    if (*r->p == close) {
      r->p++;
      return 0;
    }
    return bad(r, "expected ',' or a closing bracket");
  }
}

static int scan_value(reader *r, sp_jvalue *v, int depth) {
  int rc;
  if (depth > SP_JSON_DEPTH_MAX) return bad(r, "nested too deeply");
  skip_ws(r);
  if (r->p >= r->end) return bad(r, "expected a value");
  v->start = r->p;
  switch (*r->p) {
    case '"': v->type = SP_J_STRING; rc = scan_string(r); break;
    case '{': v->type = SP_J_OBJECT; rc = scan_container(r, depth, '}', 1); break;
    case '[': v->type = SP_J_ARRAY; rc = scan_container(r, depth, ']', 0); break;
    case 't': v->type = SP_J_BOOL; rc = scan_literal(r, "true"); break;
    case 'f': v->type = SP_J_BOOL; rc = scan_literal(r, "false"); break;
    case 'n': v->type = SP_J_NULL; rc = scan_literal(r, "null"); break;
    default: v->type = SP_J_NUMBER; rc = scan_number(r); break;
  }
  v->len = (size_t)(r->p - v->start);
  return rc;
}

int sp_json_object_walk(const char *text, size_t len, sp_json_member_fn member, void *ctx, sp_error *err) {
  reader r = {text, text + len, err};
  skip_ws(&r);
  if (r.p >= r.end || *r.p != '{') return bad(&r, "expected an object");
  r.p++;
  skip_ws(&r);
  if (r.p < r.end && *r.p == '}') {
    r.p++;
  } else {
    for (;;) {
      int rc;
      sp_jvalue v;
      skip_ws(&r);
      const char *key = r.p + 1;
      if ((rc = scan_string(&r)) != 0) return rc;
      size_t key_len = (size_t)(r.p - 1 - key);
      skip_ws(&r);
      if (r.p >= r.end || *r.p != ':') return bad(&r, "expected ':'");
      r.p++;
      if ((rc = scan_value(&r, &v, 1)) != 0) return rc;
      if ((rc = member(key, key_len, &v, ctx)) != 0) return rc;
      skip_ws(&r);
      if (r.p >= r.end) return bad(&r, "unterminated object");
      if (*r.p == ',') {
        r.p++;
        continue;
      }
      if (*r.p == '}') {
        r.p++;
        break;
      }
      return bad(&r, "expected ',' or '}'");
    }
  }
  skip_ws(&r);
  if (r.p != r.end) return bad(&r, "trailing characters after the object");
  return 0;
}

static int utf8_put(char *out, size_t n, size_t *o, unsigned cp) {
  unsigned char tmp[4];
  size_t k;
  if (cp < 0x80) {
    tmp[0] = (unsigned char)cp;
    k = 1;
  } else if (cp < 0x800) {
    tmp[0] = (unsigned char)(0xC0 | (cp >> 6));
    tmp[1] = (unsigned char)(0x80 | (cp & 0x3F));
    k = 2;
  } else {
    tmp[0] = (unsigned char)(0xE0 | (cp >> 12));
    tmp[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    tmp[2] = (unsigned char)(0x80 | (cp & 0x3F));
    k = 3;
  }
  if (*o + k >= n) return SP_EINVAL;
  memcpy(out + *o, tmp, k);
  *o += k;
  return 0;
}

int sp_json_string(const sp_jvalue *v, char *out, size_t n) {
  if (v->type != SP_J_STRING || n == 0) return SP_EINVAL;
  size_t o = 0;
  const char *p = v->start + 1, *end = v->start + v->len - 1;
  while (p < end) {
    char c = *p++;
    if (c == '\\') {
      char e = *p++;
      unsigned cp;
      switch (e) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'u':
          cp = (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
          p += 4;
          break;
        default: cp = (unsigned char)e; break;
      }
      if (utf8_put(out, n, &o, cp) != 0) return SP_EINVAL;
    } else {
      if (o + 1 >= n) return SP_EINVAL;
      out[o++] = c;
    }
  }
  out[o] = '\0';
  return 0;
}

int sp_json_int(const sp_jvalue *v, int64_t *out) {
  if (v->type != SP_J_NUMBER) return SP_EINVAL;
  int64_t x = 0;
  size_t i = 0;
  int neg = 0;
  if (v->len && v->start[0] == '-') {
    neg = 1;
    i = 1;
  }
  if (i >= v->len) return SP_EINVAL;
  for (; i < v->len; i++) {
    char c = v->start[i];
    if (c < '0' || c > '9') return SP_EINVAL; /* fractions and exponents are not integers */
    if (x > (INT64_MAX - (c - '0')) / 10) return SP_EINVAL;
    x = x * 10 + (c - '0');
  }
  *out = neg ? -x : x;
  return 0;
}

int sp_json_bool(const sp_jvalue *v, bool *out) {
  if (v->type != SP_J_BOOL) return SP_EINVAL;
  *out = v->start[0] == 't';
  return 0;
}

int sp_json_string_array(const sp_jvalue *v, int (*item)(const char *s, void *ctx), void *ctx) {
  if (v->type != SP_J_ARRAY) return SP_EINVAL;
  reader r = {v->start + 1, v->start + v->len - 1, NULL};
  for (;;) {
    skip_ws(&r);
    if (r.p >= r.end) return 0;
    sp_jvalue s;
    if (scan_value(&r, &s, 1) != 0 || s.type != SP_J_STRING) return SP_EINVAL;
    char buf[256];
    if (sp_json_string(&s, buf, sizeof buf) != 0) return SP_EINVAL;
    int rc = item(buf, ctx);
    if (rc) return rc;
    skip_ws(&r);
    if (r.p < r.end && *r.p == ',') r.p++;
  }
}

/* sigprobe: the small JSON writer and the flat-object reader the protocol
 * and outcomes need. Not a general JSON library: the reader walks the
 * top-level members of one object and hands each value's raw span to the
 * caller; nested values are validated and can be read as lists of strings. */
#ifndef SIGPROBE_JSON_H
#define SIGPROBE_JSON_H

#include <stdbool.h>
#include "sigprobe/common.h"

/* Writer: appends to a caller-owned buffer; once it overflows, every further
 * call is a no-op and sp_jw_finish returns SP_EINVAL. */
typedef struct sp_jw {
  char *buf;
  size_t cap, len;
  int overflow;
  int need_comma;
} sp_jw;

void sp_jw_init(sp_jw *w, char *buf, size_t cap);
void sp_jw_raw(sp_jw *w, const char *s);
void sp_jw_begin_obj(sp_jw *w);
void sp_jw_end_obj(sp_jw *w);
void sp_jw_begin_arr(sp_jw *w);
void sp_jw_end_arr(sp_jw *w);
void sp_jw_key(sp_jw *w, const char *key);
void sp_jw_str(sp_jw *w, const char *s);
void sp_jw_int(sp_jw *w, int64_t v);
void sp_jw_double(sp_jw *w, double v, int decimals);
void sp_jw_bool(sp_jw *w, bool v);
void sp_jw_null(sp_jw *w);
/* Returns the length written, or SP_EINVAL on overflow. */
int sp_jw_finish(sp_jw *w);

typedef enum sp_jtype { SP_J_STRING, SP_J_NUMBER, SP_J_BOOL, SP_J_NULL, SP_J_ARRAY, SP_J_OBJECT } sp_jtype;

typedef struct sp_jvalue {
  sp_jtype type;
  const char *start; /* raw span of the value in the input */
  size_t len;
} sp_jvalue;

/* Calls member(key, value, ctx) for every top-level member of the object in
 * text[0..len). Stops at the first nonzero return of member and returns it.
 * Returns SP_EINVAL with a reason in err for malformed input (including
 * trailing garbage and nesting deeper than 16). */
typedef int (*sp_json_member_fn)(const char *key, size_t key_len, const sp_jvalue *value, void *ctx);
int sp_json_object_walk(const char *text, size_t len, sp_json_member_fn member, void *ctx, sp_error *err);

/* Decodes a string value into out (escapes resolved; \uXXXX above 0x7f as
 * UTF-8). Returns 0 or SP_EINVAL (wrong type or too long). */
int sp_json_string(const sp_jvalue *v, char *out, size_t n);
/* Decodes an integer value. Returns 0 or SP_EINVAL. */
int sp_json_int(const sp_jvalue *v, int64_t *out);
/* Decodes a boolean value. Returns 0 or SP_EINVAL. */
int sp_json_bool(const sp_jvalue *v, bool *out);
/* Calls item(string, ctx) for each string of an array of strings. */
int sp_json_string_array(const sp_jvalue *v, int (*item)(const char *s, void *ctx), void *ctx);

#endif

#include <criterion/criterion.h>
#include <string.h>

#include "sigprobe/json.h"

static int count_members(const char *k, size_t kl, const sp_jvalue *v, void *ctx) {
  (void)k;
  (void)kl;
  (void)v;
  ++*(int *)ctx;
  return 0;
}

static int walk(const char *s) {
  int n = 0;
  sp_error err;
  int rc = sp_json_object_walk(s, strlen(s), count_members, &n, &err);
  return rc ? rc : n;
}

Test(json, object_members_are_walked_in_order) { cr_assert_eq(walk("{\"a\":1,\"b\":[1,{\"c\":null}],\"d\":\"x\"}"), 3); }
Test(json, empty_object_has_no_members) { cr_assert_eq(walk(" {} "), 0); }
Test(json, trailing_garbage_is_rejected) { cr_assert_eq(walk("{\"a\":1} x"), SP_EINVAL); }
Test(json, unterminated_string_is_rejected) { cr_assert_eq(walk("{\"a\":\"abc}"), SP_EINVAL); }
Test(json, bare_array_is_not_an_object) { cr_assert_eq(walk("[1,2]"), SP_EINVAL); }
Test(json, deep_nesting_is_rejected) {
  char s[200] = "{\"a\":";
  for (int i = 0; i < 40; i++) strcat(s, "[");
  cr_assert_eq(walk(s), SP_EINVAL);
}
/* A NUL after a backslash is not an escape: it passed once, and the raw
 * object it sat in was written back cut short at the NUL (fuzz.event). */
Test(json, backslash_then_nul_is_a_bad_escape) {
  static const char s[] = "{\"a\\\0b\":1}";
  int n = 0;
  sp_error err;
  cr_assert_eq(sp_json_object_walk(s, sizeof s - 1, count_members, &n, &err), SP_EINVAL);
  cr_assert_str_eq(err.msg, "malformed JSON: bad escape");
}
Test(json, control_character_in_string_is_rejected) { cr_assert_eq(walk("{\"a\":\"x\ty\"}"), SP_EINVAL); }

Test(json, writer_escapes_and_reports_overflow) {
  char buf[64];
  sp_jw w;
  sp_jw_init(&w, buf, sizeof buf);
  sp_jw_begin_obj(&w);
  sp_jw_key(&w, "s");
  sp_jw_str(&w, "a\"b\\c\n");
  sp_jw_end_obj(&w);
  cr_assert_gt(sp_jw_finish(&w), 0);
  cr_assert_str_eq(buf, "{\"s\":\"a\\\"b\\\\c\\n\"}");
  char tiny[4];
  sp_jw_init(&w, tiny, sizeof tiny);
  sp_jw_str(&w, "too long");
  cr_assert_eq(sp_jw_finish(&w), SP_EINVAL);
}

static sp_jvalue value_of(const char *text, sp_jtype type) {
  sp_jvalue v = {type, text, strlen(text)};
  return v;
}

Test(json, integers_decode_and_overflow_is_rejected) {
  int64_t x;
  sp_jvalue v = value_of("-42", SP_J_NUMBER);
  cr_assert_eq(sp_json_int(&v, &x), 0);
  cr_assert_eq(x, -42);
  v = value_of("99999999999999999999", SP_J_NUMBER);
  cr_assert_eq(sp_json_int(&v, &x), SP_EINVAL);
  v = value_of("1.5", SP_J_NUMBER);
  cr_assert_eq(sp_json_int(&v, &x), SP_EINVAL);
}

Test(json, string_escapes_decode_to_utf8) {
  char out[16];
  sp_jvalue v = value_of("\"a\\u00e9\\n\"", SP_J_STRING);
  cr_assert_eq(sp_json_string(&v, out, sizeof out), 0);
  cr_assert_str_eq(out, "a\xc3\xa9\n");
}

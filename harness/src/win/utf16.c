/* UTF-8 <-> UTF-16 at the Windows boundary, and command-line quoting (see utf16.h). */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "utf16.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

/* Where s stops being UTF-8 (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or -1 when all of it is. MultiByteToWideChar's
 * MB_ERR_INVALID_CHARS says only that something is wrong; this says where. */
static long invalid_at(const unsigned char *s) {
  for (long i = 0; s[i];) {
    unsigned c = s[i];
    int k;
    unsigned min, cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) k = 1, min = 0x80, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) k = 2, min = 0x800, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) k = 3, min = 0x10000, cp = c & 0x07;
    else return i;
    for (int j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return i;
      cp = cp << 6 | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += k + 1;
  }
  return -1;
}

int sp__utf16(const char *what, const char *s, wchar_t *out, size_t n, sp_error *err) {
  long bad = invalid_at((const unsigned char *)s);
  if (bad >= 0)
    return sp_fail(err, SP_EINVAL, "%s is not valid UTF-8 (byte 0x%02X at offset %ld)", what, (unsigned char)s[bad],
                   bad);
  if (n == 0 || n > INT_MAX) return sp_fail(err, SP_EFAIL, "%s: no room to convert it to UTF-16", what);
  int k = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, out, (int)n);
  if (k == 0) return sp_fail(err, SP_EFAIL, "%s is longer than %lu UTF-16 characters", what, (unsigned long)(n - 1));
  return 0;
}

int sp__utf8(const char *what, const wchar_t *w, char *out, size_t n, sp_error *err) {
  for (size_t i = 0; w[i]; i++) {
    bool high = w[i] >= 0xD800 && w[i] <= 0xDBFF, low = w[i] >= 0xDC00 && w[i] <= 0xDFFF;
    if (low || (high && !(w[i + 1] >= 0xDC00 && w[i + 1] <= 0xDFFF)))
      return sp_fail(err, SP_EINVAL, "%s is not valid UTF-16 (unpaired surrogate 0x%04X at %lu)", what,
                     (unsigned)w[i], (unsigned long)i);
    if (high) i++;
  }
  if (n == 0 || n > INT_MAX) return sp_fail(err, SP_EFAIL, "%s: no room to convert it to UTF-8", what);
  int k = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, out, (int)n, NULL, NULL);
  if (k == 0) return sp_fail(err, SP_EFAIL, "%s is longer than %lu UTF-8 bytes", what, (unsigned long)(n - 1));
  return 0;
}

/* The rules are those CommandLineToArgvW and the Microsoft C runtime parse
 * by ("Parsing C command-line arguments"): 2n backslashes before a quote are
 * n backslashes and the quote delimits; 2n+1 are n and a literal quote;
 * backslashes not before a quote are literal. */
int sp__argv_quote(const wchar_t *arg, wchar_t *cmd, size_t cap, size_t *len) {
  size_t at = *len;
#define PUT(c)                           \
  do {                                   \
    if (at + 1 >= cap) return SP_EFAIL;  \
    cmd[at++] = (c);                     \
  } while (0)
  if (at > 0) PUT(L' ');
  bool quote = !*arg || wcspbrk(arg, L" \t\n\v\"") != NULL;
  if (quote) PUT(L'"');
  for (const wchar_t *p = arg;; p++) {
    size_t slashes = 0;
    while (*p == L'\\') p++, slashes++;
    if (!*p) {
      /* Before the closing quote, every backslash is doubled. */
      for (size_t i = 0; i < (quote ? 2 * slashes : slashes); i++) PUT(L'\\');
      break;
    }
    if (*p == L'"') {
      for (size_t i = 0; i < 2 * slashes + 1; i++) PUT(L'\\');
    } else {
      for (size_t i = 0; i < slashes; i++) PUT(L'\\');
    }
    PUT(*p);
  }
  if (quote) PUT(L'"');
#undef PUT
  cmd[at] = L'\0';
  *len = at;
  return 0;
}

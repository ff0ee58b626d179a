/* UTF-8 inside, UTF-16 at the Windows boundary: the one pair of conversions.
 *
 * Every string sigprobe holds is UTF-8 (paths, command lines, environment
 * values); every Windows call that takes or returns text is a W function,
 * given and giving UTF-16 through these two. A string that does not convert
 * is an error naming it, never a truncated or mangled name. */
#ifndef SIGPROBE_WIN_UTF16_H
#define SIGPROBE_WIN_UTF16_H

#include <stddef.h>
#include <wchar.h>

#include "sigprobe/common.h"

/* UTF-8 `s` into out (n wide characters, with the terminator). Returns 0,
 * SP_EINVAL when s is not valid UTF-8 (err: "<what> is not valid UTF-8
 * (byte 0xNN at offset K)") or SP_EFAIL when it does not fit. */
int sp__utf16(const char *what, const char *s, wchar_t *out, size_t n, sp_error *err);

/* UTF-16 `w` into out (n bytes, with the terminator). Returns 0, SP_EINVAL
 * when w holds an unpaired surrogate, or SP_EFAIL when it does not fit. */
int sp__utf8(const char *what, const wchar_t *w, char *out, size_t n, sp_error *err);

/* Appends UTF-16 `arg` to the command line cmd (cap wide characters, with
 * the terminator; *len is its length so far), preceded by a space unless it
 * is the first, quoted so that CommandLineToArgvW and the C runtimes give it
 * back unchanged: wrapped in quotes when empty or holding a space, a tab or
 * a quote; each quote preceded by a backslash; backslashes doubled where a
 * quote follows them. Returns 0, or SP_EFAIL when it does not fit. */
int sp__argv_quote(const wchar_t *arg, wchar_t *cmd, size_t cap, size_t *len);

#endif

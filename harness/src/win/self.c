/* This process on Windows: its arguments as UTF-8, its own folder, and the
 * console handler the runner's helpers share (see platform.h, proc.h). */
#include "proc.h"

#include <bcrypt.h>
#include <shellapi.h>
#include <stdlib.h>
#include <string.h>

#include "../os.h"
#include "utf16.h"

BOOL WINAPI sp__win_swallow(DWORD type) {
  (void)type;
  return TRUE;
}

int sp_main_args(int *argc, char ***argv, sp_error *err) {
  int n = 0;
  wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &n);
  if (!wargv) return sp_fail(err, SP_EFAIL, "CommandLineToArgvW: error %lu", GetLastError());
  char **out = calloc((size_t)n + 1, sizeof *out);
  int rc = out ? 0 : sp_fail(err, SP_EFAIL, "calloc: out of memory");
  for (int i = 0; rc == 0 && i < n; i++) {
    size_t cap = wcslen(wargv[i]) * 3 + 1; /* a UTF-16 unit is at most 3 UTF-8 bytes */
    out[i] = malloc(cap);
    rc = out[i] ? sp__utf8("an argument", wargv[i], out[i], cap, err) : sp_fail(err, SP_EFAIL, "malloc: out of memory");
  }
  LocalFree(wargv);
  if (rc != 0) {
    for (int i = 0; out && i < n; i++) free(out[i]);
    free(out);
    return rc;
  }
  *argc = n;
  *argv = out; /* lives until the process exits, as argv does */
  return 0;
}

int sp_self_dir(char *buf, size_t n, sp_error *err) {
  static wchar_t self[32768];
  DWORD k = GetModuleFileNameW(NULL, self, (DWORD)SP_ARRAY_LEN(self));
  if (k == 0 || k >= SP_ARRAY_LEN(self)) return sp_fail(err, SP_EFAIL, "GetModuleFileNameW: error %lu", GetLastError());
  wchar_t *slash = wcsrchr(self, L'\\');
  if (slash) *slash = L'\0';
  return sp__utf8("this executable's folder", self, buf, n, err);
}

bool sp_is_dir(const char *path) {
  static wchar_t wpath[32768];
  if (sp__utf16("the folder", path, wpath, SP_ARRAY_LEN(wpath), NULL) != 0) return false;
  DWORD a = GetFileAttributesW(wpath);
  return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

int sp__random_bytes(void *buf, size_t n, sp_error *err) {
  NTSTATUS st = BCryptGenRandom(NULL, buf, (ULONG)n, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
  if (st != 0) return sp_fail(err, SP_EFAIL, "BCryptGenRandom: NTSTATUS 0x%08lX", (unsigned long)st);
  return 0;
}

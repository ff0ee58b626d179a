/* UTF-8 inside, UTF-16 at the boundary (harness/src/win/utf16.c): the
 * conversions, the command-line quoting read back by CommandLineToArgvW, and
 * the runner with its probes run from a folder whose name holds non-ASCII
 * characters and a space, giving the same verdicts as from the build tree. */
#include "tap.h"

#include <shellapi.h>
#include <wchar.h>

#include "utf16.h"

/* ---- Conversions ---- */

static void utf8_round_trip(void) {
  const char *s = "Jos\xC3\xA9 \xE5\xB1\xB1\xE7\x94\xB0 \xF0\x9F\x98\x80"; /* José 山田 😀 */
  wchar_t w[64];
  char back[64];
  sp_error err;
  int rc = sp__utf16("a name", s, w, SP_ARRAY_LEN(w), &err);
  tap_ok(rc == 0 && wcscmp(w, L"Jos\u00e9 \u5c71\u7530 \U0001F600") == 0, "UTF-8 becomes the same UTF-16 (rc %d)", rc);
  rc = sp__utf8("a name", w, back, sizeof back, &err);
  tap_ok(rc == 0 && strcmp(back, s) == 0, "and comes back byte for byte (rc %d)", rc);
}

static void invalid_utf8_is_one_clear_error(void) {
  static const struct {
    const char *s, *msg;
  } bad[] = {
      {"ab\xC3(", "the probe's path is not valid UTF-8 (byte 0xC3 at offset 2)"},   /* a lead byte without its tail */
      {"\xC0\xAF", "the probe's path is not valid UTF-8 (byte 0xC0 at offset 0)"},  /* an overlong '/' */
      {"x\xED\xA0\x80", "the probe's path is not valid UTF-8 (byte 0xED at offset 1)"}, /* an encoded surrogate */
      {"\xF4\x90\x80\x80", "the probe's path is not valid UTF-8 (byte 0xF4 at offset 0)"}, /* above U+10FFFF */
  };
  for (size_t i = 0; i < SP_ARRAY_LEN(bad); i++) {
    wchar_t w[16];
    sp_error err = {""};
    int rc = sp__utf16("the probe's path", bad[i].s, w, SP_ARRAY_LEN(w), &err);
    tap_ok(rc == SP_EINVAL && strcmp(err.msg, bad[i].msg) == 0, "invalid UTF-8 #%u is refused: %s", (unsigned)i,
           err.msg);
  }
  wchar_t lone[] = {L'a', 0xD800, L'b', 0};
  char out[16];
  sp_error err = {""};
  tap_ok(sp__utf8("a name", lone, out, sizeof out, &err) == SP_EINVAL && strstr(err.msg, "unpaired surrogate 0xD800"),
         "a lone surrogate is refused: %s", err.msg);
  wchar_t small[4];
  tap_ok(sp__utf16("a name", "too long", small, SP_ARRAY_LEN(small), &err) == SP_EFAIL, "a string that does not fit is "
         "refused, not truncated: %s", err.msg);
}

/* ---- Quoting ---- */

static void quoting_reads_back(void) {
  static const wchar_t *const args[] = {
      L"plain",        L"with space",   L"",           L"a\"b",          L"\"quoted\"",   L"back\\slash",
      L"trail\\",      L"trail\\\\",    L"sp ace\\",   L"a\\\"b",        L"a\\\\\"b",     L"tab\there",
      L"\\\\server\\share\\", L"Jos\u00e9 \u5c71\u7530", L"\U0001F600 \"\\", L"C:\\Program Files\\x\\",
  };
  wchar_t cmd[4096];
  size_t len = 0;
  int rc = sp__argv_quote(L"prog.exe", cmd, SP_ARRAY_LEN(cmd), &len);
  for (size_t i = 0; rc == 0 && i < SP_ARRAY_LEN(args); i++) rc = sp__argv_quote(args[i], cmd, SP_ARRAY_LEN(cmd), &len);
  tap_ok(rc == 0, "the command line is built (%u characters)", (unsigned)len);
  int n = 0;
  wchar_t **back = CommandLineToArgvW(cmd, &n);
  tap_ok(back && n == (int)SP_ARRAY_LEN(args) + 1, "CommandLineToArgvW reads %d arguments (want %u)", n,
         (unsigned)SP_ARRAY_LEN(args) + 1);
  for (size_t i = 0; back && i < SP_ARRAY_LEN(args) && (int)i + 1 < n; i++) {
    char want[256], got[256];
    sp__utf8("want", args[i], want, sizeof want, NULL);
    sp__utf8("got", back[i + 1], got, sizeof got, NULL);
    tap_ok(wcscmp(back[i + 1], args[i]) == 0, "argument %u reads back unchanged: [%s] -> [%s]", (unsigned)i, want, got);
  }
  if (back) LocalFree(back);
  wchar_t tiny[8];
  len = 0;
  tap_ok(sp__argv_quote(L"longer than eight", tiny, SP_ARRAY_LEN(tiny), &len) == SP_EFAIL,
         "a command line that does not fit is refused");
}

/* ---- The runner from a Unicode folder ---- */

static wchar_t g_build[MAX_PATH], g_uni[MAX_PATH];

static bool copy_exe(const wchar_t *from_dir, const wchar_t *to_dir, const wchar_t *name) {
  wchar_t a[MAX_PATH], b[MAX_PATH];
  swprintf(a, MAX_PATH, L"%ls\\%ls", from_dir, name);
  swprintf(b, MAX_PATH, L"%ls\\%ls", to_dir, name);
  return CopyFileW(a, b, FALSE) != 0;
}

/* Copies sigprobe-run.exe and probes\*.exe into a fresh folder named with
 * non-ASCII characters and a space. */
static bool make_unicode_tree(void) {
  wchar_t tmp[MAX_PATH], probes_from[MAX_PATH], probes_to[MAX_PATH], pattern[MAX_PATH];
  DWORD k = GetModuleFileNameW(NULL, g_build, MAX_PATH);
  wchar_t *slash = k ? wcsrchr(g_build, L'\\') : NULL;
  if (!slash) return false;
  *slash = L'\0';
  GetTempPathW(MAX_PATH, tmp);
  swprintf(g_uni, MAX_PATH, L"%lssigprobe Jos\u00e9 \u5c71\u7530 %lu", tmp, (unsigned long)GetCurrentProcessId());
  swprintf(probes_from, MAX_PATH, L"%ls\\probes", g_build);
  swprintf(probes_to, MAX_PATH, L"%ls\\probes", g_uni);
  if (!CreateDirectoryW(g_uni, NULL) || !CreateDirectoryW(probes_to, NULL)) return false;
  if (!copy_exe(g_build, g_uni, L"sigprobe-run.exe")) return false;
  swprintf(pattern, MAX_PATH, L"%ls\\*.exe", probes_from);
  WIN32_FIND_DATAW fd;
  HANDLE h = FindFirstFileW(pattern, &fd);
  if (h == INVALID_HANDLE_VALUE) return false;
  bool ok = true;
  do ok = ok && copy_exe(probes_from, probes_to, fd.cFileName);
  while (FindNextFileW(h, &fd));
  FindClose(h);
  return ok;
}

static void remove_unicode_tree(void) {
  wchar_t probes[MAX_PATH], pattern[MAX_PATH], file[MAX_PATH];
  swprintf(probes, MAX_PATH, L"%ls\\probes", g_uni);
  swprintf(pattern, MAX_PATH, L"%ls\\*.exe", probes);
  WIN32_FIND_DATAW fd;
  HANDLE h = FindFirstFileW(pattern, &fd);
  if (h != INVALID_HANDLE_VALUE) {
    do {
      swprintf(file, MAX_PATH, L"%ls\\%ls", probes, fd.cFileName);
      DeleteFileW(file);
    } while (FindNextFileW(h, &fd));
    FindClose(h);
  }
  RemoveDirectoryW(probes);
  swprintf(file, MAX_PATH, L"%ls\\sigprobe-run.exe", g_uni);
  DeleteFileW(file);
  RemoveDirectoryW(g_uni);
}

/* Runs `dir\sigprobe-run.exe args...` and returns the verdict it printed
 * (into verdict), or "" when it printed no outcome. */
static void run_runner(const wchar_t *dir, const wchar_t *const args[], char *verdict, size_t n) {
  wchar_t exe[MAX_PATH], cmd[4096];
  size_t len = 0;
  char out[16384];
  DWORD total = 0, k;
  verdict[0] = '\0';
  swprintf(exe, MAX_PATH, L"%ls\\sigprobe-run.exe", dir);
  sp__argv_quote(exe, cmd, SP_ARRAY_LEN(cmd), &len);
  for (int i = 0; args[i]; i++) sp__argv_quote(args[i], cmd, SP_ARRAY_LEN(cmd), &len);
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
  HANDLE r, w;
  if (!CreatePipe(&r, &w, &sa, 0)) return;
  SetHandleInformation(r, HANDLE_FLAG_INHERIT, 0);
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdOutput = w;
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  BOOL started = CreateProcessW(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
  CloseHandle(w);
  if (started) {
    while (total < sizeof out - 1 && ReadFile(r, out + total, (DWORD)(sizeof out - 1 - total), &k, NULL) && k > 0)
      total += k;
    WaitForSingleObject(pi.hProcess, 60000);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
  }
  CloseHandle(r);
  out[total] = '\0';
  const char *v = strstr(out, "\"verdict\":\"");
  if (!v) {
    printf("# no outcome: %.300s\n", out);
    return;
  }
  v += 11;
  size_t l = strcspn(v, "\"");
  snprintf(verdict, n, "%.*s", (int)l, v);
  printf("# %.400s\n", out);
}

static void runner_from_unicode_folder(void) {
  static const struct {
    const wchar_t *cell;
    const char *want;
  } cells[] = {
      {L"jupyter-launch/event/set-event", "handled"},
      {L"no-window/console-ctrl/ctrl-c", "handled"},
      {L"detached/none/terminate", "killed"},
      {L"jupyter-launch/none/set-event", "lost"},
  };
  if (!make_unicode_tree()) {
    tap_ok(0, "a folder named with non-ASCII characters and a space holds a copy of the runner and probes (error %lu)",
           GetLastError());
    remove_unicode_tree();
    return;
  }
  wchar_t uni_probes[MAX_PATH];
  swprintf(uni_probes, MAX_PATH, L"%ls\\probes", g_uni);
  for (size_t i = 0; i < SP_ARRAY_LEN(cells); i++) {
    char from_build[32], from_uni[32], given_dir[32], id[64];
    /* A generous start-up bound: a new console under a loaded Wine can take
     * seconds to come up, which is not what this test is about. */
    const wchar_t *plain[] = {L"--ready-ms", L"15000", cells[i].cell, NULL};
    const wchar_t *with_dir[] = {L"--ready-ms", L"15000", L"--probe-dir", uni_probes, cells[i].cell, NULL};
    sp__utf8("the cell", cells[i].cell, id, sizeof id, NULL);
    run_runner(g_build, plain, from_build, sizeof from_build);
    run_runner(g_uni, plain, from_uni, sizeof from_uni);
    run_runner(g_build, with_dir, given_dir, sizeof given_dir);
    tap_ok(strcmp(from_build, cells[i].want) == 0, "%s from the build tree is %s (got %s)", id, cells[i].want,
           from_build);
    tap_ok(strcmp(from_uni, from_build) == 0, "%s from the non-ASCII folder gives the same verdict (got %s)", id,
           from_uni);
    tap_ok(strcmp(given_dir, from_build) == 0, "%s with --probe-dir naming that folder gives the same verdict (got %s)",
           id, given_dir);
  }
  remove_unicode_tree();
}

/* A probe path that is not UTF-8 is the run's error, naming it, never a
 * different file. */
static void invalid_probe_dir_is_an_error(void) {
  sp_cell cell;
  sp_run_options opt;
  sp_outcome o;
  if (sp_cell_parse("detached/none/terminate", &cell, NULL) != 0) {
    tap_ok(0, "the cell parses");
    return;
  }
  sp_run_options_default(&opt, "C:\\bad\xC3(dir");
  sp_run_cell(&cell, &opt, &o);
  tap_ok(o.verdict == SP_VERDICT_ERROR && strstr(o.reason, "is not valid UTF-8 (byte 0xC3 at offset 6)"),
         "a probe folder that is not UTF-8 is an error naming it (%s: %s)", sp_verdict_name(o.verdict), o.reason);
}

int main(void) {
  utf8_round_trip();
  invalid_utf8_is_one_clear_error();
  quoting_reads_back();
  invalid_probe_dir_is_an_error();
  runner_from_unicode_folder();
  return tap_done();
}

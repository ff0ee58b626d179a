/* sigprobe-run: runs exactly one cell and prints one outcome as one JSON line.
 * Exit status: 0 when an outcome was printed (whatever its verdict), 2 on
 * bad input (unknown cell, flag or value). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <unistd.h>
#endif

#include "sigprobe/cell.h"
#include "sigprobe/json.h"
#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#endif
#include "sigprobe/run.h"

static const char usage[] =
    "usage: sigprobe-run [options] CELL\n"
    "       sigprobe-run --list\n"
    "\n"
    "Runs one cell (platform/host/strategy/delivery, or host/strategy/delivery)\n"
    "and prints its outcome as one JSON line.\n"
    "\n"
    "options:\n"
    "  --list            print every cell id for this platform, one a line\n"
    "  --version         print the runner's platform, compiler and C library as JSON\n"
    "  --probe-dir DIR   where the sigprobe-probe-* executables are\n"
    "                    (default: the probes/ folder beside this executable)\n"
    "  --ready-ms N      spawn -> ready deadline (default 2000)\n"
    "  --window-ms N     delivery -> first handler window; after it nothing\n"
    "                    noticed and the probe is asked to stop (default 100)\n"
    "  --deadline-ms N   delivery -> exit deadline (default 3000)\n"
    "  -h, --help        show this help\n"
    "\n"
    "Every window is multiplied by SIGPROBE_TIMEOUT_MULTIPLIER (default 1).\n";

static int bad_input(const char *what, const char *arg) {
  fprintf(stderr, "sigprobe-run: %s%s\n", what, arg ? arg : "");
  return 2;
}

static int parse_ms(const char *flag, const char *value, int *out) {
  char *end;
  long v = value ? strtol(value, &end, 10) : 0;
  if (!value || *end || v <= 0 || v > 600000) {
    fprintf(stderr, "sigprobe-run: %s needs a number of milliseconds between 1 and 600000\n", flag);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static void default_probe_dir(const char *argv0, char *dir, size_t n) {
  char self[PATH_MAX] = "";
#ifdef __linux__
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k > 0) self[k] = '\0';
#endif
  if (!self[0]) sp_strlcpy(self, argv0, sizeof self);
  char *slash = strrchr(self, '/');
#ifdef _WIN32
  char *bslash = strrchr(self, '\\');
  if (bslash > slash) slash = bslash;
#endif
  if (slash) *slash = '\0';
  else sp_strlcpy(self, ".", sizeof self);
  snprintf(dir, n, "%s/probes", self);
}

static void list_cells(void) {
  for (int h = 0; h < SP_HOST_COUNT; h++)
    for (int s = 0; s < SP_STRATEGY_COUNT; s++)
      for (int d = 0; d < SP_DELIVERY_COUNT; d++) {
        char id[128];
        sp_cell c = {(sp_host)h, (sp_strategy)s, (sp_delivery)d};
        puts(sp_cell_format(&c, id, sizeof id));
      }
}

/* What the results document's `machine` needs to know about the C side. */
static void print_version(void) {
  char buf[512];
  sp_jw w;
  sp_jw_init(&w, buf, sizeof buf);
  sp_jw_begin_obj(&w);
  sp_jw_key(&w, "platform");
  sp_jw_str(&w, sp_platform_name());
  sp_jw_key(&w, "compiler");
#if defined(__clang__)
  sp_jw_str(&w, "clang " __clang_version__);
#elif defined(__GNUC__)
  sp_jw_str(&w, "gcc " __VERSION__);
#elif defined(_MSC_VER)
  char msc[32];
  snprintf(msc, sizeof msc, "msvc %d", _MSC_VER);
  sp_jw_str(&w, msc);
#else
  sp_jw_str(&w, "unknown");
#endif
  sp_jw_key(&w, "libc");
#if defined(__GLIBC__)
  char libc[64];
  snprintf(libc, sizeof libc, "glibc %s", gnu_get_libc_version());
  sp_jw_str(&w, libc);
#elif defined(_WIN32)
  sp_jw_str(&w, "msvcrt");
#else
  sp_jw_str(&w, "system");
#endif
  sp_jw_end_obj(&w);
  if (sp_jw_finish(&w) > 0) puts(buf);
}

int main(int argc, char **argv) {
  char probe_dir[PATH_MAX];
  sp_run_options opt;
  const char *cell_id = NULL;
  int ready = -1, window = -1, deadline = -1;

  default_probe_dir(argv[0], probe_dir, sizeof probe_dir);
  sp_run_options_default(&opt, probe_dir);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    } else if (!strcmp(a, "--version")) {
      print_version();
      return 0;
    } else if (!strcmp(a, "--list")) {
      list_cells();
      return 0;
    } else if (!strcmp(a, "--probe-dir")) {
      if (++i >= argc) return bad_input("--probe-dir needs a directory", NULL);
      opt.probe_dir = argv[i];
    } else if (!strcmp(a, "--ready-ms")) {
      if (parse_ms(a, i + 1 < argc ? argv[++i] : NULL, &ready) != 0) return 2;
    } else if (!strcmp(a, "--window-ms")) {
      if (parse_ms(a, i + 1 < argc ? argv[++i] : NULL, &window) != 0) return 2;
    } else if (!strcmp(a, "--deadline-ms")) {
      if (parse_ms(a, i + 1 < argc ? argv[++i] : NULL, &deadline) != 0) return 2;
    } else if (a[0] == '-') {
      {
      fprintf(stderr, "sigprobe-run: unknown option '%s' (see --help)\n", a);
      return 2;
    }
    } else if (cell_id) {
      return bad_input("only one cell per run; a second was given: ", a);
    } else {
      cell_id = a;
    }
  }
  if (!cell_id) return bad_input("no cell given (see --help; --list prints them)", NULL);
  if (ready > 0) opt.ready_ms = ready;
  if (window > 0) opt.window_ms = window;
  if (deadline > 0) opt.deadline_ms = deadline;

  sp_cell cell;
  sp_error err;
  if (sp_cell_parse(cell_id, &cell, &err) != 0) return bad_input(err.msg, NULL);

  sp_outcome o;
  sp_run_cell(&cell, &opt, &o);
  char line[16384];
  int n = sp_outcome_to_json(&o, line, sizeof line);
  if (n < 0) {
    fprintf(stderr, "sigprobe-run: outcome too large to print\n");
    return 1;
  }
  fputs(line, stdout);
  return 0;
}

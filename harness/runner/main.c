/* sigprobe-run: runs exactly one cell and prints one outcome as one JSON line.
 * Exit status: 0 when an outcome was printed (whatever its verdict), 2 on
 * bad input (unknown cell, flag or value). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/cell.h"
#include "sigprobe/json.h"
#include "sigprobe/platform.h"
#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#endif
#include "sigprobe/run.h"

static const char usage[] =
    "usage: sigprobe-run [options] CELL\n"
    "       sigprobe-run [options] --host H --delivery D --label ID --exec PROGRAM [ARG...]\n"
    "       sigprobe-run [options] --label ID --attach SOCKET\n"
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
    "  --ready-ms N      spawn -> ready deadline (default 10000)\n"
    "  --window-ms N     delivery -> first handler window; after it nothing\n"
    "                    noticed and the probe is asked to stop (default 100)\n"
    "  --deadline-ms N   delivery -> exit deadline (default 3000)\n"
    "  --exec PROG ...   the probe is this command line (e.g. a Python interpreter\n"
    "                    running the extension probe), run under --host with\n"
    "                    --delivery; the rest of the arguments belong to it\n"
    "  --attach SOCKET   the probe is someone else's (in a Jupyter kernel): listen\n"
    "                    on SOCKET (a Unix socket is made inside a new 0700\n"
    "                    folder beside it; tcp:127.0.0.1:0 on Windows); the\n"
    "                    first line printed says the SIGPROBE_REPORT to give the\n"
    "                    probe, with the run's token: only the connection that\n"
    "                    proves it holds the token is read; the parent delivers\n"
    "                    and reports through stdin/stdout (see\n"
    "                    harness/include/sigprobe/run.h)\n"
    "  --label ID        the cell id (platform/host/strategy/delivery) to report\n"
    "                    with --exec or --attach\n"
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

/* The probes/ folder beside this executable (or beside argv[0] when the
 * platform cannot say where the executable is). */
static void default_probe_dir(const char *argv0, char *dir, size_t n) {
  char self[4096];
  sp_error err;
  if (sp_self_dir(self, sizeof self, &err) != 0) {
    sp_strlcpy(self, argv0, sizeof self);
    char *slash = strrchr(self, '/'), *bslash = strrchr(self, '\\');
    if (bslash > slash) slash = bslash;
    if (slash) *slash = '\0';
    else sp_strlcpy(self, ".", sizeof self);
  }
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
  char probe_dir[4096 + 16];
  sp_run_options opt;
  const char *cell_id = NULL, *host = NULL, *delivery = NULL, *label = NULL, *attach = NULL;
  char **exec_argv = NULL;
  int ready = -1, window = -1, deadline = -1;

  double multiplier;
  sp_error env_err;
  if (sp_main_args(&argc, &argv, &env_err) != 0) return bad_input(env_err.msg, NULL);
  if (sp_timeout_multiplier(&multiplier, &env_err) != 0) return bad_input(env_err.msg, NULL);
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
    } else if (!strcmp(a, "--host") || !strcmp(a, "--delivery") || !strcmp(a, "--label") || !strcmp(a, "--attach")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "sigprobe-run: %s needs a value\n", a);
        return 2;
      }
      const char **slot = a[2] == 'h' ? &host : a[2] == 'd' ? &delivery : a[2] == 'l' ? &label : &attach;
      *slot = argv[++i];
    } else if (!strcmp(a, "--exec")) {
      if (i + 1 >= argc) return bad_input("--exec needs a command line", NULL);
      exec_argv = &argv[i + 1];
      break;
    } else if (a[0] == '-') {
      fprintf(stderr, "sigprobe-run: unknown option '%s' (see --help)\n", a);
      return 2;
    } else if (cell_id) {
      return bad_input("only one cell per run; a second was given: ", a);
    } else {
      cell_id = a;
    }
  }
  if (ready > 0) opt.ready_ms = ready;
  if (window > 0) opt.window_ms = window;
  if (deadline > 0) opt.deadline_ms = deadline;

  sp_cell cell;
  sp_error err;
  sp_labels labels;
  sp_outcome o;
  if (!exec_argv && !attach && !sp_is_dir(opt.probe_dir)) return bad_input("--probe-dir is not a directory: ", opt.probe_dir);
  /* From here on this process owns its probe's whole tree (platform.h). */
  if (sp_own_probe_trees(&err) != 0) {
    fprintf(stderr, "sigprobe-run: %s\n", err.msg);
    return 1;
  }
  if (exec_argv || attach) {
    if (cell_id) return bad_input("--exec and --attach take no CELL; name it with --label", NULL);
    if (exec_argv && attach) return bad_input("--exec and --attach exclude each other", NULL);
    if (!label) return bad_input("--label ID is required with --exec and --attach", NULL);
    if (sp_labels_parse(&labels, label, &err) != 0) return bad_input(err.msg, NULL);
    if (attach) {
      sp_run_attached(attach, &labels, &opt, &o);
    } else {
      char mech[128];
      if (!host || !delivery) return bad_input("--exec needs --host and --delivery", NULL);
      snprintf(mech, sizeof mech, "%s/none/%s", host, delivery);
      if (sp_cell_parse(mech, &cell, &err) != 0) return bad_input(err.msg, NULL);
      sp_run_exec(&cell, &labels, exec_argv, &opt, &o);
    }
  } else {
    if (!cell_id) return bad_input("no cell given (see --help; --list prints them)", NULL);
    if (host || delivery || label) return bad_input("--host, --delivery and --label go with --exec or --attach", NULL);
    if (sp_cell_parse(cell_id, &cell, &err) != 0) return bad_input(err.msg, NULL);
    sp_run_cell(&cell, &opt, &o);
  }
  if (sp_interrupted()) {
    /* The probe's tree is gone; end the way the signal would have ended us,
     * so the parent sees what happened, and print no outcome. */
    int sig = sp_interrupted();
    fprintf(stderr, "sigprobe-run: interrupted by %s; the probe was killed\n", sp_signal_name(sig));
    fflush(stderr);
    signal(sig, SIG_DFL);
    raise(sig);
    return 128 + sig;
  }
  char line[16384];
  int n = sp_outcome_to_json(&o, line, sizeof line);
  if (n < 0) {
    fprintf(stderr, "sigprobe-run: outcome too large to print\n");
    return 1;
  }
  fputs(line, stdout);
  return 0;
}

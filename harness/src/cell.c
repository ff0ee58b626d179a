/* Names of hosts, strategies and deliveries, and cell ids (see cell.h). */
#include "sigprobe/cell.h"
#include "sigprobe/protocol.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#ifdef _WIN32
#include <windows.h>
#endif

/* One table set per platform, in the order of the enums in cell.h. */
#ifdef _WIN32
static const char *const host_names[SP_HOST_COUNT] = {"console", "new-group", "no-window", "detached",
                                                      "jupyter-launch"};
static const char *const strategy_names[SP_STRATEGY_COUNT] = {"none", "signal", "console-ctrl", "event", "all"};
static const char *const delivery_names[SP_DELIVERY_COUNT] = {"ctrl-c", "ctrl-break", "set-event", "close",
                                                              "terminate"};
#else
static const char *const host_names[SP_HOST_COUNT] = {"tty", "no-tty", "background"};
static const char *const strategy_names[SP_STRATEGY_COUNT] = {
    "none", "signal", "sigaction", "sigwait-thread", "self-pipe", "signalfd", "all"};
static const char *const delivery_names[SP_DELIVERY_COUNT] = {"tty-intr", "kill", "killpg", "sigterm"};
#endif

int sp_platform_is_wine(void) {
#ifdef _WIN32
  /* Wine's ntdll exports wine_get_version; Windows' never has. */
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
#else
  return 0;
#endif
}

const char *sp_platform_name(void) {
#if defined(_WIN32)
  return sp_platform_is_wine() ? "windows-wine" : "windows";
#elif defined(__linux__)
  return "linux";
#elif defined(__APPLE__)
  return "macos";
#else
  return "unix";
#endif
}

const char *sp_host_name(sp_host h) { return (unsigned)h < SP_HOST_COUNT ? host_names[h] : "?"; }
const char *sp_strategy_name(sp_strategy s) { return (unsigned)s < SP_STRATEGY_COUNT ? strategy_names[s] : "?"; }
const char *sp_delivery_name(sp_delivery d) { return (unsigned)d < SP_DELIVERY_COUNT ? delivery_names[d] : "?"; }

static int lookup(const char *const *names, int n, const char *name, size_t len) {
  for (int i = 0; i < n; i++)
    if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0) return i;
  return SP_EINVAL;
}

int sp_host_parse(const char *name) { return lookup(host_names, SP_HOST_COUNT, name, strlen(name)); }
int sp_strategy_parse(const char *name) { return lookup(strategy_names, SP_STRATEGY_COUNT, name, strlen(name)); }
int sp_delivery_parse(const char *name) { return lookup(delivery_names, SP_DELIVERY_COUNT, name, strlen(name)); }

static int unknown(sp_error *err, const char *what, const char *name, size_t len, const char *const *names, int n) {
  char valid[256] = "";
  for (int i = 0; i < n; i++) {
    if (i) strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
    strncat(valid, names[i], sizeof valid - strlen(valid) - 1);
  }
  return sp_fail(err, SP_EINVAL, "unknown %s '%.*s' (valid: %s)", what, (int)(len > 64 ? 64 : len), name, valid);
}

int sp_cell_parse(const char *id, sp_cell *cell, sp_error *err) {
  const char *part[4];
  size_t len[4];
  int n = 0;
  const char *p = id;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t l = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 4) return sp_fail(err, SP_EINVAL, "bad cell id '%.80s': expected platform/host/strategy/delivery", id);
    part[n] = p;
    len[n++] = l;
    if (!slash) break;
    p = slash + 1;
  }
  if (n < 3) return sp_fail(err, SP_EINVAL, "bad cell id '%.80s': expected platform/host/strategy/delivery", id);
  int k = 0;
  if (n == 4) {
    const char *plat = sp_platform_name();
    int same = strlen(plat) == len[0] && strncmp(plat, part[0], len[0]) == 0;
#ifdef _WIN32
    /* The same cells run on Windows and under Wine (see cell.h). */
    same = same || (len[0] == 7 && strncmp(part[0], "windows", 7) == 0) ||
           (len[0] == 12 && strncmp(part[0], "windows-wine", 12) == 0);
#endif
    if (!same)
      return sp_fail(err, SP_EINVAL, "cell '%.80s' is not for this platform (this runner runs %s cells)", id, plat);
    k = 1;
  }
  int h = lookup(host_names, SP_HOST_COUNT, part[k], len[k]);
  if (h < 0) return unknown(err, "host", part[k], len[k], host_names, SP_HOST_COUNT);
  int s = lookup(strategy_names, SP_STRATEGY_COUNT, part[k + 1], len[k + 1]);
  if (s < 0) return unknown(err, "strategy", part[k + 1], len[k + 1], strategy_names, SP_STRATEGY_COUNT);
  int d = lookup(delivery_names, SP_DELIVERY_COUNT, part[k + 2], len[k + 2]);
  if (d < 0) return unknown(err, "delivery", part[k + 2], len[k + 2], delivery_names, SP_DELIVERY_COUNT);
  cell->host = (sp_host)h;
  cell->strategy = (sp_strategy)s;
  cell->delivery = (sp_delivery)d;
  return 0;
}

char *sp_cell_format(const sp_cell *cell, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s/%s/%s", sp_platform_name(), sp_host_name(cell->host), sp_strategy_name(cell->strategy),
           sp_delivery_name(cell->delivery));
  return buf;
}

#ifdef _WIN32
int sp_delivery_signal(sp_delivery d) {
  switch (d) {
    case SP_DELIVERY_CTRL_C: return CTRL_C_EVENT;
    case SP_DELIVERY_CTRL_BREAK: return CTRL_BREAK_EVENT;
    case SP_DELIVERY_CLOSE: return CTRL_CLOSE_EVENT;
    default: return -1;
  }
}

const char *sp_delivery_what(sp_delivery d) {
  static const char *const what[SP_DELIVERY_COUNT] = {"CTRL_C_EVENT", "CTRL_BREAK_EVENT", "JPY_INTERRUPT_EVENT",
                                                      "CTRL_CLOSE_EVENT", "TerminateProcess"};
  return (unsigned)d < SP_DELIVERY_COUNT ? what[d] : "?";
}

int sp_delivery_default_exit(sp_delivery d, uint32_t *code) {
  switch (d) {
    case SP_DELIVERY_CTRL_C:
    case SP_DELIVERY_CTRL_BREAK:
    case SP_DELIVERY_CLOSE: *code = SP_WIN_STATUS_CONTROL_C_EXIT; return 1;
    case SP_DELIVERY_TERMINATE: *code = SP_WIN_TERMINATE_CODE; return 1;
    default: return 0;
  }
}

/* Every Windows host can be sent every delivery; where one cannot arrive
 * (a console event to a detached process, CTRL_CLOSE without a console
 * window) the run measures it and says so. */
const char *sp_cell_unsupported_reason(const sp_cell *cell) {
  (void)cell;
  return NULL;
}
#else
int sp_delivery_signal(sp_delivery d) { return d == SP_DELIVERY_SIGTERM ? SIGTERM : SIGINT; }

const char *sp_delivery_what(sp_delivery d) { return sp_signal_name(sp_delivery_signal(d)); }

const char *sp_cell_unsupported_reason(const sp_cell *cell) {
  if (cell->delivery == SP_DELIVERY_TTY_INTR && cell->host == SP_HOST_NO_TTY)
    return "host no-tty has no controlling terminal, so there is no INTR character to type";
  return NULL;
}
#endif

/* Names of hosts, strategies and deliveries, and cell ids (see cell.h). */
#include "sigprobe/cell.h"
#include "sigprobe/protocol.h"

#include <stdio.h>
#include <string.h>

#include "os.h"

/* The names are the platform's (harness/src/unix/platform.c,
 * harness/src/win/platform.c), in the order of the enums in cell.h. */
const char *sp_host_name(sp_host h) { return (unsigned)h < SP_HOST_COUNT ? sp__host_names[h] : "?"; }
const char *sp_strategy_name(sp_strategy s) { return (unsigned)s < SP_STRATEGY_COUNT ? sp__strategy_names[s] : "?"; }
const char *sp_delivery_name(sp_delivery d) { return (unsigned)d < SP_DELIVERY_COUNT ? sp__delivery_names[d] : "?"; }

static int lookup(const char *const *names, int n, const char *name, size_t len) {
  for (int i = 0; i < n; i++)
    if (strlen(names[i]) == len && strncmp(names[i], name, len) == 0) return i;
  return SP_EINVAL;
}

int sp_host_parse(const char *name) { return lookup(sp__host_names, SP_HOST_COUNT, name, strlen(name)); }
int sp_strategy_parse(const char *name) { return lookup(sp__strategy_names, SP_STRATEGY_COUNT, name, strlen(name)); }
int sp_delivery_parse(const char *name) { return lookup(sp__delivery_names, SP_DELIVERY_COUNT, name, strlen(name)); }

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
    if (!sp__platform_accepts(part[0], len[0]))
      return sp_fail(err, SP_EINVAL, "cell '%.80s' is not for this platform (this runner runs %s cells)", id,
                     sp_platform_name());
    k = 1;
  }
  int h = lookup(sp__host_names, SP_HOST_COUNT, part[k], len[k]);
  if (h < 0) return unknown(err, "host", part[k], len[k], sp__host_names, SP_HOST_COUNT);
  int s = lookup(sp__strategy_names, SP_STRATEGY_COUNT, part[k + 1], len[k + 1]);
  if (s < 0) return unknown(err, "strategy", part[k + 1], len[k + 1], sp__strategy_names, SP_STRATEGY_COUNT);
  int d = lookup(sp__delivery_names, SP_DELIVERY_COUNT, part[k + 2], len[k + 2]);
  if (d < 0) return unknown(err, "delivery", part[k + 2], len[k + 2], sp__delivery_names, SP_DELIVERY_COUNT);
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

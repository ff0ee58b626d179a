/* sigprobe: the names of strategies, hosts and deliveries, and cell ids.
 *
 * A cell is one (platform, host, strategy, delivery) combination, written
 * "platform/host/strategy/delivery", e.g. "linux/no-tty/sigaction/killpg".
 * The tables here are the single source of truth for the native cells: the
 * runner's --list and the Python CLI both read them.
 */
#ifndef SIGPROBE_CELL_H
#define SIGPROBE_CELL_H

#include "sigprobe/common.h"

typedef enum sp_host {
  SP_HOST_TTY,        /* a new pty is the controlling terminal; probe in its foreground group */
  SP_HOST_NO_TTY,     /* pipes, its own session, no controlling terminal (how jupyter_client starts a kernel) */
  SP_HOST_BACKGROUND, /* like tty, but SIGINT/SIGQUIT ignored before exec (a non-interactive shell's `cmd &`) */
  SP_HOST_COUNT
} sp_host;

typedef enum sp_strategy {
  SP_STRATEGY_NONE,
  SP_STRATEGY_SIGNAL,
  SP_STRATEGY_SIGACTION,
  SP_STRATEGY_SIGWAIT_THREAD,
  SP_STRATEGY_SELF_PIPE,
  SP_STRATEGY_SIGNALFD,
  SP_STRATEGY_ALL,
  SP_STRATEGY_COUNT
} sp_strategy;

typedef enum sp_delivery {
  SP_DELIVERY_TTY_INTR, /* the terminal's INTR character written to the pty master */
  SP_DELIVERY_KILL,     /* kill(pid, SIGINT) */
  SP_DELIVERY_KILLPG,   /* killpg(pgid, SIGINT): what jupyter_client does */
  SP_DELIVERY_SIGTERM,  /* kill(pid, SIGTERM) */
  SP_DELIVERY_COUNT
} sp_delivery;

typedef struct sp_cell {
  sp_host host;
  sp_strategy strategy;
  sp_delivery delivery;
} sp_cell;

/* The platform this build runs cells for: "linux", "macos", "windows" or "unix". */
const char *sp_platform_name(void);

const char *sp_host_name(sp_host h);
const char *sp_strategy_name(sp_strategy s);
const char *sp_delivery_name(sp_delivery d);

/* Name lookups: return the enum value (>= 0) or SP_EINVAL. */
int sp_host_parse(const char *name);
int sp_strategy_parse(const char *name);
int sp_delivery_parse(const char *name);

/* Parses "platform/host/strategy/delivery" or "host/strategy/delivery".
 * On failure returns SP_EINVAL and err names the bad part and lists the
 * valid names, e.g. "unknown host 'tyy' (valid: tty, no-tty, background)". */
int sp_cell_parse(const char *id, sp_cell *cell, sp_error *err);

/* Writes "platform/host/strategy/delivery" into buf; returns buf. */
char *sp_cell_format(const sp_cell *cell, char *buf, size_t n);

/* The signal a delivery sends (SIGINT or SIGTERM). */
int sp_delivery_signal(sp_delivery d);

/* Returns NULL when the host can carry the delivery, else the reason it
 * cannot (e.g. a terminal character needs a terminal). */
const char *sp_cell_unsupported_reason(const sp_cell *cell);

#endif

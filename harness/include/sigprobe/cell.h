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

#ifdef _WIN32
typedef enum sp_host {
  SP_HOST_CONSOLE,        /* its own new console (CREATE_NEW_CONSOLE) */
  SP_HOST_NEW_GROUP,      /* a new process group on the parent's console (CREATE_NEW_PROCESS_GROUP) */
  SP_HOST_NO_WINDOW,      /* a console without a window (CREATE_NO_WINDOW) */
  SP_HOST_DETACHED,       /* no console at all (DETACHED_PROCESS) */
  SP_HOST_JUPYTER_LAUNCH, /* jupyter_client's recipe: no flags, inherited handles, JPY_INTERRUPT_EVENT, JPY_PARENT_PID */
  SP_HOST_COUNT
} sp_host;

typedef enum sp_strategy {
  SP_STRATEGY_NONE,
  SP_STRATEGY_SIGNAL,       /* CRT signal(SIGINT) and signal(SIGBREAK) */
  SP_STRATEGY_CONSOLE_CTRL, /* SetConsoleCtrlHandler */
  SP_STRATEGY_EVENT,        /* a thread waits on the handle in JPY_INTERRUPT_EVENT */
  SP_STRATEGY_ALL,
  SP_STRATEGY_COUNT
} sp_strategy;

typedef enum sp_delivery {
  SP_DELIVERY_CTRL_C,     /* GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0) from inside the probe's console */
  SP_DELIVERY_CTRL_BREAK, /* GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, group) */
  SP_DELIVERY_SET_EVENT,  /* SetEvent on the event in JPY_INTERRUPT_EVENT: what jupyter_client does */
  SP_DELIVERY_CLOSE,      /* CTRL_CLOSE_EVENT: WM_CLOSE to the console window */
  SP_DELIVERY_TERMINATE,  /* TerminateProcess: what most "kill" APIs really do */
  SP_DELIVERY_COUNT
} sp_delivery;

/* The exit code the terminate delivery passes to TerminateProcess (what
 * libuv's uv_kill and Node's process.kill pass); probes themselves only
 * exit with 0 or 3. */
#define SP_WIN_TERMINATE_CODE 1u
/* What the default console control handler exits with (0xC000013A). */
#define SP_WIN_STATUS_CONTROL_C_EXIT 0xC000013Au

#else
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
#endif

typedef struct sp_cell {
  sp_host host;
  sp_strategy strategy;
  sp_delivery delivery;
} sp_cell;

/* The platform this build runs cells for: "linux", "macos", "windows" or "unix";
 * a Windows build running under Wine says "windows-wine" (detected at run
 * time), and its cell ids start with it. sp_cell_parse accepts both
 * "windows" and "windows-wine" there: the same cells, the id printed says
 * where they really ran. */
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

/* The signal a delivery sends (SIGINT or SIGTERM). On Windows: the console
 * control type (CTRL_C_EVENT, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT), or -1 for
 * deliveries that are no console event. */
int sp_delivery_signal(sp_delivery d);

/* The name of what a delivery sends, as probes report it and outcomes list
 * it: the signal name on POSIX ("SIGINT"); on Windows "CTRL_C_EVENT",
 * "CTRL_BREAK_EVENT", "JPY_INTERRUPT_EVENT", "CTRL_CLOSE_EVENT" or
 * "TerminateProcess". */
const char *sp_delivery_what(sp_delivery d);

/* True when the process runs under Wine (always false off Windows). */
int sp_platform_is_wine(void);

/* Windows: the exit code by which the delivery's default action ends a
 * process that has no handler for it: STATUS_CONTROL_C_EXIT for console
 * events, SP_WIN_TERMINATE_CODE for terminate. Returns 0 when the delivery has
 * no default action that ends the process with a code (set-event; on POSIX
 * every delivery, since a signal's default action is decoded as a signal). */
int sp_delivery_default_exit(sp_delivery d, uint32_t *code);

/* Returns NULL when the host can carry the delivery, else the reason it
 * cannot (e.g. a terminal character needs a terminal). */
const char *sp_cell_unsupported_reason(const sp_cell *cell);

#endif

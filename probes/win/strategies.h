/* The Windows strategies (POSIX: probes/unix/strategies.h), each a small
 * installer shared by its own probe and by the `all` probe. Every installer
 * calls sp_probe_fail() on error. */
#ifndef SIGPROBE_PROBES_STRATEGIES_H
#define SIGPROBE_PROBES_STRATEGIES_H

#include <stdbool.h>

#include "sigprobe/probe.h"

/* The CRT's signal() for SIGINT and SIGBREAK (it registers its own console
 * control handler, which maps CTRL_C_EVENT to SIGINT and the rest to
 * SIGBREAK): no sender. */
void sp_install_signal(void);

/* SetConsoleCtrlHandler: reports the control type; the system runs it on a
 * thread it injects. Returns TRUE (handled); for CLOSE, LOGOFF and SHUTDOWN
 * it then blocks, so the main loop, not the return, ends the process. */
void sp_install_console_ctrl(void);

/* A thread that waits on the event in JPY_INTERRUPT_EVENT. Returns false
 * (with *why) when there is no such event to wait on. */
bool sp_install_event(const char **why);

#endif

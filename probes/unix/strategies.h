/* The POSIX strategies (Windows: probes/win/strategies.h), each a small
 * installer shared by its own probe and by the `all` probe. Every installer
 * calls sp_probe_fail() on error. */
#ifndef SIGPROBE_PROBES_STRATEGIES_H
#define SIGPROBE_PROBES_STRATEGIES_H

#include <stdbool.h>

#include "sigprobe/probe.h"

/* ISO C signal(SIGINT, ...): no siginfo, so no sender. */
void sp_install_signal(void);

/* sigaction(SIGINT) with SA_SIGINFO: reports si_code, si_pid, si_uid. When
 * self_pipe_fd >= 0 the handler also feeds that self-pipe. */
void sp_install_sigaction(int self_pipe_fd);

/* A self-pipe: returns the watch whose reading end the loop polls. With
 * own_handler the strategy installs its own SIGINT handler (which only
 * writes to the pipe); otherwise another handler feeds *write_fd. */
sp_watch sp_install_self_pipe(bool own_handler, int *write_fd);

/* A thread that takes SIGINT with sigwaitinfo(). With block_everywhere,
 * SIGINT is blocked in every thread first (the strategy's correct form). */
void sp_install_sigwait_thread(bool block_everywhere);

/* A signalfd for SIGINT read by the loop (Linux). With block, SIGINT is
 * blocked first (the strategy's correct form). Returns false (with *why)
 * where signalfd does not exist. */
bool sp_install_signalfd(bool block, sp_watch *watch, const char **why);

#endif

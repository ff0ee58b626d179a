/* sigprobe: the platform interface of the runner.
 *
 * One implementation per platform (harness/src/unix/, harness/src/win/);
 * CMake picks the folder. All functions return 0 on success and a negative
 * SP_E* code on failure, with err saying which call failed, unless specified
 * otherwise. An sp_proc is a probe started under a host, together with its
 * report channel and everything it may have started: sp_proc_free() leaves
 * nothing of it running, whatever state it is in.
 */
#ifndef SIGPROBE_PLATFORM_H
#define SIGPROBE_PLATFORM_H

#include "sigprobe/cell.h"
#include "sigprobe/outcome.h"
#include "sigprobe/protocol.h"

typedef struct sp_proc sp_proc;

/* Starts the probe executable `path` under `host`, with the report channel in
 * SIGPROBE_REPORT. Returns SP_EFAIL when the probe could not be started
 * (the error names the failing call, including a failed exec). */
int sp_proc_start(sp_proc **out, sp_host host, const char *path, sp_error *err);

/* Same, with a whole command line (argv[0] is the program): for probes that
 * live inside another program, such as a Python interpreter. */
int sp_proc_spawn(sp_proc **out, sp_host host, char *const argv[], sp_error *err);

/* Attaches to a probe the runner did not start (one inside a Jupyter kernel):
 * listens on the Unix socket socket_path, which the probe connects to
 * (SIGPROBE_REPORT=unix:<path>; sp_proc_report_address says). On Windows
 * socket_path may instead be tcp:127.0.0.1:PORT (PORT 0: any free port), a
 * loopback TCP socket, for where winsock has no AF_UNIX (Wine 8). The runner's parent takes part through
 * stdin/stdout: events it writes to stdin ("delivered", "result", "error")
 * come out of sp_proc_next_event like the probe's. There is no process to
 * wait for or kill: sp_proc_wait returns at once with SP_EXIT_NONE.
 * On Windows the socket is AF_UNIX through winsock (Windows 10 1803+); where
 * there is none (Wine 8) it fails with SP_EFAIL naming socket()'s error. */
int sp_proc_attach(sp_proc **out, const char *socket_path, sp_error *err);

/* The SIGPROBE_REPORT value that reaches an attached runner
 * ("unix:<path>", or "tcp:127.0.0.1:<port>" with the port bound). */
const char *sp_proc_report_address(const sp_proc *p);

/* Reads the next report event, waiting until deadline_ns (sp_clock_ns time).
 * Returns 0 with *ev filled, SP_ETIMEOUT, SP_EOF when the channel closed,
 * or SP_EINVAL for a malformed line (err says what was wrong). */
int sp_proc_next_event(sp_proc *p, sp_event *ev, int64_t deadline_ns, sp_error *err);

/* Delivers the interrupt and stores the time just before it was sent.
 * Returns SP_EUNSUPPORTED when the host cannot carry this delivery. */
int sp_proc_deliver(sp_proc *p, sp_delivery d, int64_t *t_ns, sp_error *err);

/* True when the kernel's own record says `sig`, if sent now, is discarded on
 * arrival: the probe ignores it and its main thread does not block it
 * (Linux: SigIgn and SigBlk in /proc/PID/status). Then nothing in the probe
 * can notice it, and there is no need to wait out the window. False when it
 * may still be noticed, or when the platform cannot tell. */
bool sp_proc_signal_discarded(sp_proc *p, int sig);

/* Asks the probe's loop to end (it reports "done" with stopped_by "runner").
 * Returns SP_EFAIL if the channel is already closed. */
int sp_proc_request_stop(sp_proc *p, sp_error *err);

/* Waits until the probe exits or deadline_ns passes; on exit, kills whatever
 * is left of its process tree and fills *ex. Returns 0 or SP_ETIMEOUT
 * (the probe is still running). */
int sp_proc_wait(sp_proc *p, int64_t deadline_ns, sp_exit *ex, sp_error *err);

/* Kills the probe's whole tree now (the deadline passed). */
void sp_proc_kill_tree(sp_proc *p);

/* The probe's process id, and this process's own (the sender). */
int64_t sp_proc_pid(const sp_proc *p);
int64_t sp_self_pid(void);

/* Kills what is left, reaps, closes every handle and frees p. NULL is fine. */
void sp_proc_free(sp_proc *p);

/* Makes this process the owner of every process its probes start, for a
 * process that starts no other children (the runner). After it:
 *  - on Linux this process is a child subreaper (PR_SET_CHILD_SUBREAPER), so
 *    what leaves a probe's process group (setsid, a double fork) is
 *    re-parented here instead of to init, and reaping a probe also kills and
 *    reaps every child of this process that is not a live probe;
 *  - SIGINT, SIGTERM and SIGHUP kill every running probe's process group at
 *    once (the runs then end through the normal paths) and are remembered
 *    for sp_interrupted();
 *  - on Linux, when this process's parent dies it gets SIGTERM, so killing
 *    `sigprobe run` outright still ends its runners and their probes.
 * Windows needs none of it (the Job Object owns the tree): it returns 0 there.
 * Returns 0, or SP_EFAIL when a handler could not be installed. */
int sp_own_probe_trees(sp_error *err);

/* The signal that interrupted this process since sp_own_probe_trees(), or 0. */
int sp_interrupted(void);

/* Replaces main()'s arguments by UTF-8 ones: on Windows main() gets them in
 * the ANSI code page, which cannot hold every path, so they are taken from
 * the UTF-16 command line; on POSIX they are left as they are. */
int sp_main_args(int *argc, char ***argv, sp_error *err);

/* The folder of the running executable, as UTF-8 (for what ships beside it). */
int sp_self_dir(char *buf, size_t n, sp_error *err);

/* True when path (UTF-8) names a folder. */
bool sp_is_dir(const char *path);

#endif

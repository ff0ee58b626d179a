/* sigprobe: the report protocol between a probe and the runner.
 *
 * The report channel is separate from the probe's stdio (which belongs to the
 * host). The probe finds it in the environment variable SIGPROBE_REPORT, in
 * one of three forms:
 *   "7"                 a decimal file descriptor inherited from the runner;
 *                       when it is a socket the runner may also write "stop\n"
 *                       to it, asking the probe's loop to end;
 *   "unix:/run/x.sock"  a Unix stream socket the runner listens on: the probe
 *                       connects to it (the Python extension probe once per
 *                       run, so each accepted connection carries exactly one
 *                       ready ... done sequence) and the runner may write
 *                       "stop\n" exactly as with a descriptor;
 *   anything else       a file path the probe appends to (no "stop").
 * A socket address the runner listens on (unix:, and tcp: on Windows) ends
 * with "#" and the run's token, 64 hexadecimal digits from the OS's CSPRNG:
 * "unix:/tmp/sigprobe-Ab12Cd/r1.sock#3f9a...". The first line the probe
 * sends on such a connection is {"ev":"hello","proto":2,"token":"3f9a..."};
 * the runner takes the first connection whose first line is exactly that as
 * the probe's and drops every other (one that sends nothing is dropped after
 * SP_HELLO_MS), so a rogue client of the socket changes no verdict. The token
 * travels only in the environment, never on a command line.
 * Readers ignore members they do not know. The Python extension probe adds to
 * "ready": "python_handler" (what signal.getsignal(SIGINT) returned:
 * "default_int_handler", "SIG_IGN", "SIG_DFL" or "other") and, when the SIGINT
 * disposition is a function, "entry_handler" (whose it is: "sigprobe" for the
 * extension's own C handler, "python" for CPython's, else the file name of
 * the shared object holding it, or "unknown").
 *
 * Every event is one JSON object on one line (at most SP_LINE_MAX bytes):
 *   {"ev":"ready","pid":12,"pgid":12,"sid":12,"tty":"/dev/pts/3","foreground":true,
 *    "disposition_on_entry":"default","strategies":["sigaction"],"t_ns":...}
 *   {"ev":"fired","handler":"sigaction","sig":"SIGINT","si_code":"SI_USER","si_pid":9,
 *    "si_uid":0,"thread":"main","tid":12,"t_ns":...}
 *   {"ev":"done","stopped_by":"sigaction","ignored":["SIGQUIT"],"pending":[],"t_ns":...}
 *   {"ev":"unsupported","reason":"signalfd is Linux-only"}
 *   {"ev":"error","reason":"sigaction: Invalid argument"}
 * t_ns is sp_clock_ns(); for "fired" it is taken inside the handler.
 *
 * Two more events come from the code around a probe rather than from the
 * probe itself, when the probe lives inside a Python process or a kernel:
 *   {"ev":"result","where":"after-return","exception":"KeyboardInterrupt",
 *    "status":"error","ename":"KeyboardInterrupt","kernel_pid":12}
 *      where the interrupt took effect: "inside-call" (inside the native
 *      call), "after-return" (when the C call returned) or "nowhere"; for
 *      kernels the execute_reply's status and ename; "hung":true when the
 *      kernel never replied; "exit_kind"/"exit_code"/"exit_signal" for a
 *      child probe whose end the kernel observed.
 *   {"ev":"delivered","t_ns":...,"sig":"SIGINT","sender_pid":9}
 *      sent to an attached runner (sigprobe-run --attach) on its stdin by
 *      whoever delivered the interrupt (jupyter_client's interrupt_kernel).
 *      Latencies count from t_ns; the window for a handler starts when the
 *      runner reads the line (a driver in message mode sends it once the
 *      kernel has answered the interrupt request, i.e. signalled itself).
 *
 * Windows. SIGPROBE_REPORT is the decimal value of an inherited handle to the
 * write end of an anonymous pipe (or a file path). Anonymous pipes are one
 * way, so the runner's "stop" travels separately: SIGPROBE_STOP is the
 * decimal value of an inherited manual-reset event the runner sets to ask
 * the loop to end. JPY_INTERRUPT_EVENT (an inherited auto-reset event, as
 * jupyter_client makes it) is set for every host. The events differ:
 *   {"ev":"ready","pid":12,"pgid":null,"sid":null,"tty":null,"foreground":null,
 *    "disposition_on_entry":"default","strategies":["console-ctrl"],
 *    "console":{"attached":true,"processes":2,"window":false,"ctrl_c_ignored":false,
 *               "wine":true},"t_ns":...}
 *     pgid and sid are null (Windows has no API for a process's group id);
 *     disposition_on_entry is "ignored" when Ctrl+C is disabled on entry
 *     (the inherited flag a new process group gets), else "default";
 *     console.ctrl_c_ignored is that flag now, read from the PEB
 *     (RTL_USER_PROCESS_PARAMETERS.ConsoleFlags bit 0, undocumented but what
 *     SetConsoleCtrlHandler(NULL, ..) sets on Windows and Wine alike);
 *     console.processes is GetConsoleProcessList's count (0 without console).
 *   {"ev":"fired","handler":"console-ctrl","sig":"CTRL_C_EVENT","thread":"other","tid":..,"t_ns":..}
 *     sig names what was seen: a console control type, "SIGINT"/"SIGBREAK"
 *     for CRT signal() handlers, "JPY_INTERRUPT_EVENT" for the event thread.
 *   {"ev":"done","stopped_by":..,"ignored":["CTRL_C_EVENT"],"pending":["JPY_INTERRUPT_EVENT"],..}
 *     ignored lists CTRL_C_EVENT when Ctrl+C is disabled at the end; pending
 *     lists JPY_INTERRUPT_EVENT when the event was set and nobody consumed it.
 * The runner never reads the runner-gone case from the channel on Windows:
 * the probe's tree is in a kill-on-close Job Object that dies with it.
 */
#ifndef SIGPROBE_PROTOCOL_H
#define SIGPROBE_PROTOCOL_H

#include <stdbool.h>

/* The protocol's version. The rule: adding a member or an event that old
 * readers may ignore is no new version (readers ignore what they do not
 * know); anything an old reader would misread (a member removed, renamed or
 * given a new meaning, a new requirement on the first line) is, and the
 * version is written as "proto":N in the first line the probe sends, which
 * the runner checks. Version 2 added the hello on a listened-on socket and
 * is written there ({"ev":"hello","proto":2,...}, checked exactly); channels
 * that carry no hello (an inherited descriptor or handle, a file) carry the
 * events of version 1, which version 2 left unchanged. */
#define SP_PROTOCOL_VERSION 2 /* 2: the "hello" line with the token on a listened-on socket */

#include "sigprobe/common.h"

#define SP_LINE_MAX 4096
#define SP_REPORT_UNIX_PREFIX "unix:"
/* Windows only: a loopback TCP socket, where there are no AF_UNIX sockets (Wine 8). */
#define SP_REPORT_TCP_PREFIX "tcp:"

/* The run's token: SP_TOKEN_HEX lowercase hexadecimal digits. */
#define SP_TOKEN_HEX 64
/* How long a connection to the runner's socket may take to send its hello. */
#define SP_HELLO_MS 1000
/* At most this many connections are waiting to say hello at once; another
 * one pushes out the oldest. */
#define SP_HELLO_PENDING_MAX 8
#define SP_NAME_MAX 32
#define SP_REASON_MAX 256
#define SP_LIST_MAX 8

typedef enum sp_event_kind {
  SP_EV_READY,
  SP_EV_FIRED,
  SP_EV_DONE,
  SP_EV_UNSUPPORTED,
  SP_EV_ERROR,
  SP_EV_RESULT,
  SP_EV_DELIVERED
} sp_event_kind;

/* The SIGINT disposition a probe found on entry, before installing anything. */
typedef enum sp_disposition {
  SP_DISP_UNKNOWN,
  SP_DISP_DEFAULT,
  SP_DISP_IGNORED,
  SP_DISP_CAUGHT
} sp_disposition;

typedef struct sp_name_list {
  int n;
  char names[SP_LIST_MAX][SP_NAME_MAX];
} sp_name_list;

typedef struct sp_event {
  sp_event_kind kind;
  int64_t t_ns;
  /* ready */
  int64_t pid, pgid, sid;
  char tty[64];   /* controlling terminal path; "" when there is none */
  int foreground; /* 1 in the tty's foreground group, 0 not, -1 unknown or no tty */
  sp_disposition disposition_on_entry;
  sp_name_list strategies;
  char console[256]; /* Windows: the "console" object as raw JSON; "" when absent */
  /* fired */
  char handler[SP_NAME_MAX];
  char sig[SP_NAME_MAX];
  char si_code[SP_NAME_MAX]; /* "" when the handler has no siginfo */
  int64_t sender_pid, sender_uid;    /* -1 when unknown */
  int main_thread;           /* 1 main, 0 another thread */
  int64_t tid;
  /* done */
  char stopped_by[SP_NAME_MAX];
  sp_name_list ignored; /* signals whose disposition was SIG_IGN at the end */
  sp_name_list pending; /* signals pending (blocked, undelivered) at the end */
  /* unsupported, error; result (why it hung) */
  char reason[SP_REASON_MAX];
  /* result */
  char where[SP_NAME_MAX];     /* "inside-call", "after-return", "nowhere" */
  char exception[SP_NAME_MAX]; /* the Python exception that ended the call, "" if none */
  char status[SP_NAME_MAX];    /* execute_reply status, "" outside kernels */
  char ename[SP_NAME_MAX];
  int64_t kernel_pid;
  int hung;                    /* 1: the kernel did not reply before the deadline */
  char exit_kind[SP_NAME_MAX]; /* a child probe's end as the kernel saw it: "exited"/"signaled" */
  int64_t exit_code;
  char exit_signal[SP_NAME_MAX];
  /* delivered */
  int64_t sender_pid_of_delivery;
} sp_event;

const char *sp_event_kind_name(sp_event_kind k);
const char *sp_disposition_name(sp_disposition d);

/* Parses one report line (without or with its trailing newline).
 * Returns 0, or SP_EINVAL with err saying what is wrong with the line. */
int sp_event_decode(const char *line, size_t len, sp_event *ev, sp_error *err);

/* Encodes ev as one JSON line with a trailing newline into buf.
 * Returns the length, or SP_EINVAL if it does not fit. */
int sp_event_encode(const sp_event *ev, char *buf, size_t n);

/* Same, with extra_members (raw JSON members, e.g. "\"nogil\":true", or
 * NULL) spliced in before the closing brace: facts only some probes have. */
int sp_event_encode_extra(const sp_event *ev, const char *extra_members, char *buf, size_t n);

/* Takes one complete line out of the receive buffer buf (*len bytes held,
 * cap its size) and decodes it: returns 1 with *ev filled, 0 when no line is
 * complete yet, or SP_EINVAL for a malformed line or one longer than
 * SP_LINE_MAX (then the buffer is emptied: the rest of that line is
 * unreadable). The line is removed either way. */
int sp_event_take_line(char *buf, size_t *len, size_t cap, sp_event *ev, sp_error *err);

/* Splits a SIGPROBE_REPORT value into the address and the token after its
 * last "#" (see above): returns 1 with both filled, 0 when it carries no
 * token (addr is the whole value), or SP_EINVAL when it does not fit. */
int sp_report_split(const char *where, char *addr, size_t addr_n, char token[SP_TOKEN_HEX + 1]);

/* The hello line for token, newline included, into buf. Returns its length
 * or SP_EINVAL when it does not fit. */
int sp_hello_encode(const char *token, char *buf, size_t n);

/* True when line (len bytes, its newline included) is exactly the hello for
 * token. Compares in time that depends only on the lengths, not on where a
 * guess first differs. */
bool sp_hello_check(const char *line, size_t len, const char *token);

/* Looks at what a connection to the runner's socket has sent so far (len
 * bytes in buf, of at most cap): returns 1 when its first line is the hello
 * for token (*line_len is that line's length: what follows is the probe's),
 * 0 when the line is not complete yet, SP_EINVAL when the connection is not
 * the probe's (another line, or more than a hello without a newline). */
int sp_hello_scan(const char *buf, size_t len, size_t cap, const char *token, size_t *line_len);

/* Appends name to the list, if there is room (a full list keeps its first
 * SP_LIST_MAX names). */
void sp_name_list_add(sp_name_list *l, const char *name);

/* Signal names ("SIGINT"); unknown numbers give "SIG?". Async-signal-safe. */
const char *sp_signal_name(int signo);
#ifdef _WIN32
/* Console control event names ("CTRL_C_EVENT"), as the protocol reports them.
 * Async-signal-safe (a console handler may call it). */
const char *sp_console_event_name(unsigned long type);
#endif
/* Returns the signal number for a name, or SP_EINVAL. */
int sp_signal_parse(const char *name);

/* The port of a loopback TCP report address, tcp:127.0.0.1:PORT (loopback
 * only, nothing after the port; PORT 0, "any free port", only if allow_any),
 * or -1. */
int sp_report_tcp_port(const char *where, bool allow_any);

#endif

/* Internal to the POSIX back-end: the sp_proc behind platform.h. */
#ifndef SIGPROBE_UNIX_PROC_H
#define SIGPROBE_UNIX_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "sigprobe/platform.h"

/* The read end of the pipe that the owner-signal handler writes to (-1
 * before sp_own_probe_trees): readable once the runner was interrupted. */
int sp__interrupt_fd(void);

struct sp_proc {
  sp_host host;
  pid_t pid;
  pid_t pgid;
  int pidfd;      /* -1 where pidfd_open is unavailable */
  int chan_fd;    /* the runner's end of the report channel */
  int host_fd;    /* the pty master (tty hosts) or the stdout/stderr pipe; drained */
  bool reaped;
  char buf[2 * SP_LINE_MAX];
  size_t buf_len;
  bool chan_eof;
  /* Attached (sigprobe-run --attach): no process; the probe connects to
   * listen_fd, and the parent's events arrive on parent_fd (stdin). */
  bool attached;
  int listen_fd;
  char private_dir[108];    /* mkdtemp, 0700: only this user can reach the socket */
  char socket_path[108];
  char token[SP_TOKEN_HEX + 1];
  char report_address[256]; /* attached: SIGPROBE_REPORT for the probe, token included */
  /* Connections that have not yet said hello (protocol.h): -1 when free. */
  struct {
    int fd;
    int64_t deadline_ns;
    char buf[128];
    size_t len;
  } pending[SP_HELLO_PENDING_MAX];
  int parent_fd;
  char pbuf[SP_LINE_MAX];
  size_t pbuf_len;
  bool parent_eof;
};

#endif

/* Internal to the POSIX back-end: the sp_proc behind platform.h. */
#ifndef SIGPROBE_UNIX_PROC_H
#define SIGPROBE_UNIX_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "sigprobe/platform.h"

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
  char socket_path[108];
  char report_address[128]; /* attached: SIGPROBE_REPORT for the probe */
  int parent_fd;
  char pbuf[SP_LINE_MAX];
  size_t pbuf_len;
  bool parent_eof;
};

#endif

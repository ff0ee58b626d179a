/* Reading the report channel (and, when attached, the parent's events on
 * stdin) and draining the host's stdio (POSIX). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proc.h"
#include "sigprobe/unix_compat.h"

static void drain_host(sp_proc *p) {
  char junk[4096];
  for (;;) {
    ssize_t k = read(p->host_fd, junk, sizeof junk);
    if (k > 0) continue;
    if (k < 0 && errno == EINTR) continue;
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      /* EOF, or EIO on a pty master once the slave side is gone. */
      close(p->host_fd);
      p->host_fd = -1;
    }
    return;
  }
}

/* Appends what is readable on fd to buf; sets *eof at end of stream. */
static void fill(int fd, char *buf, size_t *len, size_t cap, bool *eof) {
  ssize_t k = read(fd, buf + *len, cap - *len);
  if (k > 0) *len += (size_t)k;
  else if (k == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) *eof = true;
}

int sp_proc_next_event(sp_proc *p, sp_event *ev, int64_t deadline_ns, sp_error *err) {
  for (;;) {
    int rc = sp_event_take_line(p->buf, &p->buf_len, sizeof p->buf, ev, err);
    if (rc) return rc < 0 ? rc : 0;
    if (p->attached) {
      rc = sp_event_take_line(p->pbuf, &p->pbuf_len, sizeof p->pbuf, ev, err);
      if (rc) return rc < 0 ? rc : 0;
    }
    if (p->chan_eof && p->buf_len) {
      p->buf_len = 0;
      return sp_fail(err, SP_EINVAL, "report channel closed in the middle of a line");
    }
    if (p->chan_eof && (!p->attached || p->parent_eof)) return SP_EOF;

    struct pollfd pfd[3];
    int n = 0, chan_i = -1, host_i = -1, parent_i = -1;
    if (!p->chan_eof) {
      chan_i = n;
      pfd[n++] = (struct pollfd){p->chan_fd >= 0 ? p->chan_fd : p->listen_fd, POLLIN, 0};
    }
    if (p->host_fd >= 0) {
      host_i = n;
      pfd[n++] = (struct pollfd){p->host_fd, POLLIN, 0};
    }
    if (p->attached && !p->parent_eof) {
      parent_i = n;
      pfd[n++] = (struct pollfd){p->parent_fd, POLLIN, 0};
    }
    int64_t left = deadline_ns - sp_clock_ns();
    if (left <= 0) return SP_ETIMEOUT;
    int r = poll(pfd, (nfds_t)n, (int)((left + 999999) / 1000000));
    if (r < 0 && errno != EINTR) return sp_fail(err, SP_EFAIL, "poll: %s", strerror(errno));
    if (r < 0 && sp_interrupted())
      return sp_fail(err, SP_EFAIL, "the runner was interrupted by %s", sp_signal_name(sp_interrupted()));
    if (r <= 0) continue;
    if (host_i >= 0 && pfd[host_i].revents) drain_host(p);
    if (parent_i >= 0 && pfd[parent_i].revents) fill(p->parent_fd, p->pbuf, &p->pbuf_len, sizeof p->pbuf, &p->parent_eof);
    if (chan_i >= 0 && pfd[chan_i].revents) {
      if (p->chan_fd < 0) {
        /* Attached: the probe connects once. */
        p->chan_fd = accept(p->listen_fd, NULL, NULL);
        if (p->chan_fd >= 0) fcntl(p->chan_fd, F_SETFL, O_NONBLOCK);
      } else {
        fill(p->chan_fd, p->buf, &p->buf_len, sizeof p->buf, &p->chan_eof);
      }
    }
  }
}

int sp_proc_request_stop(sp_proc *p, sp_error *err) {
  if (p->chan_fd < 0 || send(p->chan_fd, "stop\n", 5, MSG_NOSIGNAL) != 5)
    return sp_fail(err, SP_EFAIL, "send(stop): %s", strerror(errno));
  return 0;
}

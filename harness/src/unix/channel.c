/* Reading the report channel and draining the host's stdio (POSIX). */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proc.h"

/* Takes one complete line out of the buffer, if there is one. */
static int take_line(sp_proc *p, sp_event *ev, sp_error *err, int *got) {
  char *nl = memchr(p->buf, '\n', p->buf_len);
  *got = 0;
  if (!nl) {
    if (p->buf_len >= SP_LINE_MAX) return sp_fail(err, SP_EINVAL, "report line longer than %d bytes", SP_LINE_MAX);
    return 0;
  }
  size_t len = (size_t)(nl - p->buf) + 1;
  if (len > SP_LINE_MAX) return sp_fail(err, SP_EINVAL, "report line longer than %d bytes", SP_LINE_MAX);
  int rc = sp_event_decode(p->buf, len, ev, err);
  memmove(p->buf, p->buf + len, p->buf_len - len);
  p->buf_len -= len;
  *got = 1;
  return rc;
}

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

int sp_proc_next_event(sp_proc *p, sp_event *ev, int64_t deadline_ns, sp_error *err) {
  for (;;) {
    int got, rc = take_line(p, ev, err, &got);
    if (rc || got) return rc;
    if (p->chan_eof) {
      if (p->buf_len) {
        p->buf_len = 0;
        return sp_fail(err, SP_EINVAL, "report channel closed in the middle of a line");
      }
      return SP_EOF;
    }
    struct pollfd pfd[2] = {{p->chan_fd, POLLIN, 0}, {p->host_fd, POLLIN, 0}};
    int64_t left = deadline_ns - sp_clock_ns();
    if (left <= 0) return SP_ETIMEOUT;
    int ms = (int)((left + 999999) / 1000000);
    int n = poll(pfd, p->host_fd >= 0 ? 2 : 1, ms);
    if (n < 0 && errno != EINTR) return sp_fail(err, SP_EFAIL, "poll: %s", strerror(errno));
    if (n <= 0) continue;
    if (p->host_fd >= 0 && pfd[1].revents) drain_host(p);
    if (pfd[0].revents) {
      ssize_t k = read(p->chan_fd, p->buf + p->buf_len, sizeof p->buf - p->buf_len);
      if (k > 0) p->buf_len += (size_t)k;
      else if (k == 0 || (errno != EINTR && errno != EAGAIN)) p->chan_eof = true;
    }
  }
}

int sp_proc_request_stop(sp_proc *p, sp_error *err) {
  if (send(p->chan_fd, "stop\n", 5, MSG_NOSIGNAL) != 5)
    return sp_fail(err, SP_EFAIL, "send(stop): %s", strerror(errno));
  return 0;
}

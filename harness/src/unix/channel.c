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

/* ---- Attached: only the probe gets in (protocol.h) ----
 * Every connection to the listening socket waits in p->pending until its
 * first line is the run's hello; the first that says it becomes the report
 * channel and every other connection is closed. One that says anything
 * else, ends, or says nothing for SP_HELLO_MS is closed, so a rogue client
 * can neither feed events nor hold the place. */

static void drop_pending(sp_proc *p, size_t i) {
  close(p->pending[i].fd);
  p->pending[i].fd = -1;
}

static void accept_pending(sp_proc *p) {
  for (;;) {
    int fd = accept(p->listen_fd, NULL, NULL);
    if (fd < 0) return; /* EAGAIN: none left; anything else: tried again at the next poll */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t slot = 0;
    for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++) {
      if (p->pending[i].fd < 0) {
        slot = i;
        break;
      }
      if (p->pending[i].deadline_ns < p->pending[slot].deadline_ns) slot = i; /* full: push out the oldest */
    }
    if (p->pending[slot].fd >= 0) drop_pending(p, slot);
    p->pending[slot].fd = fd;
    p->pending[slot].len = 0;
    p->pending[slot].deadline_ns = sp_clock_ns() + (int64_t)SP_HELLO_MS * 1000000;
  }
}

/* Reads what pending connection i sent; when its first line is complete,
 * either it is the hello (it becomes the channel: true) or it is dropped. */
static bool read_pending(sp_proc *p, size_t i) {
  char *buf = p->pending[i].buf;
  size_t *len = &p->pending[i].len;
  ssize_t k = recv(p->pending[i].fd, buf + *len, sizeof p->pending[i].buf - *len, 0);
  if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
  if (k <= 0) {
    drop_pending(p, i);
    return false;
  }
  *len += (size_t)k;
  size_t line = 0;
  int said = sp_hello_scan(buf, *len, sizeof p->pending[i].buf, p->token, &line);
  if (said <= 0) {
    if (said < 0) drop_pending(p, i);
    return false;
  }
  p->chan_fd = p->pending[i].fd;
  p->pending[i].fd = -1;
  memcpy(p->buf, buf + line, *len - line); /* events sent right behind the hello */
  p->buf_len = *len - line;
  for (size_t j = 0; j < SP_HELLO_PENDING_MAX; j++)
    if (p->pending[j].fd >= 0) drop_pending(p, j);
  close(p->listen_fd); /* nobody else gets in */
  p->listen_fd = -1;
  return true;
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

    struct pollfd pfd[4 + SP_HELLO_PENDING_MAX]; /* channel or listener, pending, host, parent, interrupt */
    int n = 0, chan_i = -1, host_i = -1, parent_i = -1, first_pending = -1;
    int64_t now = sp_clock_ns(), wake_ns = deadline_ns;
    if (!p->chan_eof && p->chan_fd >= 0) {
      chan_i = n;
      pfd[n++] = (struct pollfd){p->chan_fd, POLLIN, 0};
    } else if (!p->chan_eof && p->listen_fd >= 0) {
      chan_i = n;
      pfd[n++] = (struct pollfd){p->listen_fd, POLLIN, 0};
      first_pending = n;
      for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++) {
        if (p->pending[i].fd < 0) continue;
        if (p->pending[i].deadline_ns <= now) {
          drop_pending(p, i); /* said nothing in time */
          continue;
        }
        if (p->pending[i].deadline_ns < wake_ns) wake_ns = p->pending[i].deadline_ns;
        pfd[n++] = (struct pollfd){p->pending[i].fd, POLLIN, 0};
      }
    }
    int pending_end = n;
    if (p->host_fd >= 0) {
      host_i = n;
      pfd[n++] = (struct pollfd){p->host_fd, POLLIN, 0};
    }
    if (p->attached && !p->parent_eof) {
      parent_i = n;
      pfd[n++] = (struct pollfd){p->parent_fd, POLLIN, 0};
    }
    /* An interrupt that came before this poll left a byte here: poll returns at once. */
    if (sp__interrupt_fd() >= 0) pfd[n++] = (struct pollfd){sp__interrupt_fd(), POLLIN, 0};
    if (deadline_ns - now <= 0) return SP_ETIMEOUT;
    int r = poll(pfd, (nfds_t)n, sp_ms_until(wake_ns));
    if (r < 0 && errno != EINTR) return sp_fail(err, SP_EFAIL, "poll: %s", strerror(errno));
    if (sp_interrupted())
      return sp_fail(err, SP_EFAIL, "the runner was interrupted by %s", sp_signal_name(sp_interrupted()));
    if (r <= 0) continue;
    if (host_i >= 0 && pfd[host_i].revents) drain_host(p);
    if (parent_i >= 0 && pfd[parent_i].revents) fill(p->parent_fd, p->pbuf, &p->pbuf_len, sizeof p->pbuf, &p->parent_eof);
    if (first_pending >= 0) {
      /* Attached, before the hello: the candidates first, then new ones. */
      for (int j = first_pending; j < pending_end && p->chan_fd < 0; j++) {
        if (!pfd[j].revents) continue;
        for (size_t i = 0; i < SP_HELLO_PENDING_MAX; i++)
          if (p->pending[i].fd == pfd[j].fd) {
            read_pending(p, i);
            break;
          }
      }
      if (p->chan_fd < 0 && pfd[chan_i].revents) accept_pending(p);
    } else if (chan_i >= 0 && pfd[chan_i].revents) {
      fill(p->chan_fd, p->buf, &p->buf_len, sizeof p->buf, &p->chan_eof);
    }
  }
}

int sp_proc_request_stop(sp_proc *p, sp_error *err) {
  if (p->chan_fd < 0 || send(p->chan_fd, "stop\n", 5, MSG_NOSIGNAL) != 5)
    return sp_fail(err, SP_EFAIL, "send(stop): %s", strerror(errno));
  return 0;
}

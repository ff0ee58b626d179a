/* Reading the report channel with a deadline, and asking the loop to stop
 * (Windows). Anonymous pipes have no overlapped reads, so a reader thread
 * (spawn.c) fills the buffer and sets an event; this side waits on it. */
#include "proc.h"

#include <string.h>

/* Takes one complete line out of buf, if there is one (lock held). */
static int take_line(char *buf, size_t *buf_len, sp_event *ev, sp_error *err, int *got) {
  char *nl = memchr(buf, '\n', *buf_len);
  *got = 0;
  if (!nl) {
    if (*buf_len >= SP_LINE_MAX) return sp_fail(err, SP_EINVAL, "report line longer than %d bytes", SP_LINE_MAX);
    return 0;
  }
  size_t len = (size_t)(nl - buf) + 1;
  if (len > SP_LINE_MAX) return sp_fail(err, SP_EINVAL, "report line longer than %d bytes", SP_LINE_MAX);
  int rc = sp_event_decode(buf, len, ev, err);
  memmove(buf, buf + len, *buf_len - len);
  *buf_len -= len;
  *got = 1;
  return rc;
}

int sp_proc_next_event(sp_proc *p, sp_event *ev, int64_t deadline_ns, sp_error *err) {
  for (;;) {
    int got, rc;
    bool eof, overflow;
    size_t left_over;
    EnterCriticalSection(&p->lock);
    rc = take_line(p->buf, &p->buf_len, ev, err, &got);
    /* Attached: the parent's events (stdin) come out like the probe's. */
    if (!rc && !got && p->attached) rc = take_line(p->pbuf, &p->pbuf_len, ev, err, &got);
    eof = p->chan_eof;
    overflow = p->chan_overflow;
    left_over = p->buf_len;
    if (!got && eof) p->buf_len = 0;
    LeaveCriticalSection(&p->lock);
    if (got && rc == 0 && ev->kind == SP_EV_READY && !p->attached) sp__win_adopt_probe(p, (DWORD)ev->pid);
    if (rc || got) return rc;
    if (eof && p->attached) {
      bool parent_eof;
      EnterCriticalSection(&p->lock);
      parent_eof = p->parent_eof && p->pbuf_len == 0;
      LeaveCriticalSection(&p->lock);
      if (left_over) return sp_fail(err, SP_EINVAL, "report channel closed in the middle of a line");
      if (parent_eof) return SP_EOF;
      eof = false; /* the probe is done; the parent may still answer */
    }
    if (eof) {
      if (overflow) return sp_fail(err, SP_EINVAL, "report channel overflowed (%u bytes unread)", (unsigned)sizeof p->buf);
      if (left_over) return sp_fail(err, SP_EINVAL, "report channel closed in the middle of a line");
      return SP_EOF;
    }
    int64_t left = deadline_ns - sp_clock_ns();
    if (left <= 0) return SP_ETIMEOUT;
    DWORD ms = (DWORD)((left + 999999) / 1000000);
    WaitForSingleObject(p->data, ms);
  }
}

int sp_proc_request_stop(sp_proc *p, sp_error *err) {
  bool eof;
  if (p->attached) {
    SOCKET c;
    EnterCriticalSection(&p->lock);
    c = p->chan_sock;
    eof = p->chan_eof;
    LeaveCriticalSection(&p->lock);
    if (c == INVALID_SOCKET || eof || send(c, "stop\n", 5, 0) != 5)
      return sp_fail(err, SP_EFAIL, "send(stop): the probe's connection is closed");
    return 0;
  }
  EnterCriticalSection(&p->lock);
  eof = p->chan_eof;
  LeaveCriticalSection(&p->lock);
  if (eof) return sp_fail(err, SP_EFAIL, "request stop: the report channel is closed");
  if (!SetEvent(p->stop_event)) {
    char why[160];
    return sp_fail(err, SP_EFAIL, "SetEvent(SIGPROBE_STOP): %s", sp__win_strerror(GetLastError(), why, sizeof why));
  }
  return 0;
}

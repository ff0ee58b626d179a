/* Reading the report channel with a deadline, and asking the loop to stop
 * (Windows). Anonymous pipes have no overlapped reads, so a reader thread
 * (spawn.c) fills the buffer and sets an event; this side waits on it. */
#include "proc.h"

#include <string.h>

int sp_proc_next_event(sp_proc *p, sp_event *ev, int64_t deadline_ns, sp_error *err) {
  for (;;) {
    int got, rc;
    bool eof, overflow;
    size_t left_over;
    EnterCriticalSection(&p->lock);
    rc = sp_event_take_line(p->buf, &p->buf_len, sizeof p->buf, ev, err);
    /* Attached: the parent's events (stdin) come out like the probe's. */
    if (rc == 0 && p->attached) rc = sp_event_take_line(p->pbuf, &p->pbuf_len, sizeof p->pbuf, ev, err);
    got = rc == 1;
    if (got) rc = 0;
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

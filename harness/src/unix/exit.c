/* How a probe ended, in POSIX's words (see harness/src/os.h). */
#include "../os.h"

#include <stdio.h>
#include <sys/wait.h>

sp_exit sp_exit_from_wait_status(int status) {
  sp_exit ex = {SP_EXIT_NONE, 0, 0, false};
  if (WIFEXITED(status)) {
    ex.kind = SP_EXIT_EXITED;
    ex.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    ex.kind = SP_EXIT_SIGNALED;
    ex.signal = WTERMSIG(status);
#ifdef WCOREDUMP
    ex.core = WCOREDUMP(status) != 0;
#endif
  }
  return ex;
}

void sp__exit_code_text(const sp_exit *ex, char *buf, size_t n) { snprintf(buf, n, "exited with code %d", ex->code); }

void sp__exit_code_json(sp_jw *w, const sp_exit *ex) {
  sp_jw_key(w, "code");
  sp_jw_int(w, ex->code);
}

const char *sp__outcome_note(const sp_outcome *o) {
  (void)o;
  return NULL;
}

/* Where Wine differs from Windows (the notes in harness/src/win/exit.c), the outcome keeps the
 * verdict the facts give and flags it with a note. These checks run only
 * under Wine; on Windows the same cells measure the real behaviour. */
#include "tap.h"

static void check(const char *cell, sp_verdict verdict, const char *note_has) {
  sp_outcome o;
  if (tap_run(cell, &o) != 0) return;
  tap_ok(o.verdict == verdict, "%s is %s (got %s: %s)", cell, sp_verdict_name(verdict), sp_verdict_name(o.verdict),
         o.reason);
  tap_ok(strstr(o.note, note_has) != NULL, "%s is flagged: note mentions '%s' (note: %s)", cell, note_has, o.note);
}

int main(void) {
  if (!sp_platform_is_wine()) {
    tap_skip("Wine deviations", "not running under Wine");
    return tap_done();
  }
  /* 1. GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) fails with error 6. */
  check("console/console-ctrl/ctrl-break", SP_VERDICT_ERROR, "CTRL_BREAK_EVENT");
  check("new-group/console-ctrl/ctrl-break", SP_VERDICT_ERROR, "CTRL_BREAK_EVENT");
  /* 5. The default Ctrl+C action exits 0, not STATUS_CONTROL_C_EXIT: the
   * end cannot be told from an exit, so it stays an error, flagged. */
  check("console/none/ctrl-c", SP_VERDICT_ERROR, "STATUS_CONTROL_C_EXIT");
  check("jupyter-launch/event/ctrl-c", SP_VERDICT_ERROR, "STATUS_CONTROL_C_EXIT");
  /* 6. No console window headless: nothing to send WM_CLOSE to. */
  check("console/console-ctrl/close", SP_VERDICT_UNSUPPORTED, "GetConsoleWindow");
  return tap_done();
}

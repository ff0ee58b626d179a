/* How a probe ended, in Windows' words, and where Wine differs from
 * Windows (see harness/src/os.h). */
#include "../os.h"

#include <stdio.h>
#include <string.h>

void sp__exit_code_text(const sp_exit *ex, char *buf, size_t n) {
  uint32_t code = sp_exit_win_code(ex);
  const char *name = sp_ntstatus_name(code);
  if (name) snprintf(buf, n, "exited with code 0x%08lX (%s)", (unsigned long)code, name);
  else snprintf(buf, n, "exited with code %lu", (unsigned long)code);
}

void sp__exit_code_json(sp_jw *w, const sp_exit *ex) {
  uint32_t code = sp_exit_win_code(ex);
  sp_jw_key(w, "code");
  sp_jw_int(w, (int64_t)code);
  if (sp_ntstatus_name(code)) {
    sp_jw_key(w, "ntstatus");
    sp_jw_str(w, sp_ntstatus_name(code));
  }
}

static bool is_console_event(sp_delivery d) {
  return d == SP_DELIVERY_CTRL_C || d == SP_DELIVERY_CTRL_BREAK || d == SP_DELIVERY_CLOSE;
}

/* Each deviation is keyed on the facts that show it, never on what Windows
 * would have done; tests/win/test_wine_deviations.c checks them. */
const char *sp__outcome_note(const sp_outcome *o) {
  if (!sp_platform_is_wine()) return NULL;
  if (o->cell.delivery == SP_DELIVERY_CTRL_BREAK && o->verdict == SP_VERDICT_ERROR && strstr(o->reason, "error 6"))
    return "Wine: GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) is not implemented (error 6); real Windows delivers it";
  if (o->cell.delivery == SP_DELIVERY_CTRL_C && o->cell.host == SP_HOST_NEW_GROUP &&
      o->verdict == SP_VERDICT_NOT_DELIVERED)
    return "Wine: process group 0 means only the sender's own group, so a CREATE_NEW_PROCESS_GROUP probe is not sent "
           "Ctrl+C at all; on Windows every process on the console is, and a new group has Ctrl+C disabled";
  if (is_console_event(o->cell.delivery) && o->verdict == SP_VERDICT_ERROR && o->exit.kind == SP_EXIT_EXITED &&
      o->exit.code == 0 && !o->done_seen && o->n_fired == 0)
    return "Wine: a process ended by the default Ctrl+C action exits with 0, not STATUS_CONTROL_C_EXIT (0xC000013A), "
           "so the harness cannot tell it from an exit; on Windows this is decoded as killed";
  if (o->cell.delivery == SP_DELIVERY_CLOSE && o->verdict == SP_VERDICT_UNSUPPORTED && strstr(o->reason, "window"))
    return "Wine: GetConsoleWindow() is NULL headless, so no console here has a window to close";
  return NULL;
}

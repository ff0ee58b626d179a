/* Windows exit decoding, cell ids and the outcome JSON, without running
 * anything. */
#include "tap.h"

static int json_has(const sp_outcome *o, const char *needle) {
  char line[16384];
  return sp_outcome_to_json(o, line, sizeof line) > 0 && strstr(line, needle) != NULL;
}

int main(void) {
  sp_exit ex = sp_exit_from_win_code(0xC000013Au);
  tap_ok(ex.kind == SP_EXIT_EXITED && sp_exit_win_code(&ex) == 0xC000013Au, "0xC000013A decodes as an exit code");
  tap_ok(sp_ntstatus_name(0xC000013Au) && !strcmp(sp_ntstatus_name(0xC000013Au), "STATUS_CONTROL_C_EXIT"),
         "0xC000013A is named STATUS_CONTROL_C_EXIT");
  tap_ok(sp_ntstatus_name(0) == NULL && sp_ntstatus_name(3) == NULL, "plain exit codes have no NTSTATUS name");

  sp_cell c;
  sp_error err;
  tap_ok(sp_cell_parse("windows/console/event/set-event", &c, &err) == 0 && c.host == SP_HOST_CONSOLE &&
             c.strategy == SP_STRATEGY_EVENT && c.delivery == SP_DELIVERY_SET_EVENT,
         "windows/ ids parse");
  tap_ok(sp_cell_parse("windows-wine/jupyter-launch/all/ctrl-c", &c, &err) == 0 && c.host == SP_HOST_JUPYTER_LAUNCH,
         "windows-wine/ ids parse");
  tap_ok(sp_cell_parse("linux/console/none/ctrl-c", &c, &err) == SP_EINVAL, "linux/ ids are refused");
  tap_ok(sp_cell_parse("console/sigaction/ctrl-c", &c, &err) == SP_EINVAL && strstr(err.msg, "console-ctrl"),
         "POSIX strategies are unknown, and the error lists the Windows ones");
  char id[128];
  sp_cell_parse("console/none/ctrl-c", &c, &err);
  const char *want = sp_platform_is_wine() ? "windows-wine/console/none/ctrl-c" : "windows/console/none/ctrl-c";
  tap_ok(strcmp(sp_cell_format(&c, id, sizeof id), want) == 0, "ids say where they ran: %s", id);

  /* A Ctrl+C default-action end on Windows: killed, with the NTSTATUS named. */
  sp_outcome o;
  sp_cell_parse("console/none/ctrl-c", &c, &err);
  sp_outcome_init(&o, &c);
  o.ready_seen = true;
  o.delivered = true;
  o.exit = sp_exit_from_win_code(0xC000013Au);
  tap_ok(sp_outcome_derive_verdict(&o) == SP_VERDICT_KILLED, "ended by STATUS_CONTROL_C_EXIT after ctrl-c is killed");
  tap_ok(json_has(&o, "\"exit\":{\"kind\":\"exited\",\"code\":3221225786,\"ntstatus\":\"STATUS_CONTROL_C_EXIT\"}"),
         "the exit prints as an unsigned code with its NTSTATUS name");
  /* The same code after set-event is no default action: an error. */
  sp_cell_parse("console/none/set-event", &c, &err);
  sp_outcome_init(&o, &c);
  o.ready_seen = true;
  o.delivered = true;
  o.exit = sp_exit_from_win_code(0xC000013Au);
  tap_ok(sp_outcome_derive_verdict(&o) == SP_VERDICT_ERROR && strstr(o.reason, "STATUS_CONTROL_C_EXIT"),
         "STATUS_CONTROL_C_EXIT after set-event is an error naming it");
  /* A crash is an error naming its NTSTATUS. */
  o.exit = sp_exit_from_win_code(0xC0000005u);
  o.reason[0] = '\0';
  tap_ok(sp_outcome_derive_verdict(&o) == SP_VERDICT_ERROR && strstr(o.reason, "STATUS_ACCESS_VIOLATION"),
         "a crash is an error naming STATUS_ACCESS_VIOLATION");
  return tap_done();
}

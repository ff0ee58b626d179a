/* Cells where no handler runs, each for its own reason: the verdict says
 * which, from the facts the probe and the exit give. */
#include "tap.h"

static void detached_gets_no_console_event(void) {
  /* DETACHED_PROCESS: Ctrl+C in the parent's console does not reach it. */
  static const char *const cells[] = {"detached/console-ctrl/ctrl-c", "detached/signal/ctrl-c"};
  for (size_t i = 0; i < SP_ARRAY_LEN(cells); i++) {
    sp_outcome o;
    if (tap_run(cells[i], &o) != 0) continue;
    tap_ok(o.verdict == SP_VERDICT_NOT_DELIVERED, "%s is not-delivered (got %s)", cells[i], sp_verdict_name(o.verdict));
    tap_ok(strstr(o.ready.console, "\"attached\":false") != NULL, "%s: the probe reported no console", cells[i]);
  }
}

static void new_group_has_ctrl_c_disabled(void) {
  static const char *const cells[] = {"new-group/console-ctrl/ctrl-c", "new-group/none/ctrl-c"};
  for (size_t i = 0; i < SP_ARRAY_LEN(cells); i++) {
    sp_outcome o;
    if (tap_run(cells[i], &o) != 0) continue;
    tap_ok(o.verdict == SP_VERDICT_IGNORED, "%s is ignored (got %s: %s)", cells[i], sp_verdict_name(o.verdict), o.reason);
    tap_ok(o.ready.disposition_on_entry == SP_DISP_IGNORED, "%s: Ctrl+C was disabled on entry", cells[i]);
    tap_ok(strstr(o.ready.console, "\"ctrl_c_ignored\":true") != NULL, "%s: console.ctrl_c_ignored", cells[i]);
  }
  /* The launcher clears the flag, so the other hosts start with Ctrl+C on. */
  sp_outcome o;
  if (tap_run("jupyter-launch/none/set-event", &o) == 0)
    tap_ok(o.ready.disposition_on_entry == SP_DISP_DEFAULT, "jupyter-launch: Ctrl+C enabled on entry");
}

static void unheard_event_stays_pending(void) {
  /* jupyter_client sets the event; code that does not wait on it never
   * notices: the event is still set at the end. */
  static const char *const cells[] = {"jupyter-launch/console-ctrl/set-event", "jupyter-launch/signal/set-event"};
  for (size_t i = 0; i < SP_ARRAY_LEN(cells); i++) {
    sp_outcome o;
    if (tap_run(cells[i], &o) != 0) continue;
    tap_ok(o.verdict == SP_VERDICT_LOST, "%s is lost (got %s)", cells[i], sp_verdict_name(o.verdict));
    tap_ok(o.n_fired == 0 && o.done_seen && strcmp(o.done.stopped_by, "runner") == 0,
           "%s: nothing fired and the runner stopped the loop", cells[i]);
  }
}

static void terminate_kills_whatever_the_strategy(void) {
  static const char *const cells[] = {"console/all/terminate", "jupyter-launch/console-ctrl/terminate"};
  for (size_t i = 0; i < SP_ARRAY_LEN(cells); i++) {
    sp_outcome o;
    if (tap_run(cells[i], &o) != 0) continue;
    tap_ok(o.verdict == SP_VERDICT_KILLED, "%s is killed (got %s)", cells[i], sp_verdict_name(o.verdict));
    tap_ok(o.exit.kind == SP_EXIT_EXITED && sp_exit_win_code(&o.exit) == SP_WIN_TERMINATE_CODE && o.n_fired == 0,
           "%s: exit code is TerminateProcess's, no handler ran", cells[i]);
  }
}

static void event_strategy_without_the_variable_is_unsupported(void) {
  /* Run the probe directly, outside any launcher, without JPY_INTERRUPT_EVENT. */
  char path[MAX_PATH + 64], cmd[MAX_PATH + 64];
  snprintf(path, sizeof path, "%s\\sigprobe-probe-event.exe", tap_probe_dir());
  snprintf(cmd, sizeof cmd, "\"%s\"", path);
  char tmp[MAX_PATH], file[MAX_PATH];
  GetTempPathA(sizeof tmp, tmp);
  GetTempFileNameA(tmp, "spr", 0, file);
  SetEnvironmentVariableA("JPY_INTERRUPT_EVENT", NULL);
  SetEnvironmentVariableA("SIGPROBE_STOP", NULL);
  SetEnvironmentVariableA("SIGPROBE_REPORT", file);
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  DWORD code = 99;
  if (CreateProcessA(path, cmd, NULL, NULL, FALSE, DETACHED_PROCESS, NULL, NULL, &si, &pi)) {
    WaitForSingleObject(pi.hProcess, 10000);
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
  }
  SetEnvironmentVariableA("SIGPROBE_REPORT", NULL);
  char buf[1024] = "";
  FILE *f = fopen(file, "r");
  if (f) {
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    buf[k] = '\0';
    fclose(f);
  }
  DeleteFileA(file);
  printf("# %s", buf);
  tap_ok(code == 0 && strstr(buf, "\"ev\":\"unsupported\"") && strstr(buf, "JPY_INTERRUPT_EVENT is not set"),
         "event probe without JPY_INTERRUPT_EVENT reports unsupported with the reason");
}

int main(void) {
  detached_gets_no_console_event();
  new_group_has_ctrl_c_disabled();
  unheard_event_stays_pending();
  terminate_kills_whatever_the_strategy();
  event_strategy_without_the_variable_is_unsupported();
  return tap_done();
}

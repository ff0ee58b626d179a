#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <signal.h>
#include <string.h>

#include "sigprobe/protocol.h"

static int decode(const char *line, sp_event *ev, sp_error *err) { return sp_event_decode(line, strlen(line), ev, err); }

Test(protocol, ready_round_trips) {
  sp_event in, out;
  sp_error err;
  char line[SP_LINE_MAX];
  memset(&in, 0, sizeof in);
  in.kind = SP_EV_READY;
  in.pid = 10;
  in.pgid = 10;
  in.sid = 9;
  strcpy(in.tty, "/dev/pts/4");
  in.foreground = 1;
  in.disposition_on_entry = SP_DISP_IGNORED;
  in.strategies.n = 2;
  strcpy(in.strategies.names[0], "signal");
  strcpy(in.strategies.names[1], "sigaction");
  in.t_ns = 123456789;
  int n = sp_event_encode(&in, line, sizeof line);
  cr_assert_gt(n, 0);
  cr_assert_eq(line[n - 1], '\n');
  cr_assert_eq(decode(line, &out, &err), 0, "%s", err.msg);
  cr_assert_eq(out.kind, SP_EV_READY);
  cr_assert_eq(out.pid, 10);
  cr_assert_eq(out.sid, 9);
  cr_assert_str_eq(out.tty, "/dev/pts/4");
  cr_assert_eq(out.foreground, 1);
  cr_assert_eq(out.disposition_on_entry, SP_DISP_IGNORED);
  cr_assert_eq(out.strategies.n, 2);
  cr_assert_str_eq(out.strategies.names[1], "sigaction");
  cr_assert_eq(out.t_ns, 123456789);
}

Test(protocol, fired_carries_the_sender) {
  sp_event ev;
  sp_error err;
  cr_assert_eq(decode("{\"ev\":\"fired\",\"handler\":\"sigaction\",\"sig\":\"SIGINT\",\"si_code\":\"SI_USER\","
                      "\"si_pid\":77,\"si_uid\":1000,\"thread\":\"other\",\"tid\":5,\"t_ns\":99}",
                      &ev, &err),
               0, "%s", err.msg);
  cr_assert_str_eq(ev.handler, "sigaction");
  cr_assert_str_eq(ev.si_code, "SI_USER");
  cr_assert_eq(ev.sender_pid, 77);
  cr_assert_eq(ev.sender_uid, 1000);
  cr_assert_eq(ev.main_thread, 0);
}

Test(protocol, done_lists_round_trip) {
  sp_event ev;
  sp_error err;
  cr_assert_eq(decode("{\"ev\":\"done\",\"stopped_by\":\"runner\",\"ignored\":[\"SIGINT\",\"SIGQUIT\"],\"pending\":[]}\n",
                      &ev, &err),
               0, "%s", err.msg);
  cr_assert_eq(ev.ignored.n, 2);
  cr_assert_str_eq(ev.ignored.names[1], "SIGQUIT");
  cr_assert_eq(ev.pending.n, 0);
}

Test(protocol, unknown_members_are_ignored) {
  sp_event ev;
  sp_error err;
  cr_assert_eq(decode("{\"ev\":\"unsupported\",\"reason\":\"no\",\"console\":{\"attached\":false}}", &ev, &err), 0);
  cr_assert_str_eq(ev.reason, "no");
}

/* Inline arrays, not pointers: Criterion hands parameters to a fresh
 * worker process, where the parent's pointers mean nothing. */
struct bad_line {
  char line[128];
  char why[48];
};

ParameterizedTestParameters(protocol, bad_lines_are_rejected_with_a_reason) {
  static struct bad_line lines[] = {
      {"garbage", "malformed JSON"},
      {"", "empty report line"},
      {"{\"pid\":1}", "no \"ev\""},
      {"{\"ev\":\"exploded\"}", "unknown event"},
      {"{\"ev\":\"ready\"}", "without a pid"},
      {"{\"ev\":\"fired\",\"handler\":\"x\"}", "needs handler"},
      {"{\"ev\":\"done\"}", "without stopped_by"},
      {"{\"ev\":\"ready\",\"pid\":\"12\"}", "bad value for \"pid\""},
      {"{\"ev\":\"fired\",\"handler\":\"x\",\"sig\":\"SIGINT\",\"thread\":\"side\",\"t_ns\":1}", "bad value for \"thread\""},
      {"{\"ev\":\"error\"}", "without a reason"},
      {"{\"ev\":\"ready\",\"pid\":1} {}", "trailing"},
  };
  return cr_make_param_array(struct bad_line, lines, sizeof lines / sizeof lines[0]);
}

ParameterizedTest(struct bad_line *b, protocol, bad_lines_are_rejected_with_a_reason) {
  sp_event ev;
  sp_error err = {""};
  cr_assert_eq(decode(b->line, &ev, &err), SP_EINVAL, "accepted: %s", b->line);
  cr_assert(strstr(err.msg, b->why) != NULL, "for %s: got '%s', expected '%s'", b->line, err.msg, b->why);
}

Test(protocol, signal_names_round_trip) {
  cr_assert_str_eq(sp_signal_name(SIGINT), "SIGINT");
  cr_assert_eq(sp_signal_parse("SIGTERM"), SIGTERM);
  cr_assert_eq(sp_signal_parse("SIGNOPE"), SP_EINVAL);
  cr_assert_str_eq(sp_signal_name(12345), "SIG?");
}

Test(protocol, extra_members_are_spliced_into_the_line) {
  sp_event ev, back;
  sp_error err;
  char line[SP_LINE_MAX];
  memset(&ev, 0, sizeof ev);
  ev.kind = SP_EV_READY;
  ev.pid = 7;
  int n = sp_event_encode_extra(&ev, "\"nogil\":true", line, sizeof line);
  cr_assert_gt(n, 0);
  cr_assert(strstr(line, ",\"nogil\":true}\n"), "%s", line);
  cr_assert_eq(sp_event_decode(line, (size_t)n, &back, &err), 0, "%s", err.msg);
  cr_assert_eq(back.pid, 7);
  char tiny[40];
  cr_assert_eq(sp_event_encode_extra(&ev, "\"x\":1", tiny, sizeof tiny), SP_EINVAL);
}

Test(protocol, tcp_report_addresses_are_loopback_ports_only) {
  cr_assert_eq(sp_report_tcp_port("tcp:127.0.0.1:54321", false), 54321);
  cr_assert_eq(sp_report_tcp_port("tcp:127.0.0.1:65535", false), 65535);
  cr_assert_eq(sp_report_tcp_port("tcp:127.0.0.1:0", true), 0); /* the runner: any free port */
  cr_assert_eq(sp_report_tcp_port("tcp:127.0.0.1:0", false), -1); /* the probe needs the real one */
  const char *bad[] = {"tcp:127.0.0.1:65536", "tcp:127.0.0.1:", "tcp:127.0.0.1:80x", "tcp:127.0.0.1:-1",
                       "tcp:10.0.0.1:80",     "tcp:localhost:80", "unix:/tmp/x",      "tcp:127.0.0.1:123456",
                       "tcp:127.0.0.1: 80",   ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(sp_report_tcp_port(bad[i], true), -1, "accepted '%s'", bad[i]);
}

/* sigprobe-run --attach: only the probe gets in. A client of the runner's
 * socket that connects first and sends nothing, garbage, a wrong token or
 * well-formed events without the hello changes nothing the runner reads; the
 * probe, which holds the token, is read as if it had been alone. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sigprobe/platform.h"
#include "sigprobe/protocol.h"

static char g_dir[64];
static sp_proc *g_p;
static char g_path[256], g_token[SP_TOKEN_HEX + 1];

static void setup(void) {
  sp_error err;
  /* The parent's side of an attached run is stdin: nothing comes from it here. */
  cr_assert_not_null(freopen("/dev/null", "r", stdin));
  snprintf(g_dir, sizeof g_dir, "/tmp/sp-attach-XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  char sock[128];
  snprintf(sock, sizeof sock, "%s/r1.sock", g_dir);
  cr_assert_eq(sp_proc_attach(&g_p, sock, &err), 0, "%s", err.msg);
  char addr[256];
  int has = sp_report_split(sp_proc_report_address(g_p), addr, sizeof addr, g_token);
  cr_assert_eq(has, 1, "the report address carries a token: %s", sp_proc_report_address(g_p));
  cr_assert_eq(strncmp(addr, SP_REPORT_UNIX_PREFIX, 5), 0);
  sp_strlcpy(g_path, addr + 5, sizeof g_path);
}

static void teardown(void) {
  sp_proc_free(g_p);
  rmdir(g_dir);
}

static int connect_to(const char *path) {
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  sp_strlcpy(a.sun_path, path, sizeof a.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
  return fd;
}

static void send_str(int fd, const char *s) { cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s)); }

static const char probe_ready[] = "{\"ev\":\"ready\",\"pid\":4242,\"strategies\":[\"c-handler-per-call\"],\"t_ns\":5}\n";
static const char probe_done[] = "{\"ev\":\"done\",\"stopped_by\":\"runner\",\"t_ns\":9}\n";
static const char forged[] = "{\"ev\":\"ready\",\"pid\":666,\"strategies\":[\"rogue\"],\"t_ns\":1}\n"
                             "{\"ev\":\"fired\",\"handler\":\"rogue\",\"sig\":\"SIGINT\",\"thread\":\"main\",\"t_ns\":2}\n"
                             "{\"ev\":\"done\",\"stopped_by\":\"rogue\",\"t_ns\":3}\n";

/* The probe: connects, says hello with the token, reports ready and done. */
static int probe_connects(void) {
  char hello[128];
  int fd = connect_to(g_path);
  cr_assert_gt(sp_hello_encode(g_token, hello, sizeof hello), 0);
  send_str(fd, hello);
  send_str(fd, probe_ready);
  send_str(fd, probe_done);
  return fd;
}

/* What the runner reads is the probe's ready and done, nothing else. */
static void reads_only_the_probe(void) {
  sp_event ev;
  sp_error err;
  int64_t deadline = sp_clock_ns() + 5000000000LL;
  cr_assert_eq(sp_proc_next_event(g_p, &ev, deadline, &err), 0, "%s", err.msg);
  cr_assert_eq(ev.kind, SP_EV_READY);
  cr_assert_eq(ev.pid, 4242, "the ready read is the probe's (pid %lld)", (long long)ev.pid);
  cr_assert_eq(sp_proc_next_event(g_p, &ev, deadline, &err), 0, "%s", err.msg);
  cr_assert_eq(ev.kind, SP_EV_DONE, "no forged fired between ready and done (got %s)", sp_event_kind_name(ev.kind));
  cr_assert_str_eq(ev.stopped_by, "runner");
}

/* True when the runner has closed its end of fd. */
static bool closed_by_runner(int fd, int timeout_ms) {
  struct pollfd pfd = {fd, POLLIN, 0};
  char junk[256];
  int64_t end = sp_clock_ns() + (int64_t)timeout_ms * 1000000;
  while (sp_clock_ns() < end) {
    if (poll(&pfd, 1, 50) > 0) {
      ssize_t k = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
      if (k == 0 || (k < 0 && errno == ECONNRESET)) return true;
    }
  }
  return false;
}

TestSuite(attach, .init = setup, .fini = teardown, .timeout = 30);

Test(attach, report_address_names_a_private_folder_and_a_token) {
  struct stat st;
  char dir[256];
  sp_strlcpy(dir, g_path, sizeof dir);
  *strrchr(dir, '/') = '\0';
  cr_assert_eq(stat(dir, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700, "the socket's folder is 0%o", st.st_mode & 0777);
  cr_assert_str_eq(strrchr(g_path, '/'), "/r1.sock");
  cr_assert_eq(strlen(g_token), SP_TOKEN_HEX);
}

Test(attach, tokens_differ_between_runs) {
  sp_proc *other;
  sp_error err;
  char sock[128], addr[256], token[SP_TOKEN_HEX + 1];
  snprintf(sock, sizeof sock, "%s/r2.sock", g_dir);
  cr_assert_eq(sp_proc_attach(&other, sock, &err), 0, "%s", err.msg);
  sp_report_split(sp_proc_report_address(other), addr, sizeof addr, token);
  cr_assert_str_neq(token, g_token);
  sp_proc_free(other);
}

Test(attach, a_silent_client_first_does_not_hold_the_place) {
  int rogue = connect_to(g_path);
  int probe = probe_connects();
  reads_only_the_probe();
  cr_assert(closed_by_runner(rogue, 2000), "the silent client was dropped");
  close(rogue);
  close(probe);
}

Test(attach, garbage_first_is_dropped) {
  int rogue = connect_to(g_path);
  send_str(rogue, "GET / HTTP/1.0\r\n\r\n");
  int probe = probe_connects();
  reads_only_the_probe();
  cr_assert(closed_by_runner(rogue, 2000));
  close(rogue);
  close(probe);
}

Test(attach, well_formed_events_without_the_hello_change_nothing) {
  int rogue = connect_to(g_path);
  send_str(rogue, forged);
  int probe = probe_connects();
  reads_only_the_probe();
  close(rogue);
  close(probe);
}

Test(attach, a_hello_with_a_wrong_token_is_dropped) {
  char hello[128], wrong[SP_TOKEN_HEX + 1];
  sp_strlcpy(wrong, g_token, sizeof wrong);
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  int rogue = connect_to(g_path);
  cr_assert_gt(sp_hello_encode(wrong, hello, sizeof hello), 0);
  send_str(rogue, hello);
  send_str(rogue, forged);
  int probe = probe_connects();
  reads_only_the_probe();
  cr_assert(closed_by_runner(rogue, 2000));
  close(rogue);
  close(probe);
}

/* More silent clients than the runner keeps waiting, then the probe. A
 * thread connects them: a full listen backlog blocks connect() until the
 * runner, reading on this thread, accepts. */
static int g_rogues[SP_HELLO_PENDING_MAX + 4], g_flood_probe = -1;
static void *flood(void *arg) {
  (void)arg;
  for (size_t i = 0; i < SP_ARRAY_LEN(g_rogues); i++) g_rogues[i] = connect_to(g_path);
  g_flood_probe = probe_connects();
  return NULL;
}

Test(attach, more_silent_clients_than_places_do_not_lock_the_probe_out) {
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, flood, NULL), 0);
  reads_only_the_probe();
  pthread_join(t, NULL);
  for (size_t i = 0; i < SP_ARRAY_LEN(g_rogues); i++) close(g_rogues[i]);
  close(g_flood_probe);
}

Test(attach, nobody_with_the_token_is_a_timeout_not_a_hang) {
  sp_event ev;
  sp_error err;
  int rogue = connect_to(g_path);
  send_str(rogue, forged);
  int silent = connect_to(g_path);
  int64_t start = sp_clock_ns();
  cr_assert_eq(sp_proc_next_event(g_p, &ev, start + 1500000000LL, &err), SP_ETIMEOUT);
  cr_assert(closed_by_runner(silent, 100), "the silent client was dropped after SP_HELLO_MS");
  close(rogue);
  close(silent);
}

Test(attach, a_stop_reaches_only_the_probe) {
  sp_error err;
  int rogue = connect_to(g_path);
  int probe = probe_connects();
  reads_only_the_probe();
  cr_assert_eq(sp_proc_request_stop(g_p, &err), 0, "%s", err.msg);
  char cmd[16] = "";
  struct pollfd pfd = {probe, POLLIN, 0};
  cr_assert_eq(poll(&pfd, 1, 2000), 1);
  cr_assert_eq(recv(probe, cmd, sizeof cmd - 1, 0), 5);
  cr_assert_str_eq(cmd, "stop\n");
  close(rogue);
  close(probe);
}

Test(hello, only_the_exact_line_passes) {
  char token[SP_TOKEN_HEX + 1], hello[128];
  memset(token, 'c', SP_TOKEN_HEX);
  token[SP_TOKEN_HEX] = '\0';
  int n = sp_hello_encode(token, hello, sizeof hello);
  cr_assert_gt(n, 0);
  cr_assert(sp_hello_check(hello, (size_t)n, token));
  cr_assert_not(sp_hello_check(hello, (size_t)n - 1, token), "without its newline");
  hello[n - 3] = 'd';
  cr_assert_not(sp_hello_check(hello, (size_t)n, token), "one digit off");
  cr_assert_not(sp_hello_check("{\"ev\":\"hello\"}\n", 15, token));
  cr_assert_not(sp_hello_check(hello, (size_t)n, "short"), "a malformed expected token never matches");
}

Test(hello, report_values_split_only_on_a_whole_token) {
  char addr[128], token[SP_TOKEN_HEX + 1];
  cr_assert_eq(sp_report_split("unix:/tmp/a#b.sock", addr, sizeof addr, token), 0);
  cr_assert_str_eq(addr, "unix:/tmp/a#b.sock");
  cr_assert_eq(sp_report_split("7", addr, sizeof addr, token), 0);
  cr_assert_str_eq(addr, "7");
  char with[160];
  snprintf(with, sizeof with, "tcp:127.0.0.1:9#%064d", 0);
  cr_assert_eq(sp_report_split(with, addr, sizeof addr, token), 1);
  cr_assert_str_eq(addr, "tcp:127.0.0.1:9");
  cr_assert_eq(strlen(token), SP_TOKEN_HEX);
  cr_assert_eq(sp_report_split(with, addr, 4, token), SP_EINVAL);
}

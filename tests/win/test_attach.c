/* sigprobe-run --attach over loopback TCP (Wine has no AF_UNIX): only the
 * probe gets in. Clients that connect first and send nothing, garbage, a
 * wrong token or well-formed events without the hello change nothing the
 * runner reads; the probe, which holds the token, is read as if alone. */
#include <winsock2.h>

#include "tap.h"

#include "sigprobe/platform.h"
#include "sigprobe/protocol.h"

static int g_port;
static char g_token[SP_TOKEN_HEX + 1];

static SOCKET connect_local(void) {
  struct sockaddr_in in;
  memset(&in, 0, sizeof in);
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  in.sin_port = htons((unsigned short)g_port);
  SOCKET s = socket(AF_INET, SOCK_STREAM, 0);
  if (s != INVALID_SOCKET && connect(s, (struct sockaddr *)&in, (int)sizeof in) != 0) {
    closesocket(s);
    s = INVALID_SOCKET;
  }
  return s;
}

static void send_str(SOCKET s, const char *str) { send(s, str, (int)strlen(str), 0); }

static const char forged[] = "{\"ev\":\"ready\",\"pid\":666,\"strategies\":[\"rogue\"],\"t_ns\":1}\n"
                             "{\"ev\":\"fired\",\"handler\":\"rogue\",\"sig\":\"SIGINT\",\"thread\":\"main\",\"t_ns\":2}\n"
                             "{\"ev\":\"done\",\"stopped_by\":\"rogue\",\"t_ns\":3}\n";

/* True when the runner closed its end of s within timeout_ms. */
static bool dropped(SOCKET s, int timeout_ms) {
  fd_set r;
  char junk[256];
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  FD_ZERO(&r);
  FD_SET(s, &r);
  if (select(0, &r, NULL, NULL, &tv) != 1) return false;
  return recv(s, junk, sizeof junk, 0) <= 0;
}

int main(void) {
  WSADATA wsa;
  sp_proc *p = NULL;
  sp_error err;
  WSAStartup(MAKEWORD(2, 2), &wsa);
  int rc = sp_proc_attach(&p, "tcp:127.0.0.1:0", &err);
  tap_ok(rc == 0, "the runner listens on loopback TCP (%s)", rc ? err.msg : sp_proc_report_address(p));
  if (rc != 0) return tap_done();
  char addr[128];
  tap_ok(sp_report_split(sp_proc_report_address(p), addr, sizeof addr, g_token) == 1,
         "its report address carries a token");
  g_port = sp_report_tcp_port(addr, false);
  tap_ok(g_port > 0, "the address names the port (%d)", g_port);

  SOCKET silent = connect_local(), garbage = connect_local(), forger = connect_local(), wrong = connect_local();
  tap_ok(silent != INVALID_SOCKET && garbage != INVALID_SOCKET && forger != INVALID_SOCKET && wrong != INVALID_SOCKET,
         "four rogue clients connect first");
  char hello[128], bad_token[SP_TOKEN_HEX + 1];
  send_str(garbage, "GET / HTTP/1.0\r\n\r\n");
  send_str(forger, forged);
  sp_strlcpy(bad_token, g_token, sizeof bad_token);
  bad_token[0] = bad_token[0] == 'a' ? 'b' : 'a';
  sp_hello_encode(bad_token, hello, sizeof hello);
  send_str(wrong, hello);
  send_str(wrong, forged);

  SOCKET probe = connect_local();
  sp_hello_encode(g_token, hello, sizeof hello);
  send_str(probe, hello);
  send_str(probe, "{\"ev\":\"ready\",\"pid\":4242,\"strategies\":[\"event-thread\"],\"t_ns\":5}\n");
  send_str(probe, "{\"ev\":\"done\",\"stopped_by\":\"runner\",\"t_ns\":9}\n");

  sp_event ev;
  int64_t deadline = sp_clock_ns() + 10000000000LL;
  rc = sp_proc_next_event(p, &ev, deadline, &err);
  tap_ok(rc == 0 && ev.kind == SP_EV_READY && ev.pid == 4242, "the first event read is the probe's ready (rc %d, %s, pid %lld)",
         rc, rc == 0 ? sp_event_kind_name(ev.kind) : err.msg, (long long)ev.pid);
  rc = sp_proc_next_event(p, &ev, deadline, &err);
  tap_ok(rc == 0 && ev.kind == SP_EV_DONE && strcmp(ev.stopped_by, "runner") == 0,
         "then its done: no forged fired in between (rc %d, %s)", rc, rc == 0 ? sp_event_kind_name(ev.kind) : err.msg);
  tap_ok(sp_proc_request_stop(p, &err) == 0, "a stop goes to the probe");
  char cmd[16] = "";
  fd_set r;
  struct timeval tv = {5, 0};
  FD_ZERO(&r);
  FD_SET(probe, &r);
  int got = select(0, &r, NULL, NULL, &tv) == 1 ? recv(probe, cmd, sizeof cmd - 1, 0) : -1;
  tap_ok(got == 5 && strcmp(cmd, "stop\n") == 0, "and reaches it (%d bytes)", got);
  tap_ok(dropped(garbage, 3000), "the garbage client was dropped");
  tap_ok(dropped(forger, 3000), "the forger was dropped");
  tap_ok(dropped(wrong, 3000), "the wrong token was dropped");
  tap_ok(dropped(silent, 3000), "the silent client was dropped");
  closesocket(silent);
  closesocket(garbage);
  closesocket(forger);
  closesocket(wrong);
  closesocket(probe);
  sp_proc_free(p);
  WSACleanup();
  return tap_done();
}

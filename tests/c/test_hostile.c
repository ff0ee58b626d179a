/* Hostile probes (tests/fixtures/hostile/hostile.c) through the real runner:
 * each run ends with the right verdict and reason, within its deadline, and
 * leaves nothing running: no probe, no escaped grandchild, no runner. The
 * runner is started as its own process (as `sigprobe run` does), so what is
 * tested is the runner's ownership of the tree, including its subreaper. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sigprobe/common.h"

/* Generous: the fixtures run under ASan too, on a loaded 2-core machine. */
#define READY_MS 1500
#define DEADLINE_MS 800

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A word no other process has in its argv. */
static void make_marker(char *buf, size_t n, const char *mode) {
  static int k;
  snprintf(buf, n, "sp-hostile-%d-%d-%s", (int)getpid(), ++k, mode);
}

/* How many live processes have marker in their argv; with leaders, also how
 * many of them lead their own session (the no-tty probe does, and so does the
 * escape fixture's grandchild once it has called setsid()). */
static int count_marked_leaders(const char *marker, int *leaders) {
  int found = 0;
  if (leaders) *leaders = 0;
  DIR *d = opendir("/proc");
  cr_assert(d);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[8192];
    snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0) continue;
    for (ssize_t i = 0; i < k; i++)
      if (!buf[i]) buf[i] = ' ';
    buf[k] = '\0';
    if (!strstr(buf, marker)) continue;
    found++;
    pid_t pid = (pid_t)atoi(e->d_name);
    if (leaders && getsid(pid) == pid) ++*leaders;
  }
  closedir(d);
  return found;
}

static int count_marked(const char *marker) { return count_marked_leaders(marker, NULL); }

/* Waits until the escape fixture is all there: the runner, the probe and the
 * grandchild that escaped (2 session leaders: the probe and the grandchild),
 * the double fork over. Killing before that tests a fork in flight, not an
 * escaped process. */
static void wait_for_the_escape(const char *marker) {
  int n = 0, leaders = 0;
  for (int i = 0; i < 800; i++) {
    n = count_marked_leaders(marker, &leaders);
    if (n == 3 && leaders == 2) break;
    usleep(10000);
  }
  cr_assert(n == 3 && leaders == 2, "the fixture did not start (%d processes, %d session leaders)", n, leaders);
}

/* Starts the runner on the fixture; its stdout comes back on *out_fd. */
static pid_t start_runner(const char *host, const char *mode, const char *marker, int ready_ms, int deadline_ms,
                          int *out_fd) {
  int p[2];
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  char label[128], ready[16], deadline[16];
  snprintf(label, sizeof label, "linux/%s/hostile-%s/kill", host, mode);
  snprintf(ready, sizeof ready, "%d", ready_ms);
  snprintf(deadline, sizeof deadline, "%d", deadline_ms);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(p[1], 1);
    execl(SP_RUNNER, SP_RUNNER, "--ready-ms", ready, "--window-ms", "100", "--deadline-ms", deadline, "--host", host,
          "--delivery", "kill", "--label", label, "--exec", SP_HOSTILE, mode, marker, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

static void read_all(int fd, char *buf, size_t n) {
  size_t len = 0;
  for (ssize_t k; len < n - 1 && (k = read(fd, buf + len, n - 1 - len)) != 0;) {
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) break;
    len += (size_t)k;
  }
  buf[len] = '\0';
  close(fd);
}

typedef struct hostile_case {
  char mode[24];
  char host[16];
  char verdict[16];
  char reason[64];
} hostile_case;

static hostile_case cases[] = {
    {"escape", "no-tty", "hung", "did not finish before the deadline"},
    {"escape", "tty", "hung", "did not finish before the deadline"},
    {"escape-child", "no-tty", "hung", "did not finish before the deadline"},
    {"escape-child", "tty", "hung", "did not finish before the deadline"},
    {"never-ready", "no-tty", "hung", "no \\\"ready\\\" within 1500 ms"},
    {"never-ready", "tty", "hung", "no \\\"ready\\\" within 1500 ms"},
    {"flood", "no-tty", "error", "malformed report: malformed JSON"},
    {"flood", "tty", "error", "malformed report: malformed JSON"},
    {"endless-line", "no-tty", "error", "report line longer than 4096 bytes"},
    {"endless-line", "tty", "error", "report line longer than 4096 bytes"},
    {"segv", "no-tty", "error", "the probe crashed: killed by SIGSEGV"},
    {"segv", "tty", "error", "the probe crashed: killed by SIGSEGV"},
    {"abort", "no-tty", "error", "the probe crashed: killed by SIGABRT"},
    {"abort", "tty", "error", "the probe crashed: killed by SIGABRT"},
    {"close-channel", "no-tty", "hung", "did not finish before the deadline"},
    {"close-channel", "tty", "hung", "did not finish before the deadline"},
    /* Its stop refused, the runner still reads what the probe said: a run of
     * strategy `all` (which reported after a 20 ms linger, as long as the
     * shortest window) once lost its handlers that way when the stop found
     * the probe just gone. */
    {"deaf-late", "no-tty", "handled", "\"fired\":[{\"handler\":\"hostile\""},
    {"deaf-late", "tty", "handled", "\"fired\":[{\"handler\":\"hostile\""},
};

ParameterizedTestParameters(hostile, ends_with_its_verdict_in_time_and_leaves_nothing) {
  return cr_make_param_array(hostile_case, cases, SP_ARRAY_LEN(cases));
}

ParameterizedTest(hostile_case *c, hostile, ends_with_its_verdict_in_time_and_leaves_nothing, .timeout = 20) {
  char marker[96], out[16384], want[96];
  int fd, status;
  make_marker(marker, sizeof marker, c->mode);
  double t0 = now_s();
  pid_t runner = start_runner(c->host, c->mode, marker, READY_MS, DEADLINE_MS, &fd);
  read_all(fd, out, sizeof out);
  cr_assert_eq(waitpid(runner, &status, 0), runner);
  double wall = now_s() - t0;
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "runner status %d: %s", status, out);
  snprintf(want, sizeof want, "\"verdict\":\"%s\"", c->verdict);
  cr_assert(strstr(out, want), "%s %s: %s", c->mode, c->host, out);
  cr_assert(strstr(out, c->reason), "%s %s: reason should say '%s': %s", c->mode, c->host, c->reason, out);
  /* ready + delivery -> exit deadline, and generous slack for a loaded machine. */
  cr_assert_lt(wall, (READY_MS + DEADLINE_MS) / 1000.0 + 2.0, "took %.2f s", wall);
  cr_assert_eq(count_marked(marker), 0, "%s %s left processes behind", c->mode, c->host);
}

/* The runner interrupted (SIGINT from a terminal, SIGTERM from `sigprobe
 * run`) kills its probe's tree, escaped grandchildren included, and ends by
 * the same signal without printing an outcome. */
static void interrupt_runner_mid_run(int sig) {
  char marker[96], out[4096];
  int fd, status;
  make_marker(marker, sizeof marker, "escape");
  pid_t runner = start_runner("no-tty", "escape", marker, 10000, 10000, &fd);
  /* The probe and its grandchild both exist once the runner has the probe's
   * ready, which comes before delivery. */
  wait_for_the_escape(marker);
  double t0 = now_s();
  kill(runner, sig);
  read_all(fd, out, sizeof out);
  cr_assert_eq(waitpid(runner, &status, 0), runner);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig, "runner status %#x", status);
  cr_assert_str_eq(out, "", "no outcome after an interrupt");
  cr_assert_lt(now_s() - t0, 1.0);
  cr_assert_eq(count_marked(marker), 0);
}

Test(runner, sigint_kills_the_probe_tree_and_ends_by_sigint, .timeout = 20) { interrupt_runner_mid_run(SIGINT); }

Test(runner, sigterm_kills_the_probe_tree_and_ends_by_sigterm, .timeout = 20) { interrupt_runner_mid_run(SIGTERM); }

/* Waits (without reaping anything but pid) until pid has exited, at most
 * timeout_s; returns its wait status, or -1 if it is still running. */
static int wait_exit(pid_t pid, double timeout_s) {
  int status = 0;
  for (double end = now_s() + timeout_s; now_s() < end; usleep(5000)) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return -1;
  }
  return -1;
}

/* An interrupt that comes while the probe is forked but has not yet called
 * setsid(): its group does not exist yet, so killing the group alone misses
 * it, and the runner, back in its wait, must still notice the signal it took
 * outside poll(). The preloaded fixture holds the forked probe 2 s before its
 * setsid() and says when it got there; without both fixes the runner waits
 * out its 60 s and the probe lives on. */
static void interrupt_before_setsid(int sig) {
  char marker[96], flag[128], out[4096];
  make_marker(marker, sizeof marker, "never-ready");
  snprintf(flag, sizeof flag, "/tmp/%s.setsid", marker);
  unlink(flag);
  const char *asan = getenv("ASAN_OPTIONS");
  char asan_opts[512], asan_before[512];
  snprintf(asan_before, sizeof asan_before, "%s", asan ? asan : "");
  /* The runner may be built with ASan, whose runtime must otherwise be the
   * first library loaded. */
  snprintf(asan_opts, sizeof asan_opts, "%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : "");
  setenv("ASAN_OPTIONS", asan_opts, 1);
  setenv("LD_PRELOAD", SP_SLOW_SETSID, 1);
  setenv("SP_SLOW_SETSID_FLAG", flag, 1);
  int fd;
  pid_t runner = start_runner("no-tty", "never-ready", marker, 60000, 60000, &fd);
  unsetenv("LD_PRELOAD");
  unsetenv("SP_SLOW_SETSID_FLAG");
  if (asan_before[0]) setenv("ASAN_OPTIONS", asan_before, 1);
  else unsetenv("ASAN_OPTIONS");
  bool held = false;
  for (double end = now_s() + 8; !held && now_s() < end; usleep(2000)) held = access(flag, F_OK) == 0;
  if (!held) kill(runner, SIGKILL);
  cr_assert(held, "the forked probe never reached setsid()");
  kill(runner, sig);
  int status = wait_exit(runner, 8);
  if (status == -1) {
    kill(runner, SIGKILL);
    waitpid(runner, NULL, 0);
  }
  read_all(fd, out, sizeof out);
  unlink(flag);
  cr_assert_neq(status, -1, "the runner did not end within 8 s of %s (it waits 60 s for the probe)", strsignal(sig));
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig, "the runner ends by the signal it took (status %#x)",
            status);
  cr_assert_str_eq(out, "", "no outcome after an interrupt");
  int left = 0;
  for (int i = 0; i < 500 && (left = count_marked(marker)) > 0; i++) usleep(10000);
  cr_assert_eq(left, 0, "the probe forked before its setsid() survived the runner");
}

Test(runner, sigterm_before_the_probe_leads_its_group_still_kills_it, .timeout = 20) {
  interrupt_before_setsid(SIGTERM);
}

Test(runner, sigint_before_the_probe_leads_its_group_still_kills_it, .timeout = 20) {
  interrupt_before_setsid(SIGINT);
}

/* `sigprobe run` killed outright (SIGKILL): its runners get SIGTERM from the
 * kernel (PR_SET_PDEATHSIG) and clean up as above. */
Test(runner, parent_killed_outright_takes_the_runner_and_its_probes_along, .timeout = 20) {
  char marker[96];
  make_marker(marker, sizeof marker, "escape");
  pid_t parent = fork();
  cr_assert_geq(parent, 0);
  if (parent == 0) {
    int fd;
    start_runner("no-tty", "escape", marker, 10000, 10000, &fd);
    pause();
    _exit(0);
  }
  wait_for_the_escape(marker);
  kill(parent, SIGKILL);
  waitpid(parent, NULL, 0);
  int left = 0;
  for (int i = 0; i < 300 && (left = count_marked(marker)) > 0; i++) usleep(10000);
  cr_assert_eq(left, 0, "runner, probe or grandchild survived their parent");
}

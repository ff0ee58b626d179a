/* Strategy `all` (POSIX; Windows: probes/win/probe_all.c): every strategy
 * registered at once, as when several libraries in one process each listen
 * for SIGINT, in this order:
 *   signal         - then replaced by the next, which takes the same slot;
 *   sigaction      - the SA_SIGINFO handler, which also feeds
 *   self-pipe      - the pipe the loop polls;
 *   sigwait-thread - a thread in sigwaitinfo() (SIGINT blocked only there);
 *   signalfd       - read by the loop (SIGINT not blocked, Linux).
 * The outcome shows which of them actually fire, and in what order. The
 * loop lingers briefly after the first one so that followers are seen. */
#include "strategies.h"

#define SP_ALL_LINGER_MS 20

int main(void) {
  const char *names[5];
  int n = 0;
  sp_watch watches[2];
  int nw = 0, self_pipe_w;
  const char *why;
  sp_probe_init();
  sp_install_signal();
  names[n++] = "signal";
  watches[nw++] = sp_install_self_pipe(false, &self_pipe_w);
  sp_install_sigaction(self_pipe_w);
  names[n++] = "sigaction";
  names[n++] = "self-pipe";
  sp_install_sigwait_thread(false);
  names[n++] = "sigwait-thread";
  if (sp_install_signalfd(false, &watches[nw], &why)) {
    nw++;
    names[n++] = "signalfd";
  }
  sp_probe_ready(names, n);
  return sp_probe_done(sp_probe_loop(watches, nw, SP_ALL_LINGER_MS));
}

/* Strategy `sigwait-thread`: SIGINT blocked in every thread, one thread
 * takes it synchronously with sigwaitinfo(). */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"sigwait-thread"};
  sp_probe_init();
  sp_install_sigwait_thread(true);
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(NULL, 0, 0));
}

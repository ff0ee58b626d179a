/* Strategy `sigaction`: SA_SIGINFO, so the handler learns the sender. */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"sigaction"};
  sp_probe_init();
  sp_install_sigaction(-1);
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(NULL, 0, 0));
}

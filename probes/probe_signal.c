/* Strategy `signal`: ISO C signal(SIGINT, handler), as in the seed's answer. */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"signal"};
  sp_probe_init();
  sp_install_signal();
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(NULL, 0, 0));
}

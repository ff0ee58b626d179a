/* Strategy `console-ctrl` (Windows): SetConsoleCtrlHandler, as in the seed's
 * C extension that works in a terminal and never sees Jupyter's interrupt. */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"console-ctrl"};
  sp_probe_init();
  sp_install_console_ctrl();
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(NULL, 0, 0));
}

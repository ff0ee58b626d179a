/* Strategy `event` (Windows): a thread waits on the inherited event named by
 * JPY_INTERRUPT_EVENT, Jupyter's Windows interrupt. Without that variable
 * there is nothing to wait on: the probe reports `unsupported` with the
 * reason (the strategy cannot be installed), not a silent not-delivered. */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"event"};
  const char *why;
  sp_probe_init();
  if (!sp_install_event(&why)) sp_probe_unsupported(why);
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(NULL, 0, 0));
}

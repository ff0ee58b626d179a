/* Strategy `signalfd`: SIGINT blocked and read from a signalfd (Linux). */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"signalfd"};
  sp_watch watch;
  const char *why = NULL;
  sp_probe_init();
  if (!sp_install_signalfd(true, &watch, &why)) sp_probe_unsupported(why);
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(&watch, 1, 0));
}

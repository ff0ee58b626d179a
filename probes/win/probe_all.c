/* Strategy `all` (Windows; POSIX: probes/unix/probe_all.c): every strategy
 * registered at once, as when several libraries in one process each listen
 * for Ctrl+C, in this order:
 *   signal        - the CRT's SIGINT/SIGBREAK (its console handler is registered first);
 *   console-ctrl  - SetConsoleCtrlHandler, registered after it, so called
 *                   first; it returns TRUE, as libraries do, ending the chain;
 *   event         - the JPY_INTERRUPT_EVENT thread, when the variable is set.
 * The outcome shows which of them actually fire, and in what order. The
 * loop lingers briefly after the first one so that followers are seen. */
#include "strategies.h"

#define SP_ALL_LINGER_MS 20

int main(void) {
  const char *names[3];
  int n = 0;
  const char *why;
  sp_probe_init();
  sp_install_signal();
  names[n++] = "signal";
  sp_install_console_ctrl();
  names[n++] = "console-ctrl";
  if (sp_install_event(&why)) names[n++] = "event";
  sp_probe_ready(names, n);
  return sp_probe_done(sp_probe_loop(NULL, 0, SP_ALL_LINGER_MS));
}

/* Strategy `self-pipe`: the handler writes what it saw to a pipe; the loop
 * notices by polling the pipe (libuv, CPython's wakeup fd). */
#include "strategies.h"

int main(void) {
  static const char *const names[] = {"self-pipe"};
  int w;
  sp_probe_init();
  sp_watch watch = sp_install_self_pipe(true, &w);
  sp_probe_ready(names, 1);
  return sp_probe_done(sp_probe_loop(&watch, 1, 0));
}

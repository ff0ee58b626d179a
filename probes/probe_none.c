/* Strategy `none`: no handler at all; SIGINT takes its default action (or
 * stays ignored, when the host ignored it). */
#include "sigprobe/probe.h"

int main(void) {
  sp_probe_init();
  sp_probe_ready(NULL, 0);
  return sp_probe_done(sp_probe_loop(NULL, 0, 0));
}

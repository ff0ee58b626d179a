/* libFuzzer target: the report-channel parser (sp_event_decode), which reads
 * whatever a probe writes. Any input must give 0 or SP_EINVAL with a
 * message, never a crash, an over-read or undefined behaviour; and an event
 * that decoded must survive encode -> decode unchanged in kind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, not NUL-terminated, so ASan sees any over-read. */
  char *line = malloc(size ? size : 1);
  if (!line) return 0;
  memcpy(line, data, size);
  sp_event ev, again;
  sp_error err;
  err.msg[0] = '\0';
  int rc = sp_event_decode(line, size, &ev, &err);
  if (rc != 0 && (rc != SP_EINVAL || !err.msg[0])) abort();
  if (rc == 0) {
    char buf[SP_LINE_MAX * 2];
    int n = sp_event_encode(&ev, buf, sizeof buf);
    if (n > 0) {
      if (sp_event_decode(buf, (size_t)n, &again, &err) != 0 || again.kind != ev.kind) abort();
    }
  }
  free(line);
  return 0;
}

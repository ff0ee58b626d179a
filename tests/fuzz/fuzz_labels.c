/* libFuzzer target: labels (sp_labels_parse), the --label of --exec and
 * --attach. Any input gives 0 or SP_EINVAL with a message; a parsed label
 * has four non-empty parts and NUL-terminated fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/outcome.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *id = malloc(size + 1);
  if (!id) return 0;
  memcpy(id, data, size);
  id[size] = '\0';
  sp_labels l;
  sp_error err;
  memset(&l, 0x55, sizeof l);
  err.msg[0] = '\0';
  int rc = sp_labels_parse(&l, id, &err);
  if (rc != 0 && (rc != SP_EINVAL || !err.msg[0])) abort();
  if (rc == 0) {
    if (!memchr(l.id, '\0', sizeof l.id) || !memchr(l.host, '\0', sizeof l.host) ||
        !memchr(l.strategy, '\0', sizeof l.strategy) || !memchr(l.delivery, '\0', sizeof l.delivery))
      abort();
    if (!l.host[0] || !l.strategy[0] || !l.delivery[0] || strcmp(l.id, id) != 0) abort();
    /* Four parts, no more: the id is exactly platform/host/strategy/delivery. */
    int slashes = 0;
    for (const char *c = id; *c; c++) slashes += *c == '/';
    if (slashes != 3) abort();
  }
  free(id);
  return 0;
}

/* libFuzzer target: cell ids (sp_cell_parse), which come from the command
 * line. Any input gives 0 with a valid cell, or SP_EINVAL with a message;
 * a parsed cell formats back to an id that parses to the same cell. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigprobe/cell.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *id = malloc(size + 1);
  if (!id) return 0;
  memcpy(id, data, size);
  id[size] = '\0';
  sp_cell c, again;
  sp_error err;
  err.msg[0] = '\0';
  int rc = sp_cell_parse(id, &c, &err);
  if (rc != 0 && (rc != SP_EINVAL || !err.msg[0])) abort();
  if (rc == 0) {
    char buf[128];
    if ((unsigned)c.host >= SP_HOST_COUNT || (unsigned)c.strategy >= SP_STRATEGY_COUNT ||
        (unsigned)c.delivery >= SP_DELIVERY_COUNT)
      abort();
    if (sp_cell_parse(sp_cell_format(&c, buf, sizeof buf), &again, &err) != 0 || memcmp(&c, &again, sizeof c) != 0)
      abort();
  }
  free(id);
  return 0;
}

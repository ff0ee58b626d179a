/* The run's token, which a probe on a listened-on socket proves it holds
 * (see protocol.h): 32 bytes of the OS's CSPRNG, written as hexadecimal. */
#include "os.h"

int sp__token_new(char out[SP_TOKEN_HEX + 1], sp_error *err) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[SP_TOKEN_HEX / 2];
  int rc = sp__random_bytes(raw, sizeof raw, err);
  if (rc != 0) return rc;
  for (size_t i = 0; i < sizeof raw; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[SP_TOKEN_HEX] = '\0';
  return 0;
}

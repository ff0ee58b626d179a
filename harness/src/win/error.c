/* GetLastError() codes as text: the one translation on Windows. */
#include "proc.h"

#include <stdio.h>
#include <string.h>

const char *sp__win_strerror(unsigned long code, char *buf, size_t n) {
  char text[160] = "";
  DWORD k = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)code, 0, text,
                           (DWORD)sizeof text, NULL);
  while (k > 0 && (text[k - 1] == '\n' || text[k - 1] == '\r' || text[k - 1] == ' ' || text[k - 1] == '.'))
    text[--k] = '\0';
  if (k > 0) snprintf(buf, n, "error %lu (%s)", code, text);
  else snprintf(buf, n, "error %lu", code);
  return buf;
}

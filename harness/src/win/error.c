/* GetLastError() codes as text: the one translation on Windows. */
#include "proc.h"

#include <stdio.h>
#include <string.h>

#include "utf16.h"

const char *sp__win_strerror(unsigned long code, char *buf, size_t n) {
  wchar_t wtext[160];
  char text[480] = "";
  DWORD k = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)code, 0, wtext,
                           (DWORD)SP_ARRAY_LEN(wtext), NULL);
  while (k > 0 && (wtext[k - 1] == L'\n' || wtext[k - 1] == L'\r' || wtext[k - 1] == L' ' || wtext[k - 1] == L'.'))
    wtext[--k] = L'\0';
  /* The system's text is in the user's language: UTF-8 like every string here. */
  if (k > 0 && sp__utf8("the error text", wtext, text, sizeof text, NULL) == 0)
    snprintf(buf, n, "error %lu (%s)", code, text);
  else snprintf(buf, n, "error %lu", code);
  return buf;
}

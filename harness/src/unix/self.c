/* This process on POSIX: its arguments (already bytes, taken as UTF-8), its
 * own folder (see platform.h) and the OS's random bytes (see os.h). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/random.h>
#endif

#include "../os.h"
#include "sigprobe/platform.h"

int sp_main_args(int *argc, char ***argv, sp_error *err) {
  (void)argc;
  (void)argv;
  (void)err;
  return 0;
}

int sp_self_dir(char *buf, size_t n, sp_error *err) {
  char self[PATH_MAX] = "";
#ifdef __linux__
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) return sp_fail(err, SP_EFAIL, "readlink(/proc/self/exe): cannot read it");
  self[k] = '\0';
#else
  return sp_fail(err, SP_EFAIL, "this platform has no way to find the running executable");
#endif
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  if (strlen(self) >= n) return sp_fail(err, SP_EFAIL, "this executable's folder is longer than %zu bytes", n - 1);
  sp_strlcpy(buf, self, n);
  return 0;
}

bool sp_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int sp__random_bytes(void *buf, size_t n, sp_error *err) {
#ifdef __linux__
  for (size_t got = 0; got < n;) {
    ssize_t k = getrandom((char *)buf + got, n - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return sp_fail(err, SP_EFAIL, "getrandom: %s", strerror(errno));
    got += (size_t)k;
  }
#else
  arc4random_buf(buf, n); /* the BSDs and macOS: the kernel's CSPRNG, never fails */
#endif
  return 0;
}

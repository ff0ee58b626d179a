/* This platform's names and facts on POSIX (see harness/src/os.h). */
#include "../os.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

const char *const sp__host_names[SP_HOST_COUNT] = {"tty", "no-tty", "background"};
const char *const sp__strategy_names[SP_STRATEGY_COUNT] = {
    "none", "signal", "sigaction", "sigwait-thread", "self-pipe", "signalfd", "all"};
const char *const sp__delivery_names[SP_DELIVERY_COUNT] = {"tty-intr", "kill", "killpg", "sigterm"};

const sp__signal sp__signals[] = {
    {SIGINT, "SIGINT"},   {SIGTERM, "SIGTERM"}, {SIGABRT, "SIGABRT"}, {SIGSEGV, "SIGSEGV"}, {SIGILL, "SIGILL"},
    {SIGFPE, "SIGFPE"},   {SIGQUIT, "SIGQUIT"}, {SIGHUP, "SIGHUP"},   {SIGKILL, "SIGKILL"}, {SIGPIPE, "SIGPIPE"},
    {SIGBUS, "SIGBUS"},   {SIGALRM, "SIGALRM"}, {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"}, {SIGCHLD, "SIGCHLD"},
    {SIGTTIN, "SIGTTIN"}, {SIGTTOU, "SIGTTOU"}, {SIGTSTP, "SIGTSTP"}, {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"},
    {SIGTRAP, "SIGTRAP"}, {SIGSYS, "SIGSYS"},
};
const size_t sp__signal_count = SP_ARRAY_LEN(sp__signals);

const char sp__exe_suffix[] = "";

const char *sp_platform_name(void) {
#if defined(__linux__)
  return "linux";
#elif defined(__APPLE__)
  return "macos";
#else
  return "unix";
#endif
}

int sp_platform_is_wine(void) { return 0; }

bool sp__platform_accepts(const char *name, size_t len) {
  const char *plat = sp_platform_name();
  return strlen(plat) == len && strncmp(plat, name, len) == 0;
}

int sp_delivery_signal(sp_delivery d) { return d == SP_DELIVERY_SIGTERM ? SIGTERM : SIGINT; }

const char *sp_delivery_what(sp_delivery d) { return sp_signal_name(sp_delivery_signal(d)); }

int sp_delivery_default_exit(sp_delivery d, uint32_t *code) {
  (void)d;
  (void)code;
  return 0;
}

const char *sp_cell_unsupported_reason(const sp_cell *cell) {
  if (cell->delivery == SP_DELIVERY_TTY_INTR && cell->host == SP_HOST_NO_TTY)
    return "host no-tty has no controlling terminal, so there is no INTR character to type";
  return NULL;
}

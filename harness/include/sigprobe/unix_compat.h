/* sigprobe: the few POSIX calls Linux has and macOS lacks, in one place.
 * Header-only (static inline) so the probe runtime, the runner and the
 * extension probe's standalone build all get it without a source list. */
#ifndef SIGPROBE_UNIX_COMPAT_H
#define SIGPROBE_UNIX_COMPAT_H

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

/* macOS has no MSG_NOSIGNAL: its sockets get SO_NOSIGPIPE when made (below). */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Marks fd close-on-exec (and non-blocking). Returns 0 or -1 (errno set). */
static inline int sp_fd_flags(int fd, int nonblock) {
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return -1;
  if (nonblock && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) return -1;
#ifdef SO_NOSIGPIPE
  {
    int one = 1;
    /* Only sockets take it; on a pipe it fails harmlessly. */
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
  }
#endif
  return 0;
}

/* pipe2(O_CLOEXEC[|O_NONBLOCK]) where it exists, pipe() + fcntl() elsewhere. */
static inline int sp_pipe(int fds[2], int nonblock) {
#if defined(__linux__) && defined(_GNU_SOURCE)
  return pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
#else
  if (pipe(fds) != 0) return -1;
  if (sp_fd_flags(fds[0], nonblock) != 0 || sp_fd_flags(fds[1], nonblock) != 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  return 0;
#endif
}

/* A close-on-exec Unix stream socket (no SIGPIPE on write where that needs a flag). */
static inline int sp_unix_socket(void) {
#ifdef SOCK_CLOEXEC
  return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd >= 0 && sp_fd_flags(fd, 0) != 0) {
    close(fd);
    return -1;
  }
  return fd;
#endif
}

/* A close-on-exec Unix stream socket pair. */
static inline int sp_unix_socketpair(int sv[2]) {
#ifdef SOCK_CLOEXEC
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
#else
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
  if (sp_fd_flags(sv[0], 0) != 0 || sp_fd_flags(sv[1], 0) != 0) {
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  return 0;
#endif
}

#endif

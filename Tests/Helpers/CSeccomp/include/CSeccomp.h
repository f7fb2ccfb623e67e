#ifndef CSECCOMP_H
#define CSECCOMP_H

/// Installs a seccomp filter on the calling process that makes io_uring_setup(2) fail with
/// EPERM, as Docker's default profile does. Returns 0 or -errno. Irreversible: call it only in a
/// child process made for the purpose.
int cseccomp_deny_io_uring_setup(void);

#endif

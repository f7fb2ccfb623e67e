// The C surface NetRuntime needs: liburing, plus the few Linux calls that Swift's Glibc module
// hides behind _GNU_SOURCE. Only NetRuntime imports this module.
#ifndef CURING_SHIM_H
#define CURING_SHIM_H

// <features.h> must come before <liburing.h>, or any module that also imports Glibc fails with
// "'__fds_bits' ... is not present in definition of 'fd_set'".
#include <features.h>
#include <liburing.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

// Macros do not import into Swift: re-declared as constants.
static const unsigned CURING_IOSQE_IO_LINK = IOSQE_IO_LINK;
static const unsigned CURING_IOSQE_ASYNC = IOSQE_ASYNC;
static const unsigned CURING_IOSQE_CQE_SKIP_SUCCESS = IOSQE_CQE_SKIP_SUCCESS;
static const unsigned CURING_ASYNC_CANCEL_ALL = IORING_ASYNC_CANCEL_ALL;
static const unsigned CURING_ASYNC_CANCEL_FD = IORING_ASYNC_CANCEL_FD;
static const unsigned CURING_TIMEOUT_ABS = IORING_TIMEOUT_ABS;
static const unsigned CURING_SETUP_COOP_TASKRUN = IORING_SETUP_COOP_TASKRUN;
static const unsigned CURING_SETUP_TASKRUN_FLAG = IORING_SETUP_TASKRUN_FLAG;
static const unsigned CURING_SETUP_SINGLE_ISSUER = IORING_SETUP_SINGLE_ISSUER;
static const unsigned CURING_SETUP_DEFER_TASKRUN = IORING_SETUP_DEFER_TASKRUN;
static const unsigned CURING_SETUP_CQSIZE = IORING_SETUP_CQSIZE;
static const unsigned CURING_SETUP_SUBMIT_ALL = IORING_SETUP_SUBMIT_ALL;
static const unsigned CURING_FEAT_NODROP = IORING_FEAT_NODROP;
static const unsigned CURING_FEAT_EXT_ARG = IORING_FEAT_EXT_ARG;
static const unsigned CURING_CQE_F_MORE = IORING_CQE_F_MORE;
static const unsigned CURING_CQE_F_SOCK_NONEMPTY = IORING_CQE_F_SOCK_NONEMPTY;
static const unsigned CURING_RECVSEND_POLL_FIRST = IORING_RECVSEND_POLL_FIRST;

// GNU-only calls, made as raw syscalls so no _GNU_SOURCE declaration can clash with them.

/// Pins the calling thread to one CPU. Returns 0 or -errno.
static inline int curing_pin_current_thread(int cpu) {
    unsigned long mask[16];
    memset(mask, 0, sizeof(mask));
    if (cpu < 0 || cpu >= (int)(sizeof(mask) * 8)) return -EINVAL;
    mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    long r = syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask);
    return r < 0 ? -errno : 0;
}

/// Writes up to `capacity` CPU numbers the calling thread may run on into `cpus`; returns the count
/// or -errno.
static inline int curing_allowed_cpus(int *cpus, int capacity) {
    unsigned long mask[16];
    memset(mask, 0, sizeof(mask));
    long r = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
    if (r < 0) return -errno;
    int n = 0;
    for (int cpu = 0; cpu < (int)(sizeof(mask) * 8) && n < capacity; cpu++) {
        if (mask[cpu / (8 * sizeof(unsigned long))] & (1UL << (cpu % (8 * sizeof(unsigned long))))) {
            cpus[n++] = cpu;
        }
    }
    return n;
}

/// The CPU the calling thread runs on now, or -errno.
static inline int curing_current_cpu(void) {
    unsigned cpu = 0;
    long r = syscall(SYS_getcpu, &cpu, NULL, NULL);
    return r < 0 ? -errno : (int)cpu;
}

/// The kernel thread id of the calling thread.
static inline int curing_gettid(void) { return (int)syscall(SYS_gettid); }

/// A non-blocking, close-on-exec eventfd, or -errno.
static inline int curing_eventfd(void) {
    long r = syscall(SYS_eventfd2, 0, 04000 /* EFD_NONBLOCK */ | 02000000 /* EFD_CLOEXEC */);
    return r < 0 ? -errno : (int)r;
}

/// Names the calling thread (visible in top, perf and gdb); at most 15 bytes are kept.
static inline void curing_set_thread_name(const char *name) {
    syscall(SYS_prctl, 15 /* PR_SET_NAME */, (unsigned long)name, 0UL, 0UL, 0UL);
}

/// accept4(2), which Glibc declares only under _GNU_SOURCE.
static inline int curing_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return (int)syscall(SYS_accept4, fd, address, length, flags);
}

/// errno of the calling thread (Swift cannot read the thread-local macro reliably after ARC).
static inline int curing_errno(void) { return errno; }

/// Whether the kernel has queued completion work for this ring that only a system call runs
/// (`IORING_SQ_TASKRUN`, kept only by rings set up with `IORING_SETUP_TASKRUN_FLAG`). A plain
/// load of the shared flags word, so an idle core can poll it without entering the kernel.
static inline int curing_taskrun_pending(struct io_uring *ring) {
    return (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_TASKRUN) != 0;
}

/// Runs the ring's pending completion work without waiting (`io_uring_get_events`).
static inline int curing_get_events(struct io_uring *ring) { return io_uring_get_events(ring); }

/// A spin-wait hint to the CPU (`pause` on x86, `yield` on ARM).
static inline void curing_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif

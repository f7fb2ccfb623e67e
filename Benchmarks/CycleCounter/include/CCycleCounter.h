#ifndef CCYCLECOUNTER_H
#define CCYCLECOUNTER_H

#include <stdint.h>

/// The CPU's cycle counter, read without a system call whatever the kernel's clock source: the
/// TSC on x86-64 (what perftest times with), the virtual counter on arm64; 0 elsewhere.
static inline uint64_t ccycles_read(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t value;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(value));
    return value;
#else
    return 0;
#endif
}

#endif

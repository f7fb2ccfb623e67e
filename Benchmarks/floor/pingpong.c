// The kernel floor of a 64 B TCP ping-pong over loopback, in C, for comparison with net-bench:
//   pingpong server PORT MODE          MODE: block (blocking recv) or spin (MSG_DONTWAIT in a loop)
//   pingpong client PORT MODE [COUNT]  MODE: block, spin or uring (send + recv on an io_uring ring,
//                                      DEFER_TASKRUN, waiting in io_uring_submit_and_wait);
//                                      uringpf (send(2), then a recv with POLL_FIRST on the ring:
//                                      the runtime's path); mshot (send(2), one multishot recv
//                                      into a provided-buffer ring, armed once)
// Prints "RESULT peer=c-<side modes> workload=rtt value=<p50 us> unit=us_p50 ...".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    return a;
}
// Receives exactly n bytes, blocking or spinning.
static int recv_all(int fd, char *p, int n, int spin) {
    for (int got = 0; got < n;) {
        int r = recv(fd, p + got, n - got, spin ? MSG_DONTWAIT : 0);
        if (r == 0) return -1;
        if (r < 0) { if (spin) continue; return -1; }
        got += r;
    }
    return 0;
}

static int serve(int port, int spin) {
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(port);
    if (bind(l, (void *)&a, sizeof a) || listen(l, 8)) { perror("listen"); return 1; }
    printf("LISTENING port=%d\n", port);
    fflush(stdout);
    for (;;) {
        int fd = accept(l, 0, 0);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char b[64];
        while (recv_all(fd, b, 64, spin) == 0) send(fd, b, 64, 0);
        close(fd);
    }
}

static int client(int port, const char *mode, int count) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (void *)&a, sizeof a)) { perror("connect"); return 1; }
    struct io_uring ring;
    struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int uring = !strcmp(mode, "uring"), spin = !strcmp(mode, "spin");
    int pf = !strcmp(mode, "uringpf"), ms = !strcmp(mode, "mshot");
    if ((uring || pf || ms) && io_uring_queue_init_params(8, &ring, &params)) { perror("io_uring"); return 1; }
    struct io_uring_buf_ring *br = 0; char *bufs = 0; int armed = 0;
    if (ms) {
        br = aligned_alloc(4096, 4096); memset(br, 0, 4096);
        struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = 8, .bgid = 7};
        int ret = io_uring_register_buf_ring(&ring, &reg, 0);
        if (ret) { fprintf(stderr, "buf ring %d\n", ret); return 1; }
        io_uring_buf_ring_init(br);
        bufs = malloc(8 * 4096);
        for (int b = 0; b < 8; b++) io_uring_buf_ring_add(br, bufs + b * 4096, 4096, b, io_uring_buf_ring_mask(8), b);
        io_uring_buf_ring_advance(br, 8);
    }
    char out[64] = {0}, in[64];
    int warmup = 1000;
    double *samples = malloc(sizeof(double) * count);
    for (int i = 0; i < warmup + count; i++) {
        double start = now_us();
        if (pf || ms) {
            send(fd, out, 64, MSG_DONTWAIT);
            for (int got = 0; got < 64;) {
                if (pf) {
                    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_recv(sqe, fd, in + got, 64 - got, 0);
                    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
                    sqe->user_data = 2;
                } else if (!armed) {
                    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
                    sqe->flags |= IOSQE_BUFFER_SELECT; sqe->buf_group = 7;
                    sqe->user_data = 2; armed = 1;
                }
                for (int done = 0; !done;) {
                    io_uring_submit_and_wait(&ring, 1);
                    struct io_uring_cqe *cqe;
                    unsigned head, seen = 0;
                    io_uring_for_each_cqe(&ring, head, cqe) {
                        if (cqe->user_data == 2) {
                            if (cqe->res <= 0) return 2;
                            if (ms) {
                                int b = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                                memcpy(in + got, bufs + b * 4096, cqe->res);
                                io_uring_buf_ring_add(br, bufs + b * 4096, 4096, b, io_uring_buf_ring_mask(8), 0);
                                io_uring_buf_ring_advance(br, 1);
                                if (!(cqe->flags & IORING_CQE_F_MORE)) armed = 0;
                            }
                            got += cqe->res; done = 1;
                        }
                        seen++;
                    }
                    io_uring_cq_advance(&ring, seen);
                }
            }
        } else if (uring) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_send(sqe, fd, out, 64, 0);
            sqe->user_data = 1;
            for (int got = 0; got < 64;) {
                sqe = io_uring_get_sqe(&ring);
                io_uring_prep_recv(sqe, fd, in + got, 64 - got, 0);
                sqe->user_data = 2;
                for (int done = 0; !done;) {
                    io_uring_submit_and_wait(&ring, 1);
                    struct io_uring_cqe *cqe;
                    unsigned head, seen = 0;
                    io_uring_for_each_cqe(&ring, head, cqe) {
                        if (cqe->user_data == 2) { if (cqe->res <= 0) return 2; got += cqe->res; done = 1; }
                        seen++;
                    }
                    io_uring_cq_advance(&ring, seen);
                }
            }
        } else {
            send(fd, out, 64, 0);
            if (recv_all(fd, in, 64, spin)) return 2;
        }
        if (i >= warmup) samples[i - warmup] = now_us() - start;
    }
    qsort(samples, count, sizeof(double), by_value);
    printf("RESULT peer=c-%s workload=rtt value=%.2f unit=us_p50 p99_us=%.2f n=%d\n", mode, samples[count / 2],
           samples[count * 99 / 100], count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: pingpong server|client PORT MODE [COUNT]\n"); return 2; }
    int port = atoi(argv[2]);
    if (!strcmp(argv[1], "server")) return serve(port, !strcmp(argv[3], "spin"));
    return client(port, argv[3], argc > 4 ? atoi(argv[4]) : 50000);
}

// The C surface NetRDMA needs: libibverbs and librdmacm. Only NetRDMA imports this module, so a
// program that uses TCP alone never links libibverbs.
//
// Swift imports neither macros nor (reliably) the unions of the work-request structs, and several
// verbs are `static inline` or macros in the headers: the wrappers below give Swift plain
// functions with scalar arguments. They build each work request on the C stack, so posting costs
// no heap allocation.
#ifndef CRDMA_SHIM_H
#define CRDMA_SHIM_H

// <features.h> first, as in CURing: otherwise a module that also imports Glibc fails on fd_set.
#include <features.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

// Access rights of the slab regions: local write for receives, remote read/write for the
// one-sided operations and rendezvous of issue 8.
static const int CRDMA_ACCESS_SLAB = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
static const unsigned CRDMA_SEND_SIGNALED = IBV_SEND_SIGNALED;
static const unsigned CRDMA_SEND_INLINE = IBV_SEND_INLINE;
static const unsigned CRDMA_WC_WITH_IMM = IBV_WC_WITH_IMM;

/// Makes `fd` non-blocking (the completion and CM channels), so the core's ring can watch it.
static inline int crdma_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/// The soft RLIMIT_MEMLOCK in bytes (UINT64_MAX when unlimited), to say why a registration failed.
static inline uint64_t crdma_memlock_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
    return (uint64_t)limit.rlim_cur;
}

/// `ibv_reg_mr` is a macro in rdma-core's header.
static inline struct ibv_mr *crdma_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access) {
    return ibv_reg_mr(pd, addr, length, access);
}

/// `ibv_query_port` is a macro in rdma-core's header.
static inline int crdma_query_port(struct ibv_context *context, uint8_t port, struct ibv_port_attr *attr) {
    return ibv_query_port(context, port, attr);
}

static inline int crdma_poll_cq(struct ibv_cq *cq, int count, struct ibv_wc *wc) {
    return ibv_poll_cq(cq, count, wc);
}

static inline int crdma_req_notify_cq(struct ibv_cq *cq, int solicited_only) {
    return ibv_req_notify_cq(cq, solicited_only);
}

/// The immediate data of a completion, in host byte order (valid with `CRDMA_WC_WITH_IMM`).
static inline uint32_t crdma_wc_immediate(const struct ibv_wc *wc) {
    return ntohl(wc->imm_data);
}

/// Posts one SEND_WITH_IMM of the bytes of up to two segments, in order (a segment of length 0
/// is left out; none at all for a message of no payload). `immediate` is in host byte order.
/// Returns 0 or an errno value.
static inline int crdma_post_send_imm2(struct ibv_qp *qp, uint64_t wr_id,
                                       const void *address1, uint32_t length1, uint32_t lkey1,
                                       const void *address2, uint32_t length2, uint32_t lkey2,
                                       uint32_t immediate, unsigned flags) {
    struct ibv_sge sges[2];
    int count = 0;
    if (length1 > 0) {
        sges[count].addr = (uintptr_t)address1; sges[count].length = length1; sges[count].lkey = lkey1; count++;
    }
    if (length2 > 0) {
        sges[count].addr = (uintptr_t)address2; sges[count].length = length2; sges[count].lkey = lkey2; count++;
    }
    struct ibv_send_wr wr;
    memset(&wr, 0, sizeof wr);
    wr.wr_id = wr_id;
    wr.sg_list = count > 0 ? sges : NULL;
    wr.num_sge = count;
    wr.opcode = IBV_WR_SEND_WITH_IMM;
    wr.send_flags = flags;
    wr.imm_data = htonl(immediate);
    struct ibv_send_wr *bad = NULL;
    return ibv_post_send(qp, &wr, &bad);
}

/// Posts one SEND_WITH_IMM of `length` bytes at `address` (no scatter entry when `length` is 0).
static inline int crdma_post_send_imm(struct ibv_qp *qp, uint64_t wr_id, const void *address, uint32_t length,
                                      uint32_t lkey, uint32_t immediate, unsigned flags) {
    return crdma_post_send_imm2(qp, wr_id, address, length, lkey, NULL, 0, 0, immediate, flags);
}

/// One RDMA READ or WRITE of a chain posted by `crdma_post_rdma`.
struct crdma_rdma_op {
    uint64_t wr_id;
    uint64_t local_address;
    uint64_t remote_address;
    uint32_t length;
    uint32_t local_key;
    uint32_t remote_key;
    uint32_t is_write;  // 1: RDMA WRITE from local to remote; 0: RDMA READ from remote to local
    uint32_t flags;     // CRDMA_SEND_SIGNALED, or 0
};

/// The longest chain `crdma_post_rdma` posts in one call (its work requests live on the C stack).
enum { CRDMA_MAX_CHAIN = 32 };

/// Posts `count` (1...CRDMA_MAX_CHAIN) RDMA READs and WRITEs as one linked list of work
/// requests: one doorbell for the lot. Returns 0 or an errno value (nothing after the failing
/// request is posted).
static inline int crdma_post_rdma(struct ibv_qp *qp, const struct crdma_rdma_op *ops, int count) {
    if (count < 1 || count > CRDMA_MAX_CHAIN) return EINVAL;
    struct ibv_sge sges[CRDMA_MAX_CHAIN];
    struct ibv_send_wr wrs[CRDMA_MAX_CHAIN];
    memset(wrs, 0, sizeof(struct ibv_send_wr) * (size_t)count);
    for (int i = 0; i < count; i++) {
        sges[i].addr = ops[i].local_address;
        sges[i].length = ops[i].length;
        sges[i].lkey = ops[i].local_key;
        wrs[i].wr_id = ops[i].wr_id;
        wrs[i].sg_list = &sges[i];
        wrs[i].num_sge = 1;
        wrs[i].opcode = ops[i].is_write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
        wrs[i].send_flags = ops[i].flags;
        wrs[i].wr.rdma.remote_addr = ops[i].remote_address;
        wrs[i].wr.rdma.rkey = ops[i].remote_key;
        wrs[i].next = i + 1 < count ? &wrs[i + 1] : NULL;
    }
    struct ibv_send_wr *bad = NULL;
    return ibv_post_send(qp, wrs, &bad);
}

/// Moves the queue pair to the error state (as a fatal error would): every posted work request
/// is flushed. Returns 0 or an errno value.
static inline int crdma_qp_to_error(struct ibv_qp *qp) {
    struct ibv_qp_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.qp_state = IBV_QPS_ERR;
    return ibv_modify_qp(qp, &attr, IBV_QP_STATE);
}

/// Reads one asynchronous event of `context` (its async_fd is non-blocking): its type in
/// `type`, and in `qp_num` the number of the queue pair it concerns (0 for others). The event is
/// acknowledged before returning. Returns 0, or -1 when there is none (errno EAGAIN) or on error.
static inline int crdma_get_async_event(struct ibv_context *context, int *type, uint32_t *qp_num) {
    struct ibv_async_event event;
    if (ibv_get_async_event(context, &event) != 0) return -1;
    *type = (int)event.event_type;
    *qp_num = 0;
    switch (event.event_type) {
    case IBV_EVENT_QP_FATAL: case IBV_EVENT_QP_REQ_ERR: case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_COMM_EST: case IBV_EVENT_SQ_DRAINED: case IBV_EVENT_PATH_MIG:
    case IBV_EVENT_PATH_MIG_ERR: case IBV_EVENT_QP_LAST_WQE_REACHED:
        *qp_num = event.element.qp ? event.element.qp->qp_num : 0;
        break;
    default:
        break;
    }
    ibv_ack_async_event(&event);
    return 0;
}

/// Posts one receive of `length` bytes at `address`. Returns 0 or an errno value.
static inline int crdma_post_recv(struct ibv_qp *qp, uint64_t wr_id, void *address, uint32_t length, uint32_t lkey) {
    struct ibv_sge sge = { .addr = (uintptr_t)address, .length = length, .lkey = lkey };
    struct ibv_recv_wr wr = { .wr_id = wr_id, .next = NULL, .sg_list = &sge, .num_sge = 1 };
    struct ibv_recv_wr *bad = NULL;
    return ibv_post_recv(qp, &wr, &bad);
}

/// Creates an RC queue pair on `id` whose send and receive completions go to `cq`. On success
/// `granted` holds what the device granted (at least what was asked). Returns 0 or -1 (errno).
static inline int crdma_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *cq,
                                  uint32_t send_depth, uint32_t recv_depth, uint32_t max_inline,
                                  struct ibv_qp_cap *granted) {
    struct ibv_qp_init_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.send_cq = cq;
    attr.recv_cq = cq;
    attr.qp_type = IBV_QPT_RC;
    attr.sq_sig_all = 0;
    attr.cap.max_send_wr = send_depth;
    attr.cap.max_recv_wr = recv_depth;
    attr.cap.max_send_sge = 2;  // a header and the payload it precedes, gathered
    attr.cap.max_recv_sge = 1;
    attr.cap.max_inline_data = max_inline;
    if (rdma_create_qp(id, pd, &attr) != 0) return -1;
    *granted = attr.cap;
    return 0;
}

/// Fills connection parameters: `private_data` (the handshake), retry counts, READ depths.
static inline struct rdma_conn_param crdma_conn_param(const void *private_data, uint8_t length, uint8_t retry_count,
                                                      uint8_t rnr_retry_count, uint8_t read_depth) {
    struct rdma_conn_param param;
    memset(&param, 0, sizeof param);
    param.private_data = private_data;
    param.private_data_len = length;
    param.retry_count = retry_count;
    param.rnr_retry_count = rnr_retry_count;
    param.responder_resources = read_depth;
    param.initiator_depth = read_depth;
    return param;
}

/// The private data of a connection event (connect request, established, rejected), or NULL.
static inline const void *crdma_event_private_data(const struct rdma_cm_event *event, uint8_t *length) {
    *length = event->param.conn.private_data_len;
    return event->param.conn.private_data;
}

#endif

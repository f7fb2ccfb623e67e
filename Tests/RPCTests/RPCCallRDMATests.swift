import NetTestSupport
import Testing

/// The RPC service suite over RDMA: each test runs the test function of ``RPCCallTests`` with
/// ``TestTransport/rdma`` (server and client on rxe0's address). It needs the device, so it runs
/// in the soft-RoCE guest (`scripts/rdma-tests`, which selects it by the "RDMA" in its name) and is
/// skipped elsewhere. Time limits are longer there: everything is emulated.
@Suite("RPC service suite over RDMA on rxe0",
       .enabled(if: TestTransport.rdma.isAvailable, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RPCCallRDMATests {
    let suite = RPCCallTests()

    @Test("RDMA: typed, raw, JSON and by-name calls return their responses; metadata and deadlines reach the handler")
    func basics() async throws { try await suite.basics(over: .rdma) }

    @Test("RDMA: concurrent calls on one connection complete out of order, each with its own response")
    func outOfOrder() async throws { try await suite.outOfOrder(over: .rdma) }

    @Test("RDMA: an inline handler answers on its core, its errors reach the caller typed, and it is answered while another call's handler is suspended")
    func inlineHandler() async throws { try await suite.inlineHandler(over: .rdma) }

    @Test("RDMA: handler errors, unknown methods and one-way messages")
    func statuses() async throws { try await suite.statuses(over: .rdma) }

    @Test("RDMA: a deadline expires on both sides: the caller gets deadlineExceeded, the handler is cancelled")
    func deadline() async throws { try await suite.deadline(over: .rdma) }

    @Test("RDMA: cancelling the caller's task sends a cancel that cancels the handler")
    func cancellation() async throws { try await suite.cancellation(over: .rdma) }

    @Test("RDMA: a call made with cancellable: false outlives its task's cancellation and gets its response; its deadline still ends it")
    func uncancellableCall() async throws { try await suite.uncancellableCall(over: .rdma) }

    @Test("RDMA: callAll keeps a batch in flight from one task, outcomes in order, past the in-flight limit, none sent once cancelled")
    func callAll() async throws { try await suite.callAll(over: .rdma) }

    @Test("RDMA: callers wait for room past the in-flight limit, or fail fast when configured so")
    func backpressure() async throws { try await suite.backpressure(over: .rdma) }

    @Test("RDMA: a lost connection fails every pending call at once with connectionLost")
    func connectionLost() async throws { try await suite.connectionLost(over: .rdma) }
}

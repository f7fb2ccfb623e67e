import NetRDMA
import NetRuntime
import NetTCP
import NetTransport

/// The transport benchmark's per-message loops, written once per concrete transport.
///
/// Swift 6.3 ends every await through a protocol requirement or a function value in an executor
/// check, even when the callee is nonisolated(nonsending) and even once specialized; a direct
/// call of a concrete transport's method makes none (docs/RUNTIME.md). A check looks up the
/// task's executor preference under its status-record lock: about 340 guest instructions, on
/// the round trip's critical path. So the transport workloads call `TCPTransport` and
/// `RDMATransport` directly, as code that holds one does; generic code over `Transport` (the
/// pool, RPC) pays one check per await of the transport.
enum DirectLoops {
    /// One connection's reader: echoes every frame back as it is (the received message itself is
    /// sent: no copy). Frames already read and sends that need no wait take the synchronous fast
    /// paths, and the receive is not cancellable (the reader ends with its connection).
    static func echo(_ connection: RDMATransport) async {
        do {
            while true {
                // Not `nextFrame`: a protocol extension, which calls `recv` through the protocol.
                let message: Message
                if let ready = try connection.tryRecv() { message = ready } else { message = try await connection.recv(cancellable: false) }
                if try !connection.trySend(message) { try await connection.send(message) }
            }
        } catch {}
        await connection.close()
    }

    /// ``echo(_:)-(RDMATransport)`` over TCP.
    static func echo(_ connection: TCPTransport) async {
        do {
            while true {
                // Not `nextFrame`: a protocol extension, which calls `recv` through the protocol.
                let message: Message
                if let ready = try connection.tryRecv() { message = ready } else { message = try await connection.recv(cancellable: false) }
                if try !connection.trySend(message) { try await connection.send(message) }
            }
        } catch {}
        await connection.close()
    }

    /// One connection's echo without a reader task: `startReceiving` hands each message over (for
    /// RDMA straight from the completion queue's poll, for TCP from each read's completion) and
    /// it goes back at once with `enqueueOrPause` (sent, or queued for credits or room; else the
    /// receiving pauses while a task sends it: backpressure). Any other error closes the
    /// connection. Generic, unlike the loops: nothing here awaits, so no executor check is paid.
    static func echoFromHandler<Connection: Transport>(_ connection: Connection) {
        do {
            try connection.startReceiving { event in
                guard case .message(let message) = event else { return }
                do {
                    try connection.enqueueOrPause(message)
                } catch {
                    _ = try? connection.core.spawn { await connection.close() }
                }
            }
        } catch {
            _ = try? connection.core.spawn { await connection.close() }
        }
    }

    /// Times `spec.count` round trips over `connection` after `spec.warmup`, each request sent by
    /// the receive handler of the reply before it (`startReceiving`, `enqueue`), as perftest's
    /// client posts its next send from the loop that polled the reply: no task wakes per round
    /// trip. The calling task waits only for the end.
    static func timeRoundTripsFromHandler<Connection: Transport>(
        _ spec: WorkloadSpec, over connection: Connection, sending payload: Message
    ) async throws -> [UInt64] {
        let state = HandlerRoundTrips(try RoundTripTimer(spec), core: connection.core)
        let total = spec.warmup + spec.count
        try connection.startReceiving { event in
            guard !state.done else { return }
            switch event {
            case .message(let reply):
                guard reply.count == spec.size else { return state.finish(TransportError(.malformedFrame, "short echo")) }
                let goOn = state.timer.lap(state.index)
                state.index += 1
                guard goOn && state.index < total else { return state.finish() }
                do { try connection.enqueue(payload) } catch { state.finish(error) }
            case .ended(let error):
                state.finish(error)
            }
        }
        try connection.enqueue(payload)
        while !state.done { try await state.finished.wait(cancellable: false) }
        if let error = state.error { throw error }
        return state.timer.nanoseconds()
    }

    /// Times `spec.count` round trips over `connection` after `spec.warmup` (stopping at
    /// `spec.maxSeconds`): send `payload`, receive the echo.
    static func timeRoundTrips(_ spec: WorkloadSpec, over connection: RDMATransport, sending payload: Message) async throws -> [UInt64] {
        var timer = try RoundTripTimer(spec)
        for i in 0..<(spec.warmup + spec.count) {
            if try !connection.trySend(payload) { try await connection.send(payload) }
            let size = try await connection.recv(cancellable: false).count
            precondition(size == spec.size, "short echo")
            if !timer.lap(i) { break }
        }
        return timer.nanoseconds()
    }

    /// ``timeRoundTrips(_:over:sending:)-(_,RDMATransport,_)`` over TCP.
    static func timeRoundTrips(_ spec: WorkloadSpec, over connection: TCPTransport, sending payload: Message) async throws -> [UInt64] {
        var timer = try RoundTripTimer(spec)
        for i in 0..<(spec.warmup + spec.count) {
            if try !connection.trySend(payload) { try await connection.send(payload) }
            let size = try await connection.recv(cancellable: false).count
            precondition(size == spec.size, "short echo")
            if !timer.lap(i) { break }
        }
        return timer.nanoseconds()
    }
}

/// The state of ``DirectLoops/timeRoundTripsFromHandler(_:over:sending:)``, shared by the
/// receive handler and the waiting task on the core.
final class HandlerRoundTrips {
    var timer: RoundTripTimer
    var index = 0
    var done = false
    var error: (any Error)?
    let finished: CoreWaitQueue
    init(_ timer: RoundTripTimer, core: Core) {
        self.timer = timer
        finished = CoreWaitQueue(core: core)
    }
    func finish(_ error: (any Error)? = nil) {
        self.error = error
        done = true
        finished.signalOne()
    }
}

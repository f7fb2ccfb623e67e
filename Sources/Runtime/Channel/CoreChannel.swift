import DequeModule
import Synchronization

/// A bounded channel carrying Sendable values from any thread or core to one receiver, usually a
/// task on a core: the way cross-core work moves.
///
/// Senders wait while the channel is full (backpressure); each sender's values arrive in the
/// order it sent them. The receiver awaits values with ``receive()`` or `for try await`; when it
/// runs on a core (with the core's executor preference), it resumes on the core. ``trySend(_:)``
/// never waits, for senders that are not async.
///
/// ```swift
/// let inbox = CoreChannel<Request>(capacity: 1024)
/// try runtime.spawn(on: 1) { core in
///     for try await request in inbox { handle(request) }   // on core 1
/// }
/// try await inbox.send(request)                            // from anywhere
/// ```
public final class CoreChannel<Element: Sendable>: AsyncSequence, Sendable {
    /// The error a send gets once the channel is closed.
    public struct Closed: Error, Hashable, Sendable {}

    private struct WaitingSender {
        let id: UInt64
        let value: Element
        let continuation: UnsafeContinuation<Void, any Error>
    }

    private enum SendAction {
        case done
        case handOff(UnsafeContinuation<Element?, any Error>)
        case wait(UInt64)
        case closed
    }

    private struct State {
        var buffer = Deque<Element>()
        var senders = Deque<WaitingSender>()
        var receiver: (id: UInt64, continuation: UnsafeContinuation<Element?, any Error>)?
        var closed = false
        var nextID: UInt64 = 0
    }

    /// How many values the channel holds before senders wait.
    public let capacity: Int
    private let state: Mutex<State>

    /// Creates a channel that holds up to `capacity` values (at least 1).
    public init(capacity: Int) {
        precondition(capacity >= 1, "a channel holds at least one value")
        self.capacity = capacity
        self.state = Mutex(State())
    }

    /// Values waiting to be received.
    public var count: Int { state.withLock { $0.buffer.count } }

    /// Sends a value, waiting while the channel is full.
    ///
    /// - Throws: ``Closed`` if the channel is closed, `CancellationError` if the task is
    ///   cancelled while waiting (the value is then not sent).
    public func send(_ value: sending Element, isolation: isolated (any Actor)? = #isolation) async throws {
        try Task.checkCancellation()
        // `value` moves into the channel under the lock; it is Sendable, so no region escapes.
        let action = offer(value)
        switch action {
        case .done:
            return
        case .closed:
            throw Closed()
        case .handOff(let receiver):
            receiver.resume(returning: value)
        case .wait(let id):
            // Uses `isolation` inside the operation, so the caller stays on its executor (see
            // `performOperation` in Core+Operations.swift).
            try await withTaskCancellationHandler {
                _ = isolation
                try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                    let outcome: Result<Bool, any Error>? = state.withLock { state in
                        if state.closed { return .failure(Closed()) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        // Space may have opened, or a receiver arrived, since the first look.
                        if let receiver = state.receiver {
                            state.receiver = nil
                            receiver.continuation.resume(returning: value)
                            return .success(true)
                        }
                        if state.buffer.count < capacity && state.senders.isEmpty {
                            state.buffer.append(value)
                            return .success(true)
                        }
                        state.senders.append(WaitingSender(id: id, value: value, continuation: continuation))
                        return nil
                    }
                    switch outcome {
                    case .success?: continuation.resume()
                    case .failure(let error)?: continuation.resume(throwing: error)
                    case nil: break
                    }
                }
            } onCancel: {
                let waiter: WaitingSender? = state.withLock { state in
                    guard let i = state.senders.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.senders.remove(at: i)
                }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }

    /// Hands `value` to a waiting receiver or the buffer, under the lock; `.wait` (with a waiter
    /// id) when the channel is full.
    private func offer(_ value: Element) -> SendAction {
        state.withLock { state in
            if state.closed { return .closed }
            if let receiver = state.receiver {
                state.receiver = nil
                return .handOff(receiver.continuation)
            }
            if state.buffer.count < capacity {
                state.buffer.append(value)
                return .done
            }
            state.nextID &+= 1
            return .wait(state.nextID)
        }
    }

    /// Sends a value if there is room now; returns false when the channel is full or closed.
    @discardableResult
    public func trySend(_ value: sending Element) -> Bool {
        switch offer(value) {
        case .done: return true
        case .closed, .wait: return false
        case .handOff(let receiver):
            receiver.resume(returning: value)
            return true
        }
    }

    /// Receives the next value, waiting for one; `nil` once the channel is closed and drained.
    /// One receiver at a time.
    ///
    /// - Throws: `CancellationError` if the task is cancelled while waiting.
    public func receive(isolation: isolated (any Actor)? = #isolation) async throws -> Element? {
        try Task.checkCancellation()
        if let ready = try takeReady() { return ready.value }
        let id: UInt64 = state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            _ = isolation
            return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Element?, any Error>) in
                let immediate: Result<Element?, any Error>? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if let value = Self.pop(&state) { return .success(value) }
                    if state.closed { return .success(nil) }
                    precondition(state.receiver == nil, "CoreChannel has one receiver at a time")
                    state.receiver = (id, continuation)
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let receiver: UnsafeContinuation<Element?, any Error>? = state.withLock { state in
                guard let receiver = state.receiver, receiver.id == id else { return nil }
                state.receiver = nil
                return receiver.continuation
            }
            receiver?.resume(throwing: CancellationError())
        }
    }

    /// A value available now, or `nil` (as `.some(nil)` once closed and drained).
    private func takeReady() throws -> (value: Element?, ())? {
        state.withLock { state in
            if let value = Self.pop(&state) { return (value, ()) }
            if state.closed { return (nil, ()) }
            return nil
        }
    }

    /// Takes the oldest value and lets the first waiting sender in. Called under the lock.
    private static func pop(_ state: inout State) -> Element? {
        guard let value = state.buffer.popFirst() else { return nil }
        if let sender = state.senders.popFirst() {
            state.buffer.append(sender.value)
            sender.continuation.resume()
        }
        return value
    }

    /// Closes the channel: waiting senders and later sends fail with ``Closed``; the receiver
    /// gets what is buffered, then `nil`.
    public func close() {
        let (receiver, senders) = state.withLock { state -> (UnsafeContinuation<Element?, any Error>?, Deque<WaitingSender>) in
            state.closed = true
            let receiver = state.buffer.isEmpty ? state.receiver?.continuation : nil
            if receiver != nil { state.receiver = nil }
            let senders = state.senders
            state.senders.removeAll()
            return (receiver, senders)
        }
        receiver?.resume(returning: nil)
        for sender in senders { sender.continuation.resume(throwing: Closed()) }
    }

    /// Iterates over received values until the channel is closed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: CoreChannel
        public mutating func next() async throws -> Element? { try await channel.receive() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: self) }
}

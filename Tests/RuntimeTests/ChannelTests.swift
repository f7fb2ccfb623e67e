import NetRuntime
import Synchronization
import NetTestSupport
import Testing

@Suite("Cross-core channel", .timeLimit(.minutes(1)))
struct ChannelTests {
    struct Message: Sendable, Equatable {
        let producer: Int
        let sequence: Int
    }

    @Test("Many producers into one core: nothing lost, order per producer kept")
    func manyProducers() async throws {
        try await withRuntime(cores: 2) { runtime in
            let producers = 8
            let perProducer = 2_000
            let channel = CoreChannel<Message>(capacity: 16)
            // The receiver runs on core 1 and checks each producer's order as values arrive.
            let receiver = try runtime.spawn(on: 1) { core in
                var next = [Int](repeating: 0, count: producers)
                var received = 0
                var inOrder = core.isCurrent
                for try await message in channel {
                    inOrder = inOrder && message.sequence == next[message.producer] && core.isCurrent
                    next[message.producer] += 1
                    received += 1
                }
                return (received, inOrder)
            }
            // Producers: half on the global pool, half on core 0.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for producer in 0..<producers {
                    if producer % 2 == 0 {
                        group.addTask {
                            for sequence in 0..<perProducer { try await channel.send(Message(producer: producer, sequence: sequence)) }
                        }
                    } else {
                        group.addTask {
                            try await runtime.run(on: 0) { _ in
                                for sequence in 0..<perProducer { try await channel.send(Message(producer: producer, sequence: sequence)) }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            channel.close()
            let (received, inOrder) = try await receiver.value
            #expect(received == producers * perProducer)
            #expect(inOrder)
        }
    }

    @Test("Senders wait while the channel is full and go on as it drains")
    func backpressure() async throws {
        let channel = CoreChannel<Int>(capacity: 2)
        #expect(channel.trySend(1))
        #expect(channel.trySend(2))
        #expect(!channel.trySend(3))
        let sent = Atomic<Int>(0)
        let sender = Task {
            for value in 3...5 {
                try await channel.send(value)
                sent.add(1, ordering: .relaxed)
            }
        }
        // The sender cannot finish before values are taken: at most the channel's room is used.
        #expect(try await channel.receive() == 1)
        #expect(try await channel.receive() == 2)
        #expect(try await channel.receive() == 3)
        #expect(try await channel.receive() == 4)
        #expect(try await channel.receive() == 5)
        try await sender.value
        #expect(sent.load(ordering: .relaxed) == 3)
        #expect(channel.count == 0)
    }

    @Test("Closing wakes the receiver with nil after the buffered values, and fails waiting senders")
    func close() async throws {
        let channel = CoreChannel<Int>(capacity: 1)
        try await channel.send(1)
        let blocked = Task { try await channel.send(2) }
        while channel.count < 1 { await Task.yield() }
        // Give the blocked sender a chance to queue; either way close must fail or deliver it.
        channel.close()
        let result = await Result { try await blocked.value }
        var values: [Int] = []
        while let value = try await channel.receive() { values.append(value) }
        switch result {
        case .success: #expect(values == [1, 2])
        case .failure(let error): #expect(error is CoreChannel<Int>.Closed && values == [1])
        }
        await #expect(throws: CoreChannel<Int>.Closed.self) { try await channel.send(3) }
    }

    @Test("A waiting receiver and a waiting sender are cancellable")
    func cancellation() async throws {
        let channel = CoreChannel<Int>(capacity: 1)
        let receiver = Task { try await channel.receive() }
        receiver.cancel()
        await #expect(throws: CancellationError.self) { _ = try await receiver.value }
        #expect(channel.trySend(1))
        let sender = Task { try await channel.send(2) }
        sender.cancel()
        await #expect(throws: CancellationError.self) { try await sender.value }
        #expect(try await channel.receive() == 1)
        #expect(channel.count == 0)
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

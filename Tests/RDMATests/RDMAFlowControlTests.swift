@testable import NetRDMA
import NetTestSupport
import Testing

/// Two endpoints of a simulated connection, exchanging messages through two in-order channels
/// exactly as the transport does: data piggybacks returned credits, credit-only messages go when
/// a batch is due, receives are reposted when the application releases a message.
struct SimulatedLink {
    struct Wire { var isData: Bool; var credits: Int }
    struct Side {
        var flow: CreditFlowController
        var posted: Int            // receives posted right now
        var held = 0               // messages the application holds
        var toSend: Int            // data messages still to send
        var delivered = 0
        var creditMessages = 0
    }
    var sides: [Side]
    var wires: [[Wire]] = [[], []]  // wires[i]: from side i to the other
    var violations: [String] = []
    /// Whether each side's application releases the messages it receives.
    var releasing = [true, true]

    init(dataSlots: Int, batch: Int, messages: (Int, Int)) {
        let make = { CreditFlowController(dataSlots: dataSlots, reservedSlots: batch, peerDataSlots: dataSlots,
                                          peerReservedSlots: batch, creditReturnBatch: batch) }
        sides = [Side(flow: make(), posted: dataSlots + batch, toSend: messages.0),
                 Side(flow: make(), posted: dataSlots + batch, toSend: messages.1)]
    }

    /// Returns credits if a batch is due (what the transport does after every repost).
    mutating func returnCredits(_ i: Int) {
        while sides[i].flow.wantsCreditReturn && sides[i].flow.canSendCreditReturn {
            wires[i].append(Wire(isData: false, credits: sides[i].flow.creditReturnSent()))
            sides[i].creditMessages += 1
        }
    }

    mutating func step(_ random: inout SeededGenerator, holdLimit: Int) {
        let i = Int(random.next() % 2)
        switch random.next() % 3 {
        case 0 where sides[i].toSend > 0 && sides[i].flow.canSendData:
            wires[i].append(Wire(isData: true, credits: sides[i].flow.dataSent()))
            sides[i].toSend -= 1
        case 1 where !wires[1 - i].isEmpty:
            let wire = wires[1 - i].removeFirst()
            guard sides[i].posted > 0 else {
                violations.append("a message arrived with no receive posted")
                return
            }
            sides[i].posted -= 1
            sides[i].flow.creditsReturned(wire.credits)
            if wire.isData {
                if sides[i].flow.dataReceived() != .accepted { violations.append("data past credits") }
                sides[i].held += 1
                sides[i].delivered += 1
                returnCredits(i)  // the transport checks after every completion
            } else {
                if sides[i].flow.creditReturnReceived() != .accepted { violations.append("credit return past credits") }
                sides[i].posted += 1
                sides[i].flow.receiveReposted()
                returnCredits(i)
            }
        default:
            // The application releases a message (at once when it holds too many).
            if releasing[i] && sides[i].held > 0 && (sides[i].held > holdLimit || random.next() % 2 == 0) {
                sides[i].held -= 1
                sides[i].posted += 1
                sides[i].flow.receiveReposted()
                returnCredits(i)
            }
        }
    }

    /// Side 1's application takes messages in windows: it releases them only once it holds
    /// `window`.
    mutating func windowStep(_ random: inout SeededGenerator, window: Int) {
        if random.next() % 2 == 0, sides[0].toSend > 0, sides[0].flow.canSendData {
            wires[0].append(Wire(isData: true, credits: sides[0].flow.dataSent()))
            sides[0].toSend -= 1
        } else if random.next() % 2 == 0, !wires[0].isEmpty {
            let wire = wires[0].removeFirst()
            guard sides[1].posted > 0 else { return violations.append("a message arrived with no receive posted") }
            sides[1].posted -= 1
            sides[1].flow.creditsReturned(wire.credits)
            guard wire.isData else {
                if sides[1].flow.creditReturnReceived() != .accepted { violations.append("credit return past credits") }
                sides[1].posted += 1
                sides[1].flow.receiveReposted()
                return returnCredits(1)
            }
            if sides[1].flow.dataReceived() != .accepted { violations.append("data past credits") }
            sides[1].held += 1
            sides[1].delivered += 1
            returnCredits(1)
            if sides[1].held == window {
                for _ in 0..<window {
                    sides[1].posted += 1
                    sides[1].flow.receiveReposted()
                    returnCredits(1)
                }
                sides[1].held = 0
            }
        } else if !wires[1].isEmpty {
            let wire = wires[1].removeFirst()
            sides[0].posted -= 1
            sides[0].flow.creditsReturned(wire.credits)
            if sides[0].flow.creditReturnReceived() != .accepted { violations.append("credit return past credits") }
            sides[0].posted += 1
            sides[0].flow.receiveReposted()
            returnCredits(0)
        }
    }
}

@Suite("RDMA credit flow control")
struct RDMAFlowControlTests {
    @Test("A fresh controller may send the peer's data slots, then keeps its reserve for credit returns")
    func reserve() {
        var flow = CreditFlowController(dataSlots: 4, reservedSlots: 2, peerDataSlots: 3, peerReservedSlots: 2, creditReturnBatch: 2)
        #expect(flow.credits == 5)
        for _ in 0..<3 { _ = flow.dataSent() }
        #expect(!flow.canSendData)
        #expect(flow.canSendCreditReturn)
        flow.creditsReturned(1)
        #expect(flow.canSendData)
    }

    @Test("Credits returned past the peer's receives are an overrun, and are not counted")
    func returnedPastReceives() {
        var flow = CreditFlowController(dataSlots: 4, reservedSlots: 2, peerDataSlots: 3, peerReservedSlots: 2, creditReturnBatch: 2)
        _ = flow.dataSent()
        _ = flow.dataSent()
        #expect(flow.creditsReturned(3) == .overrun)   // 3 + 3 left: more than the peer's 5 receives
        #expect(flow.credits == 3)
        #expect(flow.creditsReturned(2) == .accepted)  // back to all 5
        #expect(flow.credits == 5)
        #expect(flow.creditsReturned(1) == .overrun)
        #expect(flow.creditsReturned(1 << 23) == .overrun)
        #expect(flow.credits == 5)
    }

    @Test("Credits come back piggybacked on data, or in a batch")
    func piggyback() {
        var flow = CreditFlowController(dataSlots: 4, reservedSlots: 2, peerDataSlots: 4, peerReservedSlots: 2, creditReturnBatch: 2)
        flow.receiveReposted()
        #expect(!flow.wantsCreditReturn)
        #expect(flow.dataSent() == 1)
        #expect(flow.pendingReturn == 0)
        flow.receiveReposted()
        flow.receiveReposted()
        #expect(flow.wantsCreditReturn)
        #expect(flow.creditReturnSent() == 2)
    }

    @Test("The batch is at least 2 (credit returns cannot answer each other forever) and at most the data slots")
    func batchRange() {
        let flow = CreditFlowController(dataSlots: 4, reservedSlots: 2, peerDataSlots: 1, peerReservedSlots: 2, creditReturnBatch: 1)
        #expect(flow.creditReturnBatch == 2)
        let capped = CreditFlowController(dataSlots: 4, reservedSlots: 8, peerDataSlots: 4, peerReservedSlots: 8, creditReturnBatch: 8)
        #expect(capped.creditReturnBatch == 4)
    }

    @Test("An application that takes messages in windows of the whole receive depth is never stuck",
          arguments: [(1, 8, 2), (2, 8, 8), (3, 16, 4), (4, 3, 3), (5, 8, 3), (6, 7, 2), (7, 10, 4)] as [(UInt64, Int, Int)])
    func windows(seed: UInt64, dataSlots: Int, batch: Int) {
        var random = SeededGenerator(seed: seed)
        var link = SimulatedLink(dataSlots: dataSlots, batch: batch, messages: (dataSlots * 50, 0))
        for _ in 0..<200_000 where link.sides[1].delivered < dataSlots * 50 { link.windowStep(&random, window: dataSlots) }
        #expect(link.violations.isEmpty)
        #expect(link.sides[1].delivered == dataSlots * 50)
    }

    @Test("Credits below a batch go back at once when the peer may have no data credit left")
    func peerBlocked() {
        var flow = CreditFlowController(dataSlots: 4, reservedSlots: 4, peerDataSlots: 4, peerReservedSlots: 4, creditReturnBatch: 4)
        for _ in 0..<4 { #expect(flow.dataReceived() == .accepted) }   // the peer is now out of data credits
        flow.receiveReposted()
        #expect(flow.wantsCreditReturn)
        #expect(flow.creditReturnSent() == 1)
        // An idle peer far above the bound: one reposted receive waits for the batch.
        var idle = CreditFlowController(dataSlots: 4, reservedSlots: 4, peerDataSlots: 4, peerReservedSlots: 4, creditReturnBatch: 4)
        #expect(idle.creditReturnReceived() == .accepted)
        idle.receiveReposted()
        #expect(!idle.wantsCreditReturn)
    }

    @Test("A peer sending data into the reserved slots is an overrun")
    func overrun() {
        var receiver = CreditFlowController(dataSlots: 3, reservedSlots: 2, peerDataSlots: 3, peerReservedSlots: 2, creditReturnBatch: 2)
        for _ in 0..<3 { #expect(receiver.dataReceived() == .accepted) }
        #expect(receiver.dataReceived() == .overrun)
    }

    @Test("Returned credits let the peer send again without an overrun")
    func refill() {
        var receiver = CreditFlowController(dataSlots: 2, reservedSlots: 2, peerDataSlots: 2, peerReservedSlots: 2, creditReturnBatch: 2)
        #expect(receiver.dataReceived() == .accepted)
        #expect(receiver.dataReceived() == .accepted)
        receiver.receiveReposted()
        #expect(receiver.creditReturnSent() == 1)
        #expect(receiver.dataReceived() == .accepted)
        #expect(receiver.dataReceived() == .overrun)
    }

    @Test("Simulated traffic never overruns a receive queue and always finishes",
          arguments: [(1, 2, 2), (2, 4, 2), (3, 16, 8), (4, 64, 8), (5, 8, 8), (6, 3, 3), (7, 5, 2)] as [(UInt64, Int, Int)])
    func simulation(seed: UInt64, dataSlots: Int, batch: Int) {
        var random = SeededGenerator(seed: seed)
        var link = SimulatedLink(dataSlots: dataSlots, batch: batch, messages: (2_000, 700))
        var steps = 0
        while steps < 400_000 && (link.sides[0].delivered + link.sides[1].delivered < 2_700) {
            link.step(&random, holdLimit: dataSlots)
            steps += 1
        }
        #expect(link.violations.isEmpty)
        #expect(link.sides[1].delivered == 2_000)
        #expect(link.sides[0].delivered == 700)
    }

    @Test("A receiver that holds every message stops the sender exactly at its data slots")
    func backpressure() {
        var random = SeededGenerator(seed: 11)
        var link = SimulatedLink(dataSlots: 16, batch: 4, messages: (100, 0))
        link.releasing[1] = false
        for _ in 0..<10_000 { link.step(&random, holdLimit: .max) }
        #expect(link.violations.isEmpty)
        #expect(link.sides[1].delivered == 16)
        #expect(link.sides[0].toSend == 84)
        // Released, the messages free their slots and the rest flows.
        link.releasing[1] = true
        for _ in 0..<100_000 where link.sides[1].delivered < 100 { link.step(&random, holdLimit: 0) }
        #expect(link.sides[1].delivered == 100)
        #expect(link.violations.isEmpty)
    }
}

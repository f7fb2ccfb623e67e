// NetRDMAChild: RDMA programs the guest's tests run as child processes (built beside the test
// bundle), for what a test cannot do in its own process:
//
//   NetRDMAChild serve ADDRESS     an echo server to kill mid-transfer; prints "LISTENING port=N"
//   NetRDMAChild memlock ADDRESS   connects to itself (which registers memory); prints "OK", or
//                                  "ERROR <code>: <message>" (run with a lowered `ulimit -l` and
//                                  without CAP_IPC_LOCK to see the memlock shortfall)
//   NetRDMAChild devicefatal ADDRESS  a connected pair on each of 2 cores, each side receiving,
//                                  then IBV_EVENT_DEVICE_FATAL dispatched as the async-event reader
//                                  does (it would end every other test's connections in a shared
//                                  process); prints "FAILED <core> <errors>" per core
#if canImport(Glibc)
import Glibc
#endif
import CRDMA
@testable import NetRDMA
import NetRuntime
import NetTransport
import Synchronization

/// Writes `line` to standard output at once (the parent reads it through a pipe).
func say(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

/// The accepted connection, filled by the accepting task on the same core.
final class Accepted {
    var connection: RDMATransport?
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let address = SocketAddress(host: arguments[2], port: 0) else {
    say("usage: NetRDMAChild serve|memlock ADDRESS")
    exit(2)
}
var configuration = RDMATransport.Configuration.defaults
configuration.connectTimeout = .seconds(60)
let settings = configuration
let runtime = try Runtime(configuration: .defaults { $0.coreCount = arguments[1] == "devicefatal" ? 2 : 1 })

/// Cores whose pair is connected and receiving (devicefatal).
let readyCores = Atomic<Int>(0)

/// A connected pair on `core`: (dialled, accepted, listener).
@Sendable func pair(on core: isolated Core) async throws -> (RDMATransport, RDMATransport, RDMAListener) {
    let listener = try RDMAListener.bind(address, on: core, configuration: settings)
    let accepted = Accepted()
    let accepting = Task {
        _ = core
        accepted.connection = try await listener.accept()
    }
    let client = try await RDMADialer(configuration: settings).dial(listener.localAddress, on: core)
    try await accepting.value
    return (client, accepted.connection!, listener) // '!': the accept returned without throwing
}

/// One core's part of `devicefatal`: its pair receiving on both sides, the event (dispatched by
/// core 0 once both cores are ready), and the errors its receives ended with.
@Sendable func deviceFatal(on index: Int) async throws -> String {
    try await runtime.run(on: index) { core -> String in
        let (client, server, listener) = try await pair(on: core)
        let receives = [client, server].map { connection in
            Task { () -> String in
                _ = core
                do {
                    _ = try await connection.recv()
                    return "none"
                } catch let error as TransportError {
                    return "\(error.code)"
                } catch {
                    return "other"
                }
            }
        }
        while !(client.receiving && server.receiving) { await Task.yield() }
        readyCores.add(1, ordering: .sequentiallyConsistent)
        if index == 0 {
            while readyCores.load(ordering: .sequentiallyConsistent) < 2 { await Task.yield() }
            let device = UInt(bitPattern: client.device.verbs)
            AsyncEvents.dispatch(device: device, type: IBV_EVENT_DEVICE_FATAL, queuePair: 0)
        }
        var errors: [String] = []
        for receive in receives { errors.append(await receive.value) }
        await listener.close()
        return "FAILED \(index) \(errors.joined(separator: ","))"
    }
}

switch arguments[1] {
case "serve":
    try await runtime.run(on: 0) { core in
        let listener = try RDMAListener.bind(address, on: core, configuration: settings)
        say("LISTENING port=\(listener.localAddress.port)")
        while true {
            let connection = try await listener.accept()
            while let message = try? await connection.recv() {
                try? await connection.send(message)
            }
            await connection.close()
        }
    }
case "memlock":
    let outcome = try await runtime.run(on: 0) { core -> String in
        do {
            let (client, server, listener) = try await pair(on: core)
            await client.close()
            await server.close()
            await listener.close()
            return "OK"
        } catch let error as TransportError {
            return "ERROR \(error.code): \(error.message)"
        } catch {
            return "ERROR other: \(error)"
        }
    }
    say(outcome)
case "devicefatal":
    async let first = deviceFatal(on: 0)
    async let second = deviceFatal(on: 1)
    for line in try await [first, second] { say(line) }
default:
    say("unknown mode \(arguments[1])")
    exit(2)
}
runtime.shutdown()

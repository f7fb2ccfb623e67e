public import NetRuntime

/// A runtime for one test (honours `NET_RUNTIME_BACKEND`), stopped afterwards with `stop()`
/// rather than a blocking `shutdown()`: tests share Swift's small cooperative pool.
public func withRuntime<T>(
    cores: Int = 1, ringEntries: UInt32 = 256, configure: (inout Runtime.Configuration) -> Void = { _ in },
    _ body: (Runtime) async throws -> T
) async throws -> T {
    let runtime = try Runtime(configuration: .defaults {
        $0.coreCount = cores
        $0.ringEntries = ringEntries
        configure(&$0)
    })
    do {
        let result = try await body(runtime)
        await runtime.stop()
        return result
    } catch {
        await runtime.stop()
        throw error
    }
}

/// The error a throwing body ended with, or `nil` if it returned.
public func caught(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

/// A seeded generator (SplitMix64), so a random test replays exactly.
public struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

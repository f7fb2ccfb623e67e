import Testing
@testable import NetRuntime

@Suite struct SmokeTests {
    @Test func starts() async throws {
        let runtime = try Runtime()
        defer { runtime.shutdown() }
        let i = try await runtime.run(on: 0) { core in core.index }
        #expect(i == 0)
    }
}

import ArgumentParser

@main
struct NetBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "net-bench", abstract: "swift-net benchmarks")
}

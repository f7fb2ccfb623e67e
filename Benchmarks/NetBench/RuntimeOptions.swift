import ArgumentParser
import NetRuntime

/// How `serve` and `run` set up their runtime.
struct RuntimeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "How long an idle core polls before it parks (Runtime.Configuration.idlePollTime). Default: 0, park at once. Runs that poll report as a peer of their own (-idlepoll).",
        valueName: "µs"))
    var idlePollUs: Int?

    /// The runtime's configuration: `coreCount` cores (`nil`: one per allowed CPU).
    func configuration(coreCount: Int? = nil) -> Runtime.Configuration {
        .defaults { configuration in
            configuration.coreCount = coreCount
            if let idlePollUs { configuration.idlePollTime = .microseconds(idlePollUs) }
        }
    }

    /// What a peer name gets when the cores poll while idle.
    var peerSuffix: String { (idlePollUs ?? 0) > 0 ? "-idlepoll" : "" }
}

// swift-tools-version: 6.1
import PackageDescription

/// Settings every Swift target shares: Swift 6 mode and nonisolated(nonsending) by default, so a
/// plain `async` method runs on its caller's executor (a core) instead of hopping to the global pool.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "swift-net",
    products: [
        .library(name: "NetRuntime", targets: ["NetRuntime"]),
        .library(name: "NetTransport", targets: ["NetTransport"]),
        .library(name: "NetTCP", targets: ["NetTCP"]),
        // A product of its own, so programs that use TCP alone never link libibverbs.
        .library(name: "NetRDMA", targets: ["NetRDMA"]),
        .library(name: "NetPool", targets: ["NetPool"]),
        .library(name: "NetRPC", targets: ["NetRPC"]),
        .executable(name: "net-bench", targets: ["NetBench"]),
        .executable(name: "echo-cluster", targets: ["EchoCluster"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CURing",
            path: "Sources/CURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        .target(
            name: "NetRuntime",
            dependencies: [
                "CURing",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Runtime",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "NetTransport",
            dependencies: ["NetRuntime"],
            path: "Sources/Transport",
            // Lifetimes: `Message.span` returns a span borrowed from the message.
            swiftSettings: swiftSettings + [.enableExperimentalFeature("Lifetimes")]
        ),
        .target(
            name: "NetTCP",
            dependencies: [
                "NetRuntime", "NetTransport",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Sources/TCP",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "NetPool",
            dependencies: [
                "NetRuntime", "NetTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/Pool",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "NetRPC",
            dependencies: [
                "NetRuntime", "NetTransport", "NetPool",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/RPC",
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CRDMA",
            path: "Sources/CRDMA",
            pkgConfig: "libibverbs",
            providers: [.apt(["libibverbs-dev", "librdmacm-dev"])]
        ),
        .target(
            name: "NetRDMA",
            dependencies: [
                "CRDMA", "NetRuntime", "NetTransport",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            path: "Sources/RDMA",
            swiftSettings: swiftSettings
        ),
        // The cycle counter net-bench times round trips with (RoundTripClock).
        .target(name: "CCycleCounter", path: "Benchmarks/CycleCounter"),
        .executableTarget(
            name: "NetBench",
            dependencies: [
                "NetRuntime", "NetTransport", "NetTCP", "NetRDMA", "NetRPC", "CCycleCounter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/NetBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EchoCluster",
            dependencies: [
                "NetRuntime", "NetTransport", "NetTCP", "NetRDMA", "NetPool", "NetRPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/EchoCluster",
            swiftSettings: swiftSettings
        ),
        .target(name: "CSeccomp", path: "Tests/Helpers/CSeccomp"),
        .target(
            name: "NetTestSupport",
            dependencies: ["NetRuntime"],
            path: "Tests/Helpers/TestSupport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "NetRuntimeChild",
            dependencies: ["NetRuntime", "CSeccomp", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Helpers/RuntimeChild",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "NetRPCChild",
            dependencies: [
                "NetRPC", "NetTCP", "NetRuntime",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            path: "Tests/Helpers/RPCChild",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "NetRDMAChild",
            dependencies: ["NetRDMA", "NetRuntime", "NetTransport"],
            path: "Tests/Helpers/RDMAChild",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetTransportTests",
            dependencies: ["NetTransport"],
            path: "Tests/TransportTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetTCPTests",
            dependencies: ["NetTestSupport", "NetTCP", "NetTransport", "NetRuntime"],
            path: "Tests/TCPTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetPoolTests",
            dependencies: ["NetTestSupport", "NetPool", "NetTCP", "NetTransport", "NetRuntime"],
            path: "Tests/PoolTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetRPCTests",
            dependencies: ["NetTestSupport", "NetRPC", "NetPool", "NetTCP", "NetRDMA", "NetTransport", "NetRuntime", "NetRPCChild"],
            path: "Tests/RPCTests",
            exclude: ["Python"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetRDMATests",
            dependencies: ["NetTestSupport", "NetRDMA", "NetPool", "NetTransport", "NetRuntime"],
            path: "Tests/RDMATests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetRuntimeTests",
            dependencies: ["NetTestSupport", "NetRuntime", "NetRuntimeChild"],
            path: "Tests/RuntimeTests",
            swiftSettings: swiftSettings
        ),
    ]
)

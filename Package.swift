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
        .executable(name: "net-bench", targets: ["NetBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .executableTarget(
            name: "NetBench",
            dependencies: [
                "NetRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/NetBench",
            swiftSettings: swiftSettings
        ),
        .target(name: "CSeccomp", path: "Tests/Helpers/CSeccomp"),
        .executableTarget(
            name: "NetRuntimeChild",
            dependencies: ["NetRuntime", "CSeccomp", .product(name: "Logging", package: "swift-log")],
            path: "Tests/Helpers/RuntimeChild",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NetRuntimeTests",
            dependencies: ["NetRuntime", "NetRuntimeChild"],
            path: "Tests/RuntimeTests",
            swiftSettings: swiftSettings
        ),
    ]
)

// swift-tools-version:6.1
import PackageDescription

let upcoming: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Yonder",
    platforms: [.macOS(.v15)],
    products: [
        // The module a user shares between app and agent (remote functions, remote objects,
        // the actor system): no SSH, no server.
        .library(name: "YonderCore", targets: ["YonderCore"]),
        // The client: connections, typed calls and objects.
        .library(name: "Yonder", targets: ["Yonder"]),
        // Clusters: specs, providers, bootstrap, `Cluster.up`/`attach`/`down`.
        .library(name: "YonderCluster", targets: ["YonderCluster"]),
        // A custom agent: `Agent.serve(functions:objects:)`.
        .library(name: "YonderAgent", targets: ["YonderAgent"]),
        .executable(name: "yonder-agent", targets: ["yonder-agent"]),
        .executable(name: "yonder", targets: ["yonder"]),
        .executable(name: "yonder-bench", targets: ["yonder-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        // The AWS provider: HTTPS to EC2, SSM and ECR, and their XML answers.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/CoreOffice/XMLCoder.git", from: "0.18.0"),
        // `swift package generate-documentation` (scripts/docs.sh).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // MARK: SSH (client side)
        .systemLibrary(
            name: "CLibSSH2",
            path: "Sources/CLibSSH2",
            pkgConfig: "libssh2",
            providers: [.apt(["libssh2-1-dev"])]
        ),
        .target(
            name: "YonderSSH",
            dependencies: ["CLibSSH2"],
            path: "Sources/YonderSSH",
            swiftSettings: upcoming
        ),

        // MARK: AWS: request signing, credentials, endpoints
        .target(
            name: "YonderAWS",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "XMLCoder", package: "XMLCoder"),
            ],
            path: "Sources/YonderAWS",
            swiftSettings: upcoming
        ),

        // MARK: Local servers (a private sshd, an echo server) for tests, benchmarks and the local provider
        .target(
            name: "YonderLocalServers",
            dependencies: ["Yonder"],
            path: "Sources/YonderLocalServers",
            swiftSettings: upcoming
        ),

        // MARK: Clusters: specs, providers, bootstrap
        .target(
            name: "YonderCluster",
            dependencies: [
                "Yonder", "YonderSSH", "YonderLocalServers", "YonderAWS",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/YonderCluster",
            swiftSettings: upcoming
        ),

        // MARK: The command-line tool
        .executableTarget(
            name: "yonder",
            dependencies: [
                "Yonder", "YonderCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/yonder",
            swiftSettings: upcoming
        ),

        // MARK: The contract shared by client and agent
        .target(
            name: "YonderProtocol",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/YonderProtocol",
            swiftSettings: upcoming
        ),
        .target(
            name: "YonderCore",
            dependencies: ["YonderProtocol"],
            path: "Sources/YonderCore",
            swiftSettings: upcoming
        ),

        // MARK: Client runtime
        .target(
            name: "Yonder",
            dependencies: [
                "YonderCore", "YonderProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Yonder",
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "yonder-bench",
            dependencies: [
                "Yonder", "YonderSSH", "YonderLocalServers", "YonderCluster", "QuickStartShared",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/yonder-bench",
            swiftSettings: upcoming
        ),

        // MARK: Agent (remote side)
        .target(
            name: "CAgentSupport",
            path: "Agent/CAgentSupport"
        ),
        .target(
            name: "YonderAgent",
            dependencies: [
                "CAgentSupport", "YonderCore", "YonderProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Agent/YonderAgent",
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "yonder-agent",
            dependencies: ["YonderAgent"],
            path: "Agent/yonder-agent",
            swiftSettings: upcoming
        ),

        // MARK: Fuzzing (scripts/fuzz.sh): the frame decoder and message codec
        .executableTarget(
            name: "yonder-fuzz",
            dependencies: ["YonderProtocol"],
            path: "Tests/Fuzz",
            exclude: ["corpus"],
            swiftSettings: upcoming
        ),

        // MARK: Examples
        .target(
            name: "QuickStartShared",
            dependencies: ["YonderCore", .product(name: "Logging", package: "swift-log")],
            path: "Examples/QuickStartShared",
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "quickstart-agent",
            dependencies: ["QuickStartShared", "YonderAgent"],
            path: "Examples/QuickStartAgent",
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "yonder-quickstart",
            dependencies: ["QuickStartShared", "Yonder", "YonderCluster"],
            path: "Examples/QuickStart",
            swiftSettings: upcoming
        ),

        // MARK: Tests
        .target(
            name: "TestSupport",
            dependencies: ["YonderProtocol", "YonderLocalServers"],
            path: "Tests/TestSupport",
            swiftSettings: upcoming
        ),
        .target(
            name: "TestFixtures",
            dependencies: ["YonderCore", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestFixtures",
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "yonder-test-agent",
            dependencies: ["YonderAgent", "TestFixtures"],
            path: "Tests/TestAgent",
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "yonder-ssh-probe",
            dependencies: ["YonderSSH"],
            path: "Tests/SSHProbe",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "ProtocolTests",
            dependencies: ["YonderProtocol", "TestSupport"],
            path: "Tests/ProtocolTests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "AWSTests",
            dependencies: ["YonderAWS", "TestSupport"],
            path: "Tests/AWSTests",
            exclude: ["botocore_sigv4.py", "ec2_fault_proxy.py"],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CoreTests",
            dependencies: ["YonderCore", "YonderProtocol", "TestSupport"],
            path: "Tests/CoreTests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "ReadmeTests",
            dependencies: ["Yonder", "YonderAgent", "YonderCluster", "YonderSSH"],
            path: "Tests/ReadmeTests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "ClientTests",
            dependencies: ["Yonder", "YonderSSH", "YonderCluster", "YonderProtocol", "TestFixtures", "TestSupport"],
            path: "Tests/ClientTests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "SSHTests",
            dependencies: ["YonderSSH", "TestSupport"],
            path: "Tests/SSHTests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["YonderCluster", "Yonder", "YonderLocalServers", "TestSupport", "QuickStartShared"],
            path: "Tests/ClusterTests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["YonderCluster", "Yonder", "QuickStartShared", "YonderLocalServers", "TestSupport"],
            path: "Tests/CLITests",
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "AgentTests",
            dependencies: ["YonderAgent", "YonderProtocol", "TestFixtures", "TestSupport"],
            path: "Tests/AgentTests",
            swiftSettings: upcoming
        ),
    ]
)

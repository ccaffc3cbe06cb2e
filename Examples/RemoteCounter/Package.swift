// swift-tools-version:6.1
// A package outside Yonder that uses it as the README shows: a shared module with the remote
// function and object (on YonderCore alone), an agent that serves them, and an app that brings
// a local cluster up, which builds the agent for it (the spec's agent product).
//
//   cd Examples/RemoteCounter && swift run MyApp
//
// It depends on this repository by path, so its folder must be named `yonder` (what
// `git clone` makes); scripts/outside-package.sh runs it from a copy, in the tests.
import PackageDescription

let package = Package(
    name: "RemoteCounter",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../..")],
    targets: [
        .target(name: "Shared", dependencies: [.product(name: "YonderCore", package: "yonder")]),
        .executableTarget(name: "MyAgent", dependencies: ["Shared", .product(name: "YonderAgent", package: "yonder")]),
        .executableTarget(
            name: "MyApp",
            dependencies: ["Shared", .product(name: "Yonder", package: "yonder"), .product(name: "YonderCluster", package: "yonder")]),
    ]
)

/// EC2 instance types Yonder chooses from when a spec names resources rather than a type:
/// vCPUs, memory, GPUs, and the on-demand hourly price in us-east-1 (AWS's public list price,
/// in USD, for comparing types; other regions and spot cost differently, and AWS bills).
public struct InstanceType: Sendable, Equatable {
    /// e.g. `g5.xlarge`.
    public var name: String
    /// Virtual CPUs.
    public var cpus: Int
    /// Memory in GiB.
    public var memoryGB: Double
    /// The GPU model and count, if any.
    public var gpu: (model: String, count: Int)?
    /// USD per hour, on demand, us-east-1.
    public var hourlyPrice: Double

    /// Types are the same when their names are.
    public static func == (a: InstanceType, b: InstanceType) -> Bool { a.name == b.name }

    /// The catalog, cheapest first within each family.
    public static let catalog: [InstanceType] = [
        .init("t3.medium", 2, 4, nil, 0.0416), .init("t3.large", 2, 8, nil, 0.0832),
        .init("t3.xlarge", 4, 16, nil, 0.1664), .init("t3.2xlarge", 8, 32, nil, 0.3328),
        .init("c6i.large", 2, 4, nil, 0.085), .init("c6i.xlarge", 4, 8, nil, 0.17),
        .init("c6i.2xlarge", 8, 16, nil, 0.34), .init("c6i.4xlarge", 16, 32, nil, 0.68),
        .init("c6i.8xlarge", 32, 64, nil, 1.36), .init("m6i.large", 2, 8, nil, 0.096),
        .init("m6i.xlarge", 4, 16, nil, 0.192), .init("m6i.2xlarge", 8, 32, nil, 0.384),
        .init("m6i.4xlarge", 16, 64, nil, 0.768), .init("m6i.8xlarge", 32, 128, nil, 1.536),
        .init("m6i.16xlarge", 64, 256, nil, 3.072), .init("r6i.xlarge", 4, 32, nil, 0.252),
        .init("r6i.2xlarge", 8, 64, nil, 0.504), .init("r6i.4xlarge", 16, 128, nil, 1.008),
        .init("g4dn.xlarge", 4, 16, ("T4", 1), 0.526), .init("g4dn.2xlarge", 8, 32, ("T4", 1), 0.752),
        .init("g4dn.12xlarge", 48, 192, ("T4", 4), 3.912), .init("g5.xlarge", 4, 16, ("A10G", 1), 1.006),
        .init("g5.2xlarge", 8, 32, ("A10G", 1), 1.212), .init("g5.4xlarge", 16, 64, ("A10G", 1), 1.624),
        .init("g5.12xlarge", 48, 192, ("A10G", 4), 5.672), .init("g5.48xlarge", 192, 768, ("A10G", 8), 16.288),
        .init("g6.xlarge", 4, 16, ("L4", 1), 0.805), .init("g6.12xlarge", 48, 192, ("L4", 4), 4.602),
        .init("p3.2xlarge", 8, 61, ("V100", 1), 3.06), .init("p3.8xlarge", 32, 244, ("V100", 4), 12.24),
        .init("p4d.24xlarge", 96, 1152, ("A100", 8), 32.773), .init("p5.48xlarge", 192, 2048, ("H100", 8), 98.32),
    ]

    init(_ name: String, _ cpus: Int, _ memoryGB: Double, _ gpu: (String, Int)?, _ hourlyPrice: Double) {
        self.name = name
        self.cpus = cpus
        self.memoryGB = memoryGB
        self.gpu = gpu.map { (model: $0.0, count: $0.1) }
        self.hourlyPrice = hourlyPrice
    }

    /// The cheapest type with at least `cpus` and `memoryGB` and exactly the GPU model asked
    /// for, at least `gpus.count` of them; without accelerators, a type with no GPU.
    public static func cheapest(cpus: Double?, memoryGB: Double?, accelerators: ClusterSpec.Accelerators?) -> InstanceType? {
        catalog.filter { type in
            Double(type.cpus) >= (cpus ?? 2) && type.memoryGB >= (memoryGB ?? 0)
                && (accelerators.map { wanted in
                    type.gpu.map { $0.model.lowercased() == wanted.name.lowercased() && $0.count >= wanted.count } ?? false
                } ?? (type.gpu == nil))
        }.min { $0.hourlyPrice < $1.hourlyPrice }
    }

    /// The catalog's entry for `name`, if it has one.
    public static func named(_ name: String) -> InstanceType? {
        catalog.first { $0.name == name }
    }
}

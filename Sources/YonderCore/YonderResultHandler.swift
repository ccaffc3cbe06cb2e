public import Distributed
import YonderProtocol
import Synchronization

/// Receives what a hosted actor's distributed method returned or threw.
public final class YonderResultHandler: DistributedTargetInvocationResultHandler, Sendable {
    public typealias SerializationRequirement = Codable

    private let result = Mutex<Result<Payload, any Error>?>(nil)

    init() {}

    /// The method's result as JSON with its attachments, or the error it threw.
    var outcome: Result<Payload, any Error> {
        result.withLock { $0 } ?? .failure(ProtocolError(.internal, "the distributed method finished without a result"))
    }

    public func onReturn<Success: Codable>(value: Success) async throws {
        let encoded = Result<Payload, any Error> { try Payload(encoding: value) }
        result.withLock { $0 = encoded }
    }

    public func onReturnVoid() async throws {
        result.withLock { $0 = .success(Payload(.null)) }
    }

    public func onThrow<Err: Error>(error: Err) async throws {
        result.withLock { $0 = .failure(error) }
    }
}

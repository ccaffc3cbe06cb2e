import Distributed
import Testing
import YonderCore
import YonderProtocol

distributed actor TallyCounter: RemoteObject {
    typealias ActorSystem = YonderActorSystem
    struct Arguments: Codable, Sendable { var start: Int }
    private var value: Int

    init(_ arguments: Arguments, actorSystem: ActorSystem) {
        value = arguments.start
        self.actorSystem = actorSystem
    }

    distributed func increment(by n: Int) -> Int {
        value += n
        return value
    }

    distributed func fail(_ message: String) throws -> Int {
        throw TallyError(message: message)
    }
}

struct TallyError: Error { var message: String }

/// An in-process transport from a client-role system to a hosting system: it exercises the
/// JSON invocation encoder and decoder without a network.
struct InProcessTransport: RemoteInvocationTransport {
    let host: YonderActorSystem
    func invoke(object: String, method: String, arguments: [JSONValue]) async throws -> JSONValue {
        guard let actor = host.hostedActor(RemoteObjectID(object)) else {
            throw ProtocolError(.unknownObject, "no object \(object)")
        }
        return try await host.execute(on: actor, method: method, arguments: arguments)
    }
}

@Suite struct ActorSystemTests {
    @Test func distributedCallsRoundTripThroughJSON() async throws {
        let host = YonderActorSystem()
        let hosted = TallyCounter(.init(start: 10), actorSystem: host)
        let client = YonderActorSystem(transport: InProcessTransport(host: host))
        let proxy = try TallyCounter.resolve(id: hosted.id, using: client)
        #expect(__isRemoteActor(proxy))
        #expect(try await proxy.increment(by: 5) == 15)
        #expect(try await proxy.increment(by: 1) == 16)
    }

    @Test func hostedErrorsReachTheCaller() async throws {
        let host = YonderActorSystem()
        let hosted = TallyCounter(.init(start: 0), actorSystem: host)
        let client = YonderActorSystem(transport: InProcessTransport(host: host))
        let proxy = try TallyCounter.resolve(id: hosted.id, using: client)
        await #expect(throws: TallyError.self) { _ = try await proxy.fail("boom") }
    }

    @Test func unknownMethodAndBadArgumentsAreProtocolErrors() async throws {
        let host = YonderActorSystem()
        let hosted = TallyCounter(.init(start: 0), actorSystem: host)
        await #expect(throws: ProtocolError.self) {
            _ = try await host.execute(on: hosted, method: "no-such-method", arguments: [])
        }
        #expect(TallyCounter.remoteName == "TallyCounter")
        #expect(host.releaseHosted(hosted.id))
        #expect(host.hostedActor(hosted.id) == nil)
    }
}

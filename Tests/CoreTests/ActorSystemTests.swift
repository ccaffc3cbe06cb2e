import Distributed
import Foundation
import Testing
import TestSupport
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

    distributed func reversed(_ data: Data, and more: Data) -> [Data] {
        [Data(more.reversed()), Data(data.reversed())]
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
    var acceptsAttachments = true
    /// What the last invoke sent, to see the attachments go.
    let sent = Locked<(arguments: [JSONValue], attachments: [Data])?>(nil)

    func invoke(object: String, method: String, arguments: [JSONValue], attachments: [Data]) async throws -> Payload {
        sent.withLock { $0 = (arguments, attachments) }
        guard let actor = host.hostedActor(RemoteObjectID(object)) else {
            throw ProtocolError(.unknownObject, "no object \(object)")
        }
        return try await host.execute(on: actor, method: method, arguments: arguments, attachments: attachments)
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

    @Test(arguments: [true, false])
    func dataArgumentsAndResultsTravelAsAttachmentsWhenThePeerAcceptsThem(accepts: Bool) async throws {
        let host = YonderActorSystem()
        let hosted = TallyCounter(.init(start: 0), actorSystem: host)
        let transport = InProcessTransport(host: host, acceptsAttachments: accepts)
        let client = YonderActorSystem(transport: transport)
        let proxy = try TallyCounter.resolve(id: hosted.id, using: client)
        let result = try await proxy.reversed(Data([1, 2, 3]), and: Data([4, 5]))
        #expect(result == [Data([5, 4]), Data([3, 2, 1])])
        let sent = try #require(transport.sent.withLock { $0 })
        if accepts {
            #expect(sent.arguments == [["$attachment": 0], ["$attachment": 1]])
            #expect(sent.attachments == [Data([1, 2, 3]), Data([4, 5])])
        } else {
            #expect(sent.arguments == [.string("AQID"), .string("BAU=")])
            #expect(sent.attachments.isEmpty)
        }
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

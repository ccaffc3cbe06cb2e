import YonderProtocol
import Synchronization

/// The client's side of the handshake: send `hello` with a fresh nonce, check that the
/// agent's `hello` proves it holds the token, then prove the same with `auth`. The token never
/// crosses the wire, and nothing is sent to a peer that cannot prove it. A refusal becomes an
/// error a person can act on.
struct ClientHandshake {
    let stream: any ByteStream
    let endpoint: String
    let configuration: Connection.Configuration

    /// Returns what the agent said about itself, and the decoder holding any bytes that
    /// arrived after its `hello`.
    func run(token: String) async throws -> (AgentIdentity, MessageReader) {
        let nonce = HandshakeProof.randomBytes()
        let hello = Message.hello(.init(
            nonce: nonce, name: configuration.clientName, version: configuration.clientVersion,
            maxFrame: configuration.maximumFrameLength, binary: true))
        do {
            try await stream.write(hello.encodedFrame())
        } catch {
            throw YonderError(.connectionFailed, "could not send hello to the agent at \(endpoint): \(error)")
        }

        let timedOut = TimeoutFlag()
        let timeout = configuration.handshakeTimeout
        let watchdog = Task { [stream] in
            do { try await Task.sleep(for: timeout) } catch { return }
            timedOut.set()
            await stream.close()
        }
        defer { watchdog.cancel() }

        var decoder = MessageReader(maximumLength: configuration.maximumFrameLength, acceptsAttachments: true)
        do {
            while true {
                if let (object, _) = try decoder.next() {
                    let message = try Message.decode(object)
                    let (identity, proof) = try accept(message, token: token, nonce: nonce)
                    do {
                        try await stream.write(Message.auth(.init(proof: proof)).encodedFrame())
                    } catch {
                        throw YonderError(.connectionFailed, "could not send auth to the agent at \(endpoint): \(error)")
                    }
                    return (identity, decoder)
                }
                guard let bytes = try await stream.read(maxLength: 64 << 10) else { break }
                decoder.append(bytes)
            }
        } catch let error as YonderError {
            throw error
        } catch let error as ProtocolError {
            throw YonderError(error.code, "the agent at \(endpoint) answered hello with something unreadable: \(error.message)", path: error.path)
        } catch {
            if !timedOut.isSet {
                throw YonderError(.connectionFailed, "reading the agent's hello from \(endpoint) failed: \(error)")
            }
        }
        if timedOut.isSet {
            throw YonderError(
                .connectionFailed,
                "the agent at \(endpoint) did not answer hello within \(timeout); is something other than a Yonder agent listening there?")
        }
        throw YonderError(
            .connectionFailed,
            "the agent at \(endpoint) closed the connection during the handshake without saying why; check the agent's log")
    }

    /// Checks the agent's `hello` and its proof; returns who it is and the client's proof.
    private func accept(_ message: Message, token: String, nonce: [UInt8]) throws(YonderError) -> (AgentIdentity, [UInt8]) {
        switch message {
        case .hello(let hello):
            guard hello.protocolVersion == Message.protocolVersion else {
                throw YonderError(
                    .unsupportedVersion,
                    "the agent at \(endpoint) speaks protocol version \(hello.protocolVersion), this client \(Message.protocolVersion); use an agent and a client of the same Yonder release")
            }
            guard let agentNonce = hello.nonce, let proof = hello.proof,
                HandshakeProof.acceptedNonceLengths.contains(agentNonce.count),
                HandshakeProof.matches(proof, HandshakeProof.agent(token: token, clientNonce: nonce, agentNonce: agentNonce))
            else {
                throw YonderError(
                    .agentNotVerified,
                    "what answers at \(endpoint) could not prove that it holds this client's token: it is not the agent this client is looking for (the agent may have restarted and something else took its old port), or the client has the wrong token. Nothing secret was sent to it")
            }
            let identity = AgentIdentity(
                name: hello.name ?? "yonder-agent", version: hello.version ?? "unknown", build: hello.build,
                protocolVersion: hello.protocolVersion,
                maximumFrameLength: hello.maxFrame ?? Frame.defaultMaximumLength, instance: hello.instance,
                acceptsAttachments: hello.binary)
            return (identity, HandshakeProof.client(token: token, clientNonce: nonce, agentNonce: agentNonce))
        case .error(let failure):
            throw YonderError(failure.error.code, refusal(failure.error), path: failure.error.path)
        default:
            throw YonderError(.unexpectedMessage, "the agent at \(endpoint) answered hello with a \(message.type) message")
        }
    }

    private func refusal(_ error: ProtocolError) -> String {
        switch error.code {
        case .unauthorized:
            "the agent at \(endpoint) refused this client's proof of the token (\(error.message)); pass the token the agent was started with (its --token-file, --token-env or --new-token-file)"
        case .unsupportedVersion:
            "the agent at \(endpoint) does not speak this client's protocol (\(error.message)); use an agent and a client of the same Yonder release"
        default:
            "the agent at \(endpoint) refused the connection: \(error.message)"
        }
    }
}

/// Set once by the handshake's watchdog when the agent took too long.
private final class TimeoutFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

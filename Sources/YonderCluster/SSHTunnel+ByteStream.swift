public import Yonder
public import YonderSSH

/// A direct-tcpip channel is a byte stream (here, so that the client module `Yonder` does not
/// link libssh2): `Connection.open(over:token:)` runs the protocol
/// through it to an agent on the server's loopback.
extension SSHTunnel: ByteStream {
    /// The session's thread (see `SSHTunnel.sessionExecutor`).
    public var executor: (any TaskExecutor)? { sessionExecutor }

    /// Bytes go to `receiver` from the session's thread as libssh2 reads them.
    public func deliver(to receiver: @escaping @Sendable (ByteStreamEvent) -> Void) -> Bool {
        deliver { (result: Result<[UInt8]?, SSHError>) in
            switch result {
            case .success(let bytes?): receiver(.bytes(bytes))
            case .success(nil): receiver(.end)
            case .failure(let error): receiver(.failed(error))
            }
        }
        return true
    }
}

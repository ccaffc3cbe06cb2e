public import YonderSSH

/// A direct-tcpip channel is a byte stream: `Connection.open(over:token:)` runs the protocol
/// through it to an agent on the server's loopback.
extension SSHTunnel: ByteStream {}

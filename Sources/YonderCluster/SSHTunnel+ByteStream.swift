public import Yonder
public import YonderSSH

/// A direct-tcpip channel is a byte stream (here, so that the client module `Yonder` does not
/// link libssh2): `Connection.open(over:token:)` runs the protocol
/// through it to an agent on the server's loopback.
extension SSHTunnel: ByteStream {}

// What `import Yonder` brings: remote functions and objects, and the protocol's error codes
// and object references that appear in this module's API.
@_exported public import YonderCore
@_exported public import YonderProtocol

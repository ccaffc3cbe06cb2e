#ifndef YONDER_CLIBSSH2_SHIM_H
#define YONDER_CLIBSSH2_SHIM_H

#include <libssh2.h>
#include <libssh2_sftp.h>

// libssh2's function-like macros do not import into Swift; the SSH layer
// calls the _ex functions directly or these static inline wrappers.

#endif

#ifndef YONDER_CLIBSSH2_SHIM_H
#define YONDER_CLIBSSH2_SHIM_H

#include <errno.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <libssh2.h>
#include <libssh2_sftp.h>

// libssh2's function-like macros do not import into Swift; the SSH layer
// calls the _ex functions directly or these static inline wrappers.

// Bytes the session loop has read from the socket and libssh2 has not yet
// taken. The loop owns the socket: it reads whenever poll() says so, which
// keeps the socket drained (no busy poll while every channel waits for its
// consumer) and timestamps every byte from the server for dead-peer
// detection. libssh2 reads through yonder_ssh_recv below.
typedef struct yonder_ssh_inbound {
    unsigned char *data;
    size_t capacity;
    size_t start;
    size_t end;
    unsigned long long taken;   // bytes handed to libssh2 so far
    int closed;                 // the server closed the connection
    int error;                  // errno of a failed recv, or 0
    int socket;                 // the session's socket
} yonder_ssh_inbound;

static inline ssize_t yonder_ssh_recv(libssh2_socket_t socket, void *buffer, size_t length,
                                      int flags, void **abstract) {
    yonder_ssh_inbound *in = (yonder_ssh_inbound *)*abstract;
    if (socket != in->socket) {
        // libssh2 reads its ssh-agent connection through the same callback.
        ssize_t n = recv(socket, buffer, length, flags);
        return n < 0 ? -errno : n;
    }
    size_t available = in->end - in->start;
    if (available == 0) {
        if (in->error) return -in->error;
        if (in->closed) return 0;
        return -EAGAIN;
    }
    size_t n = available < length ? available : length;
    memcpy(buffer, in->data + in->start, n);
    in->start += n;
    in->taken += n;
    if (in->start == in->end) {
        in->start = 0;
        in->end = 0;
    }
    return (ssize_t)n;
}

// libssh2 writes with send(..., 0): to a peer that has gone, that raises SIGPIPE, which
// ends the whole process. MSG_NOSIGNAL turns it into EPIPE, a lost connection.
static inline ssize_t yonder_ssh_send(libssh2_socket_t socket, const void *buffer, size_t length,
                                      int flags, void **abstract) {
    (void)abstract;
    ssize_t n = send(socket, buffer, length, flags | MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

// Makes libssh2 read through `inbound` instead of the socket, and write without SIGPIPE.
static inline LIBSSH2_SESSION *yonder_ssh_session_new(yonder_ssh_inbound *inbound) {
    LIBSSH2_SESSION *session = libssh2_session_init_ex(NULL, NULL, NULL, inbound);
    if (session != NULL) {
        libssh2_session_callback_set(session, LIBSSH2_CALLBACK_RECV, (void *)yonder_ssh_recv);
        libssh2_session_callback_set(session, LIBSSH2_CALLBACK_SEND, (void *)yonder_ssh_send);
    }
    return session;
}

#endif

#ifndef YONDER_AGENT_SUPPORT_H
#define YONDER_AGENT_SUPPORT_H

// GNU extensions the agent needs that Swift's Glibc module does not show. The header stays
// free of system headers so that it cannot clash with Glibc's view of them.

/// pipe2(fds, O_CLOEXEC).
int yonder_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np; `actions` is a posix_spawn_file_actions_t *.
int yonder_spawn_add_chdir(void *actions, const char *path);

/// Where the C library is glibc: blocks of 1 MiB and more are mapped on their own (and so
/// unmapped when freed), and free memory over 4 MiB at the top of a heap is given back.
/// Fixing both turns off glibc's own adjustment, which after one large block was freed
/// kept up to 64 MiB of free heap per thread arena for good.
void yonder_tune_memory(void);

/// malloc_trim(0) where the C library has it (glibc): gives freed heap memory back to the
/// system. Returns 1 if memory was released.
int yonder_release_free_memory(void);

/// Installs a handler for SIGTERM, SIGINT and SIGHUP that writes the signal's number, as one byte,
/// to a pipe, and returns the pipe's read end (-1 on failure). The handler is in place when
/// this returns, so no signal sent afterwards is lost: unlike a dispatch signal source,
/// which registers later, on its queue.
int yonder_stop_signals_pipe(void);

#endif

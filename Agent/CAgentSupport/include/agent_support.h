#ifndef YONDER_AGENT_SUPPORT_H
#define YONDER_AGENT_SUPPORT_H

// GNU extensions the agent needs that Swift's Glibc module does not show. The header stays
// free of system headers so that it cannot clash with Glibc's view of them.

/// pipe2(fds, O_CLOEXEC).
int yonder_pipe_cloexec(int fds[2]);

/// posix_spawn_file_actions_addchdir_np; `actions` is a posix_spawn_file_actions_t *.
int yonder_spawn_add_chdir(void *actions, const char *path);

#endif

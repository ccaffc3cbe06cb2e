// Preloaded into a Swift program run under valgrind by scripts/instructions.sh.
//
// A Swift program with an async main ends its main thread in dispatch_main(), which exits that
// thread and leaves a signal thread in sigsuspend(); valgrind 3.19 crashes there (SIGSEGV inside
// valgrind) before the program's first line. This library installs the concurrency runtime's
// hook for that step and drains the main queue itself instead, the way a run loop does: wait
// until the queue has work, run it, again. The program ends as before, when its main returns
// and calls exit().
#include <poll.h>
#include <stddef.h>

// libdispatch's run-loop interface (on Linux the handle is an eventfd).
extern int _dispatch_get_main_queue_handle_4CF(void);
extern void _dispatch_main_queue_callback_4CF(void *message);

// The concurrency runtime's hook; it is passed the original implementation, unused here.
extern void (*swift_task_asyncMainDrainQueue_hook)(void *original, void *override);

static void drain_main_queue(void *original, void *override) {
    (void)original;
    (void)override;
    int handle = _dispatch_get_main_queue_handle_4CF();
    for (;;) {
        struct pollfd ready = {.fd = handle, .events = POLLIN};
        poll(&ready, 1, -1);
        _dispatch_main_queue_callback_4CF(NULL);
    }
}

__attribute__((constructor)) static void install(void) {
    swift_task_asyncMainDrainQueue_hook = drain_main_queue;
}

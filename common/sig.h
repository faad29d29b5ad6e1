/* SIGINT/SIGTERM handling for event loops: the handler only sets a flag and
 * writes to a self-pipe, so a poll(2) loop wakes up and can drain cleanly. */
#ifndef PARLEY_SIG_H
#define PARLEY_SIG_H

#include <stdbool.h>

/* Install handlers for SIGINT and SIGTERM and ignore SIGPIPE. Call once
 * from main before any thread starts. Returns 0 or -errno. */
int sig_install(void);

/* True once SIGINT or SIGTERM arrived. */
bool sig_stopping(void);

/* Which signal stopped us (0 while none did). */
int sig_which(void);

/* A file descriptor that becomes readable when a stop signal arrives;
 * -1 before sig_install(). Never read from it: it stays readable. */
int sig_fd(void);

#endif

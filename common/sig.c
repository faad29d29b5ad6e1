/* Stop signals turned into a flag and a readable self-pipe, so poll(2)
 * loops wake up and drain. The handler touches only lock-free atomics and
 * write(2), both async-signal-safe. */
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
	       "signal handlers need lock-free atomic int");

static atomic_int sig_stop;
static atomic_int sig_pipe_rd = -1;
static int sig_pipe_wr = -1;

static void
on_stop_signal(int signo)
{
	int saved = errno;
	int expected = 0;
	ssize_t n;

	atomic_compare_exchange_strong(&sig_stop, &expected, signo);
	/* Non-blocking: once the pipe is full it is readable anyway. */
	n = write(sig_pipe_wr, "x", 1);
	(void)n;
	errno = saved;
}

/* No SA_RESTART: a blocking call in the main thread returns EINTR and the
 * loop gets to look at sig_stopping(). */
static int
sig_catch(int signo)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGTERM);
	sa.sa_flags = 0;
	return sigaction(signo, &sa, NULL) == 0 ? 0 : -errno;
}

static int
sig_ignore(int signo)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	return sigaction(signo, &sa, NULL) == 0 ? 0 : -errno;
}

/* A second call changes nothing and returns 0. */
int
sig_install(void)
{
	int fds[2];
	int rv;

	if (atomic_load(&sig_pipe_rd) >= 0)
		return 0;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
		return -errno;
	sig_pipe_wr = fds[1];
	atomic_store(&sig_pipe_rd, fds[0]);
	if ((rv = sig_ignore(SIGPIPE)) != 0 || (rv = sig_catch(SIGINT)) != 0 ||
	    (rv = sig_catch(SIGTERM)) != 0)
		return rv;
	return 0;
}

bool
sig_stopping(void)
{
	return atomic_load(&sig_stop) != 0;
}

int
sig_which(void)
{
	return atomic_load(&sig_stop);
}

int
sig_fd(void)
{
	return atomic_load(&sig_pipe_rd);
}

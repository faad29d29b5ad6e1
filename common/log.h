/* JSON-lines logging to stderr. Every call carries a stable message id
 * ("router.assign") so logs can be grepped and alerted on; the text after
 * it is for people. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR
};

/* Set the service name written in every line and the minimum level.
 * Reads PARLEY_LOG_LEVEL (debug|info|warn|error, default info); a bad
 * value stops start-up with a message naming the variable. */
void log_init(const char *service);

/* True when lines of this level are written (to skip costly arguments). */
bool log_enabled(enum log_level level);

/* Write one line: {"ts":..,"level":..,"svc":..,"id":..,"msg":..}. msg is
 * JSON-escaped; the line is written with one write(2) so lines of several
 * threads never interleave. */
void log_write(enum log_level level, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(id, ...) log_write(LOG_LEVEL_DEBUG, id, __VA_ARGS__)
#define LOG_INFO(id, ...)  log_write(LOG_LEVEL_INFO, id, __VA_ARGS__)
#define LOG_WARN(id, ...)  log_write(LOG_LEVEL_WARN, id, __VA_ARGS__)
#define LOG_ERROR(id, ...) log_write(LOG_LEVEL_ERROR, id, __VA_ARGS__)

/* log_write with a "trace" field after "id": the lines of one message's
 * path through the services (gateway, router, store) share it. */
void log_write_trace(enum log_level level, const char *id, const char *trace,
		     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The trace id of a message: 16 hex digits derived from its identity
 * (room, sender, client_msg_id), so every service computes the same one
 * from what it holds, and a retry through another gateway keeps it. */
#define LOG_TRACE_LEN 17
void log_trace_id(const char *room, const char *sender,
		  const char *client_msg_id, char out[LOG_TRACE_LEN]);

/* Log at error level and exit(2). Only for start-up failures. */
void log_fatal(const char *id, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif

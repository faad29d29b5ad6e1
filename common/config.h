/* Configuration from the environment. Every getter validates its variable;
 * a missing or malformed value stops start-up (exit 2) with a message that
 * names the variable and says what was expected. Only for start-up. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* The variable's value, or def when unset or empty. def may be NULL. */
const char *config_str(const char *name, const char *def);

/* The variable's value; exits when it is unset or empty. */
const char *config_require(const char *name);

/* An integer in [min, max]; def when unset. Exits on garbage or range. */
int64_t config_int(const char *name, int64_t def, int64_t min, int64_t max);

/* A boolean (1/0, true/false, yes/no, on/off); def when unset. */
int config_bool(const char *name, int def);

/* A URL for NNG ("tcp://host:port", "ipc://path", "inproc://name");
 * def when unset. Exits when the scheme is not one NNG knows. */
const char *config_url(const char *name, const char *def);

/* One of choices (a NULL-terminated list, compared without case) as its
 * index; def when unset. Exits naming the variable and the choices. */
int config_choice(const char *name, int def, const char *const *choices);

/* A secret of at least min_len bytes; exits when shorter or missing.
 * The value is never logged. */
const char *config_secret(const char *name, size_t min_len);

#endif

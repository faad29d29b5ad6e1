/* JSON lines for the CLI's stdout: a small append-only writer whose output
 * is one valid JSON value whatever bytes the server sent (quotes, control
 * characters and invalid UTF-8 are escaped or replaced). */
#ifndef PARLEY_CLI_JSON_H
#define PARLEY_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Embedded: json_init() / json_release(). The caller opens the top object
 * with json_obj(j, NULL), adds members, closes everything it opened and
 * prints with json_print_line(). key is NULL for array elements and for
 * the top value, a member name otherwise. Nothing here fails except the
 * final write; allocation failure aborts.
 */
struct json {
	char *buf;
	size_t len;
	size_t cap;
	bool need_comma; /* a value was written at this level already */
};

void json_init(struct json *j);
void json_release(struct json *j);

/* Start the line {"type":"<type>" (the usual beginning of a CLI line). */
void json_begin(struct json *j, const char *type);

void json_obj(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr(struct json *j, const char *key);
void json_arr_end(struct json *j);

/* A string member; s NULL is written as "". */
void json_str(struct json *j, const char *key, const char *s);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_bool(struct json *j, const char *key, bool v);
/* An array of n strings. */
void json_str_array(struct json *j, const char *key, char *const *v, size_t n);

/* Empty j for the next line (keeps the buffer). */
void json_clear(struct json *j);

/* The text so far, NUL-terminated; owned by j. */
const char *json_text(const struct json *j);

/* Write the text and a newline to f, flush, and empty j for the next line.
 * Returns 0, or -EIO when the write or flush failed. */
int json_print_line(struct json *j, FILE *f);

#endif

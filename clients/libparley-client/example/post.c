/* The ten-line example of docs/SERVER_API.md: post into a room as the
 * system. Usage: PARLEY_API_URL=... PARLEY_API_KEY=... post ROOM KEY TEXT */
#include <stdio.h>
#include <stdlib.h>

#include "parley_client.h"

int
main(int argc, char **argv)
{
	struct parley_client *c = parley_client_new(getenv("PARLEY_API_URL"),
						    getenv("PARLEY_API_KEY"));
	uint64_t seq = 0;
	int rc = -22; /* -EINVAL: usage */

	if (c && argc == 4) {
		struct parley_post p = { .room_id = argv[1],
					 .key = argv[2],
					 .body = argv[3] }; /* as the system */
		rc = parley_publish(c, &p, 5000, &seq);
	}
	if (rc == 0)
		printf("posted: seq %llu\n", (unsigned long long)seq);
	else
		fprintf(stderr, "post failed: %s\n", parley_strerror(rc));
	parley_client_free(c);
	return rc == 0 ? 0 : 1;
}

/* RevokeTokens: the user's revocation epoch (now, unix seconds) goes to
 * the compacted topic <PARLEY_TOPIC>.revocations through common/revoke.c,
 * the same record `parley revoke` writes and every gateway reads; the
 * gateways then refuse the user's tokens issued before it and close its
 * sessions (4006). */
#include <stdlib.h>
#include <time.h>

#include "api.h"
#include "log.h"
#include "revoke.h"
#include "xalloc.h"

int
api_revoke(struct api *a, const char *user, int timeout_ms)
{
	char *topic = xasprintf("%s.revocations", a->cfg.topic);
	int rc = revoke_publish(a->cfg.brokers, topic, user,
				(int64_t)time(NULL), timeout_ms);

	if (rc == 0)
		LOG_INFO("api.revoked", "tokens of %s revoked", user);
	free(topic);
	return rc;
}

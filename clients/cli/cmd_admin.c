/* `parley admin`: the server API (docs/SERVER_API.md) through
 * libparley-client, for operators and tests. Each subcommand builds one
 * Request; the answer is printed as one JSON line (generic: every field of
 * the reply message), an error as {"type":"error","code",...}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "parley_client.h"

#define ADMIN_DEFAULT_API "tcp://127.0.0.1:7601"
#define ADMIN_MAX_ARGS	  1000

static const char admin_usage[] =
	"Usage: parley admin SUBCOMMAND [OPTIONS] [ARGS]\n"
	"\n"
	"  publish --room ROOM [--as USER|system] --key KEY TEXT\n"
	"  room create [--as USER|system] --key KEY [--name NAME] MEMBER...\n"
	"  room add --room ROOM [--as USER|system] --key KEY USER...\n"
	"  room remove --room ROOM [--as USER|system] --key KEY USER\n"
	"  room delete --room ROOM [--as USER|system] --key KEY\n"
	"  room get ROOM\n"
	"  rooms USER                    the user's rooms with unread\n"
	"  history ROOM [--before SEQ] [--limit N]\n"
	"  presence USER...\n"
	"  device add USER PLATFORM TOKEN [--key KEY]\n"
	"  disconnect USER [--key KEY]\n"
	"  revoke USER [--key KEY]\n"
	"  stats\n"
	"\n"
	"  --api URL       parley-api (default: PARLEY_API_URL, else " ADMIN_DEFAULT_API
	")\n"
	"  --timeout S     deadline of the call, retries included (default 10)\n"
	"  --key KEY       idempotency key: a retry with the same key changes\n"
	"                  nothing more (default: a random one)\n"
	"The API key comes from PARLEY_API_KEY. Output: one JSON line, the\n"
	"reply's fields, or {\"type\":\"error\",\"code\",\"message\","
	"\"retryable\"}\n"
	"(exit 1). Exit 3: no answer in time; 2: usage.\n";

struct admin {
	const char *api, *key, *as, *room, *name;
	uint64_t before, limit;
	int64_t timeout_ms;
	char *args[ADMIN_MAX_ARGS];
	int n_args;
	char random_key[CLI_ID_HEX];
};

/* Generic protobuf -> JSON (the reply messages are small and flat). */

static void admin_json_msg(struct json *j, const char *key,
			   const ProtobufCMessage *m);

static void
admin_json_value(struct json *j, const char *key,
		 const ProtobufCFieldDescriptor *fd, const void *p)
{
	const ProtobufCEnumValue *v;

	switch (fd->type) {
	case PROTOBUF_C_TYPE_STRING:
		json_str(j, key, *(char *const *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		json_bool(j, key, *(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
		json_u64(j, key, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
		json_i64(j, key, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
		json_u64(j, key, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		v = protobuf_c_enum_descriptor_get_value(fd->descriptor,
							 *(const int *)p);
		json_str(j, key, v ? v->name : "");
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		admin_json_msg(j, key, *(ProtobufCMessage *const *)p);
		break;
	default:
		break;
	}
}

static size_t
admin_elem_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_INT64:
		return 8;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_BOOL:
		return 4;
	default:
		return sizeof(void *);
	}
}

static void
admin_json_field(struct json *j, const ProtobufCMessage *m,
		 const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;
	size_t n;

	if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
		n = *(const size_t *)(base + fd->quantifier_offset);
		json_arr(j, fd->name);
		for (size_t i = 0; i < n; i++)
			admin_json_value(j, NULL, fd,
					 *(char *const *)(base + fd->offset) +
						 i * admin_elem_size(fd));
		json_arr_end(j);
		return;
	}
	if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
		return;
	if (fd->type == PROTOBUF_C_TYPE_MESSAGE &&
	    *(void *const *)(base + fd->offset) == NULL)
		return;
	admin_json_value(j, fd->name, fd, base + fd->offset);
}

static void
admin_json_fields(struct json *j, const ProtobufCMessage *m)
{
	for (unsigned i = 0; i < m->descriptor->n_fields; i++)
		admin_json_field(j, m, &m->descriptor->fields[i]);
}

static void
admin_json_msg(struct json *j, const char *key, const ProtobufCMessage *m)
{
	json_obj(j, key);
	admin_json_fields(j, m);
	json_obj_end(j);
}

/* Print the answer; the exit code. */
static int
admin_print(const Parley__Server__V1__Response *r)
{
	const ProtobufCFieldDescriptor *fd = NULL;
	struct json j;
	int rc = CLI_EXIT_OK;

	json_init(&j);
	if (r->error) {
		json_begin(&j, "error");
		admin_json_fields(&j, &r->error->base);
		rc = CLI_EXIT_SERVER;
	} else {
		fd = protobuf_c_message_descriptor_get_field(
			&parley__server__v1__response__descriptor,
			(unsigned)r->reply_case);
		json_begin(&j, fd ? fd->name : "empty");
		if (fd)
			admin_json_fields(
				&j,
				*(ProtobufCMessage *const *)((const char *)r +
							     fd->offset));
	}
	json_obj_end(&j);
	if (json_print_line(&j, stdout) < 0)
		rc = CLI_EXIT_SERVER;
	json_release(&j);
	return rc;
}

/* Options and arguments. */

static int
admin_opt(struct admin *ad, const char *opt, const char *val)
{
	if (val == NULL)
		return cli_usage("admin", "%s needs a value", opt);
	if (!strcmp(opt, "--api"))
		ad->api = val;
	else if (!strcmp(opt, "--key"))
		ad->key = val;
	else if (!strcmp(opt, "--as"))
		ad->as = val;
	else if (!strcmp(opt, "--room"))
		ad->room = val;
	else if (!strcmp(opt, "--name"))
		ad->name = val;
	else if (!strcmp(opt, "--before"))
		return cli_parse_u64(val, &ad->before) ? CLI_EXIT_USAGE : 0;
	else if (!strcmp(opt, "--limit"))
		return cli_parse_u64(val, &ad->limit) ? CLI_EXIT_USAGE : 0;
	else if (!strcmp(opt, "--timeout"))
		return cli_parse_seconds(val, &ad->timeout_ms) ? CLI_EXIT_USAGE
							       : 0;
	else
		return cli_usage("admin", "unknown option '%s'", opt);
	return 0;
}

static int
admin_parse(struct admin *ad, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		int rc;

		if (strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
			if (ad->n_args == ADMIN_MAX_ARGS)
				return cli_usage("admin", "too many arguments");
			ad->args[ad->n_args++] = argv[i];
			continue;
		}
		rc = admin_opt(ad, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
		if (rc)
			return rc;
		i++;
	}
	if (ad->key == NULL) {
		cli_random_id(ad->random_key);
		ad->key = ad->random_key;
	}
	return 0;
}

static void
admin_actor(const struct admin *ad, Parley__Server__V1__Actor *who)
{
	if (ad->as == NULL || !strcmp(ad->as, "system")) {
		who->who_case = PARLEY__SERVER__V1__ACTOR__WHO_SYSTEM;
		who->system = 1;
	} else {
		who->who_case = PARLEY__SERVER__V1__ACTOR__WHO_USER_ID;
		who->user_id = (char *)ad->as;
	}
}

/* Every request a subcommand may build (on the caller's stack). */
struct admin_req {
	Parley__Server__V1__Request req;
	Parley__Server__V1__Actor who;
	Parley__Server__V1__PublishRequest publish;
	Parley__Server__V1__CreateRoomRequest create;
	Parley__Server__V1__AddMembersRequest add;
	Parley__Server__V1__RemoveMemberRequest remove;
	Parley__Server__V1__DeleteRoomRequest del;
	Parley__Server__V1__GetRoomRequest get;
	Parley__Server__V1__ListUserRoomsRequest rooms;
	Parley__Server__V1__HistoryRequest history;
	Parley__Server__V1__PresenceRequest presence;
	Parley__Server__V1__RegisterDeviceRequest device;
	Parley__Server__V1__DisconnectUserRequest disconnect;
	Parley__Server__V1__RevokeTokensRequest revoke;
	Parley__Server__V1__StatsRequest stats;
};

static void
admin_req_init(struct admin_req *q)
{
	parley__server__v1__request__init(&q->req);
	parley__server__v1__actor__init(&q->who);
	parley__server__v1__publish_request__init(&q->publish);
	parley__server__v1__create_room_request__init(&q->create);
	parley__server__v1__add_members_request__init(&q->add);
	parley__server__v1__remove_member_request__init(&q->remove);
	parley__server__v1__delete_room_request__init(&q->del);
	parley__server__v1__get_room_request__init(&q->get);
	parley__server__v1__list_user_rooms_request__init(&q->rooms);
	parley__server__v1__history_request__init(&q->history);
	parley__server__v1__presence_request__init(&q->presence);
	parley__server__v1__register_device_request__init(&q->device);
	parley__server__v1__disconnect_user_request__init(&q->disconnect);
	parley__server__v1__revoke_tokens_request__init(&q->revoke);
	parley__server__v1__stats_request__init(&q->stats);
}

static int
admin_publish(struct admin *ad, struct admin_req *q)
{
	if (ad->room == NULL || ad->n_args != 2)
		return cli_usage("admin", "publish --room ROOM TEXT");
	admin_actor(ad, &q->who);
	q->publish.room_id = (char *)ad->room;
	q->publish.sender = &q->who;
	q->publish.idempotency_key = (char *)ad->key;
	q->publish.body = ad->args[1];
	q->req.call_case = PARLEY__SERVER__V1__REQUEST__CALL_PUBLISH;
	q->req.publish = &q->publish;
	return 0;
}

static int
admin_room_change(struct admin *ad, struct admin_req *q, const char *sub)
{
	admin_actor(ad, &q->who);
	if (!strcmp(sub, "create")) {
		q->create.creator = &q->who;
		q->create.name = (char *)(ad->name ? ad->name : "");
		q->create.member_ids = ad->args + 2;
		q->create.n_member_ids = (size_t)(ad->n_args - 2);
		q->create.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_CREATE_ROOM;
		q->req.create_room = &q->create;
		return 0;
	}
	if (ad->room == NULL)
		return cli_usage("admin", "room %s needs --room", sub);
	if (!strcmp(sub, "add") && ad->n_args > 2) {
		q->add.room_id = (char *)ad->room;
		q->add.user_ids = ad->args + 2;
		q->add.n_user_ids = (size_t)(ad->n_args - 2);
		q->add.actor = &q->who;
		q->add.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_ADD_MEMBERS;
		q->req.add_members = &q->add;
	} else if (!strcmp(sub, "remove") && ad->n_args == 3) {
		q->remove.room_id = (char *)ad->room;
		q->remove.user_id = ad->args[2];
		q->remove.actor = &q->who;
		q->remove.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_REMOVE_MEMBER;
		q->req.remove_member = &q->remove;
	} else if (!strcmp(sub, "delete") && ad->n_args == 2) {
		q->del.room_id = (char *)ad->room;
		q->del.actor = &q->who;
		q->del.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_DELETE_ROOM;
		q->req.delete_room = &q->del;
	} else {
		return cli_usage("admin", "room %s: wrong arguments", sub);
	}
	return 0;
}

static int
admin_room(struct admin *ad, struct admin_req *q)
{
	const char *sub = ad->n_args > 1 ? ad->args[1] : "";

	if (!strcmp(sub, "get") && ad->n_args == 3) {
		q->get.room_id = ad->args[2];
		q->req.call_case = PARLEY__SERVER__V1__REQUEST__CALL_GET_ROOM;
		q->req.get_room = &q->get;
		return 0;
	}
	if (!strcmp(sub, "create") || !strcmp(sub, "add") ||
	    !strcmp(sub, "remove") || !strcmp(sub, "delete"))
		return admin_room_change(ad, q, sub);
	return cli_usage("admin", "room create|add|remove|delete|get");
}

static int
admin_reads(struct admin *ad, struct admin_req *q)
{
	const char *cmd = ad->args[0];

	if (!strcmp(cmd, "rooms") && ad->n_args == 2) {
		q->rooms.user_id = ad->args[1];
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_LIST_USER_ROOMS;
		q->req.list_user_rooms = &q->rooms;
	} else if (!strcmp(cmd, "history") && ad->n_args == 2) {
		q->history.room_id = ad->args[1];
		q->history.before_seq = ad->before;
		q->history.limit = (uint32_t)ad->limit;
		q->req.call_case = PARLEY__SERVER__V1__REQUEST__CALL_HISTORY;
		q->req.history = &q->history;
	} else if (!strcmp(cmd, "presence") && ad->n_args > 1) {
		q->presence.user_ids = ad->args + 1;
		q->presence.n_user_ids = (size_t)(ad->n_args - 1);
		q->req.call_case = PARLEY__SERVER__V1__REQUEST__CALL_PRESENCE;
		q->req.presence = &q->presence;
	} else if (!strcmp(cmd, "stats") && ad->n_args == 1) {
		q->req.call_case = PARLEY__SERVER__V1__REQUEST__CALL_STATS;
		q->req.stats = &q->stats;
	} else {
		return -1;
	}
	return 0;
}

static int
admin_users(struct admin *ad, struct admin_req *q)
{
	const char *cmd = ad->args[0];

	if (!strcmp(cmd, "device") && ad->n_args == 5 &&
	    !strcmp(ad->args[1], "add")) {
		q->device.user_id = ad->args[2];
		q->device.platform = ad->args[3];
		q->device.token = ad->args[4];
		q->device.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_REGISTER_DEVICE;
		q->req.register_device = &q->device;
	} else if (!strcmp(cmd, "disconnect") && ad->n_args == 2) {
		q->disconnect.user_id = ad->args[1];
		q->disconnect.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_DISCONNECT_USER;
		q->req.disconnect_user = &q->disconnect;
	} else if (!strcmp(cmd, "revoke") && ad->n_args == 2) {
		q->revoke.user_id = ad->args[1];
		q->revoke.idempotency_key = (char *)ad->key;
		q->req.call_case =
			PARLEY__SERVER__V1__REQUEST__CALL_REVOKE_TOKENS;
		q->req.revoke_tokens = &q->revoke;
	} else {
		return cli_usage("admin", "unknown subcommand or "
					  "arguments; see --help");
	}
	return 0;
}

static int
admin_build(struct admin *ad, struct admin_req *q)
{
	const char *cmd = ad->args[0];

	if (!strcmp(cmd, "publish"))
		return admin_publish(ad, q);
	if (!strcmp(cmd, "room"))
		return admin_room(ad, q);
	if (admin_reads(ad, q) == 0)
		return 0;
	return admin_users(ad, q);
}

static int
admin_call(const struct admin *ad, struct admin_req *q)
{
	const char *key = getenv("PARLEY_API_KEY");
	struct parley_client *c;
	Parley__Server__V1__Response *r;
	int rc;

	if (key == NULL || key[0] == '\0')
		return cli_usage("admin", "PARLEY_API_KEY is not set");
	c = parley_client_new(ad->api, key);
	if (c == NULL)
		return cli_usage("admin", "bad --api URL '%s'", ad->api);
	rc = parley_call(c, &q->req, (int)ad->timeout_ms, &r);
	parley_client_free(c);
	if (rc < 0) {
		fprintf(stderr, "parley admin: %s\n", parley_strerror(rc));
		return rc == -ETIMEDOUT ? CLI_EXIT_TIMEOUT : CLI_EXIT_CONNECT;
	}
	rc = admin_print(r);
	parley_response_free(r);
	return rc;
}

int
cmd_admin(int argc, char **argv)
{
	struct admin ad = { .timeout_ms = 10000 };
	struct admin_req q;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(admin_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	ad.api = getenv("PARLEY_API_URL");
	if (ad.api == NULL || ad.api[0] == '\0')
		ad.api = ADMIN_DEFAULT_API;
	if ((rc = admin_parse(&ad, argc - 1, argv + 1)) != 0)
		return rc;
	if (ad.n_args == 0)
		return cli_usage("admin", "which subcommand?");
	admin_req_init(&q);
	if ((rc = admin_build(&ad, &q)) != 0)
		return rc;
	return admin_call(&ad, &q);
}

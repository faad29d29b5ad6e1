/* Unit tests of device registration rules and answers (no database:
 * a NULL one answers as a dead server). */
#include "devices.c" // NOLINT(bugprone-suspicious-include)

#include "test.h"

static struct pusher_config
config(void)
{
	struct pusher_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.url[PUSH_FCM] = "http://127.0.0.1:1/fcm";
	cfg.url[PUSH_WEBHOOK] = "http://127.0.0.1:1/hook";
	cfg.max_devices = 20;
	return cfg;
}

static void
test_invalid(void)
{
	struct pusher_config cfg = config();
	char big[PUSH_TOKEN_MAX + 2];

	CHECK(devices_invalid(&cfg, "fcm", "abc:DEF_123-x") == NULL);
	CHECK(devices_invalid(&cfg, "webhook", "x") == NULL);
	CHECK(devices_invalid(&cfg, "apns", "abc") != NULL); /* no provider */
	CHECK(devices_invalid(&cfg, "pigeon", "abc") != NULL);
	CHECK(devices_invalid(&cfg, NULL, "abc") != NULL);
	CHECK(devices_invalid(&cfg, "fcm", "") != NULL);
	CHECK(devices_invalid(&cfg, "fcm", NULL) != NULL);
	CHECK(devices_invalid(&cfg, "fcm", "a b") != NULL);
	CHECK(devices_invalid(&cfg, "fcm", "a\nb") != NULL);
	CHECK(devices_invalid(&cfg, "fcm", "caf\xc3\xa9") != NULL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(devices_invalid(&cfg, "fcm", big) != NULL);
	big[PUSH_TOKEN_MAX] = '\0';
	CHECK(devices_invalid(&cfg, "fcm", big) == NULL);
}

static Parley__V1__ServerFrame *
ask(const char *user, Parley__V1__ClientFrame *f)
{
	struct pusher_config cfg = config();
	Parley__Internal__V1__Command c = PARLEY__INTERNAL__V1__COMMAND__INIT;

	c.user_id = (char *)user;
	c.frame = f;
	return devices_handle(&cfg, NULL, &c);
}

static void
test_answers(void)
{
	Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
	Parley__V1__RegisterDevice reg = PARLEY__V1__REGISTER_DEVICE__INIT;
	Parley__V1__UnregisterDevice unreg =
		PARLEY__V1__UNREGISTER_DEVICE__INIT;
	Parley__V1__ServerFrame *r;

	f.request_id = 42;
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_REGISTER_DEVICE;
	f.register_device = &reg;
	reg.platform = "fcm";
	reg.token = "tok";
	r = ask("bob", &f); /* valid, but the database is gone */
	CHECK_EQ_INT(r->request_id, 42);
	CHECK_EQ_INT(r->msg_case, PARLEY__V1__SERVER_FRAME__MSG_ERROR);
	CHECK_EQ_INT(r->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_UNAVAILABLE);
	CHECK(r->error->retryable);
	devices_reply_free(r);
	reg.platform = "apns";
	r = ask("bob", &f);
	CHECK_EQ_INT(r->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	CHECK(!r->error->retryable);
	devices_reply_free(r);
	r = ask("", &f);
	CHECK_EQ_INT(r->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	devices_reply_free(r);
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_UNREGISTER_DEVICE;
	f.unregister_device = &unreg;
	unreg.token = "";
	r = ask("bob", &f);
	CHECK_EQ_INT(r->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	devices_reply_free(r);
	f.msg_case = PARLEY__V1__CLIENT_FRAME__MSG_READ;
	r = ask("bob", &f);
	CHECK_EQ_INT(r->request_id, 42);
	CHECK_EQ_INT(r->error->code,
		     PARLEY__V1__ERROR_CODE__ERROR_CODE_BAD_REQUEST);
	devices_reply_free(r);
}

TEST_MAIN(TEST(test_invalid), TEST(test_answers))

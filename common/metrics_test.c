/* Unit tests of the metrics registry and its text rendering. */
#include "metrics.c"

#include "test.h"

static void
test_counter_and_gauge(void)
{
	struct metric *c = metrics_counter("t_sends_total", "Sends.");
	struct metric *g = metrics_gauge("t_conns", "Connections.");
	size_t len;
	char *out;

	CHECK(metrics_counter("t_sends_total", "again") == c);
	metric_add(c, 3);
	metric_add(c, 2);
	metric_set(g, 7);
	metric_add(NULL, 1);
	CHECK_EQ_INT(metric_value(c), 5);
	out = metrics_render(&len);
	CHECK_EQ_INT(strlen(out), len);
	CHECK(strstr(out, "# TYPE t_sends_total counter\nt_sends_total 5\n"));
	CHECK(strstr(out, "# HELP t_conns Connections.\n# TYPE t_conns gauge\n"
			  "t_conns 7\n"));
	free(out);
}

static void
test_family_labels(void)
{
	struct metric *a =
		metrics_counter("t_push_total{outcome=\"sent\"}", "P.");
	struct metric *b =
		metrics_counter("t_push_total{outcome=\"failed\"}", "P.");
	size_t len;
	char *out, *first;

	metric_add(a, 1);
	metric_add(b, 2);
	out = metrics_render(&len);
	first = strstr(out, "# TYPE t_push_total counter");
	CHECK(first != NULL);
	CHECK(first && strstr(first + 1, "# TYPE t_push_total") == NULL);
	CHECK(strstr(out, "t_push_total{outcome=\"sent\"} 1\n"));
	CHECK(strstr(out, "t_push_total{outcome=\"failed\"} 2\n"));
	free(out);
}

static void
test_histogram(void)
{
	const double b[] = { 0.1, 1 };
	struct metric *h = metrics_histogram("t_lat_seconds", "L.", b, 2);
	size_t len;
	char *out;

	metric_observe(h, 0.05);
	metric_observe(h, 0.5);
	metric_observe(h, 0.5);
	metric_observe(h, 7);
	out = metrics_render(&len);
	CHECK(strstr(out, "t_lat_seconds_bucket{le=\"0.1\"} 1\n"));
	CHECK(strstr(out, "t_lat_seconds_bucket{le=\"1\"} 3\n"));
	CHECK(strstr(out, "t_lat_seconds_bucket{le=\"+Inf\"} 4\n"));
	CHECK(strstr(out, "t_lat_seconds_sum 8.050000\n"));
	CHECK(strstr(out, "t_lat_seconds_count 4\n"));
	free(out);
}

TEST_MAIN(TEST(test_counter_and_gauge), TEST(test_family_labels),
	  TEST(test_histogram))

/* The metrics registry (see metrics.h): a fixed array filled at start-up,
 * atomic updates, rendering grouped by family. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define METRICS_MAX	   256
#define METRICS_MAX_BOUNDS 24

enum metric_kind { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric {
	enum metric_kind kind;
	char *name;
	char *help;
	int64_t value;
	/* Histograms: cumulative counts are computed at render time. */
	double bounds[METRICS_MAX_BOUNDS];
	size_t n_bounds;
	uint64_t buckets[METRICS_MAX_BOUNDS + 1];
	uint64_t count;
	uint64_t sum_us; /* sum in millionths, to stay atomic */
};

static struct metric metrics_[METRICS_MAX];
static size_t metrics_n_;

const double METRICS_LATENCY_BOUNDS[] = {
	0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,  0.064,  0.128,
	0.256,	0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768,
};
const size_t METRICS_LATENCY_BOUNDS_N =
	sizeof(METRICS_LATENCY_BOUNDS) / sizeof(METRICS_LATENCY_BOUNDS[0]);

static struct metric *
metrics_register(enum metric_kind kind, const char *name, const char *help)
{
	struct metric *m;

	for (size_t i = 0; i < metrics_n_; i++)
		if (strcmp(metrics_[i].name, name) == 0)
			return &metrics_[i];
	if (metrics_n_ == METRICS_MAX)
		abort(); /* a programming error: raise METRICS_MAX */
	m = &metrics_[metrics_n_++];
	m->kind = kind;
	m->name = xstrdup(name);
	m->help = xstrdup(help);
	return m;
}

struct metric *
metrics_counter(const char *name, const char *help)
{
	return metrics_register(METRIC_COUNTER, name, help);
}

struct metric *
metrics_gauge(const char *name, const char *help)
{
	return metrics_register(METRIC_GAUGE, name, help);
}

struct metric *
metrics_histogram(const char *name, const char *help, const double *bounds,
		  size_t n)
{
	struct metric *m = metrics_register(METRIC_HISTOGRAM, name, help);

	m->n_bounds = n < METRICS_MAX_BOUNDS ? n : METRICS_MAX_BOUNDS;
	memcpy(m->bounds, bounds, m->n_bounds * sizeof(*bounds));
	return m;
}

void
metric_add(struct metric *m, int64_t delta)
{
	if (m)
		__atomic_add_fetch(&m->value, delta, __ATOMIC_RELAXED);
}

void
metric_set(struct metric *m, int64_t value)
{
	if (m)
		__atomic_store_n(&m->value, value, __ATOMIC_RELAXED);
}

int64_t
metric_value(const struct metric *m)
{
	return m ? __atomic_load_n(&m->value, __ATOMIC_RELAXED) : 0;
}

void
metric_observe(struct metric *m, double v)
{
	size_t i = 0;

	if (m == NULL)
		return;
	while (i < m->n_bounds && v > m->bounds[i])
		i++;
	__atomic_add_fetch(&m->buckets[i], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->count, 1, __ATOMIC_RELAXED);
	if (v > 0 && isfinite(v))
		__atomic_add_fetch(&m->sum_us, (uint64_t)llround(v * 1e6),
				   __ATOMIC_RELAXED);
}

/* A growing output buffer. */
struct metrics_out {
	char *buf;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
out_printf(struct metrics_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len)
			break;
		o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 0);
		o->buf = xrealloc(o->buf, o->cap);
	}
	o->len += (size_t)n;
}

/* The family name: the part before '{'. */
static size_t
family_len(const char *name)
{
	return strcspn(name, "{");
}

static const char *
kind_name(enum metric_kind k)
{
	return k == METRIC_COUNTER ? "counter"
	       : k == METRIC_GAUGE ? "gauge"
				   : "histogram";
}

/* A histogram series: name_bucket{labels,le="x"}. */
static void
render_bucket(struct metrics_out *o, const struct metric *m, const char *le,
	      uint64_t n)
{
	size_t f = family_len(m->name);
	const char *labels = m->name + f;

	if (*labels)
		out_printf(o, "%.*s_bucket{%.*s,le=\"%s\"} %llu\n", (int)f,
			   m->name, (int)(strlen(labels) - 2), labels + 1, le,
			   (unsigned long long)n);
	else
		out_printf(o, "%s_bucket{le=\"%s\"} %llu\n", m->name, le,
			   (unsigned long long)n);
}

static void
render_histogram(struct metrics_out *o, const struct metric *m)
{
	size_t f = family_len(m->name);
	uint64_t cum = 0;
	char le[32];

	for (size_t i = 0; i < m->n_bounds; i++) {
		cum += __atomic_load_n(&m->buckets[i], __ATOMIC_RELAXED);
		snprintf(le, sizeof(le), "%g", m->bounds[i]);
		render_bucket(o, m, le, cum);
	}
	cum += __atomic_load_n(&m->buckets[m->n_bounds], __ATOMIC_RELAXED);
	render_bucket(o, m, "+Inf", cum);
	out_printf(o, "%.*s_sum%s %.6f\n", (int)f, m->name, m->name + f,
		   (double)__atomic_load_n(&m->sum_us, __ATOMIC_RELAXED) / 1e6);
	out_printf(o, "%.*s_count%s %llu\n", (int)f, m->name, m->name + f,
		   (unsigned long long)cum);
}

static void
render_family(struct metrics_out *o, size_t first)
{
	const struct metric *m = &metrics_[first];
	size_t f = family_len(m->name);

	out_printf(o, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)f, m->name,
		   m->help, (int)f, m->name, kind_name(m->kind));
	for (size_t i = first; i < metrics_n_; i++) {
		const struct metric *x = &metrics_[i];

		if (family_len(x->name) != f ||
		    strncmp(x->name, m->name, f) != 0)
			continue;
		if (x->kind == METRIC_HISTOGRAM)
			render_histogram(o, x);
		else
			out_printf(o, "%s %lld\n", x->name,
				   (long long)metric_value(x));
	}
}

/* True when an earlier metric already opened this one's family. */
static bool
family_seen(size_t i)
{
	size_t f = family_len(metrics_[i].name);

	for (size_t j = 0; j < i; j++)
		if (family_len(metrics_[j].name) == f &&
		    strncmp(metrics_[j].name, metrics_[i].name, f) == 0)
			return true;
	return false;
}

char *
metrics_render(size_t *len)
{
	struct metrics_out o = { xmalloc(4096), 0, 4096 };

	o.buf[0] = '\0';
	for (size_t i = 0; i < metrics_n_; i++)
		if (!family_seen(i))
			render_family(&o, i);
	*len = o.len;
	return o.buf;
}

/* Prometheus metrics: counters, gauges and histograms registered at
 * start-up, updated lock-free from any thread, rendered in the text
 * exposition format (version 0.0.4) for GET /metrics. */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metric;

/* Register a metric. name may carry labels ("parley_x_total{kind=\"a\"}");
 * metrics of one family (the name before '{') share one HELP/TYPE block.
 * Registering the same full name twice returns the same metric. The
 * registry lives until exit; register before threads start. */
struct metric *metrics_counter(const char *name, const char *help);
struct metric *metrics_gauge(const char *name, const char *help);
/* A histogram with n upper bounds (ascending; +Inf is implicit). */
struct metric *metrics_histogram(const char *name, const char *help,
				 const double *bounds, size_t n);

/* Update from any thread. NULL metrics are ignored (optional metrics). */
void metric_add(struct metric *m, int64_t delta);
void metric_set(struct metric *m, int64_t value);
void metric_observe(struct metric *m, double value);
int64_t metric_value(const struct metric *m);

/* Bounds 0.0005 .. ~33 s in powers of two: latency in seconds. */
extern const double METRICS_LATENCY_BOUNDS[];
extern const size_t METRICS_LATENCY_BOUNDS_N;

/* Every metric in text format; a heap string the caller frees. */
char *metrics_render(size_t *len);

#endif

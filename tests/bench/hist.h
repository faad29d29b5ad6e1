/* Log-bucket latency histograms for parley-bench: 16 buckets per power of
 * two (about 6% resolution), exact below 32 ns, mergeable by adding counts.
 * tests/bench/report.py knows the same bucket bounds. */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_BUCKETS 976

struct hist {
	uint64_t n;
	uint64_t max;
	uint64_t min;
	double sum;
	uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
/* The upper bound of the bucket holding quantile q (0..1), capped by max. */
uint64_t hist_quantile(const struct hist *h, double q);
/* Writes {"n":..,"min":..,"max":..,"mean":..,"p50":..,..,"buckets":[[i,c],..]}
 * with values in nanoseconds. */
void hist_json(const struct hist *h, FILE *f);

#endif

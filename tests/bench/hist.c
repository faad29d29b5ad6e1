/* Log-bucket histograms: see hist.h. */
#include <string.h>

#include "hist.h"

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static unsigned
hist_bucket(uint64_t v)
{
	unsigned msb;

	if (v < 32)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return 32u + (msb - 5u) * 16u + (unsigned)((v >> (msb - 4u)) & 15u);
}

static uint64_t
hist_upper(unsigned i)
{
	unsigned msb, sub;

	if (i < 32)
		return i;
	msb = (i - 32u) / 16u + 5u;
	sub = (i - 32u) % 16u;
	return ((uint64_t)(17u + sub) << (msb - 4u)) - 1u;
}

void
hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_bucket(v)]++;
	h->n++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
	if (v < h->min)
		h->min = v;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)((double)h->n * q);
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

void
hist_json(const struct hist *h, FILE *f)
{
	int first = 1;

	fprintf(f,
		"{\"n\":%llu,\"min\":%llu,\"max\":%llu,\"mean\":%.0f,"
		"\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"p999\":%llu,"
		"\"buckets\":[",
		(unsigned long long)h->n,
		(unsigned long long)(h->n ? h->min : 0),
		(unsigned long long)h->max, h->n ? h->sum / (double)h->n : 0.0,
		(unsigned long long)hist_quantile(h, 0.50),
		(unsigned long long)hist_quantile(h, 0.90),
		(unsigned long long)hist_quantile(h, 0.99),
		(unsigned long long)hist_quantile(h, 0.999));
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		fprintf(f, "%s[%u,%llu]", first ? "" : ",", i,
			(unsigned long long)h->b[i]);
		first = 0;
	}
	fputs("]}", f);
}

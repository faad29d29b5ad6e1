# parley-bench and the floor server: a fragment for the top Makefile
# (`include tests/bench/bench.mk`), or run tests/bench/build.sh alone.
BENCH_SRCS = tests/bench/bench.c tests/bench/conn.c tests/bench/proto.c \
             tests/bench/pb.c tests/bench/hist.c
BENCH_HDRS = $(wildcard tests/bench/*.h)

$(BUILD)/bin/parley-bench: $(BENCH_SRCS) $(BENCH_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -D_GNU_SOURCE $(WARN) -o $@ $(BENCH_SRCS) -lcrypto

$(BUILD)/bin/bench-floor: tests/bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -D_GNU_SOURCE $(WARN) -o $@ $< -lcrypto

$(BUILD)/bin/bench-floors: tests/bench/floors.c tests/bench/hist.c tests/bench/hist.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -D_GNU_SOURCE $(WARN) -o $@ tests/bench/floors.c \
	    tests/bench/hist.c -lrdkafka -lnng -pthread

.PHONY: bench bench-quick bench-tools
bench-tools: $(BUILD)/bin/parley-bench $(BUILD)/bin/bench-floor \
             $(BUILD)/bin/bench-floors
bench-quick: all bench-tools
	python3 tests/bench/run.py quick --bin $(BUILD)/bin
bench: all bench-tools
	python3 tests/bench/run.py full --bin $(BUILD)/bin

# libFuzzer targets (tests/fuzz/README.md): a fragment for the top Makefile.
# clang-14 with libFuzzer (libclang-rt-14-dev), AddressSanitizer and UBSan;
# everything is built apart in $(BUILD)/fuzz.
#   make fuzz-smoke              each target for 60 s (part of `make test`)
#   make fuzz FUZZ_SECONDS=600   each target for longer
#   make fuzz FUZZ_TARGETS=jwt   one target
FUZZ_CC      ?= clang-14
FUZZ_DIR      = $(BUILD)/fuzz
FUZZ_TARGETS ?= client_frame envelope log_record jwt utf8
FUZZ_SECONDS ?= 600
FUZZ_JOBS    ?= 2
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -pthread
FUZZ_CPPFLAGS = -D_GNU_SOURCE -I$(GEN) -Icommon \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_LIBOBJ   = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(lib_srcs)) \
                $(patsubst $(GEN)/%.c,$(FUZZ_DIR)/obj/gen/%.o,$(PB_C))
FUZZ_BINS     = $(patsubst %,$(FUZZ_DIR)/bin/fuzz_%,$(FUZZ_TARGETS))

# Library code is instrumented for coverage without libFuzzer's main.
$(FUZZ_DIR)/obj/gen/%.o: $(GEN)/%.c $(PB_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/obj/%.o: %.c $(PB_H) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/libparley.a: $(FUZZ_LIBOBJ)
	rm -f $@ && ar rcs $@ $^

# A target may include the .c it drives (gateway/session.c,
# router/ingress.c) to reach its static functions; it depends on them all.
$(FUZZ_DIR)/bin/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_DIR)/libparley.a \
                        $(wildcard gateway/*.[ch] router/*.[ch])
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) $(WARN) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_DIR)/libparley.a $(LIBS)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-seeds
fuzz-build: $(FUZZ_BINS)

fuzz-smoke: fuzz-build
	tests/fuzz/run.sh --dir $(FUZZ_DIR) --seconds 60 --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz: fuzz-build
	tests/fuzz/run.sh --dir $(FUZZ_DIR) --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)

# Regenerate the committed seed corpus (tests/fuzz/corpus).
fuzz-seeds:
	python3 tests/fuzz/seeds.py tests/fuzz/corpus

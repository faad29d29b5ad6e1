# parley build: everything goes to build/ (generated protobuf code included).
# `make` builds, `make unit` runs unit tests, `make test` installs what is
# missing and runs every test against a real Kafka and PostgreSQL.

CC       ?= cc
BUILD    ?= build
PKGS      = libwebsockets libprotobuf-c rdkafka libpq libcurl openssl
WARN      = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wvla
OPT      ?= -O2 -g
SAN      ?=
CPPFLAGS += -D_GNU_SOURCE -I$(BUILD)/gen -Icommon -Iclients/libparley-client \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   += -std=c11 $(OPT) $(SAN) -pthread
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lnng -lev -lm -pthread

GEN       = $(BUILD)/gen
PROTOS    = parley/v1/client.proto parley/log/v1/record.proto \
            parley/server/v1/api.proto \
            parley/internal/v1/envelope.proto
PB_C      = $(patsubst %.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PB_H      = $(PB_C:.c=.h)
PB_O      = $(patsubst $(GEN)/%.c,$(BUILD)/obj/gen/%.o,$(PB_C))

# Every service folder with a main.c is a parley-<folder> binary.
SERVICES  = $(patsubst %/main.c,%,$(wildcard gateway/main.c router/main.c \
              store/main.c presence/main.c pusher/main.c api/main.c))
lib_srcs  = $(filter-out %_test.c,$(wildcard common/*.c))
svc_srcs  = $(filter-out %_test.c %/main.c,$(wildcard $(1)/*.c))
obj       = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB       = $(BUILD)/lib/libparley.a
CLIENT_LIB = $(BUILD)/lib/libparley-client.a
BINS      = $(foreach s,$(SERVICES),$(BUILD)/bin/parley-$(s)) $(BUILD)/bin/parley \
            $(CLIENT_LIB) $(BUILD)/bin/parley-post-example \
            $(BUILD)/tools/api_load
TESTSRCS  = $(wildcard common/*_test.c $(foreach s,$(SERVICES),$(s)/*_test.c) \
              clients/cli/*_test.c clients/libparley-client/*_test.c)
TESTBINS  = $(patsubst %.c,$(BUILD)/test/%,$(TESTSRCS))
# Test tools (tests/tools/*.c), built with everything else.
TOOLBINS  = $(BUILD)/test/tools/authz_probe

.PHONY: all deps unit test integration run lint proto-lint format format-check \
        asan soak clean web
all: $(BINS) $(TESTBINS) $(TOOLBINS)

deps:
	@deploy/local/deps.sh

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=proto --c_out=$(GEN) $<

# Generated code is compiled without our stricter prototype warnings.
$(BUILD)/obj/gen/%.o: $(GEN)/%.c $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wall -Werror -c -o $@ $<

$(BUILD)/obj/%.o: %.c $(PB_H) $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(LIB): $(call obj,$(lib_srcs)) $(PB_O)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define service_rules
$(BUILD)/lib/lib$(1).a: $(call obj,$(call svc_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
$(BUILD)/bin/parley-$(1): $(BUILD)/obj/$(1)/main.o $(BUILD)/lib/lib$(1).a $(LIB)
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS) -o $$@ $$^ $(LIBS)
$(BUILD)/test/$(1)/%_test: $(1)/%_test.c $(BUILD)/lib/lib$(1).a $(LIB) $(PB_H)
	@mkdir -p $$(dir $$@)
	$(CC) $(CPPFLAGS) -I$(1) $(CFLAGS) $(WARN) -o $$@ $$< $(BUILD)/lib/lib$(1).a $(LIB) $(LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

# libparley-client: the server API's C client, on its own (NNG and
# protobuf-c only), and the ten-line example of docs/SERVER_API.md.
$(CLIENT_LIB): $(BUILD)/obj/clients/libparley-client/parley_client.o \
               $(BUILD)/obj/gen/parley/server/v1/api.pb-c.o
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(BUILD)/bin/parley-post-example: \
    $(BUILD)/obj/clients/libparley-client/example/post.o $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lnng -lprotobuf-c -pthread

# Test tool: many concurrent callers on one client (tests/integration/80).
$(BUILD)/tools/api_load: $(BUILD)/obj/tests/tools/api_load.o $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ -lnng -lprotobuf-c -pthread

cli_srcs = $(wildcard clients/cli/*.c)
$(BUILD)/bin/parley: $(call obj,$(filter-out %_test.c,$(cli_srcs))) \
                     $(BUILD)/obj/clients/libparley-client/parley_client.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# Test tools (tests/tools/*.c) speak the client protocol through the CLI's
# connection code.
cli_conn_objs = $(call obj,clients/cli/conn.c)
$(BUILD)/test/tools/%: tests/tools/%.c $(cli_conn_objs) $(LIB) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iclients/cli $(CFLAGS) $(WARN) -o $@ $< $(cli_conn_objs) $(LIB) $(LIBS)

$(BUILD)/test/clients/cli/%_test: clients/cli/%_test.c $(LIB) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iclients/cli $(CFLAGS) $(WARN) -o $@ $< $(LIB) $(LIBS)

$(BUILD)/test/clients/libparley-client/%_test: \
    clients/libparley-client/%_test.c $(LIB) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIB) $(LIBS)

$(BUILD)/test/common/%_test: common/%_test.c $(LIB) $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -o $@ $< $(LIB) $(LIBS)

unit: $(TESTBINS)
	@tests/unit.sh $(TESTBINS)

# The full suite: installs what is missing, builds, runs unit tests, then
# the integration tests against a real Kafka and PostgreSQL.
test: deps
	@$(MAKE) --no-print-directory all proto-lint web
	@$(MAKE) --no-print-directory fuzz-smoke
	@tests/run.sh

# Random faults against real processes for SOAK_MINUTES (default 30); see
# tests/fault/README.md.
soak: deps all
	tests/fault/fault.sh --long --minutes $(or $(SOAK_MINUTES),30)

integration: all web
	@tests/run.sh --integration-only

# Kubernetes manifests and the Dockerfile, offline (deploy/README.md).
.PHONY: k8s-check
k8s-check:
	@tests/k8s/check.sh

run: deps
	@$(MAKE) --no-print-directory all web
	@deploy/local/run.sh

C_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
lint: $(PB_H)
	clang-tidy-14 --quiet $(filter %.c,$(C_SRCS)) -- $(CPPFLAGS) -std=c11 \
	    $(shell pkg-config --cflags $(PKGS))
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem -Icommon -I$(GEN) \
	    $(filter %.c,$(C_SRCS))

# buf from the npm registry, pinned, kept in the user's cache.
BUF_VERSION = 1.75.0
BUF = $(HOME)/.cache/parley/buf-$(BUF_VERSION)/node_modules/.bin/buf
$(BUF):
	npm install --silent --no-audit --no-fund \
	    --prefix $(HOME)/.cache/parley/buf-$(BUF_VERSION) @bufbuild/buf@$(BUF_VERSION)

# The contract: buf lint, and no breaking change against main's protos.
proto-lint: $(BUF)
	$(BUF) lint proto
	@if git rev-parse -q --verify main >/dev/null; then \
	    $(BUF) breaking proto --against '.git#branch=main,subdir=proto'; fi

format:
	clang-format-14 -i $(C_SRCS)

format-check:
	clang-format-14 --dry-run --Werror $(C_SRCS)

# Unit and integration tests under AddressSanitizer and UBSan.
asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	PARLEY_BUILD=build/asan ASAN_OPTIONS=detect_leaks=1 tests/run.sh

# The web SDK and demo page (clients/web): npm ci from the committed lock
# file, TypeScript generated from proto/ by protoc-gen-es (buf generate),
# the SDK compiled to clients/web/dist, the demo bundled into $(BUILD)/web.
WEB      = clients/web
WEB_SRCS = $(wildcard $(WEB)/src/*.ts $(WEB)/demo/*.ts $(WEB)/demo/*.html \
             $(WEB)/demo/*.css $(WEB)/demo/*.mjs) $(WEB)/buf.gen.yaml \
           $(WEB)/tsconfig.json proto/parley/v1/client.proto
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
$(BUILD)/web/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_SRCS)
	cd $(WEB) && npm run --silent build && node demo/build.mjs $(abspath $(BUILD)/web)
web: $(BUILD)/web/index.html

# The benchmark harness (issue 5): make bench-tools, bench-quick, bench.
include tests/bench/bench.mk

# libFuzzer targets (issue 7): make fuzz-smoke, fuzz FUZZ_SECONDS=N.
include tests/fuzz/fuzz.mk

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

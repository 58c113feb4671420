# CPX — compute-power exchange.
#
#   make            install missing Debian packages, build everything into bin/
#   make run        build, start a private PostgreSQL under var/ and cpxd on https://127.0.0.1:8443
#   make demo       on make run's set-up: two providers, a buyer, orders, delivery, metering, bills,
#                   settlement, then cpx-audit and a summary (cpxd keeps running; `make stop`)
#   make test       build, then unit, database, fuzz-replay and end-to-end tests on a throwaway cluster
#   make SANITIZE=address,undefined test     the same with sanitizers (binaries in build/san-*/bin)
#   make test T='e2e/*'                       only the tests whose names match the pattern
#   make bench-matching | bench-ledger | bench-ledger-db    benchmarks that print numbers
#   make bench-trading [CPX_BENCH_CLIENTS=64 CPX_BENCH_SECONDS=10]  signed orders over HTTPS vs
#                   the machine's Ed25519 verify and PostgreSQL commit rates
#   make bench-delivery [CPX_BENCH_DISPATCHERS=2]  dispatch, acceptance and usage-to-bill rates
#   make fuzz FUZZ=<target> [FUZZ_SECONDS=60] run one libFuzzer target (clang)
#
# Layout of the build: objects under build/<variant>/, binaries in bin/ (or build/<variant>/bin
# for a sanitizer build, so the two never mix). Every component is a static library:
#   matching/*.c -> libcpxmatching.a   (pure C, libc only)
#   ledger/*.c   -> libcpxledger.a     (pure: OpenSSL SHA-256, libsodium, no I/O)
#   server/*.c   -> libcpxserver.a + server/main.c -> bin/cpxd
#   clients/common/*.c -> libcpxclient.a; clients/<tool>/*.c -> bin/<tool>
# Tests: tests/unit/test_*.c, tests/db/test_*.c and tests/integration/test_*.c are one cmocka
# binary each, linked with every library and tests/support/*.c.
# Fuzz targets: tests/fuzz/fuzz_*.c define LLVMFuzzerTestOneInput; `make test` replays their
# committed corpus (tests/fuzz/corpus/<name>/) through a plain driver built with the normal compiler.

SHELL := /bin/sh
.DEFAULT_GOAL := all
comma := ,

SANITIZE ?=
ifeq ($(SANITIZE),)
VARIANT := release
BIN := bin
SANFLAGS :=
else
VARIANT := san-$(subst $(comma),-,$(SANITIZE))
BIN := build/$(VARIANT)/bin
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
B := build/$(VARIANT)

ifeq ($(origin CC),default)
CC := gcc
endif
OPT ?= -O2 -g
WARN := -std=c17 -Wall -Wextra -Werror
CPPFLAGS_ALL := -D_GNU_SOURCE -I. -MMD -MP
PKGS := libmicrohttpd libpq jansson libsodium libcurl openssl
# Evaluated lazily, so that a machine without pkg-config can still run `make deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
CFLAGS_ALL = $(WARN) $(OPT) $(SANFLAGS) -pthread $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) -pthread $(LDFLAGS)
LIBS_ALL = $(PKG_LIBS) -lm

# ---- sources -------------------------------------------------------------------------------
MATCHING_SRC := $(wildcard matching/*.c)
LEDGER_SRC := $(wildcard ledger/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
CLIENT_SRC := $(wildcard clients/common/*.c)
SUPPORT_SRC := $(wildcard tests/support/*.c)
TOOLS := $(notdir $(patsubst %/,%,$(filter-out clients/common/,$(wildcard clients/*/))))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
DB_SRC := $(wildcard tests/db/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)
SCHEMA := $(sort $(wildcard schema/*.sql))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIB_MATCHING := $(B)/libcpxmatching.a
# The tests link a second build of the matching library that checks its invariants after
# every command (MATCHING_CHECK_INVARIANTS); benchmarks and cpxd link the plain one.
LIB_MATCHING_CHECK := $(B)/libcpxmatching-check.a
LIB_LEDGER := $(B)/libcpxledger.a
LIB_SERVER := $(B)/libcpxserver.a
LIB_CLIENT := $(B)/libcpxclient.a
LIB_SUPPORT := $(B)/libcpxtestsupport.a

PROGRAMS := $(BIN)/cpxd $(patsubst %,$(BIN)/%,$(TOOLS))
UNIT_BINS := $(patsubst %.c,$(B)/%,$(UNIT_SRC))
DB_BINS := $(patsubst %.c,$(B)/%,$(DB_SRC))
INTEG_BINS := $(patsubst %.c,$(B)/%,$(INTEG_SRC))
FUZZ_REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(B)/fuzz-replay/%,$(FUZZ_SRC))
BENCH_BINS := $(patsubst bench/bench_%.c,$(BIN)/cpx-bench-%,$(BENCH_SRC))
TEST_BINS := $(UNIT_BINS) $(DB_BINS) $(INTEG_BINS) $(FUZZ_REPLAY_BINS)

# ---- top-level targets ---------------------------------------------------------------------
.PHONY: all deps build build-tests run demo stop test test-unit bench-matching bench-ledger bench-ledger-db \
	bench-trading bench-delivery fuzz clean format \
	format-check

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@scripts/deps.sh

build: $(PROGRAMS) $(BENCH_BINS)

build-tests: build $(TEST_BINS)

run: deps
	@$(MAKE) --no-print-directory build
	@scripts/stop.sh --cpxd-only
	@scripts/run.sh

demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh

stop:
	@scripts/stop.sh

test: deps
	@$(MAKE) --no-print-directory build-tests
	@BIN='$(BIN)' TESTBIN='$(B)' SANITIZE='$(SANITIZE)' T='$(T)' scripts/test.sh

# Only the pure unit tests and fuzz replays: no database, no server.
test-unit: deps
	@$(MAKE) --no-print-directory build-tests
	@BIN='$(BIN)' TESTBIN='$(B)' SANITIZE='$(SANITIZE)' scripts/test.sh --unit-only

bench-matching: deps
	@$(MAKE) --no-print-directory $(BIN)/cpx-bench-matching
	$(BIN)/cpx-bench-matching

bench-ledger: deps
	@$(MAKE) --no-print-directory $(BIN)/cpx-bench-ledger
	$(BIN)/cpx-bench-ledger

# The ledger on a real PostgreSQL: appends by batch size, then cpx-audit over a live cpxd.
bench-ledger-db: deps
	@$(MAKE) --no-print-directory build
	@BIN='$(BIN)' scripts/bench-ledger-db.sh

# Signed POST /v1/orders from N kept-alive HTTPS clients against a private cpxd and PostgreSQL
# (fsync on), next to the machine's raw Ed25519 verification and single-row commit rates.
bench-trading: deps
	@$(MAKE) --no-print-directory build
	@BIN='$(BIN)' scripts/bench-trading.sh

bench-delivery: deps
	@$(MAKE) --no-print-directory build
	@BIN='$(BIN)' scripts/bench-delivery.sh

FUZZ ?=
FUZZ_SECONDS ?= 60
FUZZ_SAN := address,undefined,fuzzer-no-link
FUZZ_B := build/san-address-undefined-fuzzer-no-link
fuzz:
	@test -n "$(FUZZ)" || { echo "usage: make fuzz FUZZ=<name> (one of: $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC)))"; exit 2; }
	@$(MAKE) --no-print-directory CC=clang SANITIZE=$(FUZZ_SAN) $(FUZZ_B)/fuzz/fuzz_$(FUZZ)
	@mkdir -p tests/fuzz/corpus/$(FUZZ)
	$(FUZZ_B)/fuzz/fuzz_$(FUZZ) -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		tests/fuzz/corpus/$(FUZZ)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin

# Objects of test binaries are intermediate files to make; keep them so nothing rebuilds twice.
.SECONDARY:

# ---- rules ---------------------------------------------------------------------------------
$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(B)/obj-check/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -DMATCHING_CHECK_INVARIANTS=1 -c -o $@ $<

$(LIB_MATCHING): $(call obj,$(MATCHING_SRC))
$(LIB_MATCHING_CHECK): $(patsubst %.c,$(B)/obj-check/%.o,$(MATCHING_SRC))
$(LIB_LEDGER): $(call obj,$(LEDGER_SRC))
$(LIB_SERVER): $(call obj,$(SERVER_SRC)) $(B)/obj/migrations.o $(B)/obj/openapi.o
$(LIB_CLIENT): $(call obj,$(CLIENT_SRC))
$(LIB_SUPPORT): $(call obj,$(SUPPORT_SRC))

$(B)/%.a:
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

# The migrations are compiled into cpxd, so the binary carries the schema it expects.
$(B)/migrations.c: $(SCHEMA) scripts/embed-migrations.sh
	@mkdir -p $(@D)
	scripts/embed-migrations.sh $(SCHEMA) > $@

# The API description served at /v1/openapi.json.
$(B)/openapi.c: docs/openapi.json scripts/embed-file.sh
	@mkdir -p $(@D)
	scripts/embed-file.sh cpx_openapi_json docs/openapi.json > $@

$(B)/obj/migrations.o $(B)/obj/openapi.o: $(B)/obj/%.o: $(B)/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BIN)/cpxd: $(B)/obj/server/main.o $(LIB_SERVER) $(LIB_MATCHING) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# A static pattern: only the tools' names, so bin/cpx-bench-* never falls to this rule.
.SECONDEXPANSION:
$(addprefix $(BIN)/,$(TOOLS)): $(BIN)/%: $$(call obj,$$(wildcard clients/$$*/*.c)) $(LIB_CLIENT) \
		$(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# What the benchmarks against a real cpxd share (bench/kit.c: not a benchmark, since it is not
# bench/bench_*.c) is linked into each of them.
BENCH_KIT := $(B)/obj/bench/kit.o
$(BIN)/cpx-bench-%: $(B)/obj/bench/bench_%.o $(BENCH_KIT) $(LIB_SUPPORT) $(LIB_SERVER) \
		$(LIB_CLIENT) $(LIB_MATCHING) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

TEST_LIBS = $(LIB_SUPPORT) $(LIB_SERVER) $(LIB_CLIENT) $(LIB_MATCHING_CHECK) $(LIB_LEDGER)

$(B)/tests/%: $(B)/obj/tests/%.o $(TEST_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) -lcmocka

$(B)/fuzz-replay/%: $(B)/obj/tests/fuzz/%.o $(B)/obj/tests/fuzz/replay_main.o $(TEST_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# The pure cores' tests, fuzz targets and benchmarks link only their own library (and their
# own support files, tests/support/<core>_*.c), so they build whatever state the server is in.
SUPPORT_MATCHING = $(call obj,$(wildcard tests/support/matching_*.c))
SUPPORT_LEDGER = $(call obj,$(wildcard tests/support/ledger_*.c))

$(B)/tests/unit/test_matching%: $(B)/obj/tests/unit/test_matching%.o $(SUPPORT_MATCHING) \
		$(LIB_MATCHING_CHECK)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcmocka

$(B)/fuzz-replay/fuzz_matching%: $(B)/obj/tests/fuzz/fuzz_matching%.o \
		$(B)/obj/tests/fuzz/replay_main.o $(SUPPORT_MATCHING) $(LIB_MATCHING_CHECK)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^

$(BIN)/cpx-bench-matching: $(B)/obj/bench/bench_matching.o $(LIB_MATCHING)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^

$(B)/tests/unit/test_ledger%: $(B)/obj/tests/unit/test_ledger%.o $(SUPPORT_LEDGER) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) -lcmocka

$(B)/fuzz-replay/fuzz_ledger%: $(B)/obj/tests/fuzz/fuzz_ledger%.o \
		$(B)/obj/tests/fuzz/replay_main.o $(SUPPORT_LEDGER) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# The audit tool's tests run $(BIN)/cpx-audit on exports made with the ledger fixtures (and on a
# stand-in exchange): like the ledger's own tests they link only the ledger library.
SUPPORT_AUDIT = $(call obj,$(wildcard tests/support/audit_*.c))
$(B)/tests/integration/test_audit%: $(B)/obj/tests/integration/test_audit%.o $(SUPPORT_LEDGER) \
		$(SUPPORT_AUDIT) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL) -lcmocka

# cpx-audit's export reader: the tool's own objects (all but its main) and what they link.
AUDIT_TOOL_OBJ = $(call obj,$(filter-out clients/cpx-audit/main.c,$(wildcard clients/cpx-audit/*.c)))
$(B)/fuzz-replay/fuzz_audit_export: $(B)/obj/tests/fuzz/fuzz_audit_export.o \
		$(B)/obj/tests/fuzz/replay_main.o $(AUDIT_TOOL_OBJ) $(LIB_CLIENT) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(B)/fuzz/fuzz_audit_export: $(B)/obj/tests/fuzz/fuzz_audit_export.o $(AUDIT_TOOL_OBJ) \
		$(LIB_CLIENT) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LIBS_ALL)

# cpx-provider's pure parts (what it reads from the network), for its fuzz target.
PROVIDER_PURE_OBJ = $(call obj,clients/cpx-provider/envelope.c)
$(B)/fuzz-replay/fuzz_provider_envelope: $(B)/obj/tests/fuzz/fuzz_provider_envelope.o \
		$(B)/obj/tests/fuzz/replay_main.o $(PROVIDER_PURE_OBJ) $(LIB_CLIENT) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

$(B)/fuzz/fuzz_provider_envelope: $(B)/obj/tests/fuzz/fuzz_provider_envelope.o \
		$(PROVIDER_PURE_OBJ) $(LIB_CLIENT) $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LIBS_ALL)

$(BIN)/cpx-bench-ledger: $(B)/obj/bench/bench_ledger.o $(LIB_LEDGER)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ALL)

# A libFuzzer binary: only meaningful in the fuzzer variant built by `make fuzz`.
$(B)/fuzz/%: $(B)/obj/tests/fuzz/%.o $(TEST_LIBS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $^ $(LIBS_ALL)

-include $(shell find build/$(VARIANT) -name '*.d' 2>/dev/null)

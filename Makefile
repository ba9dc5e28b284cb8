# raftq: one Makefile for every binary, test and tool.
#
#   make deps    install the Debian packages the build and tests need (fast when present)
#   make all     release build: build/atm, build/manager, build/broker, build/raftq,
#                the client library build/lib/libraftq.{a,so} and build/examples
#   make install PREFIX=DIR  the client library, its header and raftq.pc
#   make test    ASan+UBSan build in build/asan, then unit, component, integration and deploy tests
#   make deploy-check  validate deploy/ (compose, Dockerfile, Kubernetes) offline
#   make test-ui the status page (/ui) in headless Chromium (installs chromium)
#   make run     a local cluster: build/raftq dev (ARGS="--brokers 4" passes options)
#   make run-atm a local ATM network (see README.md)
#   make chaos   the fault-injection suite on the release build (root; SEED=, DURATION=, TLS=1)
#   make bench   figures, printed (never asserted), beside NATS JetStream and
#                etcd (make bench-deps installs them; make bench runs it)
#   make scale-sim  the managers' load with 100 simulated brokers and 100,000
#                partitions, printed (by hand only: it takes minutes)
#   make fuzz    every libFuzzer harness for FUZZ_SECONDS (default 30) each,
#                built with clang in build/fuzz (installs clang if missing)
#   make fuzz-merge  adds what make fuzz found new to tests/fuzz/corpus/
#   make fmt     clang-format every C file
#   make clean   remove build/

SHELL := /bin/bash
CC ?= cc

# Debian 12 packages. Raft itself is Debian's maintained `raft` 0.22.1
# (Debian 13), built from its source package into build/deps by
# deploy/deps/raft.sh and linked statically; the autotools and liblz4 are
# what that build needs.
DEB_PKGS := libuv1-dev libmicrohttpd-dev libjansson-dev \
            libsqlite3-dev libcmocka-dev libcurl4-openssl-dev nettle-dev \
            zlib1g-dev libgnutls28-dev liblz4-dev pkg-config nftables iproute2 python3 tmux curl \
            openssl autoconf automake libtool make patch xz-utils \
            python3-jsonschema zsh
PKGS := libuv jansson libmicrohttpd sqlite3 libcurl nettle gnutls zlib liblz4

# BUILD is the output directory; SAN=1 builds with AddressSanitizer and
# UndefinedBehaviorSanitizer (make test uses build/asan).
BUILD ?= build
SAN ?= 0
# The release: raftq --version, /healthz and raftq_build_info on every
# process (shared/rq_version.c, the only file built with it).
VERSION := 0.17.0

WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-missing-field-initializers \
        -Wno-format-truncation
CPPFLAGS += -D_GNU_SOURCE -I. -Ishared
ifeq ($(SAN),1)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
       -fno-sanitize-recover=all
else ifeq ($(SAN),fuzz)
# make fuzz: clang, with libFuzzer's coverage instrumentation but not its
# main(), which only the harness binaries link.
OPT := -O1 -g -fno-omit-frame-pointer \
       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
       -Wno-unknown-warning-option
else
OPT := -O2 -g
endif
CFLAGS += $(WARN) $(OPT) -MMD -MP
# libraft in two flavours: the sanitizer build links one built with the
# same sanitizers, so its memory errors are caught too.
RAFT_DIR := build/deps/$(if $(filter 1,$(SAN)),raft-asan,raft)
RAFT_CFLAGS := $(if $(filter 1,$(SAN)),$(OPT),-O2 -g)
RAFT_LIB := $(RAFT_DIR)/lib/libraft.a
LDFLAGS += $(if $(filter 1,$(SAN)),-fsanitize=address$(comma)undefined)
# libraft's segment checksum goes to shared/rq_raftcrc.c (the same CRC,
# eight bytes at a time; see rq_raftcrc.h); -u pulls it from the archive.
LDFLAGS += -Wl,--wrap=byteCrc32 -Wl,-u,__wrap_byteCrc32
LDFLAGS += $(if $(filter fuzz,$(SAN)),-fsanitize=fuzzer$(comma)address$(comma)undefined)
comma := ,
PKG_CFLAGS := -I$(RAFT_DIR)/include $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || \
        echo -luv -ljansson -lmicrohttpd -lsqlite3 -lcurl -lnettle -lgnutls -lz -llz4) -lm

SHARED_SRC := $(wildcard shared/*.c)
SHARED_ASM := $(wildcard shared/*.S)
ATM_MAIN := atm/atm.c
ATM_SRC := $(filter-out $(ATM_MAIN),$(wildcard atm/*.c))
BROKER_MAIN := broker/broker.c
BROKER_SRC := $(filter-out $(BROKER_MAIN),$(wildcard broker/*.c))
MANAGER_MAIN := manager/manager.c
MANAGER_SRC := $(filter-out $(MANAGER_MAIN),$(wildcard manager/*.c))
CLI_MAIN := cli/raftq.c
CLI_SRC := $(filter-out $(CLI_MAIN),$(wildcard cli/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
COMPONENT_SRC := $(wildcard tests/component/test_*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)
# One libFuzzer harness per file; each also links with replay.c (a main()
# that runs it over files) for the corpus replays of make test.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))

obj = $(patsubst %.S,$(BUILD)/obj/%.o,$(patsubst %.c,$(BUILD)/obj/%.o,$(1)))

LIB_SHARED := $(BUILD)/lib/libshared.a
# libraftq, the C client library (libraftq/raftq.h): its own objects,
# position-independent and with every symbol but the API's hidden, so that
# the static and the shared library need libcurl, jansson and pthreads
# alone.
LIBRAFTQ_SRC := $(wildcard libraftq/*.c)
LIBRAFTQ_A := $(BUILD)/lib/libraftq.a
LIBRAFTQ_SO := $(BUILD)/lib/libraftq.so.$(VERSION)
LIBRAFTQ_LIBS := -lcurl -ljansson -lpthread
EXAMPLE_BINS := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
LIB_ATM := $(BUILD)/lib/libatm.a
LIB_BROKER := $(BUILD)/lib/libbroker.a
LIB_MANAGER := $(BUILD)/lib/libmanager.a
LIB_CLI := $(BUILD)/lib/libcli.a
APP_LIBS := $(if $(CLI_SRC),$(LIB_CLI)) $(LIBRAFTQ_A) $(if $(MANAGER_SRC),$(LIB_MANAGER)) $(if $(BROKER_SRC),$(LIB_BROKER)) \
            $(if $(ATM_SRC),$(LIB_ATM)) $(LIB_SHARED) $(RAFT_LIB)

BINS := $(if $(wildcard $(ATM_MAIN)),$(BUILD)/atm) \
        $(if $(wildcard $(BROKER_MAIN)),$(BUILD)/broker) \
        $(if $(wildcard $(MANAGER_MAIN)),$(BUILD)/manager) \
        $(if $(wildcard $(CLI_MAIN)),$(BUILD)/raftq)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
COMPONENT_BINS := $(patsubst tests/component/%.c,$(BUILD)/tests/%,$(COMPONENT_SRC))
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
REPLAY_BINS := $(patsubst %,$(BUILD)/fuzz-replay/fuzz_%,$(FUZZ_NAMES))
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz_%,$(FUZZ_NAMES))

.PHONY: fuzz fuzz-deps fuzz-bins fuzz-merge
.PHONY: raft-lib FORCE
.PHONY: bench-deps
.PHONY: install all deps test test-unit test-integration test-ui chaos test-ui-deps deploy-check run run-atm bench fmt clean check-deps
.DEFAULT_GOAL := all
# Keep object files of test binaries between runs.
.SECONDARY:

all: $(BINS) $(LIBRAFTQ_A) $(LIBRAFTQ_SO) $(EXAMPLE_BINS)

# Installs those of the Debian packages $(2) that are missing, naming the
# target $(1) in what it prints: one dpkg-query each when all is there.
define apt_install
missing=$$(for p in $(2); do \
    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
  done); \
if [ -n "$$missing" ]; then \
  echo "$(1): installing $$missing"; \
  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
  $$SUDO apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || \
    { echo "$(1): apt-get install failed for: $$missing" >&2; exit 1; }; \
fi
endef

# deps installs only what is missing, so it costs one dpkg-query when all is there.
deps:
	@$(call apt_install,deps,$(DEB_PKGS))
	@bash deploy/deps/raft.sh build/deps/raft "-O2 -g"
	@$(MAKE) --no-print-directory SAN=1 raft-lib

# libraft, built once per flavour. raft.sh runs every time and rebuilds only
# when its stamp (version, flags, the patches' hash) differs, since a patch
# added, removed or restored keeps an mtime make cannot judge by.
raft-lib: $(RAFT_LIB)

$(RAFT_LIB): FORCE
	@bash deploy/deps/raft.sh $(RAFT_DIR) "$(RAFT_CFLAGS)"

FORCE:

$(BUILD)/obj/%.o: %.c | $(RAFT_LIB)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/shared/rq_version.o: CPPFLAGS += -DRQ_VERSION='"$(VERSION)"'

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $< (libraftq)"
	@$(CC) $(CPPFLAGS) -Ilibraftq $(CFLAGS) -fPIC -fvisibility=hidden \
	  -DRAFTQ_VERSION='"$(VERSION)"' -c $< -o $@
$(BUILD)/pic/libraftq/client.o: Makefile

$(LIBRAFTQ_A): $(patsubst %.c,$(BUILD)/pic/%.o,$(LIBRAFTQ_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(LIBRAFTQ_SO): $(patsubst %.c,$(BUILD)/pic/%.o,$(LIBRAFTQ_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libraftq.so.0 -o $@ $^ $(LIBRAFTQ_LIBS)

# The examples, built against the static library alone.
$(BUILD)/examples/%: examples/%.c $(LIBRAFTQ_A)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ilibraftq $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBRAFTQ_A) $(LIBRAFTQ_LIBS)
$(BUILD)/obj/shared/rq_version.o: Makefile

$(BUILD)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	@echo "AS $<"
	@$(CC) $(CPPFLAGS) -c $< -o $@

$(LIB_SHARED): $(call obj,$(SHARED_SRC) $(SHARED_ASM))
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(LIB_ATM): $(call obj,$(ATM_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(LIB_BROKER): $(call obj,$(BROKER_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(LIB_MANAGER): $(call obj,$(MANAGER_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(LIB_CLI): $(call obj,$(CLI_SRC))
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/raftq: $(call obj,$(CLI_MAIN)) $(APP_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Files compiled into the manager: the status page (manager/ui/index.html)
# and the OpenAPI document (manager/openapi.json) become byte arrays in
# $(BUILD)/gen/*.h (od and sed only, so a fresh Debian needs nothing more).
# $(1) the generated header, $(2) the array's name.
define embed
	@mkdir -p $(dir $(1))
	@echo "GEN $(1)"
	@{ echo '/* Generated from $< by make: do not edit. */'; \
	  echo 'static const unsigned char $(2)[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/[0-9a-f][0-9a-f]/0x&,/g'; \
	  echo '};'; } > $(1).tmp && mv $(1).tmp $(1)
endef

UI_GEN := $(BUILD)/gen/ui_index.h
OPENAPI_GEN := $(BUILD)/gen/openapi_doc.h

$(UI_GEN): manager/ui/index.html
	$(call embed,$@,ui_index_html)

$(OPENAPI_GEN): manager/openapi.json
	$(call embed,$@,openapi_json)

$(BUILD)/obj/manager/ui.o: $(UI_GEN)
$(BUILD)/obj/manager/openapi.o: $(OPENAPI_GEN)
$(BUILD)/obj/manager/ui.o $(BUILD)/obj/manager/openapi.o: CPPFLAGS += -I$(BUILD)/gen

$(BUILD)/manager: $(call obj,$(MANAGER_MAIN)) $(APP_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/atm: $(call obj,$(ATM_MAIN)) $(APP_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/broker: $(call obj,$(BROKER_MAIN)) $(APP_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(APP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(BUILD)/tests/%: $(BUILD)/obj/tests/component/%.o $(APP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# Benchmarks written in C (make bench runs them from tests/bench/run.sh).
$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(APP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The JetStream driver links libnats, which only bench-deps installs.
$(BUILD)/bench/js_bench: LIBS += -lnats

# The harnesses under gcc and the sanitizers, each with the replay main().
$(BUILD)/fuzz-replay/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o \
                             $(BUILD)/obj/tests/fuzz/replay.o $(APP_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The same harnesses linked with libFuzzer (SAN=fuzz, BUILD=build/fuzz).
$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(APP_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

test-bins: $(BINS) $(LIBRAFTQ_A) $(LIBRAFTQ_SO) $(EXAMPLE_BINS) $(UNIT_BINS) $(COMPONENT_BINS) $(REPLAY_BINS)

fuzz-bins: $(FUZZ_BINS)

# make test: everything under the sanitizers. tests/run.sh prints the closing
# "N passed, N failed, N skipped" line and fails if anything failed.
test: deps
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test-bins
	BUILD=build/asan bash tests/run.sh

# Subsets, for a quicker loop while developing.
test-unit: deps
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test-bins
	BUILD=build/asan ONLY=unit bash tests/run.sh

test-integration: deps
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test-bins
	BUILD=build/asan ONLY=integration bash tests/run.sh

# The deployment files, checked against the binaries' options; the pinned
# validators are installed under build/deploy-check on the first run.
deploy-check: deps
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 $(BINS:$(BUILD)/%=build/asan/%)
	BUILD=build/asan ONLY=deploy bash tests/run.sh

# The status page in headless Chromium against a real cluster. Chromium is
# installed by test-ui-deps alone: make deps and make test never install a
# browser.
UI_TEST_PKGS := chromium

test-ui-deps:
	@$(call apt_install,test-ui-deps,$(UI_TEST_PKGS))

test-ui: deps test-ui-deps
	$(MAKE) --no-print-directory all
	@if python3 tests/ui/test_ui.py --build build; then \
	  echo "test-ui: PASS (screenshots and DOM dumps in build/ui-test/)"; \
	else \
	  echo "test-ui: FAIL (screenshots and DOM dumps in build/ui-test/)"; exit 1; \
	fi

# make run: a local cluster in the foreground (Ctrl-C stops it); the
# ATM network of the earlier milestone is make run-atm.
run: deps
	$(MAKE) --no-print-directory all
	$(BUILD)/raftq dev $(ARGS)

run-atm: deps
	$(MAKE) --no-print-directory all
	bash atm/run-local.sh

# make fuzz: clang and libFuzzer come from fuzz-deps alone, so make deps
# and make test never need clang. Debian 12's clang is clang-14, which only
# recommends libclang-rt-14-dev, the package with libclang_rt.fuzzer.
FUZZ_PKGS := clang libclang-rt-14-dev
FUZZ_SECONDS ?= 30
FUZZ ?= $(FUZZ_NAMES)

fuzz-deps:
	@$(call apt_install,fuzz-deps,$(FUZZ_PKGS))

fuzz: deps fuzz-deps
	$(MAKE) --no-print-directory BUILD=build/fuzz SAN=fuzz CC=clang fuzz-bins
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh fuzz $(FUZZ)

fuzz-merge: deps fuzz-deps
	$(MAKE) --no-print-directory BUILD=build/fuzz SAN=fuzz CC=clang fuzz-bins
	bash tests/fuzz/run.sh merge $(FUZZ)

# make chaos: the fault-injection suite (tests/chaos, DESIGN.md section 13) on
# the release build; SEED= (default: the time, printed) and DURATION= seconds
# of faults; TLS=1 runs every port with TLS 1.3 (--tls). The report goes to
# build/chaos.
DURATION ?= 300
SEED ?=
TLS ?=

chaos: deps
	$(MAKE) --no-print-directory all
	python3 tests/chaos/chaos.py --build build --profile full --duration $(DURATION) \
	  $(if $(SEED),--seed $(SEED)) $(if $(filter 1 yes,$(TLS)),--tls) --out build/chaos

# make bench measures raftq beside a 3-node NATS JetStream and a 3-node etcd
# (tests/bench/peers.py), Debian 12's builds of both: bench-deps installs
# them and libnats-dev (for tests/bench/js_bench.c), so make deps and make
# test never need them.
BENCH_PKGS := nats-server libnats-dev etcd-server etcd-client

bench-deps:
	@$(call apt_install,bench-deps,$(BENCH_PKGS))

bench: deps bench-deps
	$(MAKE) --no-print-directory all $(BENCH_BINS)
	bash tests/bench/run.sh

# make scale-sim: the manager cluster's CPU, memory, store and heartbeat
# round trips with 100 simulated brokers and 100,000 partitions
# (tests/scale/scale_sim.py). Never part of make test: it takes several
# minutes. SCALE_SIM_ARGS passes options, e.g. "--brokers 20 --partitions
# 5000" or "--report delta".
SCALE_SIM_ARGS ?=

.PHONY: scale-sim
scale-sim: deps
	$(MAKE) --no-print-directory all
	python3 tests/scale/scale_sim.py --build build $(SCALE_SIM_ARGS)

# The client library where PREFIX says (default /usr/local): raftq.h,
# libraftq.a, libraftq.so with its links and raftq.pc for pkg-config.
PREFIX ?= /usr/local
install: $(LIBRAFTQ_A) $(LIBRAFTQ_SO)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 libraftq/raftq.h $(DESTDIR)$(PREFIX)/include/raftq.h
	install -m 644 $(LIBRAFTQ_A) $(DESTDIR)$(PREFIX)/lib/libraftq.a
	install -m 755 $(LIBRAFTQ_SO) $(DESTDIR)$(PREFIX)/lib/libraftq.so.$(VERSION)
	ln -sf libraftq.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libraftq.so.0
	ln -sf libraftq.so.0 $(DESTDIR)$(PREFIX)/lib/libraftq.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  libraftq/raftq.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/raftq.pc

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

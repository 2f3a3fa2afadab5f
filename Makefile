# webproxyd: build, run and test. `make help` lists the targets.
# Build output goes to $(BUILD) (build/ by default), never into the sources.

PREFIX	?= /usr/local
DESTDIR	?=
BUILD	?= build
CC	?= cc
SAN	?=

PKGS	 = libmicrohttpd libcurl jansson libcyaml libsodium yaml-0.1
CSTD	 = -std=c11 -D_GNU_SOURCE
WARN	 = -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
	   -Wmissing-prototypes -Wmissing-declarations -Wold-style-definition \
	   -Wpointer-arith -Wcast-qual -Wcast-align -Wwrite-strings -Wundef \
	   -Wvla -Wnull-dereference -Wimplicit-fallthrough -Wswitch-enum \
	   -Wnested-externs -Wredundant-decls -Wconversion -Wno-sign-conversion \
	   -Werror
ifeq ($(SAN),1)
OPT	 = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=all
LDSAN	 = -fsanitize=address,undefined
else ifeq ($(SAN),fuzz)
# make fuzz: clang with libFuzzer's hooks, ASan and UBSan. clang warns
# where gcc does not (FUZZ_LAX): shown, but fatal only in test/fuzz/.
OPT	 = -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	   -fno-omit-frame-pointer -fno-sanitize-recover=all $(FUZZ_LAX)
LDSAN	 = -fsanitize=fuzzer,address,undefined
FUZZ_LAX = -Wno-error=cast-align -Wno-error=format-nonliteral \
	   -Wno-error=string-conversion
else
OPT	 = -O2 -g -D_FORTIFY_SOURCE=3 -fstack-protector-strong
LDSAN	 =
endif
CFLAGS	+= $(CSTD) $(WARN) $(OPT) -fno-common -fPIE -MMD -MP -Ishared -Imaster -Iworker \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS	+= $(LDSAN) -pie -Wl,-z,relro,-z,now
LDLIBS	+= $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

SHARED_SRC = $(wildcard shared/*.c)
MASTER_SRC = $(wildcard master/*.c)
WORKER_SRC = $(wildcard worker/*.c)
LIB_OBJ	   = $(patsubst %.c,$(BUILD)/%.o,$(SHARED_SRC) $(WORKER_SRC) \
	     $(filter-out master/main.c,$(MASTER_SRC)))
MAIN_OBJ   = $(BUILD)/master/main.o
UNIT_SRC   = $(wildcard test/unit/t_*.c)
UNIT_BIN   = $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRC))
# Fuzz targets (test/fuzz/README.md); each also runs with the unit tests
# as t_fuzz_<name>, replaying its seed corpus and regression inputs.
FUZZ_SRC   = $(wildcard test/fuzz/fz_*.c)
FUZZ_NAMES = $(patsubst test/fuzz/fz_%.c,%,$(FUZZ_SRC))
UNIT_BIN  += $(patsubst %,$(BUILD)/test/t_fuzz_%,$(FUZZ_NAMES))
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FAKE_SRC   = $(wildcard test/fake/*.c)
FAKE_BIN   = $(BUILD)/fakegrok
BENCH_SRC  = $(wildcard test/bench/*.c)
BENCH_BIN  = $(BUILD)/bench/wpload $(BUILD)/bench/wpready $(BUILD)/bench/wptok

# Debian packages the daemon needs to build and run, and the tests need.
DEB_BUILD = build-essential pkg-config libmicrohttpd-dev libcurl4-openssl-dev \
	    libjansson-dev libcyaml-dev libyaml-dev libsodium-dev
DEB_TEST  = $(DEB_BUILD) nodejs npm mandoc procps curl chromium \
	    fonts-wqy-microhei
DEB_FUZZ  = clang libclang-rt-14-dev

.PHONY: all run demo test check asan fuzz fuzz-smoke bench install clean \
	lint help deps deps-test man-lint

all: $(BUILD)/webproxyd $(FAKE_BIN)

help:
	@echo "make            build $(BUILD)/webproxyd"
	@echo "make run        install what is missing, build, run in the foreground"
	@echo "make demo       try it without an account: a fake grok.com, one curl line"
	@echo "make test       install what is missing, build, run every test"
	@echo "make check      unit tests only"
	@echo "make asan       every test under ASan+UBSan"
	@echo "make fuzz       each fuzz target for FUZZ_SECONDS (fuzz-smoke: 5)"
	@echo "make bench      benchmark against nginx and the direct floor"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"
	@echo "make lint       clang-format check, man page lint"

$(BUILD)/webproxyd: $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/test/%: $(BUILD)/test/unit/%.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A fuzz target with replay.c's main (make test), or with libFuzzer's
# (make fuzz, in build/fuzz).
$(BUILD)/test/t_fuzz_%: $(BUILD)/test/fuzz/fz_%.o $(BUILD)/test/fuzz/fuzz.o \
    $(BUILD)/test/fuzz/replay.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/fuzz/replay.o: CFLAGS += -DFUZZ_DIR='"$(CURDIR)/test/fuzz"'
$(BUILD)/test/fuzz/%.o: FUZZ_LAX =

$(BUILD)/fz_%: $(BUILD)/test/fuzz/fz_%.o $(BUILD)/test/fuzz/fuzz.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(FAKE_BIN): $(patsubst %.c,$(BUILD)/%.o,$(FAKE_SRC)) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The admin panel's files are built into this object (.incbin).
$(BUILD)/worker/adm_www.o: $(wildcard www/*)

# The benchmark's tools: the load generator and the start-up timer need
# only libc; the token-pool timer links the shared objects.
$(BUILD)/bench/wpload: $(BUILD)/test/bench/wpload.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/bench/wpready: $(BUILD)/test/bench/wpready.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

$(BUILD)/bench/wptok: $(BUILD)/test/bench/wptok.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@sh test/deps.sh $(DEB_BUILD)

deps-test:
	@sh test/deps.sh $(DEB_TEST)

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/webproxyd
	@mkdir -p var
	$(BUILD)/webproxyd -f -c conf/config.yaml

demo: deps
	@$(MAKE) --no-print-directory all
	@sh test/demo.sh $(BUILD)

check: $(UNIT_BIN)
	@sh test/run.sh unit $(BUILD)

test: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(BENCH_BIN)
	@sh test/run.sh all $(BUILD)

# Sanitizer reports go to files, one per process (log_path), because a
# worker's stderr is only the daemon's log: run.sh shows each one and
# counts it as a failure. UBSan ignores log_path next to ASan: lib.mjs
# copies its reports there from the daemons' and the fake's logs.
SAN_REPORTS = $(CURDIR)/build/asan/reports

asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 all \
	    $(patsubst $(BUILD)/%,build/asan/%,$(UNIT_BIN) $(BENCH_BIN))
	@rm -rf $(SAN_REPORTS) && mkdir -p $(SAN_REPORTS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$(SAN_REPORTS)/asan \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(SAN_REPORTS)/ubsan \
	    WEBPROXYD_SAN_REPORTS=$(SAN_REPORTS) sh test/run.sh all build/asan

# Each fuzz target for FUZZ_SECONDS with its seed corpus and dictionary;
# new inputs and crashes go to build/fuzz. test/fuzz/README.md.
fuzz:
	@sh test/deps.sh $(DEB_BUILD) $(DEB_FUZZ)
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang SAN=fuzz \
	    $(patsubst %,build/fuzz/fz_%,$(FUZZ_TARGETS))
	@sh test/fuzz/run.sh build/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5

# The figures of issue 6 beside nginx and the direct floor, on loopback;
# the table goes to $(BUILD)/bench/results.md. test/bench/README.md.
bench: deps-test
	@sh test/deps.sh nginx
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@node test/bench/bench.mjs --build $(BUILD)

lint: man-lint
	clang-format --dry-run --Werror $(SHARED_SRC) $(MASTER_SRC) \
	    $(WORKER_SRC) $(wildcard shared/*.h master/*.h worker/*.h) \
	    $(UNIT_SRC) $(FAKE_SRC) $(BENCH_SRC) $(wildcard test/fuzz/*.[ch])

man-lint:
	mandoc -Tlint -Wwarning man/webproxyd.8 man/webproxyd.yaml.5

# The installed binary looks for /etc/webproxyd/config.yaml by default.
$(BUILD)/install/main.o: master/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DWP_DEFAULT_CONFIG='"/etc/webproxyd/config.yaml"' \
	    -c -o $@ $<

$(BUILD)/install/webproxyd: $(BUILD)/install/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

install: $(BUILD)/install/webproxyd
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 \
	    $(DESTDIR)$(PREFIX)/share/webproxyd/www \
	    $(DESTDIR)/etc/webproxyd $(DESTDIR)/lib/systemd/system
	install -m 0755 $(BUILD)/install/webproxyd \
	    $(DESTDIR)$(PREFIX)/sbin/webproxyd
	install -m 0644 man/webproxyd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 man/webproxyd.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	[ ! -d www ] || cp -R www/. $(DESTDIR)$(PREFIX)/share/webproxyd/www/
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' conf/webproxyd.service \
	    > $(DESTDIR)/lib/systemd/system/webproxyd.service
	test -e $(DESTDIR)/etc/webproxyd/config.yaml || \
	    sed -e 's|^\(  data_dir:\).*|\1 "/var/lib/webproxyd"|' \
	    conf/config.yaml > $(DESTDIR)/etc/webproxyd/config.yaml
	chmod 0640 $(DESTDIR)/etc/webproxyd/config.yaml
	@# The service runs as user webproxyd: it must be able to read the
	@# config (which holds the API keys) and no one else.
	if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
	    getent passwd webproxyd >/dev/null || useradd --system \
	        --user-group --no-create-home --shell /usr/sbin/nologin \
	        webproxyd; \
	    chgrp webproxyd /etc/webproxyd/config.yaml; \
	fi

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

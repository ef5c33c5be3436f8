# p2pdial: make, make check, make install (PREFIX, DESTDIR). No configure step.
# O is where objects and bin/ go: "." normally, "san" for the sanitizer build.
PREFIX   = /usr/local
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man
O        = .
VERSION  = 0.9.0
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Wshadow
CFLAGS  += -Wno-unused-parameter -Wno-format-truncation
CFLAGS  += $(if $(CI),-Werror) $(XCFLAGS)
LDFLAGS += $(XCFLAGS)
CPPFLAGS += -Ilib
LDLIBS   = -lbsd
# portmap.c: NAT-PMP and UPnP IGD clients, the latter in a thread.
LDLIBS  += -lnatpmp -lminiupnpc -pthread
# noise.c, key.c: p2pseal's primitives, all of them libsodium's.
LDLIBS  += -lsodium
# cluster.c: rvd -r, front ends sharing names through Redis.
LDLIBS  += -lhiredis

TOOLS   = rvd relayd rvinvite rvlisten dialdirect dialport dialproxy p2pcatch relaycat \
	  p2pkey p2pseal dialpunch
SCRIPTS = p2pdial p2plisten
LIBOBJ  = $(patsubst %.c,$(O)/%.o,$(wildcard lib/*.c))
LIB     = $(O)/lib/libp2p.a
BINS    = $(TOOLS:%=$(O)/bin/%) $(SCRIPTS:%=$(O)/bin/%)
MAN     = $(wildcard man/*.[1-9])

all: $(BINS) $(O)/t/unit $(O)/t/noise $(O)/t/relaypairs $(O)/bench/relaybench

$(O)/lib/%.o: lib/%.c lib/p2p.h
	@mkdir -p $(O)/lib
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The version lives here alone: the tools print it for -V, the scripts too.
$(O)/lib/version.o: CPPFLAGS += -DP2P_VERSION='"$(VERSION)"'
$(O)/lib/version.o: Makefile

$(LIB): $(LIBOBJ)
	$(AR) rcs $@ $(LIBOBJ)

$(O)/bin/%: cmd/%/main.c $(LIB)
	@mkdir -p $(O)/bin
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(SCRIPTS:%=$(O)/bin/%): $(O)/bin/%: cmd/%/script.sh Makefile
	@mkdir -p $(O)/bin
	sed 's/@VERSION@/$(VERSION)/g' $< > $@
	chmod +x $@

$(O)/t/unit: t/unit.c $(LIB)
	@mkdir -p $(O)/t
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ t/unit.c $(LIB) $(LDLIBS)

$(O)/t/noise: t/noise.c $(LIB)
	@mkdir -p $(O)/t
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ t/noise.c $(LIB) $(LDLIBS)

$(O)/t/relaypairs: t/relaypairs.c $(LIB)
	@mkdir -p $(O)/t
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ t/relaypairs.c $(LIB) $(LDLIBS)

$(O)/bench/relaybench: bench/relaybench.c $(LIB)
	@mkdir -p $(O)/bench
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -pthread -o $@ bench/relaybench.c $(LIB) $(LDLIBS)

# The tests run against a build with AddressSanitizer and UBSan, so that a
# memory error anywhere in a scenario fails it.
SAN = -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

deps:
	sh .ci/deps

# The test files run TESTJOBS at a time (GNU parallel), each in a lab of its
# own: they mostly wait on the network, not on the CPU. The tests of one file
# share its lab, so they run in turn. The slowest files start first; the TAP
# output keeps file order. TESTJOBS=1 runs them one by one.
TESTJOBS = 2
SLOWTESTS = unit rungs attack portmap matrix seal fuzz punch reach
TESTS   = $(filter $(wildcard t/*.bats),$(SLOWTESTS:%=t/%.bats)) \
	  $(filter-out $(SLOWTESTS:%=t/%.bats),$(wildcard t/*.bats))

# check installs nothing: the README's command runs .ci/deps first.
check:
	$(MAKE) all
	$(MAKE) O=san XCFLAGS="$(SAN)" all
	mandoc -Tlint -Wwarning $(MAN)
	@echo "== benchmark smoke runs (tiny sizes; the figures mean nothing here)"
	RVD=$(CURDIR)/san/bin/rvd bench/rvd --quick
	P2P_BIN=$(CURDIR)/san/bin bench/connect --quick
	RELAYD=$(CURDIR)/san/bin/relayd bench/relay --quick
	@echo "== tests"
	{ P2P_BIN=$(CURDIR)/san/bin P2P_UNIT=$(CURDIR)/san/t/unit \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	  bats $(if $(filter-out 1,$(TESTJOBS)),--jobs $(TESTJOBS) --no-parallelize-within-files) \
	  --print-output-on-failure $(TESTS); echo $$? > san/bats.rc; } | tee san/bats.tap
	@ok=$$(grep -c '^ok ' san/bats.tap); skip=$$(grep -c '^ok .* # skip' san/bats.tap); \
	echo "tests: $$((ok - skip)) passed, $$(grep -c '^not ok ' san/bats.tap) failed, $$skip skipped"; \
	exit $$(cat san/bats.rc)

# The benchmarks: each prints its figures and a ratio against a peer
# (bench/rvd --cluster and --hostile are modes of their own: see bench/rvd).
bench: all
	bench/connect
	bench/rvd
	bench/relay
	bench/seal
	bench/portmap

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	cp $(BINS) $(DESTDIR)$(BINDIR)/
	for m in $(MAN); do s=$${m##*.}; cp $$m $(DESTDIR)$(MANDIR)/man$$s/; done

# Fuzz every parser for a minute each (make check runs a short round).
fuzz:
	t/fuzz/run 60

demo:
	sh etc/demo

clean:
	rm -rf lib/*.o lib/*.a bin t/unit t/noise t/relaypairs bench/relaybench san t/fuzz/out

.PHONY: all check bench fuzz install demo deps clean

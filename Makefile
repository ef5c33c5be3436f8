# p2pdial: make, make check, make install (PREFIX, DESTDIR). No configure step.
PREFIX   = /usr/local
BINDIR   = $(PREFIX)/bin
MANDIR   = $(PREFIX)/share/man
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS  += $(if $(CI),-Werror)
CPPFLAGS += -Ilib
LDLIBS   = -lbsd

TOOLS   = rvd relayd rvinvite rvlisten dialdirect p2pcatch relaycat
SCRIPTS = p2pdial p2plisten
LIBSRC  = $(wildcard lib/*.c)
LIBOBJ  = $(LIBSRC:.c=.o)
BINS    = $(TOOLS:%=bin/%) $(SCRIPTS:%=bin/%)
MAN     = $(wildcard man/*.[1-9])

all: $(BINS)

lib/libp2p.a: $(LIBOBJ)
	$(AR) rcs $@ $(LIBOBJ)

$(LIBOBJ): lib/p2p.h

bin/%: cmd/%/main.c lib/libp2p.a lib/p2p.h
	@mkdir -p bin
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< lib/libp2p.a $(LDLIBS)

$(SCRIPTS:%=bin/%): bin/%: cmd/%/script.sh
	@mkdir -p bin
	cp $< $@
	chmod +x $@

# The tests run against a build with AddressSanitizer and UBSan, so that a
# memory error anywhere in a scenario fails it.
SANFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
san:
	$(MAKE) clean-obj
	$(MAKE) all CFLAGS="$(SANFLAGS)" LDFLAGS="-fsanitize=address,undefined"

deps:
	sh .ci/deps

check: deps
	$(MAKE) all
	mandoc -Tlint -Wwarning $(MAN)
	bats --print-output-on-failure t/

check-asan: deps san
	ASAN_OPTIONS=detect_leaks=0 bats --print-output-on-failure t/

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	cp $(BINS) $(DESTDIR)$(BINDIR)/
	for m in $(MAN); do s=$${m##*.}; cp $$m $(DESTDIR)$(MANDIR)/man$$s/; done

demo: deps all
	sh etc/demo

clean-obj:
	rm -f lib/*.o lib/libp2p.a
	rm -rf bin

clean: clean-obj

.PHONY: all check check-asan install demo deps san clean clean-obj

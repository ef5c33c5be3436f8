#!/usr/bin/env bats
# Fuzzing, briefly: each libFuzzer harness in t/fuzz/ builds (clang, with
# ASan and UBSan), replays every crash ever found (t/fuzz/regress/), and
# survives a second of fuzzing from its seed corpus. `make fuzz` fuzzes
# each for a minute. No root, no network.

bats_require_minimum_version 1.5.0

# Every harness, by name; a new t/fuzz/NAME.c must be listed here (a test
# below checks), so that none is left out without anyone noticing.
HARNESSES="fdline handshake hs proxy relayd rvcmd rvd seal ticket"

setup_file() {
	export FUZZ=$BATS_TEST_DIRNAME/fuzz
}

# fuzz NAME: a second of fuzzing for NAME from its seed corpus (the test
# above replays the regression inputs).
fuzz() {
	FUZZ_REPLAY=0 run "$FUZZ/run" 1 "$1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"fuzz: no crash in: $1"* ]]
}

@test "clang with libFuzzer is installed" {
	command -v "${FUZZ_CC:-clang}" ||
		{ echo "clang not found: the fuzz harnesses need clang with libFuzzer" \
			"(Debian: apt-get install clang libclang-rt-dev)"; false; }
	echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' \
		> "$BATS_TEST_TMPDIR/t.c"
	"${FUZZ_CC:-clang}" -fsanitize=fuzzer,address,undefined \
		-o "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/t.c" ||
		{ echo "clang cannot link -fsanitize=fuzzer: install libclang-rt-dev"; false; }
}

@test "every harness in t/fuzz/ is run here" {
	have=$(cd "$FUZZ" && ls *.c | sed 's/\.c$//' | sort | tr '\n' ' ')
	[ "$have" = "$(echo $HARNESSES | tr ' ' '\n' | sort | tr '\n' ' ')" ] ||
		{ echo "harnesses: $have; tested: $HARNESSES"; false; }
}

@test "the harnesses build and every regression input replays cleanly" {
	run "$FUZZ/run" 0
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "fuzz the ticket parser" { fuzz ticket; }
@test "fuzz rvd's line parsers (linebuf, rvcmd_parse)" { fuzz rvcmd; }
@test "fuzz rvd itself, clients through its event loop" { fuzz rvd; }
@test "fuzz relayd's first line and splice, through its event loop" { fuzz relayd; }
@test "fuzz the proxy reply and URL parsers, and proxy_tunnel" { fuzz proxy; }
@test "fuzz the direct connection handshake (hs_read)" { fuzz handshake; }
@test "fuzz the handshake's state machine at every end (dialer, invitee, inviter)" { fuzz hs; }
@test "fuzz the line that comes with a passed fd (conninfo_parse)" { fuzz fdline; }
@test "fuzz p2pseal's handshake at both ends, seal_peek and seal_in" { fuzz seal; }

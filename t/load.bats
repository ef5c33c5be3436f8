#!/usr/bin/env bats
# Load: 5000 connections to rvd on loopback, half of them garbage, over-long,
# slowloris or silent, while 200 pairs of good peers log on and invite; every
# good invitation must complete within 10 s, rvd's memory must stay bounded,
# and rvd must serve a fresh client afterwards. Bounded in count and time
# (t/load.c gives up after 40 s); no root, no namespaces.

bats_require_minimum_version 1.5.0

CONNS=5000
PAIRS=200
RSS_MAX_KB=$((64 * 1024))	# rvd's peak resident memory under the load

setup_file() {
	local top=$BATS_TEST_DIRNAME/..
	# The plain build: its memory is what a deployed rvd uses (ASan's
	# shadow and quarantine would swamp the figure); a second test below
	# runs the sanitizer build, when make check gives one, for errors.
	[ -x "$top/bin/rvd" ] && [ -f "$top/lib/libp2p.a" ] ||
		make -s -C "$top" all >&2
	cc -std=c17 -D_GNU_SOURCE -O2 -I"$top/lib" -o "$BATS_FILE_TMPDIR/load" \
		"$BATS_TEST_DIRNAME/load.c" "$top/lib/libp2p.a" -lbsd >&2
}

setup() {
	# Each process holds every connection: CONNS + 2 PAIRS, and some slack.
	local need=$((CONNS + 2 * PAIRS + 200))
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || :
	[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] || {
		echo "the fd limit is $(ulimit -n) (hard $(ulimit -Hn)); this test needs $need"
		return 1
	}
	RVD_PID=
}

teardown() {
	[ -z "$RVD_PID" ] || { kill "$RVD_PID" 2>/dev/null; wait "$RVD_PID" 2>/dev/null; } || :
}

# start_rvd RVD: rvd on a free loopback port, waiting for its readiness
# line; sets PORT, RVD_PID and RVD_LOG.
start_rvd() {
	local try i
	RVD_LOG=$BATS_TEST_TMPDIR/rvd.log
	for try in 1 2 3 4 5; do
		PORT=$((10000 + RANDOM % 22000))
		: > "$BATS_TEST_TMPDIR/ready"
		"$1" -o -c 100000 -d 3 "127.0.0.1:$PORT" 3> "$BATS_TEST_TMPDIR/ready" \
			2> "$RVD_LOG" &
		RVD_PID=$!
		for i in $(seq 50); do
			[ -s "$BATS_TEST_TMPDIR/ready" ] && return 0
			kill -0 "$RVD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill "$RVD_PID" 2>/dev/null; wait "$RVD_PID" 2>/dev/null
		RVD_PID=
	done
	echo "rvd did not start:"; cat "$RVD_LOG"; return 1
}

# kb FIELD: rvd's VmRSS or VmHWM (peak) in KiB.
kb() {
	awk -v f="$1:" '$1 == f { print $2 }' "/proc/$RVD_PID/status"
}

# load ARGS...: the load client against our rvd, within a hard time limit.
load_run() {
	run timeout 50 "$BATS_FILE_TMPDIR/load" "$@" "127.0.0.1:$PORT"
	echo "$output"
	sed 's/^/# /' <<< "$output" >&3
	[ "$status" -eq 0 ]
}

# serves: rvd is alive, and a fresh pair logs on and completes an invitation.
serves() {
	kill -0 "$RVD_PID" || { echo "rvd died"; cat "$RVD_LOG"; return 1; }
	run timeout 10 "$BATS_FILE_TMPDIR/load" -n 0 -m 1 -t 5 -T 8 "127.0.0.1:$PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"invitations completed: 1 of 1"* ]]
}

@test "rvd under load: every good invitation completes, memory stays bounded" {
	start_rvd "${LOAD_RVD:-$BATS_TEST_DIRNAME/../bin/rvd}"
	rss0=$(kb VmRSS)
	start=$SECONDS
	load_run -n "$CONNS" -m "$PAIRS" -t 10 -T 40
	rss1=$(kb VmRSS) hwm1=$(kb VmHWM)
	# Again: a second crowd must not cost much more than the first.
	load_run -n "$CONNS" -m "$PAIRS" -t 10 -T 40
	rss2=$(kb VmRSS) hwm2=$(kb VmHWM)
	echo "# rvd RSS: ${rss0} KiB before, ${rss1} KiB after one load (peak" \
		"${hwm1} KiB), ${rss2} KiB after two (peak ${hwm2} KiB); $((SECONDS - start)) s" >&3
	[ "$hwm2" -lt "$RSS_MAX_KB" ] ||
		{ echo "rvd's peak RSS ${hwm2} KiB is over $RSS_MAX_KB KiB"; false; }
	[ "$hwm2" -lt $((hwm1 + 4096)) ] ||
		{ echo "rvd grew from ${hwm1} to ${hwm2} KiB on a second load"; false; }
	serves
	grep -q "listening on 127.0.0.1:$PORT" "$RVD_LOG"
}

@test "rvd under load, sanitizer build: no memory error" {
	local san=${P2P_BIN:-}
	if [ -z "$san" ] || [ "$san/rvd" -ef "$BATS_TEST_DIRNAME/../bin/rvd" ] ||
	    ! [ -x "$san/rvd" ]; then
		san=$BATS_TEST_DIRNAME/../san/bin
		[ -x "$san/rvd" ] || skip "no sanitizer build (make check makes one in san/)"
	fi
	start_rvd "$san/rvd"
	load_run -n "$CONNS" -m "$PAIRS" -t 10 -T 40
	echo "# rvd (ASan) RSS peak $(kb VmHWM) KiB" >&3
	serves
	kill "$RVD_PID"; wait "$RVD_PID" || :
	RVD_PID=
	! grep -E -A20 "AddressSanitizer|runtime error:|LeakSanitizer" "$RVD_LOG"
}

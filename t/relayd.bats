#!/usr/bin/env bats
# relayd on loopback: many concurrent pairs checked byte for byte (by
# t/relaypairs), every way a client can misbehave, limits, expiry, a peer
# vanishing, no descriptor leaks, and SIGTERM. No root, no namespaces. Every
# wait is short and explicit; the file takes about 15 s.

bats_require_minimum_version 1.5.0

# P2P_BIN and P2P_UNIT name the build under test (make check sets them to the
# sanitizer build); relaypairs is built next to t/unit.
setup_file() {
	local top=$BATS_TEST_DIRNAME/..
	if [ -z "${P2P_UNIT:-}" ]; then
		make -s -C "$top" all >&2
		RP=$BATS_TEST_DIRNAME/relaypairs
	else
		RP=$(dirname "$P2P_UNIT")/relaypairs
	fi
	if ! [ -x "$RP" ]; then	# a Makefile without the rule for it yet
		RP=$BATS_FILE_TMPDIR/relaypairs
		cc -O2 -std=c17 -D_GNU_SOURCE -I"$top/lib" -o "$RP" \
		    "$BATS_TEST_DIRNAME/relaypairs.c" "$top/lib/libp2p.a" -lbsd >&2
	fi
	export RP
	export PATH="${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}:$PATH"
	# The relayd most tests share: unjoined sessions expire after 2 s.
	start_relayd -e 2
	export MAIN_PID=$RELAYD_PID MAIN_PORT=$PORT MAIN_LOG=$RELAYD_LOG
	export MAIN_FDS=$(fds "$MAIN_PID") MAIN_SOCKS=$(socks "$MAIN_PID")
}

teardown_file() {
	[ -z "${MAIN_PID:-}" ] || kill "$MAIN_PID" 2>/dev/null || :
}

setup() {
	PATH="${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}:$PATH"
	PORT=$MAIN_PORT RELAYD_PID=$MAIN_PID RELAYD_LOG=$MAIN_LOG
	OWN_PID= HOLD_PID= FLOOD_PIDS=
}

teardown() {
	local p
	for p in $HOLD_PID $FLOOD_PIDS $OWN_PID; do
		{ kill -KILL "$p"; wait "$p"; } 2>/dev/null || :
	done
}

# start_relayd ARGS...: relayd on a fresh loopback port, waiting (at most
# 5 s) for its readiness line; sets PORT, RELAYD_PID, RELAYD_LOG.
start_relayd() {
	local try i ready=$BATS_FILE_TMPDIR/ready.$$.$RANDOM
	for try in 1 2 3 4 5; do
		PORT=$((10000 + RANDOM % 22000))
		RELAYD_LOG=$BATS_FILE_TMPDIR/relayd.$PORT.log
		: > "$ready"
		relayd -v -d 3 "$@" "127.0.0.1:$PORT" 3> "$ready" \
		    </dev/null >/dev/null 2> "$RELAYD_LOG" &
		RELAYD_PID=$!
		for i in $(seq 50); do
			[ -s "$ready" ] && return 0
			kill -0 "$RELAYD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill "$RELAYD_PID" 2>/dev/null; wait "$RELAYD_PID" 2>/dev/null || :
	done
	echo "relayd did not start:"; cat "$RELAYD_LOG"; return 1
}

# fds PID: how many descriptors the process holds.
fds() {
	ls "/proc/$1/fd" | wc -l
}

# socks PID: how many sockets PID holds (not its spare pipes, which an
# earlier test's transfers may have left in its pool for up to a while).
socks() {
	find "/proc/$1/fd" -lname 'socket:*' | wc -l
}

# fds_back PID WANT: the count settles back to WANT within 3 s.
fds_back() {
	local i n
	for i in $(seq 30); do
		n=$(fds "$1")
		[ "$n" -eq "$2" ] && return 0
		sleep 0.1
	done
	echo "relayd holds $n descriptors, $2 before:"; ls -l "/proc/$1/fd"
	return 1
}

# pairs ARGS...: relaypairs against $PORT, bounded; shows its output.
pairs() {
	run timeout 30 "$RP" "$@" "127.0.0.1:$PORT"
	echo "$output"
	[ "$status" -eq 0 ]
}

# serves: relayd is alive and relays 10 fresh pairs (5 at a time, within
# the unjoined sessions one address may hold even under -n 50).
serves() {
	kill -0 "$RELAYD_PID" || { echo "relayd died"; cat "$RELAYD_LOG"; return 1; }
	pairs -n 10 -c 5 -b 64K -t 10
	[[ "$output" == *"checked 10 failed 0"* ]]
}

# conn VAR: a new connection to relayd, its fd number in VAR.
conn() {
	local -n _fd=$1
	exec {_fd}<>"/dev/tcp/127.0.0.1/$PORT"
}

# expect FD LINE [SECS]: the next line on FD is LINE.
expect() {
	local line=
	IFS= read -r -t "${3:-3}" line <&"$1" || :
	[ "$line" = "$2" ] || { echo "fd $1: got '$line', not '$2'"; return 1; }
}

# expect_eof FD [SECS]: relayd closed FD (end of file, not a timeout).
expect_eof() {
	local line= rc=0
	IFS= read -r -t "${2:-3}" line <&"$1" || rc=$?
	[ "$rc" -eq 1 ] && [ -z "$line" ] ||
		{ echo "fd $1: no EOF (status $rc, '$line')"; return 1; }
}

# new FD: send NEW on FD and read the session id into SID.
new() {
	printf 'NEW\n' >&"$1"
	IFS= read -r -t 3 SID <&"$1" || :
	[[ "$SID" =~ ^SESSION\ [0-9a-f]{32}$ ]] || { echo "NEW: got '$SID'"; return 1; }
	SID=${SID#SESSION }
}

# hold ARGS...: relaypairs -w in the background on a fifo (its -t bounds
# it); waits until all its pairs are paired. release lets them send and
# returns its status.
hold() {
	local i
	HOLD_OUT=$BATS_TEST_TMPDIR/hold.out
	mkfifo "$BATS_TEST_TMPDIR/hold.in"
	"$RP" -w "$@" "127.0.0.1:$PORT" \
	    <"$BATS_TEST_TMPDIR/hold.in" >"$HOLD_OUT" 2>&1 3>&- &
	HOLD_PID=$!
	exec {HOLD_FD}>"$BATS_TEST_TMPDIR/hold.in"
	for i in $(seq 100); do
		grep -q '^paired' "$HOLD_OUT" && { cat "$HOLD_OUT"; return 0; }
		kill -0 "$HOLD_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "relaypairs -w did not pair:"; cat "$HOLD_OUT"; return 1
}

# release: sets output to what relaypairs printed.
release() {
	local rc=0
	exec {HOLD_FD}>&-
	wait "$HOLD_PID" || rc=$?
	HOLD_PID=
	output=$(cat "$HOLD_OUT")
	echo "$output"
	return "$rc"
}

# flood NAME ARGS...: relaypairs -u (NEW sides only) in the background on a
# fifo, holding its unjoined sessions until `unflood NAME`; waits for its
# count line and puts it in FLOOD ("unjoined N refused M").
flood() {
	local name=$1 i fd out=$BATS_TEST_TMPDIR/flood.$1.out
	shift
	mkfifo "$BATS_TEST_TMPDIR/flood.$name.in"
	# Without the other holders' fifo ends, which would keep them waiting.
	(
		for fd in /proc/$BASHPID/fd/*; do
			fd=${fd##*/}
			[ "$fd" -le 2 ] || eval "exec $fd>&-"
		done
		exec "$RP" -u -q "$@" "127.0.0.1:$PORT"
	) <"$BATS_TEST_TMPDIR/flood.$name.in" >"$out" 2>&1 &
	FLOOD_PIDS="$FLOOD_PIDS $!"
	eval "FLOOD_PID_$name=$!"
	exec {fd}>"$BATS_TEST_TMPDIR/flood.$name.in"
	eval "FLOOD_FD_$name=$fd"
	for i in $(seq 200); do
		FLOOD=$(grep '^unjoined' "$out") && { echo "$name: $FLOOD"; return 0; }
		kill -0 "$!" 2>/dev/null || break
		sleep 0.05
	done
	echo "relaypairs -u did not finish:"; cat "$out"; return 1
}

# unflood NAME: let flood NAME go; its sessions close.
unflood() {
	local fd pid
	eval "fd=\$FLOOD_FD_$1 pid=\$FLOOD_PID_$1"
	exec {fd}>&-
	wait "$pid"
}

# srcs FIRST COUNT: COUNT loopback addresses from 127.0.0.FIRST, for -S.
srcs() {
	seq -s, -f "127.0.0.%g" "$1" $(( $1 + $2 - 1 ))
}

ms() { echo $(( $(date +%s%N) / 1000000 )); }

@test "200 concurrent pairs, 1 MiB each way, every byte checked" {
	# -w with stdin at EOF: all 200 are paired before any byte is sent.
	pairs -w -n 200 -c 200 -b 1M -t 20 </dev/null
	[[ "$output" == "paired 200"* ]]
	[[ "$output" == *"pairs 200 paired 200 checked 200 failed 0"* ]]
}

@test "JOIN of an unknown or malformed id: an error and a close" {
	conn a
	printf 'JOIN 0123456789abcdef0123456789abcdef\n' >&$a
	expect $a "ERR unknown session"
	expect_eof $a
	conn b
	printf 'JOIN 0123456789ABCDEF0123456789ABCDEF\n' >&$b
	expect $b "ERR bad session id"
	expect_eof $b
	serves
}

@test "a second JOIN of a paired session is refused; the pair goes on" {
	conn a; new $a
	conn b; printf 'JOIN %s\n' "$SID" >&$b
	expect $a OK; expect $b OK
	conn c; printf 'JOIN %s\n' "$SID" >&$c
	expect $c "ERR session already joined"
	expect_eof $c
	printf 'to b\n' >&$a; expect $b "to b"
	printf 'to a\n' >&$b; expect $a "to a"
	exec {a}>&-
	expect_eof $b
	exec {b}>&-
	serves
}

@test "malformed first lines: an error each, then a close" {
	local l
	while IFS='|' read -r l want; do
		conn c
		printf '%s\n' "$l" >&$c
		expect $c "ERR $want"
		expect_eof $c
		exec {c}>&-
	done <<-'EOF'
	HELLO|bad command
	|bad command
	NEW now|bad command
	new|bad command
	JOIN|bad command
	JOIN |bad session id
	JOIN 0123|bad session id
	JOIN 0123456789abcdef0123456789abcdef0|bad session id
	JOIN  0123456789abcdef0123456789abcdef|bad session id
	EOF
	# 2000 bytes and no newline.
	conn c
	head -c 2000 /dev/zero | tr '\0' x >&$c
	expect $c "ERR line too long"
	expect_eof $c
	exec {c}>&-
	serves
}

@test "a NEW flood meets the session limit; paired sessions keep flowing" {
	start_relayd -n 50
	OWN_PID=$RELAYD_PID
	local fds0 c l
	fds0=$(fds "$RELAYD_PID")
	# Set up a few at a time: one address holds at most 8 unjoined here.
	hold -n 10 -c 4 -b 32M -t 20
	# 10 sessions are paired; 60 NEWs from 20 addresses, 3 each: 40 get
	# ids, 20 the error.
	flood a -n 60 -c 60 -S "$(srcs 2 20)" -t 20
	[ "$FLOOD" = "unjoined 40 refused 20" ]
	# The paired sessions carry their 32 MiB each way, all checked, while
	# the flood's sessions sit there.
	release
	[[ "$output" == *"checked 10 failed 0"* ]]
	# Their 10 slots are free again, and no more: the flood's are held.
	flood b -n 11 -c 1 -S "$(srcs 30 11)" -t 20
	[ "$FLOOD" = "unjoined 10 refused 1" ]
	unflood a
	unflood b
	fds_back "$RELAYD_PID" "$fds0"
	serves
	! grep -E -A20 "AddressSanitizer|runtime error:|LeakSanitizer" "$RELAYD_LOG"
}

@test "four addresses cannot hold all the unjoined sessions of -n 1000" {
	start_relayd -n 1000 -e 30
	OWN_PID=$RELAYD_PID
	# A sixteenth of the table each: 62.
	flood a -n 1000 -c 200 -S "$(srcs 2 4)" -t 20
	[ "$FLOOD" = "unjoined 248 refused 752" ]
	grep -q "at most 1000 sessions (62 unjoined per address)" "$RELAYD_LOG"
	# Everyone else is still served, while those are held.
	serves
	# The cap is logged once per address, not once per NEW refused.
	[ "$(grep -c "unjoined sessions from this address already" "$RELAYD_LOG")" -eq 4 ]
	unflood a
}

@test "a first line with a NUL or a control byte is a bad command, not NEW" {
	local l c
	for l in 'NEW\0junk' 'NEW\0' 'NEW\t' 'NEW\r\r' 'NE\0W' \
	    'JOIN 0123456789abcdef0123456789abcdef\0x' '\0NEW'; do
		conn c
		printf "$l\n" >&$c
		expect $c "ERR bad command"
		expect_eof $c
		exec {c}>&-
	done
	# nc -C's CRLF is still fine.
	conn c
	printf 'NEW\r\n' >&$c
	IFS= read -r -t 3 l <&$c || :
	[[ "$l" =~ ^SESSION\ [0-9a-f]{32}$ ]] || { echo "NEW CRLF: got '$l'"; false; }
	exec {c}>&-
	serves
}

@test "-U: relayd binds, then runs as the user and its group only; an unknown user is a usage error" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	run -100 --separate-stderr relayd -U no-such-user-here 127.0.0.1:1
	[ "$stderr" = "relayd: unknown user: no-such-user-here" ]
	start_relayd -U nobody
	OWN_PID=$RELAYD_PID
	local uid gid
	uid=$(id -u nobody) gid=$(id -g nobody)
	grep -q "^Uid:[[:space:]]*$uid[[:space:]]*$uid[[:space:]]*$uid[[:space:]]*$uid\$" "/proc/$RELAYD_PID/status"
	grep -q "^Gid:[[:space:]]*$gid[[:space:]]*$gid[[:space:]]*$gid[[:space:]]*$gid\$" "/proc/$RELAYD_PID/status"
	grep -q "^Groups:[[:space:]]*$gid[[:space:]]*\$" "/proc/$RELAYD_PID/status"
	serves
}

@test "silent connections cannot starve new pairs, and go after 5 s" {
	# 1100 that never speak: over relayd's cap of 1024 pending, so the
	# oldest are dropped for the newcomers; the 20 pairs all get through.
	local i c n silent=()
	ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 1200 ] ||
		{ echo "the fd limit is $(ulimit -n); this test needs 1200"; false; }
	for i in $(seq 1100); do
		exec {c}<>"/dev/tcp/127.0.0.1/$PORT"
		silent+=("$c")
	done
	for i in $(seq 30); do
		n=$(socks "$RELAYD_PID")
		[ "$n" -ge $((MAIN_SOCKS + 1000)) ] && break
		sleep 0.1
	done
	echo "relayd holds $n sockets with 1100 silent clients"
	[ "$n" -le $((MAIN_SOCKS + 1024)) ]
	pairs -n 20 -b 256K -t 10
	[[ "$output" == *"checked 20 failed 0"* ]]
	expect ${silent[0]} "ERR too many connections"
	expect_eof ${silent[0]}
	for c in "${silent[@]}"; do exec {c}>&-; done
	# Three silent ones: relayd drops them after its 5 s first-line timeout,
	# and serves others meanwhile.
	local a b t0 dt
	t0=$(ms)
	conn a; conn b; conn c
	serves
	for f in $a $b $c; do
		expect $f "ERR timeout" 8
		expect_eof $f
	done
	dt=$(( $(ms) - t0 ))
	echo "dropped after $dt ms"
	[ "$dt" -ge 4500 ] && [ "$dt" -le 7000 ]
}

@test "a peer killed mid-stream: the other side sees EOF at once" {
	conn a; new $a
	# The JOIN side streams zeros until it is killed.
	(
		exec 3<>"/dev/tcp/127.0.0.1/$PORT"
		printf 'JOIN %s\n' "$SID" >&3
		IFS= read -r -t 3 l <&3
		exec cat /dev/zero >&3
	) 3>&- &
	local bpid=$! t0
	expect $a OK
	head -c 4M <&$a | wc -c | grep -qx 4194304
	kill -KILL $bpid; wait $bpid 2>/dev/null || :
	t0=$(ms)
	run timeout 5 sh -c "cat >/dev/null" <&$a
	[ "$status" -eq 0 ]
	echo "EOF after $(( $(ms) - t0 )) ms"
	[ $(( $(ms) - t0 )) -lt 2000 ]
	exec {a}>&-
	serves
}

@test "a peer that closes with unread data: the writer gets an error at once" {
	conn a; new $a
	conn b; printf 'JOIN %s\n' "$SID" >&$b
	expect $a OK; expect $b OK
	# a writes; b never reads, then closes with bytes unread (a reset).
	(
		exec {b}>&-
		rc=0
		timeout 10 cat /dev/zero >&$a || rc=$?
		echo $rc > "$BATS_TEST_TMPDIR/rc"
	) 3>&- &
	local wpid=$! t0
	sleep 0.3
	exec {b}>&-
	t0=$(ms)
	wait $wpid
	echo "writer stopped after $(( $(ms) - t0 )) ms, status $(cat "$BATS_TEST_TMPDIR/rc")"
	[ "$(cat "$BATS_TEST_TMPDIR/rc")" -ne 124 ]
	[ $(( $(ms) - t0 )) -lt 2000 ]
	exec {a}>&-
	serves
}

@test "clients killed mid-transfer: relayd closes their sessions, serves on" {
	local fds0
	fds0=$(fds "$RELAYD_PID")
	hold -n 20 -b 1G -t 30
	exec {HOLD_FD}>&-
	sleep 0.3
	kill -KILL "$HOLD_PID"; wait "$HOLD_PID" 2>/dev/null || :
	HOLD_PID=
	fds_back "$RELAYD_PID" "$fds0"
	serves
}

@test "an unjoined session expires: the NEW side is told, the id is gone" {
	local t0 dt
	conn a; new $a
	t0=$(ms)
	expect $a "ERR session expired" 5
	dt=$(( $(ms) - t0 ))
	echo "expired after $dt ms"
	[ "$dt" -ge 1500 ] && [ "$dt" -le 3500 ]
	expect_eof $a
	conn b; printf 'JOIN %s\n' "$SID" >&$b
	expect $b "ERR unknown session"
	expect_eof $b
}

@test "no descriptor leaks: relayd holds what it held at the start" {
	fds_back "$RELAYD_PID" "$MAIN_FDS"
	kill -0 "$RELAYD_PID"
	! grep -E -A20 "AddressSanitizer|runtime error:|LeakSanitizer" "$RELAYD_LOG"
}

@test "SIGTERM: no new clients, a live pair still finishes, then exit 0" {
	start_relayd
	OWN_PID=$RELAYD_PID
	local rc=0
	hold -n 3 -b 16M -t 20
	conn w; new $w		# unjoined
	conn p			# has not spoken
	sleep 0.1
	kill -TERM "$RELAYD_PID"
	expect $w "ERR shutting down"
	expect_eof $w
	expect $p "ERR shutting down"
	expect_eof $p
	# The listener is closed: a new connection is refused.
	if (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
		echo "relayd still accepts"; false
	fi
	kill -0 "$RELAYD_PID"
	# The paired sessions carry their data to the end...
	release
	[[ "$output" == *"checked 3 failed 0"* ]]
	# ...and then relayd exits, cleanly.
	for i in $(seq 30); do
		kill -0 "$RELAYD_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$RELAYD_PID" || rc=$?
	OWN_PID=
	cat "$RELAYD_LOG"
	[ "$rc" -eq 0 ]
	! grep -E -A20 "AddressSanitizer|runtime error:|LeakSanitizer" "$RELAYD_LOG"
}

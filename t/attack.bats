#!/usr/bin/env bats
# rvd against an attacker, on loopback: running out of descriptors, floods
# of idle connections, guessed secrets, invitation and relay floods, a
# listener that no longer answers. Each test is bounded in count and time;
# no lab (the IPv6 test makes a network namespace of its own).

bats_require_minimum_version 1.5.0

setup() {
	BIN=${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}
	PEER=$BATS_TEST_DIRNAME/helpers/rvpeer
	RVD_PID=
	printf 'office s3cret\nalice pw\nmallory m\nm1 m\nm2 m\nm3 m\nm4 m\n' \
		> "$BATS_TEST_TMPDIR/users"
	ID=0123456789abcdef0123456789abcdef
}

teardown() {
	[ -z "$RVD_PID" ] || { kill "$RVD_PID" 2>/dev/null; wait "$RVD_PID" 2>/dev/null; } || :
	# Any helper left behind.
	jobs -p | xargs -r kill 2>/dev/null || :
}

# rvd_up [-n FDLIMIT] [-a ADDR] ARGS...: rvd on a free port of ADDR
# (default 127.0.0.1), ready; sets PORT, RVD_PID, RVD_LOG.
rvd_up() {
	local lim= addr=127.0.0.1 try i
	[ "$1" != -n ] || { lim=$2; shift 2; }
	[ "$1" != -a ] || { addr=$2; shift 2; }
	RVD_LOG=$BATS_TEST_TMPDIR/rvd.log
	for try in 1 2 3 4 5; do
		PORT=$((10000 + RANDOM % 22000))
		: > "$BATS_TEST_TMPDIR/ready"
		if [ -n "$lim" ]; then
			bash -c 'ulimit -n "$1"; shift; exec "$@"' - "$lim" \
				"$BIN/rvd" -d 3 "$@" "$addr:$PORT" 3> "$BATS_TEST_TMPDIR/ready" \
				2> "$RVD_LOG" &
		else
			"$BIN/rvd" -d 3 "$@" "$addr:$PORT" 3> "$BATS_TEST_TMPDIR/ready" \
				2> "$RVD_LOG" &
		fi
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

# say [-w SECS] LINE...: one client of our rvd; prints what rvd answers.
say() {
	local w=()
	[ "$1" != -w ] || { w=(-w "$2"); shift 2; }
	"$PEER" say "${w[@]}" 127.0.0.1 "$PORT" "$@"
}

# cpu_ticks: the CPU time rvd has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$RVD_PID/stat"; }

@test "rvd without a users file starts only with -o, and says so in WELCOME" {
	run -100 "$BIN/rvd" 127.0.0.1:1
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "rvd: no users file: give -u USERS, or -o"* ]]
	run -100 "$BIN/rvd" -o -u "$BATS_TEST_TMPDIR/users" 127.0.0.1:1
	run -100 "$BIN/rvd" -o -R a:1 -R b:2 -R c:3 -R d:4 -R e:5 127.0.0.1:1
	[[ "$output" == *"more than 4 relays"* ]]
	run -100 "$BIN/rvd" -o -R nonsense 127.0.0.1:1
	run -0 "$BIN/rvd" -h
	[[ "$output" == "usage: rvd "* ]]
	rvd_up -o -R 198.51.100.2:7071 -R relay.example.net:443
	run say "LOGON x"
	[[ "$output" =~ ^WELCOME\ 127\.0\.0\.1:[0-9]+\ 198\.51\.100\.2:7071,relay\.example\.net:443\ open$ ]]
	kill "$RVD_PID"; wait "$RVD_PID" || :
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	run say "LOGON alice pw"
	[[ "$output" =~ ^WELCOME\ 127\.0\.0\.1:[0-9]+\ -$ ]]
}

@test "out of descriptors, rvd pauses accepting instead of spinning, and serves again" {
	rvd_up -n 64 -o -c 1000
	# 80 clients that log on and stay: more than 64 descriptors.
	"$PEER" hold -w 4 80 127.0.0.1 "$PORT" "LOGON crowd" > "$BATS_TEST_TMPDIR/hold" &
	hold=$!
	sleep 1
	t0=$(cpu_ticks)
	sleep 2
	t1=$(cpu_ticks)
	wait "$hold"
	echo "rvd used $((t1 - t0)) ticks in 2 s; its log:"
	head -c 2000 "$RVD_LOG"
	# A spinning accept loop burns the whole 2 s (200 ticks).
	[ $((t1 - t0)) -lt 40 ]
	grep -q "accept: Too many open files; pausing" "$RVD_LOG"
	[ "$(grep -c "accept:" "$RVD_LOG")" -le 6 ]
	[ "$(grep -v -c "logon crowd\|close crowd" "$RVD_LOG")" -lt 20 ]
	# The crowd is gone: a new client is served.
	run say "LOGON after"
	[[ "$output" == "WELCOME "* ]]
}

@test "idle connections that never log on make room for one that does" {
	# A limit of 64 descriptors caps clients not logged on at 32.
	rvd_up -n 64 -o -c 1000
	"$PEER" hold -w 5 -s 127.0.0.2,127.0.0.3,127.0.0.4 30 127.0.0.1 "$PORT" &
	sleep 1.2
	"$PEER" hold -w 4 -s 127.0.0.5,127.0.0.6 30 127.0.0.1 "$PORT" &
	sleep 0.5
	run say -w 1 "LOGON real"
	[[ "$output" == "WELCOME "* ]]
	grep -q "evicted 127.0.0.[234]:[0-9]*: too many clients not logged on" "$RVD_LOG"
	! grep -q "accept: Too many open files" "$RVD_LOG"
}

@test "idle connections from the listener's own address do not keep it out" {
	rvd_up -c 8 -u "$BATS_TEST_TMPDIR/users"
	"$PEER" hold -w 6 12 127.0.0.1 "$PORT" &
	sleep 1.2
	run say -w 1 "LISTEN office s3cret"
	[[ "$output" == "WELCOME "* ]]
	grep -q "evicted 127.0.0.1:[0-9]*: too many connections from your address" "$RVD_LOG"
	# Logged on, they do count: the ninth is refused.
	run "$PEER" hold -w 1 9 127.0.0.1 "$PORT" "LOGON alice pw"
	[[ "$output" == "open 9 welcome 8 err 1" ]]
	grep -q "refused 127.0.0.1: more than 8 connections" "$RVD_LOG"
}

@test "wrong secrets slow the guessing of a name, but never keep out the right one" {
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	pids=
	for i in $(seq 12); do
		"$PEER" say -w 0.1 127.0.0.1 "$PORT" "LISTEN office guess$i" > /dev/null &
		pids="$pids $!"
	done
	wait $pids
	# The name is being guessed at: a wrong answer now waits.
	start=$(date +%s%N)
	run "$PEER" say -w 4 127.0.0.1 "$PORT" "LISTEN office guess"
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "$output; ${ms} ms"
	[ "$output" = "ERR - wrong name or secret" ]
	[ "$ms" -ge 200 ]
	# The owner, from the same address, gets in, within the backoff.
	start=$(date +%s%N)
	run "$PEER" say -w 4 127.0.0.1 "$PORT" "LISTEN office s3cret" "PING" "QUIT"
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "$output; ${ms} ms"
	[[ "${lines[0]}" == "WELCOME "* ]]
	# The line sent behind the held log-on is answered after it.
	[ "${lines[1]}" = "PONG" ]
	[ "$ms" -lt 3000 ]
	# Other names are not slowed down.
	run say "LOGON alice pw"
	[[ "$output" == "WELCOME "* ]]
	# The log stays short: repeated refusals are counted, not each written.
	[ "$(grep -c "wrong secret" "$RVD_LOG")" -le 3 ]
}

@test "IPv6 sources count by /64 against the per-source limit" {
	run unshare -n bash -c '
		ip link set lo up
		for i in 1 2 3 4 5 6; do ip -6 addr add 2001:db8:0:1::$i/128 dev lo nodad; done
		ip -6 addr add 2001:db8:0:2::1/128 dev lo nodad
		"$1" -o -c 4 -d 3 "[::1]:7070" 3>"$2/ready" 2>"$2/rvd6.log" &
		pid=$!
		for i in $(seq 50); do [ -s "$2/ready" ] && break; sleep 0.1; done
		"$3" hold -w 1 -s 2001:db8:0:1::1,2001:db8:0:1::2,2001:db8:0:1::3,2001:db8:0:1::4,2001:db8:0:1::5,2001:db8:0:1::6 \
			6 ::1 7070 "LOGON six"
		"$3" say -s 2001:db8:0:2::1 ::1 7070 "LOGON other"
		kill $pid; wait $pid
		cat "$2/rvd6.log"' - "$BIN/rvd" "$BATS_TEST_TMPDIR" "$PEER"
	echo "$output"
	[[ "${lines[0]}" == "open 6 welcome 4 err 2" ]]
	[[ "${lines[1]}" == "WELCOME [2001:db8:0:2::1]:"* ]]
	[[ "$output" == *"refused 2001:db8:0:1::/64: more than 4 connections"* ]]
}

@test "invitations: a quota per inviter, slots freed by FAIL or a dial budget, RELAY takes none" {
	rvd_up -v -u "$BATS_TEST_TMPDIR/users"
	"$PEER" listen -w 15 127.0.0.1 "$PORT" office s3cret > "$BATS_TEST_TMPDIR/listener" &
	sleep 0.5
	a=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
	# Five at once: four are passed on, the fifth is over the quota.
	run say "LOGON mallory m" "INVITE office ${a}1 $ID 127.0.0.1:1" \
		"INVITE office ${a}2 $ID 127.0.0.1:1" "INVITE office ${a}3 $ID 127.0.0.1:1" \
		"INVITE office ${a}4 $ID 127.0.0.1:1" "INVITE office ${a}5 $ID 127.0.0.1:1" \
		"sleep 0.3" "RELAY office $ID 198.51.100.2:7071"
	echo "$output"
	[ "$(grep -c "^SENT ${a}[1-4]" <<< "$output")" -eq 4 ]
	grep -q "^ERR ${a}5 too many invitations to office; try later" <<< "$output"
	# RELAY is not an invitation's dial: it takes no slot.
	grep -q "^SENT $ID" <<< "$output"
	grep -q "^RELAY mallory $ID 198.51.100.2:7071" "$BATS_TEST_TMPDIR/listener"
	# A slot lasts a dial budget at most.
	sleep 3
	run say "LOGON mallory m" "INVITE office ${a}6 $ID 127.0.0.1:1"
	grep -q "^SENT ${a}6" <<< "$output"
	# A dial that failed frees its slot at once: ten in a row, each after
	# the listener's FAIL.
	f=fffffffffffffffffffffffffffffff
	args=("LOGON alice pw")
	for i in 0 1 2 3 4 5 6 7 8 9; do
		args+=("INVITE office $f$i $ID 127.0.0.1:1" "sleep 0.1")
	done
	run say "${args[@]}"
	echo "$output"
	[ "$(grep -c "^SENT $f" <<< "$output")" -eq 10 ]
	[ "$(grep -c "^MSG $f[0-9] FAIL" <<< "$output")" -eq 10 ]
}

@test "an inviter that hangs up has ended its dials: its slots go back at once" {
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	"$PEER" listen -w 8 127.0.0.1 "$PORT" office s3cret > "$BATS_TEST_TMPDIR/listener" &
	sleep 0.5
	# Eight dials in a row, as fast as p2pdial can repeat one, each answered
	# CAND (no FAIL frees it), each inviter gone once it has its answer.
	for i in 1 2 3 4 5 6 7 8; do
		run say -w 0.2 "LOGON alice pw" "INVITE office d000000000000000000000000000000$i $ID 127.0.0.1:1"
		echo "$output"
		[[ "$output" == *"SENT d000000000000000000000000000000$i"* ]]
	done
}

@test "a listener is never kept from a new inviter by others' invitations" {
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	"$PEER" listen -w 8 127.0.0.1 "$PORT" office s3cret > "$BATS_TEST_TMPDIR/listener" &
	sleep 0.5
	# Four inviters take all sixteen slots.
	for m in 1 2 3 4; do
		"$PEER" say -w 1 127.0.0.1 "$PORT" "LOGON m$m m" \
			"INVITE office b${m}000000000000000000000000000001 $ID 127.0.0.1:1" \
			"INVITE office b${m}000000000000000000000000000002 $ID 127.0.0.1:1" \
			"INVITE office b${m}000000000000000000000000000003 $ID 127.0.0.1:1" \
			"INVITE office b${m}000000000000000000000000000004 $ID 127.0.0.1:1" \
			> "$BATS_TEST_TMPDIR/m$m" &
		pids="${pids:-} $!"
	done
	sleep 0.5
	run say "LOGON alice pw" "INVITE office c0000000000000000000000000000001 $ID 127.0.0.1:1"
	echo "$output"
	[[ "$output" == *"SENT c0000000000000000000000000000001"* ]]
	[[ "$output" == *"MSG c0000000000000000000000000000001 CAND"* ]]
	wait $pids
	[ "$(cat "$BATS_TEST_TMPDIR"/m? | grep -c "^SENT")" -eq 16 ]
}

@test "INVITE and RELAY floods are rationed per inviter" {
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	"$PEER" listen -w 5 127.0.0.1 "$PORT" office s3cret > /dev/null &
	sleep 0.5
	args=("LOGON mallory m")
	for i in $(seq 10 49); do args+=("RELAY office ${ID%??}$i 198.51.100.2:7071"); done
	run say "${args[@]}"
	sent=$(grep -c "^SENT" <<< "$output" || :)
	echo "$sent sent"
	[ "$sent" -ge 30 ] && [ "$sent" -le 33 ]
	grep -q "^ERR ${ID%??}49 too many requests; try later" <<< "$output"
	# Another inviter is not affected.
	run say "LOGON alice pw" "RELAY office $ID 198.51.100.2:7071"
	[[ "$output" == *"SENT $ID"* ]]
}

@test "a listener that does not acknowledge an INVITE: the inviter hears at once" {
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	"$PEER" listen -w 6 127.0.0.1 "$PORT" office s3cret > "$BATS_TEST_TMPDIR/listener" &
	sleep 0.5
	nine=9$(printf '%031d' 0)
	start=$(date +%s%N)
	run say -w 3 "LOGON alice pw" "INVITE office $nine $ID 127.0.0.1:1"
	echo "$output"
	[[ "$output" == *"SENT $nine"* ]]
	[[ "$output" == *"ERR $nine peer not answering"* ]]
	grep -q "close office 127.0.0.1:[0-9]*: not answering" "$RVD_LOG"
	# A listener that answers is left alone.
	"$PEER" listen -w 4 127.0.0.1 "$PORT" office s3cret > /dev/null &
	sleep 0.5
	run say -w 1.5 "LOGON alice pw" "INVITE office $ID $ID 127.0.0.1:1"
	[[ "$output" == *"MSG $ID CAND"* ]]
	[[ "$output" != *"not answering"* ]]
}

@test "PUNCH: refused to a name not in the session; both parties told at once; none after FAIL" {
	rvd_up -u "$BATS_TEST_TMPDIR/users"
	"$PEER" listen -w 8 127.0.0.1 "$PORT" office s3cret > /dev/null &
	sleep 0.5
	run say "LOGON alice pw" "INVITE office $ID $ID 127.0.0.1:1"
	[[ "$output" == *"SENT $ID"* ]]
	# Knowing the id is not enough: the name must be one of the session's.
	run say "LOGON mallory m" "PUNCH $ID 127.0.0.1:5"
	echo "$output"
	grep -q "^ERR $ID no such session$" <<< "$output"
	grep -q "refused punch mallory 127.0.0.1:[0-9]*: not its session" "$RVD_LOG"
	run say "LOGON mallory m" "PUNCH $ID nonsense"
	grep -q "^ERR - bad PUNCH$" <<< "$output"
	# The two parties, each on a connection of its own: told once both are in.
	"$PEER" say -w 2 127.0.0.1 "$PORT" "LOGON office s3cret" "PUNCH $ID 10.2.0.2:4000" \
		> "$BATS_TEST_TMPDIR/invitee" &
	sleep 0.3
	run say "LOGON alice pw" "PUNCH $ID 10.1.0.2:5000"
	echo "$output"
	grep -q -E "^PUNCH $ID 127.0.0.1:[0-9]+ 10.2.0.2:4000 [0-9]+ answer$" <<< "$output"
	wait $!
	grep -q -E "^PUNCH $ID 127.0.0.1:[0-9]+ 10.1.0.2:5000 [0-9]+ dial$" "$BATS_TEST_TMPDIR/invitee"
	# The invitee's ladder has ended (FAIL): the inviter's punch is answered at once.
	f=ffffffffffffffffffffffffffffffff
	run say "LOGON alice pw" "INVITE office $f $ID 127.0.0.1:1" "sleep 0.3" \
		"PUNCH $f 127.0.0.1:5"
	echo "$output"
	grep -q "^ERR $f peer will not punch$" <<< "$output"
}

@test "after -U, SIGHUP still rereads the users file" {
	chmod 600 "$BATS_TEST_TMPDIR/users"
	chmod o+x "$BATS_TEST_TMPDIR"
	rvd_up -U nobody -u "$BATS_TEST_TMPDIR/users"
	run say "LOGON newcomer pw2"
	[ "$output" = "ERR - wrong name or secret" ]
	# Edited in place (the same file): rvd reads it through the descriptor
	# it kept from before it dropped root.
	echo "newcomer pw2" >> "$BATS_TEST_TMPDIR/users"
	kill -HUP "$RVD_PID"
	sleep 0.5
	run say "LOGON newcomer pw2"
	[[ "$output" == "WELCOME "* ]]
	! grep -q "keeping old users" "$RVD_LOG"
	[ "$(grep -c "users: 8 from" "$RVD_LOG")" -eq 1 ]
}

@test "rvd PORT listens on IPv4 and IPv6 alike" {
	ip -6 addr show dev lo | grep -q "::1/128" || skip "no IPv6 on loopback"
	PORT=$((10000 + RANDOM % 22000))
	"$BIN/rvd" -o -d 3 "$PORT" 3> "$BATS_TEST_TMPDIR/ready" 2> "$BATS_TEST_TMPDIR/rvd.log" &
	RVD_PID=$!
	for i in $(seq 50); do [ -s "$BATS_TEST_TMPDIR/ready" ] && break; sleep 0.1; done
	run "$PEER" say 127.0.0.1 "$PORT" "LOGON four"
	[[ "$output" == "WELCOME 127.0.0.1:"* ]]
	run "$PEER" say ::1 "$PORT" "LOGON six"
	[[ "$output" == "WELCOME [::1]:"* ]]
}

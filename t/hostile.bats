#!/usr/bin/env bats
# What a hostile peer or a hostile neighbour must not get done (issue 15):
# an inviter aiming rvlisten's dials at the listener's own host, or at a
# relay of its choosing, or passing flags into an argv; rvd's odd lines; a
# planted symlink in a shared candidate cache; a few IPv6 addresses of one
# /64 filling relayd. Each runs on the loopback of one lab host (pub), with
# a scripted rvd (helpers/fakervd) and traps that log what reaches them
# (helpers/trap), so nothing leaves that namespace.

load helpers/common

ID=0123456789abcdef0123456789abcdef
TOK=fedcba9876543210fedcba9876543210
SID1=11111111111111111111111111111111
SID2=22222222222222222222222222222222
SID3=33333333333333333333333333333333

setup_file() {
	lab_up
	if [ -n "${P2P_UNIT:-}" ]; then
		RP=$(dirname "$P2P_UNIT")/relaypairs
	else
		RP=$BATS_TEST_DIRNAME/relaypairs
	fi
	export RP
}

teardown_file() {
	lab_down_checked
}

# wait_listen PORT: something in pub listens on PORT (5 s at most). No
# connection is made to find out: fakervd serves one only.
wait_listen() {
	local i
	for i in $(seq 50); do
		[ -n "$(lab pub ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.1
	done
	echo "nothing listens on $1 in pub"; return 1
}

# wait_for FILE ERE [SECS]: a line of FILE matches ERE (default 10 s).
wait_for() {
	local i
	for i in $(seq $(( ${3:-10} * 10 ))); do
		grep -q -E -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no '$2' in $1 after ${3:-10} s:"; cat "$1"; return 1
}

# fake_rvd PORT LINE...: a scripted rvd on pub's 127.0.0.1:PORT that says
# these lines (see helpers/fakervd); what the client sends goes to FAKE_LOG.
fake_rvd() {
	local port=$1
	shift
	printf '%s\n' "$@" > "$BATS_TEST_TMPDIR/rvd.$port.script"
	FAKE_LOG=$BATS_TEST_TMPDIR/rvd.$port.log
	: > "$FAKE_LOG"
	lab_bg pub fakervd "$port" "$BATS_TEST_TMPDIR/rvd.$port.script" "$FAKE_LOG"
	wait_listen "$port"
}

# trap PORT: log what connects to PORT on any of pub's addresses, in TRAP_LOG.
trap_on() {
	TRAP_LOG=$BATS_TEST_TMPDIR/trap.$1.log
	: > "$TRAP_LOG"
	lab_bg pub trap "$1" "$TRAP_LOG"
	wait_listen "$1"
}

# listen PORT [ARGS...]: rvlisten "victim" in pub, logged on to the fake rvd
# on PORT; its log in RVL_LOG.
listen() {
	local port=$1
	shift
	lab_bg pub rvlisten -v "$@" -r "127.0.0.1:$port" victim cat
	RVL_LOG=$LAB_BG_LOG
	wait_for "$FAKE_LOG" "^LISTEN victim" 5
}

@test "INVITE: loopback, unspecified, link-local and odd candidates are not dialled" {
	local c p=7101
	trap_on $p
	c="127.0.0.1:$p 127.0.0.2:$p 0.0.0.0:$p [::1]:$p [::]:$p"
	c="$c [::ffff:127.0.0.1]:$p 169.254.0.1:$p [fe80::1]:$p localhost:$p 224.0.0.1:$p"
	fake_rvd 7100 "WELCOME 127.0.0.1:5555 -" "sleep 1" "INVITE mallory $ID $TOK $c"
	listen 7100
	# With nothing to dial, rvlisten says so to the inviter.
	wait_for "$FAKE_LOG" "^MSG $ID FAIL" 20
	cat "$TRAP_LOG"
	[ ! -s "$TRAP_LOG" ]
	grep -q "rvlisten: invited by mallory: not dialling 10 of its candidates (127.0.0.1:$p: loopback)" "$RVL_LOG"
}

@test "INVITE: -l dials loopback candidates, for a listener that wants them" {
	local p=7111
	trap_on $p
	fake_rvd 7110 "WELCOME 127.0.0.1:5555 -" "sleep 1" "INVITE mallory $ID $TOK 127.0.0.1:$p"
	listen 7110 -l
	wait_for "$TRAP_LOG" "^127\.0\.0\.1 P2P $ID $TOK$"
}

@test "INVITE: one invitation makes at most 8 dials, the last candidate (rvd's sight of the inviter) among them" {
	local c= i p=7121
	# 16 addresses of pub's own that are no loopback (TEST-NET-1 on lo).
	for i in $(seq 2 17); do
		lab pub ip addr add "192.0.2.$i/32" dev lo
		c="$c 192.0.2.$i:$p"
	done
	trap_on $p
	fake_rvd 7120 "WELCOME 127.0.0.1:5555 -" "sleep 1" "INVITE mallory $ID $TOK$c"
	listen 7120
	wait_for "$FAKE_LOG" "^MSG $ID FAIL" 20
	cat "$TRAP_LOG"
	[ "$(cut -d' ' -f1 "$TRAP_LOG" | sort -u | paste -sd' ')" = \
	    "192.0.2.17 192.0.2.2 192.0.2.3 192.0.2.4 192.0.2.5 192.0.2.6 192.0.2.7 192.0.2.8" ]
	grep -q "not dialling 8 of its candidates (192.0.2.9:$p: too many candidates)" "$RVL_LOG"
}

@test "RELAY: only a relay rvd named in WELCOME is joined" {
	trap_on 7132
	local other=$TRAP_LOG
	trap_on 7131
	fake_rvd 7130 "WELCOME 127.0.0.1:5555 127.0.0.1:7131" "sleep 1" \
	    "RELAY mallory $SID1 127.0.0.1:7132" "RELAY mallory $SID2 -v" \
	    "RELAY mallory $SID3 127.0.0.1:7131"
	listen 7130
	wait_for "$TRAP_LOG" "^127\.0\.0\.1 JOIN $SID3$"
	sleep 0.5
	cat "$other"
	[ ! -s "$other" ]
	grep -q "refused relay from mallory: 127.0.0.1:7132 is no relay of rvd's" "$RVL_LOG"
	grep -q "refused relay from mallory: -v is no relay of rvd's" "$RVL_LOG"
	! grep -q "$SID1\|$SID2" "$TRAP_LOG"
}

@test "RELAY: a relay's words reach relaycat as operands, never as flags" {
	# Even rvd's own relay list cannot pass a flag to relaycat.
	fake_rvd 7140 "WELCOME 127.0.0.1:5555 --help:7141,-v:7142" "sleep 1" \
	    "RELAY mallory $SID1 --help:7141" "RELAY mallory $SID2 -v:7142"
	listen 7140
	wait_for "$RVL_LOG" "relaycat: .*-v:7142" 20
	wait_for "$RVL_LOG" "relaycat: .*--help:7141" 20
	! grep -E "relaycat: (unrecognized|invalid) option|usage: relaycat" "$RVL_LOG"
}

@test "rvd's empty line is no hang-up; a line in two parts is one line" {
	fake_rvd 7150 "WELCOME 127.0.0.1:5555 -" 'raw \n' "sleep 0.5" \
	    "raw INVITE mallory $ID" "sleep 1" "raw  $TOK 192.0.2.1:7151\\n"
	listen 7150
	wait_for "$RVL_LOG" "rvlisten: invited by mallory \($ID\)"
	! grep -q "lost rvd" "$RVL_LOG"
	! grep -E -A5 "AddressSanitizer|runtime error:" "$RVL_LOG"
}

# rvinvite_once PORT DIR [PLANT]: rvinvite as root with P2P_CACHE=DIR, to
# the fake rvd on PORT, which hands it bob's candidate 192.0.2.1:5000 and
# bob's FAIL. With PLANT, symlinks to it are planted first where the cache
# file goes and where rvinvite used to write it before renaming (NAME.PID:
# the shell's pid is rvinvite's). They are planted as root, since bats's
# directories are closed to others; in a directory that is not sticky, who
# made a link changes nothing for whoever follows it.
rvinvite_once() {
	local key="bob@127.0.0.1:$1"
	run lab pub env P2P_CACHE="$2" P2P_NAME=alice sh -c '
		if [ -n "$3" ]; then
			ln -s "$3" "$1/$2" && ln -s "$3" "$1/$2.$$" || exit 99
		fi
		exec rvinvite -v -t 5 -r "127.0.0.1:$4" bob </dev/null' sh "$2" "$key" "${3:-}" "$1"
	echo "$output"
	[[ "$output" == *"addr 192.0.2.1:5000"* ]]
}

@test "the candidate cache: a symlink planted in a shared P2P_CACHE is not followed" {
	local victim=$BATS_TEST_TMPDIR/root-only dir=$BATS_TEST_TMPDIR/shared
	echo "root's own" > "$victim"
	chmod 600 "$victim"
	# Another user's directory, open to all (not sticky).
	mkdir "$dir"
	chown nobody "$dir"
	chmod 777 "$dir"
	fake_rvd 7170 "WELCOME 127.0.0.1:5555 -" "SENT @ID@ 192.0.2.1:5000" \
	    "sleep 0.5" "MSG @ID@ FAIL could not dial"
	rvinvite_once 7170 "$dir" "$victim"
	[ "$(cat "$victim")" = "root's own" ]
	[[ "$output" == *"not using the candidate cache $dir: not ours alone"* ]]
}

@test "the candidate cache: kept for a name rvd vouches for, as a file of ours, never for an open rvd" {
	local dir=$BATS_TEST_TMPDIR/cache victim=$BATS_TEST_TMPDIR/mine f
	mkdir -m 700 "$dir"
	echo "mine" > "$victim"
	# rvd -o: anyone may have taken bob's name; nothing is cached.
	fake_rvd 7180 "WELCOME 127.0.0.1:5555 - open" "SENT @ID@ 192.0.2.1:5000" \
	    "sleep 0.5" "MSG @ID@ FAIL could not dial"
	rvinvite_once 7180 "$dir"
	[ -z "$(ls -A "$dir")" ]
	# rvd with a users file: cached, and a link where the file goes is
	# replaced by the file, not followed.
	ln -s "$victim" "$dir/bob@127.0.0.1:7181"
	fake_rvd 7181 "WELCOME 127.0.0.1:5555 -" "SENT @ID@ 192.0.2.1:5000" \
	    "sleep 0.5" "MSG @ID@ FAIL could not dial"
	rvinvite_once 7181 "$dir"
	[ "$(cat "$victim")" = mine ]
	f=$dir/bob@127.0.0.1:7181
	[ -f "$f" ] && [ ! -L "$f" ]
	[ "$(stat -c %a "$f")" = 600 ]
	grep -qx "addr 192.0.2.1:5000" "$f"
	[ "$(ls -A "$dir")" = "bob@127.0.0.1:7181" ]
}

@test "relayd: the addresses of one IPv6 /64 share one cap on unjoined sessions" {
	local a
	for a in 2001:db8:1::1 2001:db8:1::2 2001:db8:1::3 2001:db8:1::4 \
	    2001:db8:1::5 2001:db8:1::77 2001:db8:2::9; do
		lab pub ip -6 addr add "$a/128" dev lo nodad
	done
	lab_bg pub relayd -v -n 1000 -e 30 "[2001:db8:1::1]:7190"
	local rlog=$LAB_BG_LOG
	wait_listen 7190
	# Four addresses of one /64 hold a sixteenth of the table between them.
	lab_bg pub sh -c "sleep 20 | $RP -u -q -n 300 -c 100 \
	    -S 2001:db8:1::2,2001:db8:1::3,2001:db8:1::4,2001:db8:1::5 '[2001:db8:1::1]:7190'"
	wait_for "$LAB_BG_LOG" "^unjoined" 10
	grep -qx "unjoined 62 refused 238" "$LAB_BG_LOG"
	# A fifth address of that /64 gets nothing more while they are held...
	run lab pub "$RP" -u -q -n 5 -S 2001:db8:1::77 "[2001:db8:1::1]:7190"
	[ "$output" = "unjoined 0 refused 5" ]
	# ...and an address of another /64 is not affected.
	run lab pub "$RP" -u -q -n 10 -S 2001:db8:2::9 "[2001:db8:1::1]:7190"
	[ "$output" = "unjoined 10 refused 0" ]
	[ "$(grep -c "unjoined sessions from this address already" "$rlog")" -eq 1 ]
}

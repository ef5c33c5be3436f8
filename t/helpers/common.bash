# Shared set-up for the scenario tests: the built tools first on PATH,
bats_require_minimum_version 1.5.0
# test data, and a few checks used by every scenario file.
load lab
export PATH="${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}:$BATS_TEST_DIRNAME/helpers:$PATH"
export P2P_RVD=198.51.100.1:7070
# Each test file its own cache of the peers' candidates (see rvinvite(1)), none in $HOME.
export P2P_CACHE=$BATS_FILE_TMPDIR/cache
# p2pdial and p2plisten seal by default: every peer of a file shares one key
# pair and one known_peers, both the file's own (see p2pseal(1)).
export P2P_KEY=$BATS_FILE_TMPDIR/key P2P_KNOWN=$BATS_FILE_TMPDIR/known_peers

# make_data NAME MIB: a file of random bytes, made once per test file.
make_data() {
	local f="$BATS_FILE_TMPDIR/$1"
	[ -f "$f" ] || head -c "$(( $2 * 1048576 ))" /dev/urandom > "$f"
	echo "$f"
}

sha() { sha256sum < "$1" | cut -c1-64; }

# check_transfer OUT SENT BACK: the server saw SENT whole, and sent BACK whole.
check_transfer() {
	local out=$1 sent=$2 back=$3
	[ "$(sed -n 2p "$out")" = "$(sha "$sent")" ] || { echo "server got other bytes"; return 1; }
	[ "$(tail -n +3 "$out" | sha256sum | cut -c1-64)" = "$(sha "$back")" ] ||
		{ echo "client got other bytes"; return 1; }
}

# start_rvd [ARGS...]: rvd on the rendezvous host, waiting until it listens;
# with open names (-o) unless ARGS give a users file (-u).
start_rvd() {
	case " $* " in *" -u "*) ;; *) set -- -o "$@" ;; esac
	local at=${RVD_ADDR:-198.51.100.1:7070}
	lab_bg rv rvd -v "$@" "$at"
	export RVD_LOG=$LAB_BG_LOG P2P_RVD=$at
	lab_wait_port rv "${at%:*}" "${at##*:}"
}

# start_rvd_vouched NAME... [-- RVD ARGS...]: rvd with a users file that
# gives every NAME the secret $P2P_SECRET (exported here), so that rvd
# vouches for the names and rvinvite keeps its cache of their candidates.
start_rvd_vouched() {
	local users=$BATS_FILE_TMPDIR/users.vouched n
	export P2P_SECRET=lab-secret-$$
	: > "$users"
	chmod 600 "$users"
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		echo "$1 $P2P_SECRET" >> "$users"
		shift
	done
	[ "${1:-}" = -- ] && shift
	start_rvd -u "$users" "$@"
}

# start_listener HOST NAME [RVLISTEN ARGS...]: rvlisten serving the test
# server (which sends $BACKFILE, default 16 MiB) sealed, as p2plisten does;
# waits until it is logged on.
start_listener() {
	local host=$1 name=$2
	shift 2
	lab_bg "$host" rvlisten -v "$@" "$name" p2pseal -s serve "${BACKFILE:-$(make_data back 16)}"
	wait_logged_on "$name"
}

# wait_logged_on NAME: until rvd ($RVD_LOG) has NAME logged on, 5 s at most.
wait_logged_on() {
	local i
	for i in $(seq 50); do
		grep -q "listen $1 " "$RVD_LOG" && return 0
		sleep 0.1
	done
	echo "listener $1 did not log on"; cat "$LAB_BG_LOG"; return 1
}

# kill_after_punch NAME PIDFILE: once rvd ($RVD_LOG: NAME's own, under
# rvd -r) has NAME's PUNCH waiting (its session in $id) and PIDFILE names
# NAME's dialpunch, kill that.
kill_after_punch() {
	local i
	for i in $(seq 100); do
		id=$(grep -o -E "punch [0-9a-f]{32} $1: waiting" "$RVD_LOG" | tail -1 | cut -d' ' -f2)
		[ -n "$id" ] && [ -s "$2" ] && break
		sleep 0.05
	done
	[ -n "$id" ] || { cat "$RVD_LOG"; return 1; }
	kill -KILL "$(cat "$2")"
}

# mortal_punch [RVINVITE ARGS...]: a listener, mortal on c2 at $P2P_RVD
# (whose log is $RVD_LOG), whose dialpunch dies after its PUNCH, and a dial
# to it from a1, at $DIAL_RVD (default $P2P_RVD), whose dialpunch starts
# 1.5 s late; fails unless rvd saw mortal leave the punch and the dialler's
# dialpunch gave up at once, within 1000 ms, on "peer left the punch".
# Sets $id (the session), $rc (the status of the dial's pipeline), $errf
# (its stderr, each line stamped with ms); its output in $BATS_TEST_TMPDIR/out.
mortal_punch() {
	local pidf=$BATS_TEST_TMPDIR/mortal.pid dpid t0 t1 ms
	errf=$BATS_TEST_TMPDIR/err
	# The invitee's dialpunch dies after its PUNCH; its ladder lives on
	# (sleep holds P2PFD), so no FAIL tells rvd that it will not punch.
	P2P_ANSWER_LADDER="{ dialpunch \$P2P_V <&3 3<&- & echo \$! > $pidf; wait; sleep 8; } 3<&0" \
		start_listener c2 mortal
	# Our dialpunch 1.5 s late, so that the invitee's PUNCH is in and gone
	# first; P2P_TIMEOUT=5: the wait it used to wait out.
	t0=$(date +%s%N)
	lab a1 env P2P_NAME=dialer P2P_RVD="${DIAL_RVD:-$P2P_RVD}" P2P_TIMEOUT=5 \
		P2P_LADDER="rvinvite -e $* \"\$P2PPEER\" | dialdirect -e |
			{ sleep 1.5; echo 'dialpunch: starts' >&2; dialpunch -e; } |
			dialport -e | dialproxy | relaycat" timeout 20 p2pdial mortal \
		< "$(make_data sent1 1)" 2>&1 > "$BATS_TEST_TMPDIR/out" |
		T0=$t0 perl -MTime::HiRes=time -ne '$|=1; printf "%d %s", time * 1000 - $ENV{T0} / 1e6, $_' \
		> "$errf" &
	dpid=$!
	kill_after_punch mortal "$pidf"
	rc=0
	wait "$dpid" || rc=$?
	cat "$errf"
	grep -q -E "punch $id mortal: left before its peer came" "$RVD_LOG" ||
		{ cat "$RVD_LOG"; return 1; }
	# One clear line, at once: well within a second of the start, not 5 s.
	t0=$(grep -m1 " dialpunch: starts$" "$errf" | cut -d' ' -f1)
	t1=$(grep -m1 " dialpunch: rvd: peer left the punch$" "$errf" | cut -d' ' -f1)
	[ -n "$t0" ] && [ -n "$t1" ] || return 1
	ms=$(( t1 - t0 ))
	echo "# gave up in $ms ms" >&3
	[ "$ms" -lt 1000 ]
}

# capture_start HOST...: tcpdump of all TCP on every interface of each HOST,
# into $BATS_TEST_TMPDIR/HOST.pcap, until capture_stop.
capture_start() {
	local h f i
	CAPTURE_PIDS=
	for h in "$@"; do
		f=$BATS_TEST_TMPDIR/$h.pcap
		ip netns exec "$LAB$h" timeout 60 tcpdump -Z root -U -n -i any -w "$f" tcp 2> "$f.log" &
		CAPTURE_PIDS="$CAPTURE_PIDS $!"
		for i in $(seq 50); do
			grep -q "listening on" "$f.log" && break
			sleep 0.1
		done
	done
}

# capture_stop: end the captures, each flushed whole.
capture_stop() {
	sleep 0.2
	kill -INT $CAPTURE_PIDS 2>/dev/null || :
	wait $CAPTURE_PIDS 2>/dev/null || :
}

# no_procs HOST PATTERN: nothing matching PATTERN is left in HOST.
no_procs() {
	local pids
	pids=$(ip netns pids "$LAB$1" 2>/dev/null | xargs -r ps -o pid=,args= -p | grep -E "$2" || :)
	[ -z "$pids" ] || { echo "left behind in $1: $pids"; return 1; }
}

# lab_down, then fail if any daemon's log shows a sanitizer report: a
# daemon's memory error must fail the file even when every client was served.
lab_down_checked() {
	lab_down
	if grep -l -E "AddressSanitizer|runtime error:|LeakSanitizer" "$BATS_FILE_TMPDIR"/*.log 2>/dev/null; then
		grep -h -A5 -E "AddressSanitizer|runtime error:" "$BATS_FILE_TMPDIR"/*.log | head -40
		return 1
	fi
}

# in_order FILE ERE...: each ERE matches a line after the line the ERE
# before it matched.
in_order() {
	local f=$1 prev=0 n pat
	shift
	for pat in "$@"; do
		n=$(tail -n +$(( prev + 1 )) "$f" | grep -n -m1 -E -- "$pat" | cut -d: -f1)
		[ -n "$n" ] || { echo "not in order (after line $prev): $pat"; return 1; }
		prev=$(( prev + n ))
	done
}

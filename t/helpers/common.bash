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

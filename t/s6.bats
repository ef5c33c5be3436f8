#!/usr/bin/env bats
# rvd and relayd supervised by s6 from etc/s6, killed and restarted.

load helpers/common

# scan HOST SERVICE LISTEN: a scan directory on HOST with etc/s6/SERVICE in it.
scan() {
	local host=$1 svc=$2 listen=$3 d="$BATS_FILE_TMPDIR/scan-$1"
	mkdir -p "$d"
	cp -R "$BATS_TEST_DIRNAME/../etc/s6/$svc" "$d/"
	up=$(echo "$svc" | tr a-z A-Z)
	echo "$listen" > "$d/$svc/env/${up}_LISTEN"
	[ "$svc" = rvd ] && echo 198.51.100.2:7071 > "$d/$svc/env/RVD_RELAY"
	# No users file in the test: open names, said so.
	[ "$svc" = rvd ] && echo -o > "$d/$svc/env/RVD_FLAGS"
	# The services drop root: the tools must be reachable by nobody.
	chmod o+rx "$BATS_FILE_TMPDIR" "$d"
	lab_bg "$host" s6-svscan "$d"
}

setup_file() {
	lab_up
	# Random ports on the listener's NAT: no hole punching, the relay is used.
	lab_mode natB random
	# The binaries must be readable by the user the daemons become.
	scan rv rvd 198.51.100.1:7070
	scan relay relayd 198.51.100.2:7071
	lab rv s6-svwait -U -t 5000 "$BATS_FILE_TMPDIR/scan-rv/rvd"
	lab relay s6-svwait -U -t 5000 "$BATS_FILE_TMPDIR/scan-relay/relayd"
	lab_bg b1 rvlisten -v -k 1 office p2pseal -s serve
	export LISTENER_LOG=$LAB_BG_LOG
	lab_bg pub rvlisten -v -k 1 pubpeer p2pseal -s serve
	export PUB_LOG=$LAB_BG_LOG
	sleep 1
}

teardown_file() {
	lab_down_checked
}

svc_pid() {
	s6-svstat -o pid "$1"
}

@test "s6 brings rvd and relayd up, ready, as nobody" {
	rv=$BATS_FILE_TMPDIR/scan-rv/rvd
	[ "$(s6-svstat -o up,ready "$rv")" = "true true" ]
	[ "$(ps -o user= -p "$(svc_pid "$rv")")" = nobody ]
	echo x | lab a1 env P2P_NAME=d timeout 30 p2pdial office | grep -q "^via=relay"
}

@test "rvd killed: s6 restarts it, rvlisten logs on again within 2 s, p2pdial works" {
	rv=$BATS_FILE_TMPDIR/scan-rv/rvd
	old=$(svc_pid "$rv")
	n=$(grep -c "logged on to" "$LISTENER_LOG")
	kill -KILL "$old"
	start=$(date +%s%N)
	until [ "$(grep -c "logged on to" "$LISTENER_LOG")" -gt "$n" ]; do
		[ $(( ($(date +%s%N) - start) / 1000000 )) -lt 2000 ] || { cat "$LISTENER_LOG"; false; }
		sleep 0.05
	done
	[ "$(svc_pid "$rv")" != "$old" ]
	echo x | lab pub env P2P_NAME=d timeout 30 p2pdial office | grep -q "^via="
}

@test "relayd killed mid-transfer: the transfer fails with a clear error, no hang" {
	relay=$BATS_FILE_TMPDIR/scan-relay/relayd
	# A slow endless stream a1 -> b1 through the relay (both NATs drop).
	lab a1 env P2P_NAME=d sh -c 'yes | timeout 30 p2pdial -v office' \
		> /dev/null 2> "$BATS_TEST_TMPDIR/err" &
	dialer=$!
	for i in $(seq 150); do
		grep -q "connected via relay" "$BATS_TEST_TMPDIR/err" && break
		sleep 0.1
	done
	grep -q "connected via relay" "$BATS_TEST_TMPDIR/err"
	sleep 0.5
	kill -KILL "$(svc_pid "$relay")"
	start=$(date +%s)
	rc=0
	wait "$dialer" || rc=$?
	cat "$BATS_TEST_TMPDIR/err"
	echo "took $(( $(date +%s) - start )) s, exit $rc"
	[ $(( $(date +%s) - start )) -le 5 ]
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
	# A reset or a broken pipe; or, when the killed relayd's socket had
	# nothing unread and the kernel ended it with a FIN, the cut that the
	# sealed stream tells from an end (p2pseal(1): no end frame came).
	grep -q -E "p2pdial: (connection lost: (Connection reset by peer|Broken pipe)|connection cut before the peer's end of stream)$" \
		"$BATS_TEST_TMPDIR/err"
	lab relay s6-svwait -U -t 5000 "$relay"
	echo x | lab a1 env P2P_NAME=d timeout 30 p2pdial office | grep -q "^via=relay"
}

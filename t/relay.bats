#!/usr/bin/env bats
# The relay rung in the lab: both peers behind NATs that drop inbound, the
# listener's with fully random ports, so that no hole can be punched.

load helpers/common

setup_file() {
	lab_up
	lab_mode natB random
	# Named users: rvinvite caches only the candidates of names rvd vouches for.
	start_rvd_vouched dialer office2 office3 office64 sealme sealpub -- -R 198.51.100.2:7071
	lab_bg relay relayd -v 198.51.100.2:7071
	export RELAYD_LOG=$LAB_BG_LOG RELAYD_PID=$LAB_BG_PID
	lab_wait_port relay 198.51.100.2 7071
}

teardown_file() {
	lab_down_checked
}

@test "sealed by default: relayd's host and natA see no plain text, relayed or direct; an unsealed dial (-u, the control) shows it" {
	local mark=$BATS_FILE_TMPDIR/marked n flag
	yes 'PLAINTEXT-MARKER of p2pdial' | head -c 1048576 > "$mark"
	lab_bg b1 p2plisten -v sealme serve "$mark"
	wait_logged_on sealme
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	for flag in -u -v; do
		capture_start relay natA
		lab a1 env P2P_NAME=dialer timeout 60 p2pdial -v $flag sealme < "$mark" > "$out" 2> "$errf" ||
			{ capture_stop; cat "$errf"; false; }
		capture_stop
		grep -q "p2pdial: connected via relay to 198.51.100.2:7071 as sealme" "$errf"
		check_transfer "$out" "$mark" "$mark"
		n=$(cat "$BATS_TEST_TMPDIR/relay.pcap" "$BATS_TEST_TMPDIR/natA.pcap" |
			grep -a -c -e PLAINTEXT-MARKER -e ' peer=dialer remote=' || :)
		if [ "$flag" = -u ]; then
			[ "$n" -gt 100 ] || { echo "the control saw $n marked lines"; false; }
		else
			[ "$n" -eq 0 ] || { echo "$n plain lines crossed the relay sealed"; false; }
			grep -q "p2pdial: sealed with " "$errf"
		fi
	done
	# Direct (out, through natA): as dark.
	lab_bg pub p2plisten -v sealpub serve "$mark"
	wait_logged_on sealpub
	capture_start natA
	lab a1 env P2P_NAME=dialer timeout 60 p2pdial -v sealpub < "$mark" > "$out" 2> "$errf" ||
		{ capture_stop; cat "$errf"; false; }
	capture_stop
	grep -q "p2pdial: connected via out to 198.51.100.4:[0-9]* as sealpub" "$errf"
	check_transfer "$out" "$mark" "$mark"
	n=$(grep -a -c -e PLAINTEXT-MARKER -e ' peer=dialer remote=' "$BATS_TEST_TMPDIR/natA.pcap" || :)
	[ "$n" -eq 0 ] || { echo "$n plain lines crossed natA sealed"; false; }
}

@test "both behind dropping NATs: connects via relay, 64 MiB each way, half-close" {
	sent=$(make_data sent64 64)
	# Its own server: this one sends 64 MiB back.
	BACKFILE=$(make_data back64 64) start_listener b1 office64
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab a1 env P2P_NAME=dialer timeout 60 p2pdial -v office64 < "$sent" > "$out" 2> "$errf" ||
		{ cat "$errf"; false; }
	grep -q "p2pdial: connected via relay to 198.51.100.2:7071 as office64" "$errf"
	grep -q "^via=relay peer=dialer" "$out"
	check_transfer "$out" "$sent" "$(make_data back64 64)"
}

@test "the relay is taken only after the direct rungs failed, within the timeouts" {
	start_listener b1 office2
	errf=$BATS_TEST_TMPDIR/err
	start=$(date +%s%N)
	echo hi | lab a1 env P2P_NAME=dialer P2P_TIMEOUT=2 timeout 30 p2pdial -v office2 \
		> /dev/null 2> "$errf"
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	cat "$errf"
	# Order: the invitation, the direct dial, then the relay.
	# Each rung's line comes after the line of the rung before it.
	prev=0
	for pat in "rvinvite: racing" "dialdirect: unable" "dialport: unable" \
		"dialproxy: unable" "relaycat: inviting" "p2pdial: connected via relay"; do
		n=$(grep -n -m1 "$pat" "$errf" | cut -d: -f1)
		[ -n "$n" ] && [ "$n" -gt "$prev" ] || { echo "out of order: $pat"; false; }
		prev=$n
	done
	# Each direct rung within its budget (at most 2 s each), the relay a few round trips.
	echo "took $took ms"
	[ "$took" -le 8000 ]
}

@test "a repeat dial, racing the peer's cached candidates, still ends on the relay" {
	BACKFILE=$(make_data back1 1) start_listener b1 office3
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	for i in 1 2; do
		lab a1 env P2P_NAME=dialer timeout 30 p2pdial -v office3 \
			< "$(make_data sent1 1)" > "$out" 2> "$errf" || { cat "$errf"; false; }
		grep -q "p2pdial: connected via relay to 198.51.100.2:7071 as office3" "$errf"
		check_transfer "$out" "$(make_data sent1 1)" "$(make_data back1 1)"
	done
	# The second time the cached candidates went first, and the late block
	# behind them was read: no rung took the end of it for a connection.
	grep -q "rvinvite: racing office3: passing its 2 cached candidates on" "$errf"
	! grep -q "a rung before us connected" "$errf"
}

@test "relayd killed while sessions are idle: clients get a clean error, not a hang" {
	lab_bg relay relayd -v 198.51.100.2:7072
	lab_wait_port relay 198.51.100.2 7072
	pid=$LAB_BG_PID
	# An unjoined session, waiting for its peer.
	lab a1 bash -c 'exec 3<>/dev/tcp/198.51.100.2/7072; echo NEW >&3; read -r l <&3; echo "$l"; \
		timeout 10 cat <&3; echo "end $?"' > "$BATS_TEST_TMPDIR/idle" 2>&1 &
	waiter=$!
	sleep 0.5
	pkill -KILL -f "relayd -v 198.51.100.2:7072"
	start=$(date +%s)
	wait "$waiter" || :
	[ $(( $(date +%s) - start )) -le 3 ]
	grep -q "^SESSION [0-9a-f]\{32\}$" "$BATS_TEST_TMPDIR/idle"
	grep -q "^end 0$" "$BATS_TEST_TMPDIR/idle"
	# relaycat joining a session on a dead relay: a clear error, exit 1.
	run -1 lab a1 timeout 10 relaycat -j 0123456789abcdef0123456789abcdef 198.51.100.2:7072
	[[ "$output" == "relaycat: unable to connect to relay 198.51.100.2:7072: Connection refused" ]]
}

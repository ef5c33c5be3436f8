#!/usr/bin/env bats
# dialpunch in the lab (p2p(7), "Hole punching"): both peers behind NATs
# that keep ports, which drop or reject what nobody asked for, meet by TCP
# simultaneous open; a NAT with random ports makes the rung give up at
# once and the relay follow. The ladders are the default ones with
# dialpunch beside the direct rungs (P2P_LADDER, P2P_ANSWER_LADDER).

load helpers/common

setup_file() {
	lab_up
	lab_delay 10
	start_rvd -R 198.51.100.2:7071
	lab_bg relay relayd -v 198.51.100.2:7071
	lab_wait_port relay 198.51.100.2 7071
	export P2P_ANSWER_LADDER='dialpunch -e $P2P_V | dialdirect $P2P_V |
		dialport $P2P_V | dialproxy $P2P_V'
	start_listener b1 punchee
	# A listener whose ladder does not punch (the default, or an older one).
	P2P_ANSWER_LADDER='dialdirect $P2P_V | dialport $P2P_V | dialproxy $P2P_V' \
		start_listener b2 oldpeer
	start_listener pub pubpeer
	echo "$LAB_BG_LOG" > "$BATS_FILE_TMPDIR/publog"
}

teardown_file() {
	lab_down_checked
}

setup() {
	PUB_LOG=$(cat "$BATS_FILE_TMPDIR/publog")
}

teardown() {
	lab_mode natA drop
	lab_mode natB drop
	if grep -s -l -E "AddressSanitizer|runtime error:" "$BATS_TEST_TMPDIR"/err; then
		grep -h -A5 -E "AddressSanitizer|runtime error:" "$BATS_TEST_TMPDIR"/err | head -40
		return 1
	fi
}

# punch_dial [MIB [PEER]]: p2pdial from a1 to PEER (punchee) with dialpunch
# in its ladder, sending MIB (default 16) MiB; output in $out, stderr in
# $errf, and the milliseconds from the start to "connected via" on fd 3.
punch_dial() {
	local mib=${1:-16} peer=${2:-punchee} t0 rc
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	t0=$(date +%s%N)
	lab a1 env P2P_NAME=dialer P2P_TIMEOUT=3 \
		P2P_LADDER='rvinvite -e -v "$P2PPEER" | dialdirect -e -v | dialpunch -e -v |
			dialport -e -v | dialproxy -v | relaycat -v' \
		timeout 30 p2pdial -v "$peer" < "$(make_data sent$mib "$mib")" 2>&1 > "$out" |
		T0=$t0 perl -MTime::HiRes=time -ne 'printf "%d %s", time * 1000 - $ENV{T0} / 1e6, $_' \
		> "$errf.t"
	rc=${PIPESTATUS[0]}
	sed -E 's/^[0-9]+ //' "$errf.t" > "$errf"
	echo "# ms $(grep -m1 'connected via' "$errf.t")" >&3
	return "$rc"
}

@test "two port-keeping NATs that drop: punched, 16 MiB byte-exact, P2PVIA=punch both sides" {
	lab_mode natA drop
	lab_mode natB drop
	punch_dial || { cat "$errf"; false; }
	grep -q -E "(dialpunch: )?punched through to 198.51.100.20:[0-9]+ in [0-9]+ ms" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf"
	grep -q "^via=punch peer=dialer remote=198.51.100.10:" "$out"
	check_transfer "$out" "$(make_data sent16 16)" "$(make_data back 16)"
	grep -q -E "punch dialer 198.51.100.10:[0-9]+ <-> punchee 198.51.100.20:[0-9]+" "$RVD_LOG"
}

@test "two port-keeping NATs that reject: punched" {
	lab_mode natA reject
	lab_mode natB reject
	punch_dial 1 || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf" ||
		{ cat "$errf"; false; }
	grep -q "^via=punch peer=dialer" "$out"
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
}

@test "one NAT with random ports: dialpunch gives up at once, the relay connects" {
	lab_mode natA drop
	lab_mode natB random
	punch_dial 1 || { cat "$errf"; false; }
	grep -q -E "(dialpunch: )?(our|the peer's) NAT does not keep ports: not punching" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via relay to 198.51.100.2:7071 as punchee$" "$errf"
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
	# No punch was fired: from the PUNCH answer straight to the relay.
	! grep -q -E "punched through" "$errf"
	[ -z "${H8_SHOW:-}" ] || cat "$errf.t" >&3
}

@test "an invitee that does not punch: its FAIL ends the inviter's wait, the relay follows" {
	punch_dial 1 oldpeer || { cat "$errf"; false; }
	grep -q -E "(dialpunch: )?unable to connect to oldpeer: rvd: peer will not punch$" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via relay to 198.51.100.2:7071 as oldpeer$" "$errf"
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
}

@test "a direct path that works wins over the punch beside it: one connection" {
	lab_mode natA drop
	punch_dial 1 pubpeer || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via out to 198.51.100.4:[0-9]+ as pubpeer$" "$errf" ||
		{ cat "$errf"; false; }
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
	sleep 1
	# The listener served the one connection only.
	[ "$(grep -c "connected dialer via" "$PUB_LOG")" = "$(grep -c "invited by dialer" "$PUB_LOG")" ] ||
		{ cat "$PUB_LOG"; false; }
}

@test "PUNCH for a session one is not in is refused; an rvd without PUNCH fails the rung in one line" {
	local id=0123456789abcdef0123456789abcdef i
	run lab pub bash -c "exec 5<>/dev/tcp/198.51.100.1/7070
		printf 'LOGON mallory\nPUNCH $id 198.51.100.4:5555\n' >&5
		timeout 2 head -n 2 <&5"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "ERR $id no such session" ] || { echo "$output"; false; }
	grep -q "refused punch mallory 198.51.100.4:[0-9]*: not its session" "$RVD_LOG"
	# An rvd that knows no PUNCH: a WELCOME, then "ERR - unknown command".
	printf 'WELCOME 127.0.0.1:1 -\nERR - unknown command\n' > "$BATS_TEST_TMPDIR/old"
	lab_bg pub fakervd 7099 "$BATS_TEST_TMPDIR/old" "$BATS_TEST_TMPDIR/oldlog"
	# (socat serves one client: no test connection before ours)
	for i in $(seq 50); do
		lab pub ss -ltn | grep -q 127.0.0.1:7099 && break
		sleep 0.1
	done
	run --separate-stderr lab pub timeout 10 dialpunch -t 3 <<-EOF
	peer someone
	rv 127.0.0.1:7099
	id $id
	token $id

	EOF
	[ "$status" -eq 1 ]
	[ "$stderr" = "dialpunch: rvd: unknown command" ] || { echo "$stderr"; false; }
	echo "$output" | grep -q -x "tried dialpunch rvd: unknown command"
}

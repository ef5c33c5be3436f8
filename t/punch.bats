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
	echo "$LAB_BG_LOG" > "$BATS_FILE_TMPDIR/punchee.log"
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

# punch_dial [MIB [PEER [HOST]]]: p2pdial from HOST (a1) to PEER (punchee)
# with dialpunch in its ladder, sending MIB (default 16) MiB; output in
# $out, stderr in $errf, and the milliseconds from the start to
# "connected via" on fd 3.
punch_dial() {
	local mib=${1:-16} peer=${2:-punchee} host=${3:-a1} t0 rc
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	t0=$(date +%s%N)
	lab "$host" env P2P_NAME=dialer P2P_TIMEOUT=3 \
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

@test "two port-keeping NATs that drop: punched, 64 MiB byte-exact, P2PVIA=punch both sides" {
	lab_mode natA drop
	lab_mode natB drop
	punch_dial 64 || { cat "$errf"; false; }
	grep -q -E "(dialpunch: )?punched through to 198.51.100.20:[0-9]+ in [0-9]+ ms" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf"
	grep -q "^via=punch peer=dialer remote=198.51.100.10:" "$out"
	check_transfer "$out" "$(make_data sent64 64)" "$(make_data back 16)"
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

@test "two peers behind one NAT: a direct rung connects over their LAN, no punch, no relay" {
	# b2 dials punchee on b1: the same LAN behind natB. dialdirect's dial to
	# the peer's LAN address (out) or the peer's to ours (in) gets there
	# before dialpunch fires, which would need natB to hairpin.
	punch_dial 1 punchee b2 || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via (in|out) to 10\.2\.0\.[23]:[0-9]+ as punchee$" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "^via=(in|out) peer=dialer remote=10\.2\.0\.3:" "$out"
	! grep -q -E "punched through|connected via (punch|relay)" "$errf"
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
}

@test "an invitee whose dialpunch dies right after its PUNCH: the relay follows in bounded time, rvd unhurt" {
	local pidf=$BATS_TEST_TMPDIR/victim.pid id dpid t0 ms rc
	# The victim's answering ladder says where its dialpunch runs.
	# (An asynchronous command's stdin is /dev/null: the ticket goes by fd 3.)
	P2P_ANSWER_LADDER="{ dialpunch -e \$P2P_V <&3 3<&- & echo \$! > $pidf; wait; } 3<&0 |
		dialdirect \$P2P_V | dialport \$P2P_V | dialproxy \$P2P_V" \
		start_listener c1 victim
	t0=$(date +%s%N)
	# Our dialpunch a second late, so that the victim's PUNCH waits for it.
	lab a1 env P2P_NAME=dialer P2P_TIMEOUT=3 \
		P2P_LADDER='rvinvite -e "$P2PPEER" | dialdirect -e | { sleep 1; dialpunch -e; } |
			dialport -e | dialproxy | relaycat' timeout 20 p2pdial victim \
		< "$(make_data sent1 1)" > "$BATS_TEST_TMPDIR/out" 2> "$BATS_TEST_TMPDIR/err" &
	dpid=$!
	kill_after_punch victim "$pidf"
	rc=0
	wait "$dpid" || rc=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	echo "# ms $ms exit $rc: $(cat "$BATS_TEST_TMPDIR/err")" >&3
	cat "$BATS_TEST_TMPDIR/err"
	# The relay, or a failure, within the PUNCH's wait (3 s) and the relay's steps.
	[ "$ms" -lt 10000 ]
	if [ "$rc" = 0 ]; then
		check_transfer "$BATS_TEST_TMPDIR/out" "$(make_data sent1 1)" "$(make_data back 16)"
		grep -q "^via=relay peer=dialer" "$BATS_TEST_TMPDIR/out"
	else
		[ "$rc" = 1 ]
		grep -q -E "^p2pdial: unable to connect to victim" "$BATS_TEST_TMPDIR/err"
	fi
	# dialpunch's one line on the way, and nothing else but p2pdial's.
	[ "$(grep -v -c -E "^(dialpunch|p2pdial): " "$BATS_TEST_TMPDIR/err")" = 0 ]
	[ "$(grep -c "^dialpunch: " "$BATS_TEST_TMPDIR/err")" -le 1 ]
	# rvd and the other peers are unhurt: punchee punches as before.
	punch_dial 1 || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf"
}

@test "a peer that dies mid-punch: the other gives up at once" {
	local errf id rc
	mortal_punch
	[ "$(grep -c " dialpunch: " "$errf")" = 2 ]
	# dialpunch's documented failure: the ticket passed on, and the relay.
	if [ "$rc" = 0 ]; then
		grep -q "^via=relay peer=dialer" "$BATS_TEST_TMPDIR/out"
		check_transfer "$BATS_TEST_TMPDIR/out" "$(make_data sent1 1)" "$(make_data back 16)"
	else
		grep -q -E "p2pdial: unable to connect to mortal: .*dialpunch rvd: peer left the punch" "$errf"
	fi
}

@test "a repeat dial between two port-keeping NATs that drop: the punch starts at once, without the hold" {
	local won=$P2P_CACHE/won+punchee@198.51.100.1:7070 plog
	plog=$(cat "$BATS_FILE_TMPDIR/punchee.log")
	punch_dial 1 || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf" ||
		{ cat "$errf"; false; }
	# p2pcatch wrote down the rung that won.
	grep -q -E "^punch [0-9]+$" "$won" || { cat "$won"; false; }
	: > "$plog"
	punch_dial 1 || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "(dialdirect: )?punchee went by punch last time: passing the ticket on at once$" "$errf"
	grep -q -E "(dialpunch: )?punchee went by punch last time: punching at once$" "$errf"
	grep -q -E "(dialpunch: )?we are .* firing in [0-9]+ ms, without the hold$" "$errf"
	# rvd told the invitee: it held no fire either.
	grep -q -E "(dialpunch: )?the peer fires at once: so do we$" "$plog" || { cat "$plog"; false; }
	grep -q -E "(dialpunch: )?we are .* firing in [0-9]+ ms, without the hold$" "$plog"
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
	# A record from long ago says nothing: the hold is back.
	printf 'punch %s\n' $(( $(date +%s) - 601 )) > "$won"
	punch_dial 1 || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via punch to 198.51.100.20:[0-9]+ as punchee$" "$errf"
	! grep -q -E "went by punch last time|without the hold" "$errf"
}

@test "the cache says punch, but the direct path works now: the direct one wins, one connection" {
	local won=$P2P_CACHE/won+pubpeer@198.51.100.1:7070
	# pubpeer was punched to last time (behind a NAT then); it is public now.
	mkdir -p -m 700 "$P2P_CACHE"
	printf 'punch %s\n' "$(date +%s)" > "$won"
	lab_mode natA drop
	punch_dial 1 pubpeer || { cat "$errf"; false; }
	grep -q -E "(dialpunch: )?pubpeer went by punch last time: punching at once$" "$errf" ||
		{ cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via out to 198.51.100.4:[0-9]+ as pubpeer$" "$errf" ||
		{ cat "$errf"; false; }
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back 16)"
	grep -q -E "^out [0-9]+$" "$won" || { cat "$won"; false; }
	sleep 1
	# The listener served the one connection only.
	[ "$(grep -c "connected dialer via" "$PUB_LOG")" = "$(grep -c "invited by dialer" "$PUB_LOG")" ] ||
		{ cat "$PUB_LOG"; false; }
}

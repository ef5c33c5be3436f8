#!/usr/bin/env bats
# The core ladder (rungs in and out) through the kernel's NAT in the lab.

load helpers/common

setup_file() {
	lab_up
	start_rvd
}

teardown_file() {
	lab_down_checked
}

# dial HOST PEER: p2pdial from HOST with the 16 MiB file; output in $out, stderr in $errf.
dial() {
	local host=$1 peer=$2
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab "$host" env P2P_NAME=dialer timeout 30 p2pdial -v "$peer" \
		< "$(make_data sent 16)" > "$out" 2> "$errf"
}

@test "behind a NAT, dialling a public listener: connects via out" {
	start_listener pub office1
	dial a1 office1 || { cat "$errf"; false; }
	grep -q "p2pdial: connected via out to 198.51.100.4:" "$errf"
	grep -q "^via=in peer=dialer remote=198.51.100.10:" "$out"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
}

@test "public, dialling a listener behind a NAT: connects via in" {
	start_listener b1 office2
	dial pub office2 || { cat "$errf" "$LAB_BG_LOG"; false; }
	grep -q "p2pdial: connected via in to 198.51.100.20:" "$errf" || { cat "$errf"; false; }
	grep -q "^via=out peer=dialer" "$out"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
}

@test "both behind the same NAT: connects over private addresses" {
	start_listener a2 office3
	dial a1 office3 || { cat "$errf"; false; }
	grep -q -E "p2pdial: connected via (in|out) to 10.1.0.3:" "$errf"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
}

@test "both behind dropping NATs, one with random ports, no relay: fails cleanly in time, nothing left" {
	lab_mode natB random
	start_listener b1 office4
	start=$(date +%s) errf=$BATS_TEST_TMPDIR/err
	run -1 dial a1 office4
	[ $(( $(date +%s) - start )) -le 15 ]
	grep -q "p2pdial: unable to connect to office4:" "$errf"
	grep -q "dialdirect 10.2.0.2:[0-9]* " "$errf"
	sleep 0.5
	no_procs a1 "rvinvite|dialdirect|dialpunch|relaycat|p2pcatch"
	lab_mode natB drop
}

@test "half-close: p2pdial ends when the file is sent and the reply read" {
	start_listener pub office5
	printf 'hello\n' > "$BATS_TEST_TMPDIR/small"
	run --separate-stderr timeout 15 ip netns exec "${LAB}a1" p2pdial office5 < "$BATS_TEST_TMPDIR/small"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "$(sha "$BATS_TEST_TMPDIR/small")" ]
}

@test "an absent peer is a clear error" {
	run -1 lab a1 timeout 15 p2pdial nobody
	[[ "$output" == *"not logged on: nobody"* ]]
}

@test "a wrong token is refused, and the listener keeps serving" {
	start_listener pub office6 -p 7777
	run lab pub2 sh -c 'printf "P2P %s %s\n" 0123456789abcdef0123456789abcdef \
		0123456789abcdef0123456789abcdef | timeout 3 nc 198.51.100.4 7777'
	[[ "$output" == "ERR bad token" ]]
	dial a1 office6 || { cat "$errf"; false; }
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
}

@test "a malformed ticket: exit 100 and a one-line error" {
	run -100 sh -c 'printf "peer bob\nid zz\n\n" | dialdirect'
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == "dialdirect: malformed ticket: bad hex: id" ]]
}

@test "an over-long line to rvd is refused while a good client is served" {
	start_listener pub office7
	lab pub2 sh -c 'head -c 3000 /dev/zero | tr "\0" x | timeout 3 nc 198.51.100.1 7070' \
		> "$BATS_TEST_TMPDIR/long" || :
	grep -q "^ERR - line too long" "$BATS_TEST_TMPDIR/long"
	lab pub2 sh -c 'printf "LOGON ok\nBOGUS\n" | timeout 3 nc 198.51.100.1 7070' \
		> "$BATS_TEST_TMPDIR/bogus" || :
	grep -q "^ERR - unknown command" "$BATS_TEST_TMPDIR/bogus"
	dial a1 office7 || { cat "$errf"; false; }
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
}

@test "a wrong secret is refused by an rvd with a users file" {
	printf 'office8 s3cret\ndialer pw\n' > "$BATS_FILE_TMPDIR/users"
	lab_bg rv rvd -u "$BATS_FILE_TMPDIR/users" 198.51.100.1:7071
	rv2=$LAB_BG_LOG
	lab_wait_port rv 198.51.100.1 7071
	run -1 lab a1 env P2P_RVD=198.51.100.1:7071 P2P_NAME=dialer P2P_SECRET=wrong \
		timeout 10 rvinvite office8
	[[ "$output" == *"refused us as dialer: wrong name or secret"* ]]
	lab_bg pub env P2P_RVD=198.51.100.1:7071 P2P_SECRET=s3cret rvlisten office8 cat
	sleep 1
	run -1 lab a1 env P2P_RVD=198.51.100.1:7071 P2P_SECRET=nope \
		timeout 10 rvlisten office8 cat
	[[ "$output" == *"refused office8: wrong name or secret"* ]]
	grep -q "refused dialer 198.51.100.10:[0-9]*: wrong secret" "$rv2"
	grep -q "refused office8 198.51.100.10:[0-9]*: wrong secret" "$rv2"
	grep -q "listen office8 198.51.100.4:" "$rv2"
}

@test "rvd answers an INVITE with the listener's standing candidates" {
	id=0123456789abcdef0123456789abcdef
	lab pub bash -c 'exec 3<>/dev/tcp/198.51.100.1/7070;
		printf "LISTEN standing\nADDR 10.9.9.9:5000 :443\n" >&3; sleep 2' &
	sleep 0.5
	run lab pub2 bash -c "exec 3<>/dev/tcp/198.51.100.1/7070;
		printf 'LOGON asker\nINVITE standing $id $id 10.8.8.8:1\n' >&3; timeout 1 cat <&3"
	[[ "$output" == *"SENT $id 10.9.9.9:5000 :443 198.51.100.4:5000"* ]]
	run lab pub2 bash -c "exec 3<>/dev/tcp/198.51.100.1/7070;
		printf 'LOGON asker\nADDR 10.9.9.9:5000\n' >&3; timeout 1 cat <&3"
	[[ "$output" == *"ERR - ADDR is for listeners"* ]]
	wait
}

@test "rvd drops a peer that stops answering its keepalives" {
	lab_bg rv rvd -v -o -k 1 198.51.100.1:7072
	log=$LAB_BG_LOG
	lab_wait_port rv 198.51.100.1 7072
	# Logs on, then neither reads nor answers PING.
	lab pub bash -c 'exec 3<>/dev/tcp/198.51.100.1/7072; printf "LISTEN ghost\n" >&3; sleep 4' &
	sleep 3.5
	grep -q "close ghost 198.51.100.4:[0-9]*: keepalive timeout" "$log"
	wait
}

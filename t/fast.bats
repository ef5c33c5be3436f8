#!/usr/bin/env bats
# The ladder's short cuts, in the lab: TCP Fast Open to rvd (the log-on and the
# invitation ride in the SYN), and the invitee's GO riding with its handshake, so
# that the inviter takes an "in" connection without another round trip.

load helpers/common

setup_file() {
	lab_up
	start_rvd
	printf 'small reply\n' > "$BATS_FILE_TMPDIR/back"
	printf 'small request\n' > "$BATS_FILE_TMPDIR/sent"
	export BACKFILE=$BATS_FILE_TMPDIR/back
}

teardown_file() {
	lab_down_checked
}

# tfo_passive HOST: connections HOST's kernel accepted with data in the SYN.
tfo_passive() {
	lab "$1" awk '$1 == "TcpExt:" && !n++ { for (i = 2; i <= NF; i++) k[i] = $i; next }
		$1 == "TcpExt:" { for (i = 2; i <= NF; i++) if (k[i] == "TCPFastOpenPassive") print $i }' \
		/proc/net/netstat
}

# dial HOST PEER: p2pdial the small request from HOST; output in $out, stderr in $errf.
dial() {
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab "$1" env P2P_NAME=dialer timeout 15 p2pdial -v "$2" \
		< "$BATS_FILE_TMPDIR/sent" > "$out" 2> "$errf"
}

@test "a repeat dialler's log-on and invitation reach rvd in the SYN (TCP Fast Open)" {
	start_listener pub fast1
	before=$(tfo_passive rv)
	for i in 1 2 3; do
		dial a1 fast1 || { cat "$errf"; false; }
		check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE"
	done
	after=$(tfo_passive rv)
	echo "rvd's host took $(( after - before )) SYNs with data"
	# The first log-on may have had to fetch its cookie; the later ones had it.
	[ $(( after - before )) -ge 2 ]
}

@test "without Fast Open on rvd's host, the same dial works the ordinary way" {
	start_listener pub fast2
	dial a1 fast2 || { cat "$errf"; false; }
	lab rv sysctl -qw net.ipv4.tcp_fastopen=1
	before=$(tfo_passive rv)
	dial a1 fast2 || { lab rv sysctl -qw net.ipv4.tcp_fastopen=3; cat "$errf"; false; }
	after=$(tfo_passive rv)
	lab rv sysctl -qw net.ipv4.tcp_fastopen=3
	check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE"
	[ "$after" = "$before" ]
}

@test "the invitee's GO rides with its handshake, and the inviter takes it: via in" {
	start_listener b1 fast3
	log=$LAB_BG_LOG
	dial pub fast3 || { cat "$errf"; false; }
	grep -q "p2pdial: connected via in to 198.51.100.20:" "$errf"
	check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE"
	grep -q "dialdirect: connected to 198.51.100.4:[0-9]*: GO with the handshake" "$log"
}

@test "both public, both dialling at once: each side takes the same one connection" {
	start_listener pub fast4
	log=$LAB_BG_LOG
	for i in $(seq 10); do
		dial pub2 fast4 || { cat "$errf"; false; }
		check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE" ||
			{ cat "$errf" "$out"; false; }
	done
	sleep 0.3
	# One connection served per session: never a second one for the same dial.
	[ "$(grep -c '^rvlisten: connected dialer via ' "$log")" -eq 10 ]
}

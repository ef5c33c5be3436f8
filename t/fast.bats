#!/usr/bin/env bats
# The ladder's short cuts, in the lab: TCP Fast Open to rvd (the log-on and the
# invitation ride in the SYN), and the invitee's GO riding with its handshake, so
# that the inviter takes an "in" connection without another round trip.

load helpers/common

setup_file() {
	lab_up
	# Named users: rvinvite caches only the candidates of names rvd vouches for.
	start_rvd_vouched dialer fake fast1 fast2 fast3 fast4 fast5 fast6 fast7 fast8
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

# cachefile PEER: rvinvite's cache of PEER's candidates at our rvd.
cachefile() {
	echo "$P2P_CACHE/$1@198.51.100.1:7070"
}

@test "the next dial races the peer's candidates of last time while the invitation travels" {
	start_listener pub fast5
	dial a1 fast5 || { cat "$errf"; false; }
	grep -q '^peer fast5$' "$(cachefile fast5)"
	grep -q '^addr 198.51.100.4:[0-9]*$' "$(cachefile fast5)"
	dial a1 fast5 || { cat "$errf"; false; }
	in_order "$errf" "rvinvite: racing fast5: passing its [0-9]+ cached candidates on" \
		"dialdirect: dialling [0-9]+ candidates" \
		"p2pdial: connected via out to 198.51.100.4:"
	check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE"
}

@test "a stale cache costs nothing: the fresh candidates follow the ticket, the dial goes out" {
	start_listener pub fast6
	first=$LAB_BG_PID
	dial a1 fast6 || { cat "$errf"; false; }
	old=$(grep '^addr 198.51.100.4:' "$(cachefile fast6)")
	# The listener comes back on another port: the cached one is refused.
	kill "$first"
	for i in $(seq 50); do
		[ "$(grep -c "listen fast6 " "$RVD_LOG")" -eq 1 ] && ! lab pub pgrep -f 'rvlisten -v fast6' >/dev/null && break
		sleep 0.1
	done
	sleep 0.3
	lab_bg pub rvlisten -v fast6 p2pseal -s serve "$BACKFILE"
	for i in $(seq 50); do
		[ "$(grep -c "listen fast6 " "$RVD_LOG")" -ge 2 ] && break
		sleep 0.1
	done
	dial a1 fast6 || { cat "$errf"; false; }
	new=$(grep '^addr 198.51.100.4:' "$(cachefile fast6)")
	[ "$old" != "$new" ]
	grep -q "dialdirect: late candidate ${new#addr }$" "$errf"
	grep -q "p2pdial: connected via out to ${new#addr }" "$errf"
	check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE"
}

@test "a dial that comes before its invitation is held for it, then taken" {
	start_listener pub fast7
	log=$LAB_BG_LOG
	dial a1 fast7 || { cat "$errf"; false; }
	# This lab's rvd stops as the next dial starts, until the listener holds
	# the dial to its cached candidate (3 s at most): the dial reaches the
	# listener before the invitation can.
	rvpid=$(ip netns pids "${LAB}rv" | xargs -r ps -o pid=,comm= -p | awk '$2 == "rvd" { print $1 }')
	[ -n "$rvpid" ]
	kill -STOP $rvpid
	( for i in $(seq 60); do
		grep -q "a dialer came before its invitation: holding it" "$log" && break
		sleep 0.05
	  done
	  kill -CONT $rvpid ) &
	dial a1 fast7 || { kill -CONT $rvpid; cat "$errf"; false; }
	wait
	grep -q "p2pdial: connected via out to 198.51.100.4:" "$errf"
	grep -q "rvlisten: a dialer came before its invitation: holding it" "$log" || { cat "$errf" "$log"; false; }
	check_transfer "$out" "$BATS_FILE_TMPDIR/sent" "$BACKFILE"
}

@test "an inviter's dial that hangs up while it is held is dropped, never answered OK" {
	start_listener pub fast8
	log=$LAB_BG_LOG
	id=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	tok=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	# A hand-made inviter on pub2: its listener takes the invitee's dial (with
	# GO) and holds it; its own dial to the invitee waits meanwhile, and hangs
	# up; then the invitee's dial is closed, the commitment goes back, and a
	# second dial of ours must be the one answered OK.
	run lab pub2 timeout 10 perl -MIO::Socket::INET -e '$| = 1; my ($id, $tok, $sec) = @ARGV;
		my $l = IO::Socket::INET->new(Listen => 5, LocalAddr => "198.51.100.5:7777",
			ReuseAddr => 1) or die "listen: $!";
		my $rv = IO::Socket::INET->new(PeerAddr => "198.51.100.1:7070") or die "rvd: $!";
		print $rv "LOGON fake $sec\nINVITE fast8 $id $tok 198.51.100.5:7777\n";
		my $bob;
		while (!$bob && defined(my $line = <$rv>)) {
			($bob) = grep { /^198\.51\.100\.4:/ } split(" ", $1) if $line =~ /^SENT $id (.*)/;
		}
		print "listener $bob\n";
		my $c = $l->accept or die "accept: $!";
		my $hs = ""; $c->sysread($hs, 200);
		print "its dial said: ", join(" / ", split(/\n/, $hs)), "\n";
		my $d = IO::Socket::INET->new(PeerAddr => $bob) or die "dial: $!";
		print $d "P2P $id $tok\n";
		select(undef, undef, undef, 0.2); close $d;
		select(undef, undef, undef, 0.1); close $c;
		select(undef, undef, undef, 0.3);
		my $e = IO::Socket::INET->new(PeerAddr => $bob) or die "dial: $!";
		print $e "P2P $id $tok\n";
		my $ans = <$e>; print "second dial: ", $ans // "nothing\n";' "$id" "$tok" "$P2P_SECRET"
	echo "$output"
	[[ "${lines[1]}" == "its dial said: P2P $id $tok / GO" ]]
	[ "${lines[2]}" = "second dial: OK" ]
	grep -q "rvlisten: a held dialer went away" "$log"
	[ "$(grep -c '^rvlisten: connected fake via ' "$log")" -eq 1 ]
}

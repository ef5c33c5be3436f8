#!/usr/bin/env bats
# Port mapping (issue 17): a listener behind a NAT with fully random ports,
# whose router runs miniupnpd (PCP, NAT-PMP, UPnP IGD), asks it to map its
# port and is dialled directly from behind another such NAT, where without
# the mapping only the relay gets through. Without a mapping router nothing
# shows and nothing waits; P2P_NOMAP=1 (and rvlisten -M) ask nothing; the
# mapping goes when the listener does.
#
# miniupnpd runs in natB with its own config and nft tables: see
# helpers/upnplab, which also says why the router names an external
# address (MU_EXT) nobody reaches.

load helpers/common

MU_EXT=100.128.0.20

setup_file() {
	command -v miniupnpd >/dev/null || skip "miniupnpd not installed (.ci/deps)"
	lab_up
	start_rvd -R 198.51.100.2:7071
	lab_bg relay relayd -v 198.51.100.2:7071
	lab_wait_port relay 198.51.100.2 7071
	lab_mode natA random
	lab_mode natB random
	upnplab prepare
}

teardown_file() {
	lab_down_checked
}

teardown() {
	stop_listener
	stop_miniupnpd
}

# start_miniupnpd [CONF LINES...]: miniupnpd in natB (NAT-PMP/PCP and UPnP,
# secure mode: each LAN host may map only itself), waiting until it serves.
start_miniupnpd() {
	local conf=$BATS_FILE_TMPDIR/miniupnpd.conf i
	upnplab conf "lease_file=$BATS_FILE_TMPDIR/miniupnpd.leases" "$@" > "$conf"
	# Its own pid file: the default one is shared by every lab on this host.
	lab_bg natB miniupnpd -d -f "$conf" -P "$BATS_FILE_TMPDIR/miniupnpd.pid"
	MU_PID=$LAB_BG_PID MU_LOG=$LAB_BG_LOG
	for i in $(seq 50); do
		grep -q "HTTP listening\|Listening for NAT-PMP" "$MU_LOG" && return 0
		sleep 0.1
	done
	echo "miniupnpd did not start"; cat "$MU_LOG"; return 1
}

stop_miniupnpd() {
	[ -n "${MU_PID:-}" ] || return 0
	kill "$MU_PID" 2>/dev/null || :
	for _ in $(seq 30); do kill -0 "$MU_PID" 2>/dev/null || break; sleep 0.1; done
	MU_PID=
	lab natB nft flush chain inet filter miniupnpd
	lab natB nft flush chain inet filter prerouting_miniupnpd
	lab natB nft flush chain inet filter postrouting_miniupnpd
	rm -f "$BATS_FILE_TMPDIR/miniupnpd.leases"
}

# listen NAME [RVLISTEN ARGS...]: rvlisten on $L_HOST (b1) serving the test server;
# waits until it is logged on. L_PID, L_LOG, L_START (ms) say which.
listen() {
	local name=$1 i
	shift
	L_START=$(( $(date +%s%N) / 1000000 ))
	lab_bg "${L_HOST:-b1}" rvlisten "$@" "$name" p2pseal -s serve "$(make_data back 1)"
	L_PID=$LAB_BG_PID L_LOG=$LAB_BG_LOG
	for i in $(seq 50); do
		grep -q "listen $name " "$RVD_LOG" && return 0
		sleep 0.1
	done
	echo "listener $name did not log on"; cat "$L_LOG"; return 1
}

stop_listener() {
	[ -n "${L_PID:-}" ] || return 0
	kill "$L_PID" 2>/dev/null || :
	for _ in $(seq 30); do kill -0 "$L_PID" 2>/dev/null || break; sleep 0.1; done
	L_PID=
}

# mapped_by PROTO: the listener logged its mapping by PROTO within 3 s.
mapped_by() {
	for _ in $(seq 30); do
		grep -q "port mapped by the gateway ($1): reached at $MU_EXT:" "$L_LOG" && return 0
		sleep 0.1
	done
	echo "no mapping by $1"; cat "$L_LOG"; tail -20 "$MU_LOG"; return 1
}

# dnat_rules: miniupnpd's forwarding rules in natB, one a line.
dnat_rules() {
	lab natB nft list chain inet filter prerouting_miniupnpd | grep dnat || :
}

# dial_from HOST PEER: p2pdial -v with 1 MiB each way; $out, $errf.
dial_from() {
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab "$1" env P2P_NAME=dialer P2P_TIMEOUT=2 timeout 30 p2pdial -v "$2" \
		< "$(make_data sent 1)" > "$out" 2> "$errf"
}

# direct: the last dial connected by a direct rung to natB's lab address.
direct() {
	grep -q -E "(p2pdial: )?connected via (in|out) " "$errf" ||
		{ echo "not direct"; cat "$errf"; return 1; }
	! grep -q "via relay" "$errf"
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
}

@test "a mapping router (PCP, NAT-PMP, UPnP): listener behind a random NAT is dialled directly, not relayed" {
	start_miniupnpd enable_natpmp=yes enable_upnp=yes
	listen mapped
	mapped_by '[A-Za-z-]*'
	port=$(sed -n 's/.*reached at [0-9.]*:\([0-9]*\).*/\1/p' "$L_LOG" | head -1)
	# Our own address and our own port, nothing else.
	dnat_rules | grep -q "dport $port dnat ip to 10.2.0.2:$port"
	[ "$(dnat_rules | wc -l)" = 1 ]
	# rvd holds the router's address and the observed one with the mapped port.
	for _ in $(seq 20); do grep -q "addr mapped: .*$MU_EXT:$port" "$RVD_LOG" && break; sleep 0.1; done
	grep "addr mapped: " "$RVD_LOG" | tail -1 | grep -q "198.51.100.20:$port .*$MU_EXT:$port"
	dial_from a1 mapped || { cat "$errf"; false; }
	direct
	grep -q "connected dialer via in " "$L_LOG"
}

@test "the mapping is deleted when the listener gets SIGTERM" {
	start_miniupnpd enable_natpmp=yes enable_upnp=yes
	listen gone
	mapped_by '[A-Za-z-]*'
	[ "$(dnat_rules | wc -l)" = 1 ]
	kill -TERM "$L_PID"
	for _ in $(seq 40); do [ -z "$(dnat_rules)" ] && break; sleep 0.1; done
	[ -z "$(dnat_rules)" ] || { dnat_rules; tail "$MU_LOG"; false; }
	# and nothing of ours is left running on b1
	sleep 0.3
	no_procs b1 rvlisten
}

@test "NAT-PMP/PCP only: mapped by PCP, reached directly from a public host" {
	start_miniupnpd enable_natpmp=yes enable_upnp=no
	listen pcponly
	mapped_by PCP
	dial_from pub pcponly || { cat "$errf"; false; }
	direct
}

@test "UPnP IGD only: mapped by UPnP, reached directly from behind a random NAT" {
	start_miniupnpd enable_natpmp=no enable_upnp=yes
	listen upnponly
	mapped_by UPnP
	dial_from a1 upnponly || { cat "$errf"; false; }
	direct
}

@test "secure mode: the router refuses b2 a mapping for b1; ours name only our own address" {
	start_miniupnpd enable_natpmp=yes enable_upnp=yes
	# The router's half: b2, on b1's LAN, asks for a port to b1. Refused.
	run lab b2 timeout 10 upnpc -a 10.2.0.2 45000 45000 TCP
	echo "$output"
	[[ $output == *"failed"* ]]
	! dnat_rules | grep -q ":45000"
	# Ours: whatever the listener on b1 asks names b1 (10.2.0.2), and only it.
	listen secure1
	mapped_by PCP
	[ -n "$(dnat_rules)" ]
	! dnat_rules | grep -v "dnat ip to 10.2.0.2:"
	grep -E "added mapping TCP [0-9]+->|port mapping request : [0-9]+->" "$MU_LOG" > "$BATS_TEST_TMPDIR/asked"
	cat "$BATS_TEST_TMPDIR/asked"
	[ -s "$BATS_TEST_TMPDIR/asked" ]
	! grep -v -E -- "->10\.2\.0\.2:[0-9]+" "$BATS_TEST_TMPDIR/asked"
}

@test "no mapping router: log-on as fast, nothing printed without -v, one line with -v" {
	listen quiet
	on=$(( $(date +%s%N) / 1000000 - L_START ))
	sleep 2.5
	! grep -q -i "map" "$L_LOG" || { cat "$L_LOG"; false; }
	stop_listener
	P2P_NOMAP=1 listen quietnomap
	off=$(( $(date +%s%N) / 1000000 - L_START ))
	stop_listener
	echo "# log-on: ${on} ms with discovery, ${off} ms with P2P_NOMAP=1" >&3
	[ "$on" -lt $(( off + 500 )) ]
	# A host with no gateway at all: the libraries' own complaints stay unseen.
	L_HOST=pub2 listen quietpub
	sleep 1.5
	! grep -q -i -E "map|sendto|unreachable" "$L_LOG" || { cat "$L_LOG"; false; }
	stop_listener
	listen loud -v
	for _ in $(seq 30); do grep -q "no port mapping" "$L_LOG" && break; sleep 0.1; done
	sleep 0.5
	[ "$(grep -c "no port mapping" "$L_LOG")" = 1 ] || { cat "$L_LOG"; false; }
	[ "$(grep -c -i "map" "$L_LOG")" = 1 ]
}

@test "P2P_NOMAP=1 and rvlisten -M ask the router nothing: the dial goes by relay" {
	start_miniupnpd enable_natpmp=yes enable_upnp=yes
	P2P_NOMAP=1 listen nomap -v
	sleep 1.5
	! grep -q "10.2.0.2" "$MU_LOG" || { cat "$MU_LOG"; false; }
	[ -z "$(dnat_rules)" ]
	dial_from a1 nomap || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via relay " "$errf"
	stop_listener
	listen nomapflag -v -M
	sleep 1.5
	! grep -q "10.2.0.2" "$MU_LOG" || { cat "$MU_LOG"; false; }
	[ -z "$(dnat_rules)" ]
}

@test "renewed while it lives, and mapped again after the router restarts and forgets it" {
	start_miniupnpd enable_natpmp=yes enable_upnp=no
	P2P_MAPCHECK=1 listen renewed
	mapped_by PCP
	# Long enough that the restarted router's epoch (seconds since its
	# start) is told from the old one's beyond the 2 s that lib/portmap.c
	# allows for clocks.
	sleep 4.5
	# asked again every second (P2P_MAPCHECK=1), the same mapping each time
	[ "$(grep -c "PCP request received from 10.2.0.2:" "$MU_LOG")" -ge 3 ] || { cat "$MU_LOG"; false; }
	grep -c "reached at" "$L_LOG" | grep -qx 1
	stop_miniupnpd
	[ -z "$(dnat_rules)" ]
	start_miniupnpd enable_natpmp=yes enable_upnp=no
	for _ in $(seq 40); do grep -q "the router had forgotten us" "$L_LOG" && break; sleep 0.1; done
	grep -q "the router had forgotten us" "$L_LOG" || { cat "$L_LOG"; echo ==; cat "$MU_LOG"; false; }
	[ "$(dnat_rules | wc -l)" = 1 ] || { dnat_rules; cat "$L_LOG"; echo ==; cat "$MU_LOG"; false; }
	dial_from a1 renewed || { cat "$errf"; false; }
	direct
}

@test "the inviter maps its port too: a listener behind a random NAT dials in (rung in)" {
	start_miniupnpd enable_natpmp=yes enable_upnp=yes
	L_HOST=a1 listen faraway
	# the dialler on b2 behind the mapping router; no relay to fall back on
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab b2 env P2P_NAME=dialer P2P_TIMEOUT=2 timeout 30 p2pdial -v faraway \
		< "$(make_data sent 1)" > "$out" 2> "$errf" || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via in " "$errf" || { cat "$errf"; false; }
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
	# and rvinvite's mapping went with it
	for _ in $(seq 40); do [ -z "$(dnat_rules)" ] && break; sleep 0.1; done
	[ -z "$(dnat_rules)" ] || { dnat_rules; tail -30 "$MU_LOG"; false; }
	# Without it, only the relay gets through.
	lab b2 env P2P_NAME=dialer P2P_TIMEOUT=2 P2P_NOMAP=1 timeout 30 p2pdial -v faraway \
		< "$(make_data sent 1)" > "$out" 2> "$errf" || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via relay " "$errf" || { cat "$errf"; false; }
}

@test "UPnP IGD only in front of the inviter: its mapping follows the invitation, and the listener dials in (rung in)" {
	start_miniupnpd enable_natpmp=no enable_upnp=yes
	L_HOST=a1 listen upnpinviter -v
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab b2 env P2P_NAME=dialer P2P_TIMEOUT=2 timeout 30 p2pdial -v upnpinviter \
		< "$(make_data sent 1)" > "$out" 2> "$errf" || { cat "$errf"; false; }
	grep -q -E "(p2pdial: )?connected via in " "$errf" || { cat "$errf" "$L_LOG"; false; }
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
	# PCP and NAT-PMP were refused at once: the invitation went without
	# waiting, and UPnP's mapping came after it.
	grep -q "rvinvite: no port mapping within 20 ms: inviting without one" "$errf" ||
		{ cat "$errf"; false; }
	# The listener got in at natB's own address, which drops all else: by
	# the mapping. Named late (MSG CAND), or, when the rule was in place
	# before its first dial, as rvd's observed address with our port: the
	# mapper starts with rvinvite, and a starved rvinvite may take the
	# connection before it reads the mapper's news.
	grep -q "connected dialer via out 198.51.100.20:" "$L_LOG" || { cat "$L_LOG"; false; }
	if grep -q "rvinvite: our port was mapped late: naming .*198.51.100.20:" "$errf"; then
		grep -q "rvinvite: port mapped by the gateway (UPnP)" "$errf"
		grep -q "dialer's port was mapped late" "$L_LOG" || { cat "$L_LOG"; false; }
	fi
}

@test "a gateway that drops PCP and NAT-PMP unanswered, in front of the inviter: it invites without a mapping (one -v line), and the dial goes on" {
	lab natB nft -f - <<-EOF
	table inet silent {
		chain input {
			type filter hook input priority -10; policy accept;
			iifname "lan0" udp dport 5351 counter drop
		}
	}
	EOF
	L_HOST=a1 listen silentgw
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab b2 env P2P_NAME=dialer P2P_TIMEOUT=2 timeout 30 p2pdial -v silentgw \
		< "$(make_data sent 1)" > "$out" 2> "$errf" || r=$?
	# The gateway did hear PCP or NAT-PMP, and said nothing.
	lab natB nft list table inet silent | grep -q -E "counter packets [1-9]" ||
		{ lab natB nft list table inet silent; false; }
	lab natB nft delete table inet silent
	[ "${r:-0}" = 0 ] || { cat "$errf" "$L_LOG"; false; }
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
	grep -q "rvinvite: no port mapping within 20 ms: inviting without one" "$errf" ||
		{ cat "$errf"; false; }
}

@test "a slow gateway in front of the inviter: the port it maps late is dialled late (rung in)" {
	# NAT-PMP answers 200 ms late with another external port (40998), which
	# it forwards: only the late candidate reaches the inviter.
	lab_bg natB fakenatpmp 10.2.0.1 198.51.100.20 40998 200
	FAKE_PID=$LAB_BG_PID FAKE_LOG=$LAB_BG_LOG
	for _ in $(seq 30); do grep -q ready "$FAKE_LOG" && break; sleep 0.1; done
	L_HOST=a1 listen slowgw -v
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab b2 env P2P_NAME=dialer P2P_TIMEOUT=2 timeout 30 p2pdial -v slowgw \
		< "$(make_data sent 1)" > "$out" 2> "$errf" || r=$?
	kill "$FAKE_PID"
	lab natB nft flush chain inet filter prerouting_miniupnpd
	[ "${r:-0}" = 0 ] || { cat "$errf" "$L_LOG" "$FAKE_LOG"; false; }
	grep -q -E "(p2pdial: )?connected via in " "$errf" || { cat "$errf" "$L_LOG"; false; }
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
	grep -q "rvinvite: our port was mapped late: naming 198.51.100.20:40998" "$errf"
	grep -q "connected dialer via out 198.51.100.20:40998" "$L_LOG" || { cat "$L_LOG"; false; }
}

@test "a NAT-PMP-only gateway: PCP falls back to NAT-PMP; the mapping is named, renewed by it, deleted on SIGTERM" {
	lab_bg natB fakenatpmp 10.2.0.1 198.51.100.20 40999
	FAKE_PID=$LAB_BG_PID FAKE_LOG=$LAB_BG_LOG
	for _ in $(seq 30); do grep -q ready "$FAKE_LOG" && break; sleep 0.1; done
	P2P_MAPCHECK=1 listen natpmp -v
	for _ in $(seq 30); do grep -q "port mapped" "$L_LOG" && break; sleep 0.1; done
	grep -q "port mapped by the gateway (NAT-PMP): reached at 198.51.100.20:40999" "$L_LOG" ||
		{ cat "$L_LOG" "$FAKE_LOG"; kill "$FAKE_PID"; false; }
	lport=$(sed -n 's/^map \([0-9]*\) 3600$/\1/p' "$FAKE_LOG" | head -1)
	in_order "$FAKE_LOG" "^pcp$" "^map $lport 3600$" "^pub$"
	for _ in $(seq 20); do grep -q "addr natpmp: .*198.51.100.20:40999" "$RVD_LOG" && break; sleep 0.1; done
	grep -q "addr natpmp: .*198.51.100.20:40999" "$RVD_LOG"
	sleep 1.5
	[ "$(grep -c "^map $lport 3600$" "$FAKE_LOG")" -ge 2 ] || { cat "$FAKE_LOG"; false; }
	[ "$(grep -c "port mapped" "$L_LOG")" = 1 ]
	kill -TERM "$L_PID"
	for _ in $(seq 20); do grep -q "^map $lport 0$" "$FAKE_LOG" && break; sleep 0.1; done
	kill "$FAKE_PID"
	grep -q "^map $lport 0$" "$FAKE_LOG" || { cat "$FAKE_LOG"; false; }
}

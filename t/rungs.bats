#!/usr/bin/env bats
# The firewall rungs in the lab: dialport through a firewall that passes
# only 443, and dialproxy through real proxies (squid for HTTP CONNECT,
# dante for SOCKS5) started here in the proxy host, with and without
# credentials; a failing proxy hands the ticket on to the relay.

load helpers/common
load helpers/rungs
export P2P_RVD=198.51.100.1:443		# see setup_file

setup_file() {
	lab_up
	# On 443, the documented deployment: a network with nothing but a proxy
	# reaches rvd and relayd only through it, and proxies tunnel to 443 and 80.
	RVD_ADDR=198.51.100.1:443 start_rvd -R 198.51.100.2:443
	lab_bg relay relayd -v 198.51.100.2:443
	lab_wait_port relay 198.51.100.2 443
	# natpeer's router (natB) gives fully random ports: no hole can be punched
	# to it, and the tests that fail every other rung end on the relay.
	lab_mode natB random
	add_proxy_user
	start_squid
	start_dante
}

teardown_file() {
	local rc=0
	lab_down_checked || rc=$?
	del_proxy_user || rc=1
	return $rc
}

# A client's sanitizer report fails its test even when it connected (the
# daemons' logs are checked by lab_down_checked).
teardown() {
	if grep -s -l -E "AddressSanitizer|runtime error:" "$BATS_TEST_TMPDIR"/err; then
		grep -h -A5 -E "AddressSanitizer|runtime error:" "$BATS_TEST_TMPDIR"/err | head -40
		return 1
	fi
}

# listener_once START HOST NAME [RVLISTEN ARGS...]: START (start_listener or
# start_listener_n) the listener NAME, unless this file already started it
# (so that any one test may run alone).
listener_once() {
	local start=$1
	shift
	[ -f "$BATS_FILE_TMPDIR/listener.$2" ] && return 0
	"$start" "$@" && touch "$BATS_FILE_TMPDIR/listener.$2"
}

# start_listener_n HOST NAME [RVLISTEN ARGS...]: as start_listener, but the
# server is t/helpers/serve-n, which reads 16 MiB and needs no half-close.
start_listener_n() {
	local host=$1 name=$2 i
	shift 2
	lab_bg "$host" rvlisten -v "$@" "$name" p2pseal -s serve-n $(( 16 * 1048576 )) "$(make_data back 16)"
	for i in $(seq 50); do
		grep -q "listen $name " "$RVD_LOG" && return 0
		sleep 0.1
	done
	echo "listener $name did not log on"; cat "$LAB_BG_LOG"; return 1
}

# dial PEER [P2PDIAL ARGS...]: p2pdial -v from a1 with $URL as P2P_PROXY (if
# set) and 2 s per rung, sending the 16 MiB file on stdin (so the server sees
# a half-close); output in $out, stderr in $errf.
dial() {
	local peer=$1
	shift
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab a1 env P2P_NAME=dialer P2P_TIMEOUT=2 ${URL:+P2P_PROXY=$URL} \
		timeout 30 p2pdial -v "$peer" "$@" < "$(make_data sent 16)" > "$out" 2> "$errf"
}

# dial_squid PEER: as dial, but the data goes by t/helpers/sendrecv, which
# never half-closes: squid would end the tunnel.
dial_squid() {
	dial "$1" sendrecv "$(make_data sent 16)"
}

# dial_relay PEER: the default ladder with a tee before relaycat, so that the
# ticket dialproxy passed on is kept in $ticket; 1 MiB each way.
dial_relay() {
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err ticket=$BATS_TEST_TMPDIR/ticket
	lab a1 env P2P_NAME=dialer P2P_TIMEOUT=2 P2P_PROXY="$URL" TICKET="$ticket" \
		P2P_LADDER='rvinvite -e -v "$P2PPEER" | dialdirect -v | dialport -v |
			dialproxy -v | tee "$TICKET" | relaycat -v' \
		timeout 30 p2pdial -v "$1" < "$(make_data sent1 1)" > "$out" 2> "$errf"
}

# relayed ERE: dialproxy failed with ERE (the text of its "tried" line, in
# its -v line and in the ticket it passed on), then the relay connected.
relayed() {
	grep -q -E "(dialproxy: )?unable to connect to natpeer: $1$" "$errf" ||
		{ echo "no error line: $1"; cat "$errf"; return 1; }
	grep -q -x -E "tried dialproxy $1" "$ticket" || { echo "not in the ticket"; cat "$ticket"; return 1; }
	in_order "$errf" "(dialproxy: )?unable to connect to natpeer: $1$" \
		"(relaycat: )?inviting natpeer to relay session" \
		"(p2pdial: )?connected via relay to 198.51.100.2:443 as natpeer$"
	grep -q "^via=relay peer=dialer" "$out"
	check_transfer "$out" "$(make_data sent1 1)" "$(make_data back1 1)"
}

@test "listener behind a firewall passing only 443: usual port unanswered, dialport races it and connects" {
	lab_mode fw in443
	lab_mode natA drop
	# No punching on the listener's side: this is about dialport (a routed
	# firewall is no NAT, and a punched hole would get through it first).
	P2P_ANSWER_LADDER='dialdirect $P2P_V | dialport $P2P_V | dialproxy $P2P_V' \
		listener_once start_listener f1 fwall -p 443
	dial fwall || { cat "$errf"; false; }
	# dialdirect's dial is dropped; a stagger on, dialport starts beside it.
	in_order "$errf" "(dialdirect: )?trying 203.0.113.2:[0-9]+$" \
		"(dialdirect: )?passing the ticket on: the next rung starts beside us$" \
		"(dialport: )?trying port 443, 1 address, for [0-9]+ ms$" \
		"(dialport: )?connected to fwall at 203.0.113.2:443$" \
		"(p2pdial: )?connected via port to 203.0.113.2:443 as fwall$"
	! grep -q -E "(dialdirect: )?connected to" "$errf"
	grep -q "^via=port peer=dialer remote=198.51.100.10:" "$out"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
}

@test "nothing out but to the proxy: connects via proxy through squid, no credentials" {
	lab_mode natA proxyonly
	listener_once start_listener_n pub squidpeer -p 443
	URL=http://$PROXY_IP:3128 dial_squid squidpeer || { cat "$errf"; false; }
	# Neither direct rung gets through; each passes the ticket on and races on.
	in_order "$errf" "(dialdirect: )?passing the ticket on" \
		"(dialport: )?trying port 443, [0-9]+ address" \
		"(dialport: )?passing the ticket on" \
		"(dialproxy: )?proxy 198.51.100.3:3128: CONNECT 198.51.100.4:443: 200 Connection established$" \
		"(p2pdial: )?connected via proxy to 198.51.100.3:3128 as squidpeer$"
	grep -q "^client via=proxy$" "$errf"
	grep -q "^via=port peer=dialer remote=198.51.100.3:" "$out"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
	grep -q -E "TCP_TUNNEL/200 [0-9]+ CONNECT 198.51.100.4:443 - " "$SQUID_DIR/access.log"
}

@test "nothing out but to the proxy: connects via proxy through squid, with credentials" {
	lab_mode natA proxyonly
	listener_once start_listener_n pub squidpeer -p 443
	URL=http://$PROXY_USER:$PROXY_PASS_URL@$PROXY_IP:3129 dial_squid squidpeer ||
		{ cat "$errf"; false; }
	grep -q -E "(dialproxy: )?proxy 198.51.100.3:3129: CONNECT 198.51.100.4:443: 200 Connection established$" "$errf"
	grep -q -E "(p2pdial: )?connected via proxy to 198.51.100.3:3129 as squidpeer$" "$errf"
	grep -q "^client via=proxy$" "$errf"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
	grep -q -E "TCP_TUNNEL/200 [0-9]+ CONNECT 198.51.100.4:443 $PROXY_USER " "$SQUID_DIR/access.log"
}

@test "nothing out but to the proxy: connects via proxy through dante, no credentials, half-close" {
	lab_mode natA proxyonly
	listener_once start_listener pub2 dantepeer -p 443
	URL=socks5://$PROXY_IP:1080 dial dantepeer || { cat "$errf"; false; }
	in_order "$errf" "(dialdirect: )?passing the ticket on" \
		"(dialport: )?trying port 443, [0-9]+ address" \
		"(dialport: )?passing the ticket on" \
		"(dialproxy: )?proxy 198.51.100.3:1080: CONNECT 198.51.100.5:443: succeeded$" \
		"(p2pdial: )?connected via proxy to 198.51.100.3:1080 as dantepeer$"
	grep -q "^via=port peer=dialer remote=198.51.100.3:" "$out"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
	grep -q "pass(.*): tcp/connect \[: 198.51.100.10\..* -> .* 198.51.100.5.443" "$DANTE_DIR/1080.log"
}

@test "nothing out but to the proxy: connects via proxy through dante, with credentials" {
	lab_mode natA proxyonly
	listener_once start_listener pub2 dantepeer -p 443
	URL=socks5://$PROXY_USER:$PROXY_PASS_URL@$PROXY_IP:1081 dial dantepeer ||
		{ cat "$errf"; false; }
	grep -q -E "(dialproxy: )?proxy 198.51.100.3:1081: CONNECT 198.51.100.5:443: succeeded$" "$errf"
	grep -q -E "(p2pdial: )?connected via proxy to 198.51.100.3:1081 as dantepeer$" "$errf"
	check_transfer "$out" "$(make_data sent 16)" "$(make_data back 16)"
	grep -q "pass(.*): tcp/connect \[: username%$PROXY_USER@198.51.100.10\..* 198.51.100.5.443" \
		"$DANTE_DIR/1081.log"
}

@test "squid, wrong password: a clear 407, and the ladder goes on to the relay" {
	lab_mode natA drop
	BACKFILE=$(make_data back1 1) listener_once start_listener b1 natpeer
	URL=http://$PROXY_USER:wrong@$PROXY_IP:3129 dial_relay natpeer || { cat "$errf"; false; }
	relayed "proxy 198.51.100.3:3129: proxy authentication failed: 407 Proxy Authentication Required"
	# No credentials at all says so.
	run -1 lab pub timeout 10 dialproxy -x http://$PROXY_IP:3129 198.51.100.5:443
	[ "$output" = "dialproxy: proxy 198.51.100.3:3129: proxy authentication required, and the URL has no user:password: 407 Proxy Authentication Required" ]
}

@test "dante, wrong password: a clear failure, and the ladder goes on to the relay" {
	lab_mode natA drop
	BACKFILE=$(make_data back1 1) listener_once start_listener b1 natpeer
	URL=socks5://$PROXY_USER:wrong@$PROXY_IP:1081 dial_relay natpeer || { cat "$errf"; false; }
	relayed "proxy 198.51.100.3:1081: socks authentication failed"
	run -1 lab pub timeout 10 dialproxy -x socks5://$PROXY_IP:1081 198.51.100.5:443
	[ "$output" = "dialproxy: proxy 198.51.100.3:1081: no acceptable authentication method (the URL has no user:password)" ]
}

@test "squid denies the destination: 403 for each, and the ladder goes on to the relay" {
	lab_mode natA drop
	BACKFILE=$(make_data back1 1) listener_once start_listener b1 natpeer
	# natpeer listens on no extra port: squid allows CONNECT only to 443 and 80.
	URL=http://$PROXY_IP:3128 dial_relay natpeer || { cat "$errf"; false; }
	grep -q -E "(dialproxy: )?proxy 198.51.100.3:3128 refused 10.2.0.2:[0-9]+: 403 Forbidden$" "$errf"
	relayed "proxy 198.51.100.3:3128 refused 10.2.0.2:[0-9]+: 403 Forbidden; proxy 198.51.100.3:3128 refused 198.51.100.20:[0-9]+: 403 Forbidden"
}

@test "dante denies the destination: its reply code, and the ladder goes on to the relay" {
	lab_mode natA drop
	BACKFILE=$(make_data back1 1) listener_once start_listener b1 natpeer
	URL=socks5://$PROXY_IP:1080 dial_relay natpeer || { cat "$errf"; false; }
	grep -q -E "(dialproxy: )?proxy 198.51.100.3:1080 refused 10.2.0.2:[0-9]+: connection not allowed by ruleset$" "$errf"
	relayed "proxy 198.51.100.3:1080 refused 10.2.0.2:[0-9]+: connection not allowed by ruleset; proxy 198.51.100.3:1080 refused 198.51.100.20:[0-9]+: connection not allowed by ruleset"
}

@test "an unreachable proxy: a clear error, and the ladder goes on to the relay" {
	lab_mode natA drop
	BACKFILE=$(make_data back1 1) listener_once start_listener b1 natpeer
	URL=http://$PROXY_IP:9 dial_relay natpeer || { cat "$errf"; false; }
	relayed "unable to connect to proxy 198.51.100.3:9: connection refused"
}

@test "-v shows the rungs in order with their timeouts; the worst case is within the documented sum" {
	# Every rung fails by waiting: natB drops what comes in and lets out only
	# rvd and proxy traffic, so the peer can reach neither us nor the relay;
	# squid's own connect to the peer hangs.
	lab_mode natA drop
	lab_mode natB proxyonly
	# ...and, as a site that lets its hosts reach the rendezvous service and
	# nothing else of the outside would, rvd's address too (not relayd's).
	lab natB nft insert rule inet lab forward iifname lan0 ip daddr 198.51.100.1 accept
	lab natB nft insert rule inet lab forward iifname eth0 ip saddr 198.51.100.1 accept
	listener_once start_listener b1 worst -p 443 -p 80
	errf=$BATS_TEST_TMPDIR/err T=2
	start=$(date +%s%N)
	echo hi | lab a1 env P2P_NAME=dialer P2P_PROXY=http://198.51.100.3:3128 \
		timeout 60 p2pdial -v -t $T worst 2>&1 >/dev/null | stamp > "$errf"
	rc=${PIPESTATUS[1]}
	took=$(( ($(date +%s%N) - start) / 1000000 ))
	cp "$errf" "$BATS_FILE_TMPDIR/worst.err"
	cat "$errf"
	echo "took $took ms, exit $rc"
	[ "$rc" -eq 1 ]
	# The order in which the rungs start: each direct rung passes the ticket
	# on a stagger after its last candidate and races on beside the next.
	in_order "$errf" "(rvinvite: )?invited worst " \
		"(dialdirect: )?dialling 2 candidates within [0-9]+ ms$" \
		"(dialdirect: )?passing the ticket on" \
		"(dialport: )?trying port 443, 2 addresses, for [0-9]+ ms$" \
		"(dialport: )?passing the ticket on" \
		"(dialproxy: )?proxy 198.51.100.3:3128 from P2P_PROXY, [0-9]+ ms in all$"
	in_order "$errf" "(dialport: )?trying port 443, " "(dialport: )?trying port 80, "
	# Each rung within the time it states (B, the dial budget, is at most T),
	# from its first line to its failure.
	b=$(grep -m1 -o -E "dialling 2 candidates within [0-9]+" "$errf" | grep -o -E "[0-9]+$")
	[ "$b" -le $(( T * 1000 )) ]
	[ $(( $(at "$errf" "dialdirect: unable to connect") - $(at "$errf" "dialling 2 candidates") )) -le $(( b + 300 )) ]
	b=$(grep -m1 -o -E "trying port 443, 2 addresses, for [0-9]+" "$errf" | grep -o -E "[0-9]+$")
	[ "$b" -le $(( T * 1000 )) ]
	[ $(( $(at "$errf" "dialport: unable to connect") - $(at "$errf" "trying port 443, ") )) -le $(( 2 * b + 300 )) ]
	# dialproxy's budget: twice the dial budget, never more than T.
	b=$(grep -m1 -o -E "from P2P_PROXY, [0-9]+" "$errf" | grep -o -E "[0-9]+$")
	[ "$b" -le $(( T * 1000 )) ]
	[ $(( $(at "$errf" "dialproxy: unable to connect") - $(at "$errf" "from P2P_PROXY, ") )) -le $(( b + 300 )) ]
	# The relay is the last resort: invited only once every rung before it
	# has ended, and then at once.
	relay=$(at "$errf" "inviting worst to relay")
	last=0
	for r in dialdirect dialport dialproxy; do
		e=$(at "$errf" "$r: unable to connect to worst: ")
		[ "$e" -le "$relay" ] || { echo "$r ended after the relay started"; false; }
		[ "$e" -le "$last" ] || last=$e
	done
	[ $(( relay - last )) -le 300 ]
	# relaycat: the peer's SENT (T) and the pairing (2T).
	[ $(( $(at "$errf" "unable to connect to worst: .*; relaycat ") - relay )) -le $(( 3 * T * 1000 + 300 )) ]
	# The whole ladder: p2pdial(1) and p2p(7) say at most 13*T+1 s (and four
	# round trips, here a few ms).
	[ "$took" -le $(( (13 * T + 1) * 1000 )) ]
	# What each rung tried is in the one-line summary.
	grep -q -E "unable to connect to worst: .*dialdirect .*; dialport .*; dialproxy .*; relaycat " "$errf"
	sleep 0.5
	no_procs a1 "rvinvite|dialdirect|dialport|dialproxy|relaycat|p2pcatch"
}

@test "-v shows rvinvite's and relaycat's timeouts too" {
	errf=$BATS_FILE_TMPDIR/worst.err
	[ -f "$errf" ] || { echo "needs the worst-case test before it"; false; }
	# As the other rungs say theirs ("within N ms", "for N ms"); the wording is the tools' to choose.
	grep -q -E "^[0-9.]+ rvinvite: .*(within|for|at most) [0-9]+ ms" "$errf"
	grep -q -E "^[0-9.]+ relaycat: .*(within|for|at most) [0-9]+ ms" "$errf"
}

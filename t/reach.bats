#!/usr/bin/env bats
# Reaching rvd and relayd themselves through every blocker (p2p(7),
# "Reaching rvd and relayd"): natA lets out nothing but the proxy host
# (not rvd, not relayd), so a peer behind it logs on, and meets its peer
# on the relay, only through squid (HTTP CONNECT) or dante (SOCKS5). rvd
# and relayd listen on 443, the documented deployment, since the proxies
# (like offices') tunnel only to 443 and 80.

load helpers/common
load helpers/rungs

RV=198.51.100.1:443
RELAY=198.51.100.2:443

setup_file() {
	lab_up
	lab_bg rv rvd -v -o -R 198.51.100.9:443 -R "$RELAY" "$RV"
	export RVD_LOG=$LAB_BG_LOG
	lab_wait_port rv 198.51.100.1 443
	lab_bg relay relayd -v "$RELAY"
	lab_wait_port relay 198.51.100.2 443
	add_proxy_user
	start_squid
	start_dante
	lab_mode natA proxyonly
}

teardown_file() {
	local rc=0
	lab_down_checked || rc=$?
	del_proxy_user || rc=1
	return $rc
}

# logged_on NAME: rvd's log says NAME logged on as a listener (5 s at most).
logged_on() {
	local i
	for i in $(seq 50); do
		grep -q "listen $1 " "$RVD_LOG" && return 0
		sleep 0.1
	done
	echo "listener $1 did not log on"; return 1
}

@test "the lab's proxy-only network really blocks rvd and relayd" {
	run lab a1 timeout 3 bash -c "exec 5<>/dev/tcp/198.51.100.1/443"
	[ "$status" -ne 0 ]
	run lab a1 timeout 3 bash -c "exec 5<>/dev/tcp/198.51.100.2/443"
	[ "$status" -ne 0 ]
	lab a1 timeout 3 bash -c "exec 5<>/dev/tcp/198.51.100.3/3128"
}

@test "without a proxy, a proxy-only listener cannot log on, and says why" {
	run lab a1 env P2P_RVD=$RV P2P_TIMEOUT=1 timeout 10 rvinvite -v nobody
	[ "$status" -eq 1 ]
	[[ $output == *"unable to reach rvd: "*"timeout"* ]]
}

@test "a listener behind a proxy-only network logs on through squid and is reached by relay, byte-exact" {
	lab_bg a1 env P2P_RVD=$RV P2P_PROXY=http://$PROXY_IP:3128 \
		rvlisten -v sqlisten p2pseal -s serve-n $(( 4 * 1048576 )) "$(make_data back 4)"
	logged_on sqlisten
	grep -q "logged on to $RV (proxy $PROXY_IP:3128) as sqlisten" "$LAB_BG_LOG"
	# From pub: the peer cannot be dialled, nor dial us through squid (our port
	# is not 443): the relay, which the listener reaches through squid too.
	# (Data by sendrecv: squid ends a tunnel on a half-close.)
	out=$BATS_TEST_TMPDIR/out
	lab pub env P2P_RVD=$RV P2P_TIMEOUT=2 timeout 30 p2pdial -v sqlisten \
		sendrecv "$(make_data sent 4)" > "$out" 2> "$BATS_TEST_TMPDIR/err" ||
		{ cat "$BATS_TEST_TMPDIR/err"; false; }
	grep -q "connected via relay" "$BATS_TEST_TMPDIR/err" || { cat "$BATS_TEST_TMPDIR/err"; false; }
	check_transfer "$out" "$(make_data sent 4)" "$(make_data back 4)"
}

@test "a dialler behind a proxy-only network logs on through dante, with credentials, and reaches a public listener" {
	lab_bg pub env P2P_RVD=$RV rvlisten -v -p 443 publisten p2pseal -s serve "$(make_data back 4)"
	logged_on publisten
	out=$BATS_TEST_TMPDIR/out
	lab a1 env P2P_RVD=$RV P2P_TIMEOUT=2 \
		P2P_PROXY=socks5://$PROXY_USER:$PROXY_PASS_URL@$PROXY_IP:1081 \
		timeout 30 p2pdial -v publisten < "$(make_data sent 4)" > "$out" \
		2> "$BATS_TEST_TMPDIR/err" || { cat "$BATS_TEST_TMPDIR/err"; false; }
	grep -q "rvinvite: logged on to rvd $RV (proxy $PROXY_IP:1081)" "$BATS_TEST_TMPDIR/err"
	grep -q "connected via proxy" "$BATS_TEST_TMPDIR/err"
	check_transfer "$out" "$(make_data sent 4)" "$(make_data back 4)"
}

@test "both peers proxy-only, each through its own proxy: they meet on the relay" {
	lab_bg a1 env P2P_RVD=$RV P2P_PROXY=http://$PROXY_IP:3128 \
		rvlisten -v twolisten p2pseal -s serve-n $(( 4 * 1048576 )) "$(make_data back 4)"
	logged_on twolisten
	out=$BATS_TEST_TMPDIR/out
	lab_mode natB proxyonly
	lab b1 env P2P_RVD=$RV P2P_TIMEOUT=2 P2P_PROXY=socks5h://$PROXY_IP:1080 \
		timeout 30 p2pdial -v twolisten sendrecv "$(make_data sent 4)" > "$out" \
		2> "$BATS_TEST_TMPDIR/err" || { lab_mode natB drop; cat "$BATS_TEST_TMPDIR/err"; false; }
	lab_mode natB drop
	grep -q "connected via relay" "$BATS_TEST_TMPDIR/err" || { cat "$BATS_TEST_TMPDIR/err"; false; }
	check_transfer "$out" "$(make_data sent 4)" "$(make_data back 4)"
}

@test "a listener is back on rvd within 2 s of its proxy coming back" {
	lab_bg a1 env P2P_RVD=$RV P2P_PROXY=socks5://$PROXY_IP:1080 \
		rvlisten -v backlisten p2pseal -s serve "$(make_data back 4)"
	local log=$LAB_BG_LOG
	logged_on backlisten
	# Stop dante (its children too: they hold the tunnels): the tunnel
	# drops, log-ons are refused.
	local p
	for p in $(ip netns pids "${LAB}proxy"); do
		# A child may be gone by now: its parent's death ends it.
		[ "$(cat /proc/$p/comm 2>/dev/null)" != danted ] || kill -KILL "$p" 2>/dev/null || :
	done
	for i in $(seq 50); do
		grep -q "lost rvd" "$log" && break
		sleep 0.1
	done
	grep -q "lost rvd" "$log" || { cat "$log"; false; }
	sleep 3
	local before t0 t1
	before=$(grep -c "listen backlisten " "$RVD_LOG")
	lab_bg proxy danted -f "$DANTE_DIR/1080.conf" -p "$DANTE_DIR/1080.pid"
	lab_wait_port proxy "$PROXY_IP" 1080 10
	t0=$(date +%s%N)
	for i in $(seq 40); do
		[ "$(grep -c "listen backlisten " "$RVD_LOG")" -gt "$before" ] && break
		sleep 0.1
	done
	t1=$(date +%s%N)
	[ "$(grep -c "listen backlisten " "$RVD_LOG")" -gt "$before" ] ||
		{ echo "not back on rvd within 4 s"; cat "$log"; false; }
	echo "back $(( (t1 - t0) / 1000000 )) ms after the proxy"
	[ $(( (t1 - t0) / 1000000 )) -le 2000 ]
}

@test "a proxy that wants credentials costs one line naming it and its reason" {
	run lab a1 env P2P_RVD=$RV P2P_TIMEOUT=2 P2P_PROXY=http://$PROXY_IP:3129 \
		timeout 10 rvinvite nobody
	[ "$status" -eq 1 ]
	[ "$(grep -c "proxy $PROXY_IP:3129.*407" <<<"$output")" -eq 1 ]
}

@test "no_proxy names rvd: it is not reached through the proxy" {
	run lab a1 env P2P_RVD=$RV P2P_TIMEOUT=1 P2P_PROXY=http://$PROXY_IP:3128 \
		no_proxy=198.51.100.1 timeout 10 rvinvite -v nobody
	[ "$status" -eq 1 ]
	[[ $output != *"via proxy"* ]]
	[[ $output == *"unable to reach rvd"* ]]
}

@test "P2P_RVD lists several rvd addresses: a dead one is passed over for the next" {
	run lab pub env P2P_RVD="198.51.100.9:443 $RV" P2P_TIMEOUT=2 \
		timeout 10 rvinvite -v nobody
	[[ $output == *"rvinvite: logged on to rvd $RV (direct)"* ]]
	[[ $output == *"not logged on"* ]]
}

@test "relaycat tries the relays in order: a dead first one is passed over" {
	lab_bg pub2 env P2P_RVD=$RV rvlisten -v relisten serve "$(make_data back 1)"
	logged_on relisten
	out=$BATS_TEST_TMPDIR/out
	# natA (proxy-only, no proxy given) cannot reach rvd from a1; dial from b1.
	lab b1 env P2P_RVD=$RV timeout 20 relaycat -v -R "198.51.100.9:443,$RELAY" \
		relisten < "$(make_data sent 1)" > "$out" 2> "$BATS_TEST_TMPDIR/err" ||
		{ cat "$BATS_TEST_TMPDIR/err"; false; }
	grep -q "relay session .* on $RELAY" "$BATS_TEST_TMPDIR/err"
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
}

@test "rvd names every relay it was given; the ticket carries them all" {
	run lab b1 env P2P_RVD=$RV P2P_TIMEOUT=1 timeout 10 rvinvite nobody
	[ "$status" -eq 1 ]
	[[ $output == *"relay 198.51.100.9:443"$'\n'"relay $RELAY"* ]]
}

@test "a bad proxy URL or rvd address is a usage error before anything is dialled" {
	run env P2P_RVD=127.0.0.1:1 P2P_PROXY='http://[::1' rvinvite nobody
	[ "$status" -eq 100 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == *"bad proxy URL in P2P_PROXY"* ]]
	run env P2P_RVD=127.0.0.1 rvinvite nobody
	[ "$status" -eq 100 ]
	[[ $output == *"bad rendezvous address"* ]]
	run env P2P_RVD=127.0.0.1 timeout 5 rvlisten nobody true
	[ "$status" -eq 100 ]
	run env P2P_RVD=127.0.0.1 relaycat nobody
	[ "$status" -eq 100 ]
	run env P2P_RVD=127.0.0.1:1 https_proxy='ftp://x' timeout 5 rvlisten nobody true
	[ "$status" -eq 100 ]
	[[ $output == *"bad proxy URL in https_proxy"* ]]
}

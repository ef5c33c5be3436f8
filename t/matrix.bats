#!/usr/bin/env bats
# The matrix of issue 11: five kinds of network (public; a home NAT that
# drops unsolicited inbound; a NAT with fully random ports; a host firewall
# passing only tcp 80/443 in and out; a NAT whose only way out is the proxy),
# and a second home NAT like the first (issue 12: two homes punch through),
# a dialler and a listener on each, rvd and relayd on port 443. The 36 pairs
# dial five at a time ($MATRIX_JOBS); each echoes 256 KiB byte-exact, and the
# rung the dialler's program was given (P2PVIA) must be the cheapest that can
# work there:
#
#   dialler\listener  pub     drop    random  only443  proxy   home2
#   pub               in|out  in      in      port     in      in
#   drop              out     in|out  relay   port     relay   punch
#   random            out     relay   in|out  port     relay   relay
#   only443           port    relay   relay   in|out   relay   relay
#   proxy             proxy   relay   relay   proxy    in|out  relay
#   home2             out     punch   relay   port     relay   in|out
#
# (the table is kept once, in t/helpers/matrix.bash, with why each entry is
# what it is). The proxy network goes through squid (HTTP CONNECT) and dante
# (SOCKS5), each with and without credentials: the 36 pairs with squid, then
# the eleven pairs with the proxy network on a side with each other proxy.
# Every failing pair is named with the rung it took and its last error line.

load helpers/common
load helpers/rungs
load helpers/matrix

setup_file() {
	lab_up
	add_proxy_user
	matrix_modes
	matrix_servers
	matrix_proxies
	matrix_listeners
	head -c 262144 /dev/urandom > "$BATS_FILE_TMPDIR/data"
}

teardown_file() {
	local rc=0
	lab_down_checked || rc=$?
	del_proxy_user || rc=1
	return $rc
}

# run_matrix VARIANT PAIR...: matrix_run, its table shown whatever happens.
run_matrix() {
	local rc=0
	matrix_run "$1" "$BATS_FILE_TMPDIR/data" "${@:2}" > "$BATS_TEST_TMPDIR/table" || rc=1
	cat "$BATS_TEST_TMPDIR/table"
	cp "$BATS_TEST_TMPDIR/table" "$BATS_FILE_TMPDIR/table.$1"
	return $rc
}

@test "matrix: all 36 pairs connect by the cheapest rung (two homes by punch), the proxy network through squid" {
	run_matrix squid $(matrix_pairs)
}

# With credentials, the three pairs that tell: the proxy network dialling,
# dialled, and on both sides (the rest is the same with or without them).
@test "matrix: the proxy network's pairs through squid with credentials" {
	run_matrix squidauth "proxy>pub" "pub>proxy" "proxy>proxy"
	grep -q -E "TCP_TUNNEL/200 [0-9]+ CONNECT 198.51.100.1:443 $PROXY_USER " \
		"$MATRIX_PROXY_DIR/access.log"
}

@test "matrix: the proxy network's eleven pairs through dante (SOCKS5)" {
	run_matrix dante $(matrix_pairs proxy)
}

@test "matrix: the proxy network's pairs through dante with credentials" {
	run_matrix danteauth "proxy>pub" "pub>proxy" "proxy>proxy"
	grep -q "username%$PROXY_USER@" "$MATRIX_PROXY_DIR/1081.log"
}

#!/usr/bin/env bats
# Proves the namespace lab (t/lab) with real traffic. Needs root, iproute2, nftables, socat, ping.

load lab

# A listener on HOST:PORT answering every connection with the address it saw the peer at.
serve() {
	lab_bg "$1" socat "TCP-LISTEN:$2,reuseaddr,fork" SYSTEM:'echo $SOCAT_PEERADDR'
}

setup_file() {
	lab_up
	serve pub 7000; serve pub 443; serve pub 80
	serve natA 7777                 # on the router itself: refusals come from the firewall
	serve a2 7000
	serve rv 7070
	serve proxy 3128
	serve f1 443; serve f1 7000
	lab_bg pub socat TCP-LISTEN:9000,reuseaddr,fork SYSTEM:'head -c 2000000 /dev/zero'
	lab_wait_port pub 198.51.100.4 7000
	lab_wait_port pub 198.51.100.4 443
	lab_wait_port pub 198.51.100.4 80
	lab_wait_port pub 198.51.100.4 9000
	lab_wait_port natA 198.51.100.10 7777
	lab_wait_port a2 10.1.0.3 7000
	lab_wait_port rv 198.51.100.1 7070
	lab_wait_port proxy 198.51.100.3 3128
	lab_wait_port f1 203.0.113.2 443
	lab_wait_port f1 203.0.113.2 7000
}

teardown_file() {
	lab_down
}

# ask HOST IP PORT [SECS]: connect, print what the server says (the peer address it saw).
ask() {
	lab "$1" timeout "${4:-3}" socat -u "TCP:$2:$3" -
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

@test "a1 reaches pub, which sees natA's WAN address (masquerade)" {
	run ask a1 198.51.100.4 7000
	[ "$status" -eq 0 ]
	[ "$output" = 198.51.100.10 ]
}

@test "natA drop: unsolicited inbound times out; reject: refused at once" {
	lab_mode natA drop
	run ask pub 198.51.100.10 7777 1
	[ "$status" -eq 124 ]
	lab_mode natA reject
	t0=$(now_ms)
	run ask pub 198.51.100.10 7777 2
	t1=$(now_ms)
	lab_mode natA drop
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
	[[ $output == *refused* ]]
	[ $((t1 - t0)) -lt 1000 ]
}

@test "a1 and a2 share a LAN; 10.1.0.2 is unreachable from b1 and pub, fast" {
	run ask a1 10.1.0.3 7000
	[ "$status" -eq 0 ]
	[ "$output" = 10.1.0.2 ]
	# pub has no route at all: connect fails locally, at once.
	t0=$(now_ms)
	run ask pub 10.1.0.2 7000 2
	t1=$(now_ms)
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
	[[ $output == *unreachable* ]]
	[ $((t1 - t0)) -lt 500 ]
	# b1's SYN goes to natB, which has no route and answers ICMP net unreachable. That answer
	# comes back so fast that the kernel often drops it (socket still locked by connect():
	# TcpExtLockDroppedIcmps), so the failure may come with the first SYN retransmit, at 1 s.
	t0=$(now_ms)
	run ask b1 10.1.0.2 7000 2
	t1=$(now_ms)
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
	[[ $output == *unreachable* || $output == *"No route"* ]]
	[ $((t1 - t0)) -lt 1500 ]
}

@test "natA ports: only 80/443 and rv out; proxyonly: only the proxy and rv" {
	lab_mode natA ports
	run ask a1 198.51.100.4 443
	[ "$status" -eq 0 ] && [ "$output" = 198.51.100.10 ]
	run ask a1 198.51.100.4 80
	[ "$status" -eq 0 ]
	run ask a1 198.51.100.4 7000 1
	[ "$status" -eq 124 ]
	run ask a1 198.51.100.1 7070
	[ "$status" -eq 0 ]
	lab_mode natA proxyonly
	run ask a1 198.51.100.3 3128
	[ "$status" -eq 0 ]
	run ask a1 198.51.100.1 7070
	[ "$status" -eq 0 ]
	run ask a1 198.51.100.4 443 1
	[ "$status" -eq 124 ]
	lab_mode natA drop
}

@test "fw in443: only 80/443 get in to f1; open: all; outbound from f1 free" {
	lab_mode fw in443
	run ask pub 203.0.113.2 443
	[ "$status" -eq 0 ] && [ "$output" = 198.51.100.4 ]   # no NAT on the way in
	run ask pub 203.0.113.2 7000 1
	[ "$status" -eq 124 ]
	run ask f1 198.51.100.4 7000
	[ "$status" -eq 0 ] && [ "$output" = 203.0.113.2 ]    # no NAT on the way out
	lab_mode fw drop
	run ask pub 203.0.113.2 443 1
	[ "$status" -eq 124 ]
	lab_mode fw open
	run ask pub 203.0.113.2 7000
	[ "$status" -eq 0 ]
}

# min RTT in ms (integer) of a few pings from HOST to IP
min_rtt() {
	lab "$1" ping -q -c 3 -i 0.2 -W 2 "$2" | awk -F'[/ ]' '/^rtt/ { printf "%d\n", $7 }'
}

@test "delay 20 adds ~80 ms RTT a1->rv (4 delayed hops), bulk TCP still flows; delay 0 removes it" {
	lab_delay 20
	rtt=$(min_rtt a1 198.51.100.1)
	echo "rtt with delay 20: $rtt ms"
	[ "$rtt" -gt 40 ]
	[ "$rtt" -lt 200 ]
	n=$(lab a1 timeout 3 socat -u TCP:198.51.100.4:9000 - | wc -c)
	echo "bulk bytes: $n"
	[ "$n" -eq 2000000 ]
	lab_delay 0
	rtt=$(min_rtt a1 198.51.100.1)
	echo "rtt with delay 0: $rtt ms"
	[ "$rtt" -lt 10 ]
}

@test "up fails loudly when namespaces cannot be made" {
	LAB=bad/ run "$LAB_BIN" up
	[ "$status" -ne 0 ]
	[[ $output == "lab: cannot make namespaces"* ]]
	[ "${#lines[@]}" -eq 1 ]
}

@test "lab_down leaves no namespace, process or veth behind" {
	lab_down
	run bash -c "ip netns list | grep '^$LAB'"
	[ "$status" -ne 0 ]
	run "$LAB_BIN" pids
	[ -z "$output" ]
	run bash -c "ip -o link show type veth | grep ': $LAB'"
	[ "$status" -ne 0 ]
}

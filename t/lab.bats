#!/usr/bin/env bats
# Proves the namespace lab (t/lab) with real traffic. Needs root, iproute2, nftables, socat, ping.

load lab

# A listener on HOST:PORT answering every connection with the address it saw the peer at
# (IPv4; serve6: IPv6, socat's full form "[2001:0db8:...]", and the port).
serve() {
	lab_bg "$1" socat "TCP-LISTEN:$2,reuseaddr,fork" SYSTEM:'echo $SOCAT_PEERADDR'
}
serve6() {
	lab_bg "$1" socat "TCP6-LISTEN:$2,reuseaddr,fork" SYSTEM:'echo $SOCAT_PEERADDR $SOCAT_PEERPORT'
}

setup_file() {
	lab_up
	serve pub 7000; serve pub 443; serve pub 80
	serve natA 7777                 # on the router itself: refusals come from the firewall
	serve a2 7000
	serve rv 7070; serve rv 443; serve relay 443
	serve proxy 3128
	serve f1 443; serve f1 7000; serve f2 7000; serve b2 7000; serve c2 7000
	serve6 six2 7000; serve6 pub 7006
	lab_bg pub socat TCP-LISTEN:7001,reuseaddr,fork SYSTEM:'echo $SOCAT_PEERADDR $SOCAT_PEERPORT'
	lab_bg rv socat TCP-LISTEN:7071,reuseaddr,fork SYSTEM:cat
	lab_bg rv socat TCP-LISTEN:7072,reuseaddr,fork SYSTEM:'sleep 1; echo late'
	lab_bg pub socat TCP-LISTEN:9000,reuseaddr,fork SYSTEM:'head -c 2000000 /dev/zero'
	lab_wait_port pub 198.51.100.4 7000
	lab_wait_port pub 198.51.100.4 443
	lab_wait_port pub 198.51.100.4 80
	lab_wait_port pub 198.51.100.4 9000
	lab_wait_port natA 198.51.100.10 7777
	lab_wait_port a2 10.1.0.3 7000
	lab_wait_port rv 198.51.100.1 7070
	lab_wait_port rv 198.51.100.1 7071
	lab_wait_port rv 198.51.100.1 7072
	lab_wait_port rv 198.51.100.1 443
	lab_wait_port relay 198.51.100.2 443
	lab_wait_port proxy 198.51.100.3 3128
	lab_wait_port f1 203.0.113.2 443
	lab_wait_port f1 203.0.113.2 7000
	lab_wait_port f2 203.0.113.3 7000
	lab_wait_port b2 10.2.0.3 7000
	lab_wait_port c2 10.3.0.3 7000
	lab_wait_port pub 198.51.100.4 7001
	lab_wait_port six2 2001:db8::62 7000
	lab_wait_port pub 2001:db8::4 7006
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

@test "natA ports: only tcp 80/443 out, rvd's other ports too; proxyonly: the proxy and nothing else" {
	lab_mode natA ports
	run ask a1 198.51.100.4 443
	[ "$status" -eq 0 ] && [ "$output" = 198.51.100.10 ]
	run ask a1 198.51.100.4 80
	[ "$status" -eq 0 ]
	run ask a1 198.51.100.1 443
	[ "$status" -eq 0 ]
	run ask a1 198.51.100.4 7000 1
	[ "$status" -eq 124 ]
	run ask a1 198.51.100.1 7070 1
	[ "$status" -eq 124 ]
	lab_mode natA proxyonly
	run ask a1 198.51.100.3 3128
	[ "$status" -eq 0 ]
	for to in 198.51.100.1:7070 198.51.100.1:443 198.51.100.2:443 198.51.100.4:443; do
		run ask a1 "${to%:*}" "${to#*:}" 1
		echo "$to: $status $output"
		[ "$status" -eq 124 ]
	done
	# The LAN itself is not filtered.
	run ask a1 10.1.0.3 7000
	[ "$status" -eq 0 ] && [ "$output" = 10.1.0.2 ]
	lab_mode natA drop
}

@test "a mode switch keeps the flows the new mode allows (NAT mapping included) and stops the others" {
	# A connection from b1 to an echo server on rv, kept open by socat; a line written to it
	# comes back, or is lost.
	coproc ECHO { exec "$LAB_BIN" exec b1 socat - TCP:198.51.100.1:7071 3>&-; }
	echo "$ECHO_PID" >> "$BATS_FILE_TMPDIR/lab.pids"
	got=
	say() { echo "$1" >&"${ECHO[1]}"; read -t 1 -r r <&"${ECHO[0]}" || r=lost; got+=" $1:$r"; }
	say one
	lab_mode natB reject
	say two
	lab_mode natB drop
	say three
	lab_mode natB random
	say four
	lab_mode natB proxyonly
	say five
	lab_mode natB drop
	kill "$ECHO_PID"
	echo "$got"
	[ "$got" = " one:one two:two three:three four:four five:lost" ]
}

@test "natB random: every flow gets a random public port; drop keeps the source port" {
	lab_mode natB drop
	run lab b1 timeout 3 socat -u TCP:198.51.100.4:7001,sourceport=40001,reuseaddr -
	[ "$output" = "198.51.100.20 40001" ]
	lab_mode natB random
	seen=
	for i in 1 2 3; do
		run lab b1 timeout 3 socat -u TCP:198.51.100.4:7001,sourceport=40002,reuseaddr -
		[ "$status" -eq 0 ] && [ "${output% *}" = 198.51.100.20 ]
		seen+=" ${output#* }"
	done
	echo "ports seen:$seen"
	# Not the source port, and not one port for every flow.
	[[ $seen != *40002* ]]
	[ "$(echo $seen | tr ' ' '\n' | sort -u | wc -l)" -gt 1 ]
	# Unsolicited inbound is dropped as in drop.
	run ask pub 198.51.100.20 7000 1
	[ "$status" -eq 124 ]
	lab_mode natB drop
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

@test "fw: a flow f1 opened in open mode goes on in in443, even when the server speaks next" {
	# rv's answer is the first packet after the switch: a router whose conntrack had not
	# followed the flow from its SYN would take that answer for a new flow from outside.
	lab_mode fw open
	run lab f1 bash -c 'exec 3<>/dev/tcp/198.51.100.1/7072; "$0" mode fw in443; read -t 3 -r l <&3; echo "$l"' "$LAB_BIN"
	lab_mode fw open
	[ "$output" = late ]
}

@test "fw only443: only tcp 80/443 in and out; the inside's own LAN is free" {
	lab_mode fw only443
	run ask f1 198.51.100.4 443
	[ "$status" -eq 0 ] && [ "$output" = 203.0.113.2 ]
	run ask f1 198.51.100.1 443
	[ "$status" -eq 0 ]
	run ask f1 198.51.100.4 7000 1
	[ "$status" -eq 124 ]
	run ask f1 198.51.100.1 7070 1
	[ "$status" -eq 124 ]
	run ask pub 203.0.113.2 443
	[ "$status" -eq 0 ] && [ "$output" = 198.51.100.4 ]
	run ask pub 203.0.113.2 7000 1
	[ "$status" -eq 124 ]
	run ask f1 203.0.113.3 7000
	[ "$status" -eq 0 ] && [ "$output" = 203.0.113.2 ]
	lab_mode fw open
}

@test "natC and natB LANs: two hosts each, reaching each other directly" {
	run ask b1 10.2.0.3 7000
	[ "$status" -eq 0 ] && [ "$output" = 10.2.0.2 ]
	run ask c1 10.3.0.3 7000
	[ "$status" -eq 0 ] && [ "$output" = 10.3.0.2 ]
	run ask c1 198.51.100.4 7000
	[ "$status" -eq 0 ] && [ "$output" = 198.51.100.40 ]
}

@test "IPv6: six1 and six2 have only IPv6; the dual-stack hosts answer on both" {
	V6=2001:0db8:0000:0000:0000:0000:0000
	run lab six1 timeout 3 socat -u TCP6:[2001:db8::62]:7000 -
	[ "$status" -eq 0 ] && [ "${output% *}" = "[$V6:0061]" ]
	run lab six1 timeout 3 socat -u TCP6:[2001:db8::4]:7006 -
	[ "$status" -eq 0 ] && [ "${output% *}" = "[$V6:0061]" ]
	run lab pub2 timeout 3 socat -u TCP6:[2001:db8::4]:7006 -
	[ "$status" -eq 0 ] && [ "${output% *}" = "[$V6:0005]" ]
	run ask pub2 198.51.100.4 7000
	[ "$status" -eq 0 ] && [ "$output" = 198.51.100.5 ]
	# No IPv4 on six1: the internet's IPv4 addresses are unreachable from it, at once.
	run ask six1 198.51.100.4 7000 2
	[ "$status" -ne 0 ] && [ "$status" -ne 124 ]
	[ -z "$(lab six1 ip -4 -o addr show dev eth0)" ]
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

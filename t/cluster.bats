#!/usr/bin/env bats
# rvd front ends sharing names through Redis (rvd -r): redis-server on the
# proxy host (198.51.100.3, which nothing else here uses), front end A on rv
# (198.51.100.1:7070), front end B on the relay host (198.51.100.2:7070),
# relayd beside B on 7071. Dials are unsealed (p2pdial -u) against rvlisten.
# A second redis-server on the proxy host, port 6380, wants a password; the
# rv and relay hosts resolve redis.lab to the proxy host (/etc/netns, which
# ip netns exec mounts over /etc/hosts).

load helpers/common

REDIS=redis://198.51.100.3:6379
A=198.51.100.1:7070
B=198.51.100.2:7070

# start_redis: redis-server in the lab, nothing saved, in the foreground.
start_redis() {
	lab_bg proxy redis-server --bind 198.51.100.3 --port 6379 --save '' \
		--appendonly no --protected-mode no --daemonize no
	export REDIS_PID=$LAB_BG_PID
	lab_wait_port proxy 198.51.100.3 6379
}

# start_redis_auth: redis-server on 6380 that wants $REDIS_PW from the
# default user, with an ACL user rvd ($REDIS_PW2) that may do only what a
# front end does (rvd(8)).
start_redis_auth() {
	lab_bg proxy redis-server --bind 198.51.100.3 --port 6380 --save '' \
		--appendonly no --protected-mode no --daemonize no --requirepass "$REDIS_PW"
	lab_wait_port proxy 198.51.100.3 6380
	redis_auth ACL SETUSER rvd on ">$REDIS_PW2" resetkeys '~p2p:name:*' \
		resetchannels '&p2p:fe:*' -@all +eval +pexpire +publish +subscribe \
		'+client|setname' '+client|reply' '+pubsub|numsub' +get +set +del
}

# redis_auth CMD...: redis-cli against the Redis with a password.
redis_auth() {
	lab proxy env REDISCLI_AUTH="$REDIS_PW" redis-cli -h 198.51.100.3 -p 6380 "$@"
}

# lab_names: redis.lab is the proxy host, seen from rv and relay.
lab_names() {
	local h
	for h in rv relay; do
		mkdir -p "/etc/netns/$LAB$h"
		printf '127.0.0.1 localhost\n198.51.100.3 redis.lab\n' > "/etc/netns/$LAB$h/hosts"
	done
}

# start_fe HOST ADDR [RVD ARGS...]: a front end; its pid in $FE_PID, log in $FE_LOG.
start_fe() {
	local host=$1 at=$2
	shift 2
	lab_bg "$host" rvd -v -r "$REDIS" -R 198.51.100.2:7071 "$@" "$at"
	FE_PID=$LAB_BG_PID FE_LOG=$LAB_BG_LOG
	lab_wait_port "$host" "${at%:*}" "${at##*:}"
	wait_log "$FE_LOG" "redis: connected to"
}

# wait_log FILE ERE [SECS]: until a line of FILE matches (default 5 s).
wait_log() {
	local i
	for i in $(seq $(( ${3:-5} * 20 ))); do
		grep -q -E -- "$2" "$1" && return 0
		sleep 0.05
	done
	echo "not in $1 after ${3:-5}s: $2"; cat "$1"; return 1
}

# dial HOST RVD PEER: unsealed p2pdial of 1 MiB; output in $out, stderr in $errf.
dial() {
	out=$BATS_TEST_TMPDIR/out errf=$BATS_TEST_TMPDIR/err
	lab "$1" env P2P_NAME=dialer P2P_RVD="$2" timeout 20 p2pdial -u -v "$3" \
		< "$(make_data sent 1)" > "$out" 2> "$errf" || { cat "$errf"; return 1; }
	check_transfer "$out" "$(make_data sent 1)" "$(make_data back 1)"
}

# listen_on RVD NAME HOST: rvlisten serving the test server, logged on at RVD.
listen_on() {
	lab_bg "$3" env P2P_RVD="$1" rvlisten -v "$2" serve "$(make_data back 1)"
	LISTEN_PID=$LAB_BG_PID LISTEN_LOG=$LAB_BG_LOG
}

setup_file() {
	command -v redis-server >/dev/null || { echo "redis-server not installed"; return 1; }
	lab_up
	lab_names
	export BACKFILE REDIS_PW=pw-$$ REDIS_PW2=acl-pw-$$
	start_redis
	start_redis_auth
	start_fe rv "$A" -o
	export A_PID=$FE_PID A_LOG=$FE_LOG
	start_fe relay "$B" -o
	export B_PID=$FE_PID B_LOG=$FE_LOG
	lab_bg relay relayd -v 198.51.100.2:7071
	lab_wait_port relay 198.51.100.2 7071
}

teardown_file() {
	rm -rf "/etc/netns/${LAB}rv" "/etc/netns/${LAB}relay"
	rmdir /etc/netns 2>/dev/null || :
	lab_down_checked
}

@test "a dialler on front end A reaches a listener on front end B directly" {
	listen_on "$B" office1 pub
	wait_log "$B_LOG" "listen office1 "
	dial a1 "$A" office1
	grep -q "p2pdial: connected via out to 198.51.100.4:" "$errf"
	grep -q "invite dialer -> office1 [0-9a-f]* via redis" "$A_LOG"
	grep -q "invite dialer -> office1 [0-9a-f]* from [0-9a-f]*" "$B_LOG"
}

@test "a dialler on A reaches a listener on B through the relay" {
	lab_mode natB random
	listen_on "$B" office2 b1
	wait_log "$B_LOG" "listen office2 "
	dial a1 "$A" office2 || { lab_mode natB drop; false; }
	lab_mode natB drop
	grep -q "p2pdial: connected via relay to 198.51.100.2:7071 as office2" "$errf"
	grep -q "relay dialer -> office2 via 198.51.100.2:7071 from " "$B_LOG"
}

@test "without a users file the first holder keeps the name on both front ends" {
	lab pub bash -c "exec 3<>/dev/tcp/${A%:*}/7070; printf 'LISTEN first\n' >&3; sleep 3" &
	wait_log "$A_LOG" "listen first "
	run lab pub2 bash -c "exec 3<>/dev/tcp/${B%:*}/7070; printf 'LISTEN first\n' >&3; timeout 2 cat <&3"
	[[ "$output" == "ERR - name in use" ]]
	run lab pub2 bash -c "exec 3<>/dev/tcp/${A%:*}/7070; printf 'LISTEN first\n' >&3; timeout 2 cat <&3"
	[[ "$output" == "ERR - name in use" ]]
	grep -q "refused first .*: name in use at another front end" "$B_LOG"
	wait
}

@test "with a users file a newer log-on at B replaces the older one at A" {
	printf 'taken pw\ndialer pw\n' > "$BATS_FILE_TMPDIR/users"
	start_fe rv 198.51.100.1:7080 -u "$BATS_FILE_TMPDIR/users"
	ua=$FE_LOG
	start_fe relay 198.51.100.2:7080 -u "$BATS_FILE_TMPDIR/users"
	ub=$FE_LOG
	lab pub bash -c 'exec 3<>/dev/tcp/198.51.100.1/7080; printf "LISTEN taken pw\n" >&3;
		timeout 3 cat <&3' > "$BATS_TEST_TMPDIR/old" &
	wait_log "$ua" "listen taken "
	lab pub2 bash -c 'exec 3<>/dev/tcp/198.51.100.2/7080; printf "LISTEN taken pw\n" >&3; sleep 3' &
	wait_log "$ub" "listen taken "
	wait_log "$ua" "close taken 198.51.100.4:[0-9]*: replaced"
	# An invitation at A now goes to B's listener.
	id=0123456789abcdef0123456789abcdef
	run lab a1 bash -c "exec 3<>/dev/tcp/198.51.100.1/7080;
		printf 'LOGON dialer pw\nINVITE taken $id $id 10.1.0.2:1\n' >&3; timeout 1 cat <&3"
	[[ "$output" == *"SENT $id"* ]]
	grep -q "invite dialer -> taken $id from " "$ub"
	wait
	grep -q "^ERR - replaced by a newer log-on" "$BATS_TEST_TMPDIR/old"
}

@test "Redis restarted: lost and back said once each, local dials go on meanwhile, names claimed again" {
	listen_on "$B" office3 pub
	wait_log "$B_LOG" "listen office3 "
	kill -TERM "$REDIS_PID"
	wait_log "$B_LOG" "redis: lost "
	# Alone, B still serves its own peers, without a log line per message.
	dial pub2 "$B" office3
	dial pub2 "$B" office3
	start_redis
	wait_log "$B_LOG" "redis: back at "
	wait_log "$A_LOG" "redis: back at "
	[ "$(grep -c "redis: lost " "$B_LOG")" -eq 1 ]
	[ "$(grep -c "redis: back " "$B_LOG")" -eq 1 ]
	# Nothing else lost: the listener, not logged on again, is reached from A.
	dial a1 "$A" office3
	[ "$(grep -c "listen office3 " "$B_LOG")" -eq 1 ]
}

@test "Redis sends what does not parse: dropped with a log line, rvd serves on" {
	fe=$(sed -n 's/.*redis: front end \([0-9a-f]*\),.*/\1/p' "$A_LOG")
	[ -n "$fe" ]
	for m in "INVITE $fe" "MSG $fe zz" "KICK $fe x" "$(head -c 3000 /dev/zero | tr '\0' x)" "TELL $fe 1.1 QUIT 00" \
		"PUNCH $fe 0123456789abcdef0123456789abcdef 1.2.3.4:5 1.2.3.4:5 -1"; do
		lab proxy redis-cli -h 198.51.100.3 publish "p2p:fe:$fe" "$m" >/dev/null
	done
	lab proxy redis-cli -h 198.51.100.3 publish "p2p:fe:$fe" $'KICK\001' >/dev/null
	sleep 0.3
	grep -q "redis: dropped a message" "$A_LOG"
	listen_on "$B" office4 pub
	wait_log "$B_LOG" "listen office4 "
	dial a1 "$A" office4
}

@test "a flood of log-ons at A: invitations at B, and from A across to B, are still answered" {
	listen_on "$B" office5 pub
	wait_log "$B_LOG" "listen office5 "
	# 1000 log-ons at A from pub2, 50 at a time, each read to its WELCOME.
	lab pub2 bash -c 'for i in $(seq 20); do for j in $(seq 50); do
		{ exec 3<>/dev/tcp/198.51.100.1/7070 && printf "LOGON flood$i-$j\n" >&3 &&
		  timeout 2 head -n 1 <&3; } 2>/dev/null & done; wait; done' \
		> "$BATS_TEST_TMPDIR/flood" &
	flood=$!
	sleep 0.5
	dial b1 "$B" office5 || { kill $flood; false; }
	dial a1 "$A" office5 || { kill $flood; false; }
	wait $flood || :
	echo "$(grep -c "^WELCOME " "$BATS_TEST_TMPDIR/flood") of 1000 flood log-ons welcomed at A"
	[ "$(grep -c "^WELCOME " "$BATS_TEST_TMPDIR/flood")" -ge 100 ]
	grep -q "invite dialer -> office5 [0-9a-f]* via redis" "$A_LOG"
}

@test "a name's key lost behind rvd's back is claimed again at its next renewal" {
	listen_on "$B" office6 pub
	wait_log "$B_LOG" "listen office6 "
	key() { lab proxy redis-cli -h 198.51.100.3 get p2p:name:office6; }
	[ -n "$(key)" ]
	lab proxy redis-cli -h 198.51.100.3 del p2p:name:office6 > /dev/null
	# Renewed every 1.5 to 3 s (rvd(8)): back within 4.
	for i in $(seq 40); do [ -n "$(key)" ] && break; sleep 0.1; done
	[ -n "$(key)" ]
	dial a1 "$A" office6
}

@test "with a password (P2P_REDIS_PASSWORD at A, an ACL user's in the URL at B) a dialler on A reaches a listener on B" {
	REDIS=redis://198.51.100.3:6380 P2P_REDIS_PASSWORD=$REDIS_PW start_fe rv 198.51.100.1:7090 -o
	pa=$FE_LOG
	REDIS="redis://rvd:$REDIS_PW2@198.51.100.3:6380" start_fe relay 198.51.100.2:7090 -o
	pb=$FE_LOG
	listen_on 198.51.100.2:7090 pwoffice pub
	wait_log "$pb" "listen pwoffice "
	dial a1 198.51.100.1:7090 pwoffice
	grep -q "invite dialer -> pwoffice [0-9a-f]* via redis" "$pa"
	grep -q "sharing names through redis://198.51.100.3:6380$" "$pb"
	# Neither password in a log; Redis denied the ACL user nothing.
	! grep -q -e "$REDIS_PW" -e "$REDIS_PW2" "$pa" "$pb"
	[ -z "$(redis_auth ACL LOG)" ]
}

@test "a wrong password: said once, tried again with the backoff, local dials go on" {
	redis_auth ACL LOG RESET > /dev/null
	lab_bg rv rvd -v -r "redis://:wrong-$REDIS_PW@198.51.100.3:6380" -R 198.51.100.2:7071 -o 198.51.100.1:7091
	wl=$LAB_BG_LOG
	lab_wait_port rv 198.51.100.1 7091
	wait_log "$wl" "redis: redis://198.51.100.3:6380 refuses us: WRONGPASS [^;]*; this front end runs alone"
	listen_on 198.51.100.1:7091 wroffice pub
	wait_log "$wl" "listen wroffice "
	dial a1 198.51.100.1:7091 wroffice
	# Attempts at 0, 0.25, 0.75, 1.75 s (and on): all refused, said once.
	sleep 2
	[ "$(grep -c "refuses us" "$wl")" -eq 1 ]
	! grep -q -e "redis: connected" -e "wrong-" "$wl"
	# Three connections an attempt, each refused: more than one attempt.
	n=$(redis_auth ACL LOG 1 | grep -A1 -x count | tail -1)
	echo "refused AUTH $n times"
	[ "$n" -ge 6 ]
}

@test "-r with a host name: resolved once at start; a name that does not resolve: one line, exit 111; a bad URL: exit 100" {
	REDIS=redis://redis.lab:6379 start_fe rv 198.51.100.1:7092 -o
	na=$FE_LOG
	REDIS=redis://redis.lab start_fe relay 198.51.100.2:7092 -o
	nb=$FE_LOG
	grep -q "redis: connected to redis://redis.lab:6379 (198.51.100.3) as front end " "$na"
	grep -q "redis: connected to redis://redis.lab:6379 (198.51.100.3) as front end " "$nb"
	listen_on 198.51.100.2:7092 nameoffice pub
	wait_log "$nb" "listen nameoffice "
	dial a1 198.51.100.1:7092 nameoffice
	run lab rv rvd -o -r redis://nosuch.lab:6379 198.51.100.1:7093
	echo "$output"
	[ "$status" -eq 111 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "rvd: -r: cannot resolve nosuch.lab: "* ]]
	for u in 'redis://:secret-x@198.51.100.3:6379/0' 'redis://rvd@198.51.100.3' redis://198.51.100.3:0 http://198.51.100.3; do
		run lab rv rvd -o -r "$u" 198.51.100.1:7093
		echo "$output"
		[ "$status" -eq 100 ] && [ "${#lines[@]}" -eq 1 ]
		[[ "$output" != *secret-x* ]]
	done
}

@test "a peer that dies mid-punch across front ends: the dialler at A gives up at once, the relay carries the data" {
	local errf id rc
	# The listener at B, the dialler at A. The dialler's dialpunch comes
	# 1.5 s late, after rvinvite's wait (-t 1) has ended and its
	# connection closed: A keeps the session all the same, as its
	# listener is alive at B.
	RVD_LOG=$B_LOG P2P_RVD=$B DIAL_RVD=$A mortal_punch -t 1
	grep -q "^via=relay peer=dialer" "$BATS_TEST_TMPDIR/out"
	check_transfer "$BATS_TEST_TMPDIR/out" "$(make_data sent1 1)" "$(make_data back 16)"
}

@test "front end A killed: its listener is back on B within 2 s, and reachable" {
	listen_on "$A,$B" mover pub
	wait_log "$A_LOG" "listen mover "
	kill -KILL "$A_PID"
	start=$(date +%s%N)
	wait_log "$B_LOG" "listen mover " 3
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	echo "back on B after $ms ms"
	[ "$ms" -le 2000 ]
	dial a1 "$A,$B" mover
}

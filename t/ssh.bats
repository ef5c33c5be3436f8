#!/usr/bin/env bats
# ssh through p2pdial as its ProxyCommand, to sshd -i served by p2plisten.

load helpers/common

setup_file() {
	lab_up
	start_rvd
	local d=$BATS_FILE_TMPDIR
	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$d/userkey"
	cp "$d/userkey.pub" "$d/authorized_keys"
	cat > "$d/sshd_config" <<-CONF
		HostKey $d/hostkey
		AuthorizedKeysFile $d/authorized_keys
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		PidFile none
	CONF
	start_listener_prog pub office /usr/sbin/sshd -i -f "$d/sshd_config"
}

teardown_file() {
	lab_down_checked
}

# start_listener_prog HOST NAME PROG...: p2plisten serving PROG.
start_listener_prog() {
	local host=$1 name=$2 i
	shift 2
	lab_bg "$host" p2plisten -v "$name" "$@"
	for i in $(seq 50); do
		grep -q "listen $name " "$RVD_LOG" && return 0
		sleep 0.1
	done
	return 1
}

sshopts() {
	echo -F /dev/null -i "$BATS_FILE_TMPDIR/userkey" -o BatchMode=yes \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
}

@test "ssh with ProxyCommand p2pdial reaches sshd -i behind p2plisten" {
	run lab a1 env P2P_NAME=laptop timeout 30 ssh $(sshopts) \
		-o ProxyCommand='p2pdial %h' root@office 'echo "hello from $(hostname) via $P2PVIA"'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"hello from"* ]]
}

@test "ssh with p2pdial -F and ProxyUseFdpass: no copying process" {
	lab a1 env P2P_NAME=laptop timeout 30 ssh $(sshopts) -o ProxyUseFdpass=yes \
		-o ProxyCommand='p2pdial -F %h' root@office 'sleep 2; echo fdpass-ok' \
		> "$BATS_TEST_TMPDIR/out" 2>&1 &
	sleep 1.5
	# The session is up (sshd sleeps); p2pdial has passed the socket and gone.
	pgrep -f "sshd -i" > /dev/null
	! ip netns pids "${LAB}a1" | xargs -r ps -o args= -p | grep -q p2pcatch
	wait
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "fdpass-ok" ]
}

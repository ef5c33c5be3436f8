#!/usr/bin/env bats
# Names, secrets, tokens and rationing: refused, and logged.

load helpers/common

setup_file() {
	lab_up
	printf 'office s3cret\nlaptop pw\n' > "$BATS_FILE_TMPDIR/users"
	# rvd with a users file (7070) and without (7071); few connections per source.
	lab_bg rv rvd -v -c 8 -u "$BATS_FILE_TMPDIR/users" 198.51.100.1:7070
	export AUTH_LOG=$LAB_BG_LOG
	lab_bg rv rvd -v -o 198.51.100.1:7071
	export OPEN_LOG=$LAB_BG_LOG
	lab_wait_port rv 198.51.100.1 7070
	lab_wait_port rv 198.51.100.1 7071
}

teardown_file() {
	lab_down_checked
}

# say HOST PORT LINES: send lines to rvd, print what it answers (2 s at most).
say() {
	lab "$1" bash -c "exec 3<>/dev/tcp/198.51.100.1/$2; printf '$3' >&3; timeout 2 cat <&3" || :
}

@test "with a users file: a stolen name is refused and logged; the rightful owner replaces an old log-on" {
	lab_bg pub env P2P_RVD=198.51.100.1:7070 P2P_SECRET=s3cret rvlisten -v office cat
	owner=$LAB_BG_LOG
	sleep 1
	run say pub2 7070 'LISTEN office guess\n'
	[[ "$output" == "ERR - wrong name or secret" ]]
	grep -q "refused office 198.51.100.5:[0-9]*: wrong secret" "$AUTH_LOG"
	run say pub2 7070 'LISTEN office\n'
	[[ "$output" == "ERR - wrong name or secret" ]]
	# The secret never reaches the log.
	! grep -q "guess\|s3cret" "$AUTH_LOG"
	# Newer wins, for the one who knows the secret.
	run say pub2 7070 'LISTEN office s3cret\n'
	[[ "$output" == "WELCOME 198.51.100.5:"* ]]
	grep -q "close office 198.51.100.4:[0-9]*: replaced" "$AUTH_LOG"
	grep -q "rvd: replaced by a newer log-on" "$owner"
}

@test "without a users file: a name in use cannot be taken" {
	lab_bg pub env P2P_RVD=198.51.100.1:7071 rvlisten -v held cat
	sleep 1
	run say pub2 7071 'LISTEN held\n'
	[[ "$output" == "ERR - name in use" ]]
	grep -q "refused held 198.51.100.5:[0-9]*: name in use" "$OPEN_LOG"
	grep -q "no users file: any free name may be taken" "$OPEN_LOG"
}

@test "wrong secrets from an address slow the guessing, but never keep the right secret out" {
	for i in $(seq 10); do say a2 7070 'LOGON laptop wrong\n' > /dev/null; done
	grep -q "refused laptop 198.51.100.10:[0-9]*: wrong secret" "$AUTH_LOG"
	run say a2 7070 'LOGON laptop pw\n'
	[[ "$output" == "WELCOME 198.51.100.10:"* ]]
	# Another source is not affected either.
	run say b1 7070 'LOGON laptop pw\n'
	[[ "$output" == "WELCOME 198.51.100.20:"* ]]
}

@test "connections are rationed per source address, but idle ones make room for a log-on" {
	lab pub2 bash -c 'for i in $(seq 12); do exec {fd}<>/dev/tcp/198.51.100.1/7070; done; sleep 1.5;
		exec 3<>/dev/tcp/198.51.100.1/7070; printf "LOGON laptop pw\n" >&3; timeout 2 cat <&3' \
		> "$BATS_TEST_TMPDIR/out" || :
	grep -q "^WELCOME 198.51.100.5:" "$BATS_TEST_TMPDIR/out"
	grep -q "evicted 198.51.100.5:[0-9]*: too many connections from your address" "$AUTH_LOG"
	# Logged on, they do count: the ninth is refused.
	lab pub2 bash -c 'for i in $(seq 8); do exec {fd}<>/dev/tcp/198.51.100.1/7070;
		printf "LOGON laptop pw\n" >&$fd; done; sleep 0.5;
		exec 3<>/dev/tcp/198.51.100.1/7070; printf "LOGON laptop pw\n" >&3; timeout 2 cat <&3' \
		> "$BATS_TEST_TMPDIR/out2" || :
	grep -q "ERR - too many connections from your address" "$BATS_TEST_TMPDIR/out2"
	grep -q "refused 198.51.100.5: more than 8 connections" "$AUTH_LOG"
}

@test "a guessed token is refused and logged, and the session goes on" {
	lab_bg b1 env P2P_RVD=198.51.100.1:7071 rvlisten -v -p 7777 guarded p2pseal -s serve
	log=$LAB_BG_LOG
	sleep 1
	for t in 00000000000000000000000000000000 ffffffffffffffffffffffffffffffff; do
		run lab natB bash -c "exec 3<>/dev/tcp/10.2.0.2/7777;
			printf 'P2P 0123456789abcdef0123456789abcdef $t\n' >&3; timeout 2 cat <&3"
		[[ "$output" == "ERR bad token" ]]
	done
	[ "$(grep -c "refused a dialer: wrong session or token" "$log")" -eq 2 ]
	echo x | lab pub env P2P_RVD=198.51.100.1:7071 P2P_NAME=d timeout 20 p2pdial guarded |
		grep -q "^via="
}

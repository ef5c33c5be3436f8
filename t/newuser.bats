#!/usr/bin/env bats
# What a new user trips on first (issue 16): -h and -V, error lines that name
# the real cause, flags that are wrong. Loopback only: no root, no namespaces.

bats_require_minimum_version 1.5.0

# Every tool and script the Makefile builds, so that a new one is held to the same rules.
TOOLS="$(awk '/^(TOOLS|SCRIPTS) *=/ { on = 1; sub(/^[A-Z]+ *= */, "") }
	on { c = sub(/\\$/, ""); printf "%s ", $0; on = c }' "$BATS_TEST_DIRNAME/../Makefile")"

setup_file() {
	if [ -z "${P2P_BIN:-}" ]; then
		make -s -C "$BATS_TEST_DIRNAME/.." all >&2
	fi
}

setup() {
	BIN=${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}
	PATH="$BIN:$PATH"
	TOP=$BATS_TEST_DIRNAME/..
	unset P2PFD P2P_RVD P2P_NAME P2P_SECRET P2P_TIMEOUT P2P_LADDER P2P_PROXY
	unset https_proxy HTTPS_PROXY all_proxy ALL_PROXY
	export P2P_CACHE=$BATS_TEST_TMPDIR/cache
}

teardown() {
	if [ -n "${RVD_PID:-}" ]; then
		kill "$RVD_PID" 2>/dev/null || true
		wait "$RVD_PID" 2>/dev/null || true
	fi
}

# The one version, as the Makefile says it.
version() {
	sed -n 's/^VERSION *= *//p' "$TOP/Makefile"
}

# Start an open rvd on a free loopback port; its address goes to $RVD.
start_rvd() {
	local port i
	for i in 1 2 3 4 5; do
		port=$((10000 + RANDOM % 22000))
		rvd -o -d 3 "127.0.0.1:$port" 3>"$BATS_TEST_TMPDIR/ready" \
		    2>"$BATS_TEST_TMPDIR/rvd.log" &
		RVD_PID=$!
		for _ in $(seq 50); do
			[ -s "$BATS_TEST_TMPDIR/ready" ] && break
			kill -0 "$RVD_PID" 2>/dev/null || break
			sleep 0.1
		done
		if [ -s "$BATS_TEST_TMPDIR/ready" ]; then
			RVD=127.0.0.1:$port
			return 0
		fi
		wait "$RVD_PID" 2>/dev/null || true
		RVD_PID=
	done
	cat "$BATS_TEST_TMPDIR/rvd.log" >&2
	return 1
}

# ---- -h, -V, --version ----

@test "every tool: -h prints its usage on stdout and exits 0" {
	local t
	for t in $TOOLS; do
		run -0 --separate-stderr "$t" -h </dev/null
		echo "$t: $output"
		[[ "${lines[0]}" == "usage: $t "* ]]
		[[ "${lines[0]}" == *h* ]]
		[ "$stderr" = "" ]
	done
}

@test "every tool: -V and --version print NAME VERSION from the Makefile, exit 0" {
	local t v
	v=$(version)
	[ -n "$v" ]
	for t in $TOOLS; do
		run -0 --separate-stderr "$t" -V </dev/null
		[ "$output" = "$t $v" ]
		run -0 --separate-stderr "$t" --version </dev/null
		[ "$output" = "$t $v" ]
		[ "$stderr" = "" ]
	done
}

@test "every tool: a bad flag still says its usage on stderr and exits 100" {
	local t
	for t in $TOOLS; do
		run -100 --separate-stderr "$t" -Z </dev/null
		[ "$output" = "" ]
		[[ "$stderr" == *"usage: $t "* ]]
	done
}

@test "every man page names -h and -V" {
	local t
	for t in $TOOLS; do
		grep -q '^\.Op Fl .*h' "$TOP"/man/"$t".[18] || {
			echo "$t: no -h in SYNOPSIS"; false; }
		grep -q '^\.It Fl V' "$TOP"/man/"$t".[18] || {
			echo "$t: no -V"; false; }
	done
}

# ---- error lines that name the real cause ----

@test "p2pdial: P2P_RVD without a port is one line naming it, exit 100" {
	P2P_RVD=127.0.0.1 run -100 --separate-stderr timeout 20 p2pdial office
	echo "$stderr"
	[ "$stderr" = "p2pdial: bad P2P_RVD (HOST:PORT ...): 127.0.0.1" ]
	[ "$output" = "" ]
	P2P_RVD="rv.example.net:7070 ::1" run -100 --separate-stderr p2pdial office
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "p2plisten: P2P_RVD without a port exits 100 at once, not retrying" {
	P2P_RVD=127.0.0.1 run -100 --separate-stderr timeout 20 p2plisten office cat
	echo "$stderr"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"127.0.0.1"* ]]
	[[ "$stderr" != *Success* ]]
}

@test "a failed name lookup says the resolver's reason, not No route to host" {
	run -1 --separate-stderr timeout 30 dialdirect -t 5 nosuch.invalid:80
	echo "$stderr"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "dialdirect: unable to connect to nosuch.invalid:80: "* ]]
	[[ "$stderr" != *"No route to host"* ]]
	# Whatever the resolver says (no DNS here, or NXDOMAIN), it says it.
	[[ "$stderr" == *"not known"* || "$stderr" == *"resolution"* ||
	    "$stderr" == *"no address"* || "$stderr" == *"No address"* ]]
}

@test "a proxy whose name does not resolve: the resolver's reason" {
	P2P_PROXY=http://nosuch.invalid:3128 run -1 --separate-stderr \
	    timeout 30 dialproxy -t 5 127.0.0.1:9
	echo "$stderr"
	[[ "$stderr" == *"unable to resolve proxy nosuch.invalid:3128: "* ]]
	[[ "$stderr" != *"No route to host"* ]]
}

# invite: rvinvite office with a fake "office" that reads the invitation and
# connects to rvinvite's port, sending the lines given (none: just close).
invite_and_poke() {
	local port addr line
	start_rvd
	exec 4<>"/dev/tcp/${RVD%:*}/${RVD##*:}"
	printf 'LISTEN office\n' >&4
	read -r -t 5 line <&4
	[[ "$line" == WELCOME* ]]
	P2P_RVD=$RVD P2P_NAME=dialer timeout 20 rvinvite -v -t 3 office \
	    >"$BATS_TEST_TMPDIR/ticket" 2>"$BATS_TEST_TMPDIR/err" &
	local inv=$!
	while read -r -t 5 line <&4; do
		[[ "$line" == INVITE* ]] && break
	done
	[[ "$line" == "INVITE dialer "* ]]
	set -- $line
	ID=$3 TOKEN=$4 addr=${!#}
	port=${addr##*:}
	exec 5<>"/dev/tcp/127.0.0.1/$port"
	if [ -n "${POKE:-}" ]; then
		printf '%s\n' "$POKE" >&5
		read -r -t 5 line <&5 || true
		echo "answer: $line"
	fi
	exec 5>&-
	wait "$inv" || true
	exec 4>&-
	cat "$BATS_TEST_TMPDIR/err"
}

@test "rvinvite: a dialer that closes without a word is no refusal (no stale errno)" {
	invite_and_poke
	! grep -q "refused a dialer" "$BATS_TEST_TMPDIR/err"
	! grep -q "File exists" "$BATS_TEST_TMPDIR/err"
	grep -q "went away in the handshake" "$BATS_TEST_TMPDIR/err"
}

@test "rvinvite: a dialer with a wrong token is still refused, for that reason" {
	POKE="P2P 00112233445566778899aabbccddeeff 0123456789abcdef0123456789abcdef"
	invite_and_poke
	grep -q "refused a dialer from 127.0.0.1:[0-9]*: wrong session or token" \
	    "$BATS_TEST_TMPDIR/err"
}

@test "README's PROG example ends; each side names the rung from its own side" {
	start_rvd
	P2P_RVD=$RVD timeout 60 p2plisten office sh -c 'echo "office via $P2PVIA"; cat' \
	    2>"$BATS_TEST_TMPDIR/office.log" &
	local l=$!
	sleep 1
	P2P_RVD=$RVD P2P_NAME=dialer run -0 --separate-stderr timeout 20 \
	    p2pdial office sh -c 'head -n 1 <&6; echo "dialer via $P2PVIA"'
	kill "$l"; wait "$l" || true
	echo "$output"
	[ "${#lines[@]}" -eq 2 ]
	case "${lines[0]} ${lines[1]}" in
	"office via in dialer via out" | "office via out dialer via in") ;;
	*) false ;;
	esac
}

# ---- flags taken when wrong ----

@test "p2pdial -t abc is a usage error, said once" {
	P2P_RVD=127.0.0.1:9 run -100 --separate-stderr timeout 20 p2pdial -t abc office
	echo "$stderr"
	[ "$stderr" = "p2pdial: bad -t: abc (want seconds, e.g. 3)" ]
	local t
	for t in 0 -1 1.2.3 . '' 86400 1e3; do
		P2P_RVD=127.0.0.1:9 run -100 p2pdial -t "$t" office
	done
}

@test "p2pdial and p2plisten: an unknown flag or a missing argument names the tool; p2plisten's -S and -a want sealing" {
	run -100 --separate-stderr p2pdial -Z office
	[ "${stderr%%$'\n'*}" = "p2pdial: unknown option -Z" ]
	run -100 --separate-stderr p2pdial -t
	[ "${stderr%%$'\n'*}" = "p2pdial: -t needs an argument" ]
	run -100 --separate-stderr p2plisten -Z office cat
	[ "${stderr%%$'\n'*}" = "p2plisten: unknown option -Z" ]
	run -100 --separate-stderr p2plisten -a
	[ "${stderr%%$'\n'*}" = "p2plisten: -a needs an argument" ]
	for f in -S "-a /dev/null"; do
		P2P_RVD=127.0.0.1:9 run -100 --separate-stderr p2plisten -u $f office cat
		[ "$stderr" = "p2plisten: -a and -S need sealing: they cannot go with -u" ]
	done
}

@test "a bad P2P_TIMEOUT is a usage error, said once by p2pdial" {
	P2P_TIMEOUT=abc P2P_RVD=127.0.0.1:9 run -100 --separate-stderr \
	    timeout 20 p2pdial office
	echo "$stderr"
	[ "$stderr" = "p2pdial: bad P2P_TIMEOUT: abc (want seconds, e.g. 3)" ]
}

@test "a bad P2P_TIMEOUT stops a rung and rvlisten with 100" {
	P2P_TIMEOUT=soon run -100 --separate-stderr dialdirect </dev/null
	[ "$stderr" = "dialdirect: bad P2P_TIMEOUT: soon (want seconds, e.g. 3)" ]
	P2P_TIMEOUT=soon P2P_RVD=127.0.0.1:9 run -100 --separate-stderr \
	    timeout 20 rvlisten office cat
	[ "${#stderr_lines[@]}" -eq 1 ]
	P2P_TIMEOUT=0.5 run -0 dialdirect </dev/null
}

@test "dialdirect HOST PORT (nc's habit) says HOST:PORT is one word, exit 100" {
	run -100 --separate-stderr dialdirect 127.0.0.1 17999 </dev/null
	[ "$stderr" = "dialdirect: 127.0.0.1 17999: HOST:PORT is one word: 127.0.0.1:17999" ]
	run -100 --separate-stderr dialdirect ::1 22 </dev/null
	[ "$stderr" = "dialdirect: ::1 22: HOST:PORT is one word: [::1]:22" ]
	run -100 --separate-stderr dialdirect example.net 22 </dev/null
	run -100 --separate-stderr dialproxy -x http://127.0.0.1:9 localhost 80 </dev/null
	[ "${#stderr_lines[@]}" -eq 1 ]
	# A program and its argument is still a program.
	run -0 dialdirect sleep 1 </dev/null
	run -0 dialdirect python3.11 5 </dev/null
}

# ---- the repository ----

@test "make check installs nothing (the README's command runs .ci/deps)" {
	run -0 make -n -C "$TOP" O="$BATS_TEST_TMPDIR/o" check
	[[ "$output" != *".ci/deps"* ]]
	[[ "$output" != *"apt-get"* ]]
}

@test "LICENSE is ISC, and README says so" {
	grep -q "Copyright (c) 2026 The p2pdial authors" "$TOP/LICENSE"
	grep -q "THE SOFTWARE IS PROVIDED \"AS IS\"" "$TOP/LICENSE"
	grep -q "ISC" "$TOP/README"
}

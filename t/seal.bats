#!/usr/bin/env bats
# Sealing (issue 13): lib/noise.c against the published Noise vectors, p2pkey,
# and two p2pseals on loopback: over FIFOs (where a test puts a tamperer or a
# recorder between them) and over TCP with ucspi-tcp. No root, no namespaces.

bats_require_minimum_version 1.5.0
load helpers/common

setup_file() {
	if [ -z "${P2P_UNIT:-}" ]; then
		make -s -C "$BATS_TEST_DIRNAME/.." all >&2
	fi
}

setup() {
	BIN=${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}
	PATH="$BIN:$PATH"
	U=${P2P_UNIT:-$BATS_TEST_DIRNAME/unit}
	NOISE=${U%/*}/noise
	D=$BATS_TEST_TMPDIR
	export HOME=$D/home	# nothing of the real user's is read or made
	export P2P_KNOWN=$D/known
	unset P2P_KEY P2PID P2PTOKEN P2P_TIMEOUT P2PFD
	SK=$D/skey CK=$D/ckey
	P2P_KEY=$SK p2pkey > "$D/spub" 2>/dev/null
	P2P_KEY=$CK p2pkey > "$D/cpub" 2>/dev/null
	SERVE=cat
	SFLAGS= SENV= MIDDLE=cat CENV=
}

# sealed [CLIENT FLAGS] PEER: the answering p2pseal ($SK, $SFLAGS, env $SENV)
# runs sh -c "$SERVE"; the dialling one ($CK, env $CENV) copies its stdin and
# stdout. Server to client bytes pass through sh -c "$MIDDLE"; client to
# server ones are kept in $D/c2s.rec. Stderr in $D/c.err and $D/s.err; the
# server's exit status in $src; returns the client's.
sealed() {
	local spid mpid crc
	rm -f "$D/c2s" "$D/s2c" "$D/s2m"
	mkfifo "$D/c2s" "$D/s2c" "$D/s2m"
	env P2P_KEY="$SK" $SENV p2pseal -s $SFLAGS sh -c "$SERVE" \
		< "$D/c2s" > "$D/s2m" 2> "$D/s.err" &
	spid=$!
	sh -c "$MIDDLE" < "$D/s2m" > "$D/s2c" &
	mpid=$!
	env P2P_KEY="$CK" $CENV timeout 30 p2pseal -c "$@" \
		7> >(tee "$D/c2s.rec" > "$D/c2s") 6< "$D/s2c" 2> "$D/c.err"
	crc=$?
	wait $spid
	src=$?
	wait $mpid || :
	return $crc
}

# The lab, for the one test that wants it: taken down after that test.
teardown() {
	if [ -n "${LAB_IS_UP:-}" ]; then
		lab_down_checked
	fi
}

# pin: bob@rv:1 pinned to the server's key, so that the dialler says nothing.
pin() { echo "bob@rv:1 $(cut -d' ' -f1 "$D/spub")" > "$P2P_KNOWN"; }

# lines FILE: how many lines FILE has.
lines() { wc -l < "$1" | tr -d ' '; }

@test "noise: the published test vectors for XX and IK pass" {
	run "$NOISE" "$BATS_TEST_DIRNAME/noise-vectors.txt"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"4 vectors, 0 failed"* ]]
	[[ $output == *"ok Noise_XX_25519_ChaChaPoly_BLAKE2b"* ]]
	[[ $output == *"ok Noise_IK_25519_ChaChaPoly_BLAKE2b"* ]]
}

@test "noise: a bit flipped in any message of any vector is refused" {
	run "$NOISE" -f "$BATS_TEST_DIRNAME/noise-vectors.txt"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"4 vectors, 0 failed"* ]]
}

@test "p2pkey: makes ~/.config/p2pdial/key once, 0600, whole; -f makes a new one" {
	run -0 --separate-stderr p2pkey
	[[ $stderr == "p2pkey: made a new key $HOME/.config/p2pdial/key, fingerprint "* ]]
	[ "$(stat -c %a "$HOME/.config/p2pdial/key")" = 600 ]
	[[ $output =~ ^[A-Za-z0-9+/]{43}=\ [0-9a-f]{4}(:[0-9a-f]{4}){3}$ ]]
	first=$output
	run -0 --separate-stderr p2pkey
	[ "$output" = "$first" ] && [ -z "$stderr" ]
	run -0 --separate-stderr p2pkey -f
	[ "$output" != "$first" ]
	[ -z "$(find "$HOME/.config/p2pdial" -name '*.tmp')" ]
	run -0 env P2P_KEY="$D/other" p2pkey
	[ -f "$D/other" ]
	run -0 p2pkey -k "$D/other"
	[ "$output" = "$(P2P_KEY=$D/other p2pkey)" ]
	run -100 p2pkey extra
}

@test "p2pkey: peers making the first key at once all get the one key" {
	for i in 1 2 3 4 5 6 7 8; do
		p2pkey > "$D/k$i" 2>/dev/null &
	done
	wait
	[ "$(cat "$D"/k[1-8] | sort -u | wc -l)" = 1 ]
	[ "$(cut -d' ' -f1 "$D/k1")" = "$(p2pkey | cut -d' ' -f1)" ]
	[ -z "$(find "$HOME/.config/p2pdial" -name '*.tmp')" ]
}

@test "p2pseal: the first dial pins the key (XX), the next runs IK; PROG gets P2PKEY_FP" {
	SERVE='echo "fp=$P2PKEY_FP peer=${P2PPEER:-none}"'
	SENV=P2PPEER=carol
	sealed bob@rv.example:443 < /dev/null > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	grep -q "^p2pseal: pinned bob@rv.example:443, fingerprint $(cut -d' ' -f2 "$D/spub"), in $P2P_KNOWN$" "$D/c.err"
	[ "$(cat "$P2P_KNOWN")" = "bob@rv.example:443 $(cut -d' ' -f1 "$D/spub")" ]
	[ "$(cat "$D/out")" = "fp=$(cut -d' ' -f2 "$D/cpub") peer=carol" ]
	sealed -v bob@rv.example:443 < /dev/null > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	grep -q "sealed with IK" "$D/c.err"
	! grep -q pinned "$D/c.err"
	[ "$(lines "$P2P_KNOWN")" = 1 ]
}

@test "p2pseal: a line naming several rvd front ends pins them as one" {
	echo "bob@a.example:443,b.example:443 $(cut -d' ' -f1 "$D/spub")" > "$P2P_KNOWN"
	sealed -v -S bob@b.example:443 < /dev/null > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	grep -q "sealed with IK" "$D/c.err"
}

# gate: the listener's bytes are held back until its PROG has read the
# dialler's first ones (or 2 s pass, which $D/late records).
gate() {
	MIDDLE="for i in \$(seq 40); do [ -s '$D/seen' ] && break; sleep 0.05; done
		[ -s '$D/seen' ] || touch '$D/late'; exec cat"
	SERVE="head -c 6 > '$D/seen'; echo back"
}

@test "p2pseal: with the key pinned (IK) the dialler's first bytes reach PROG before the answer has come back; not so on a first dial (XX)" {
	pin
	gate
	sealed -v bob@rv:1 <<< hello > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	grep -q "sealed with IK" "$D/c.err"
	[ "$(cat "$D/seen")" = hello ]
	[ "$(cat "$D/out")" = back ]
	[ ! -e "$D/late" ]
	# The control: XX's dialler says nothing until the answer has come.
	rm -f "$P2P_KNOWN" "$D/seen"
	gate
	sealed -v bob@rv:1 <<< hello > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	grep -q "sealed with XX" "$D/c.err"
	[ "$(cat "$D/out")" = back ]
	[ -e "$D/late" ]
}

@test "p2pseal: 16 MiB each way, byte-exact, over TCP (tcpserver, tcpclient)" {
	head -c 16777216 /dev/urandom > "$D/data"
	port=$(( 10000 + RANDOM % 22000 ))
	P2P_KEY=$SK tcpserver -q -c 4 127.0.0.1 $port p2pseal -s cat 2> "$D/s.err" &
	spid=$!
	for i in $(seq 50); do
		P2P_KEY=$CK timeout 60 tcpclient -q 127.0.0.1 $port p2pseal -c bob@rv:1 \
			< "$D/data" > "$D/back" 2> "$D/c.err" && break
		sleep 0.1
	done
	kill $spid
	cat "$D/c.err" "$D/s.err"
	cmp "$D/data" "$D/back"
}

# plain_to FLAGS PROG...: "p2pseal FLAGS -s PROG..." under tcpserver, dialled
# once, unsealed, by nc sending "hello"; the reply in $D/out, its stderr in
# $D/s.err.
plain_to() {
	local flags=$1 port=$(( 10000 + RANDOM % 22000 )) spid i
	shift
	P2P_KEY=$SK tcpserver -q 127.0.0.1 $port p2pseal $flags -s "$@" 2> "$D/s.err" &
	spid=$!
	for i in $(seq 50); do
		echo hello | timeout 5 nc -N 127.0.0.1 $port > "$D/out" 2>/dev/null && break
		sleep 0.1
	done
	kill $spid
}

@test "p2pseal -s: a dialler that does not seal gets PROG plain on the connection; -S and -a refuse it" {
	plain_to -v sh -c 'echo "plain fp=${P2PKEY_FP:-none}"; cat'
	[ "$(cat "$D/out")" = "$(printf 'plain fp=none\nhello')" ] || { cat "$D/out" "$D/s.err"; false; }
	grep -q "^p2pseal: an unsealed dialler: serving it plain$" "$D/s.err"
	for f in -S "-a $D/spub"; do
		plain_to "$f" cat
		[ ! -s "$D/out" ]
		[ "$(cat "$D/s.err")" = "p2pseal: refused an unsealed dialler (${f%% *})" ]
	done
}

@test "p2pseal: a changed key is refused in one line naming known_peers and its line" {
	printf '# pinned peers\nalice@rv:1 %s\nbob@rv:1 %s\n' "$(cut -d' ' -f1 "$D/cpub")" \
		"$(cut -d' ' -f1 "$D/spub")" > "$P2P_KNOWN"
	P2P_KEY=$SK p2pkey -f > /dev/null 2>&1
	run -1 sealed bob@rv:1 < /dev/null
	cat "$D/c.err" "$D/s.err"
	[ "$(lines "$D/c.err")" = 1 ]
	grep -q "^p2pseal: bob@rv:1: .*the peer did not prove the key pinned at $P2P_KNOWN:3 (a changed key?)$" "$D/c.err"
	[ "$(lines "$D/s.err")" = 1 ]
	grep -q "^p2pseal: handshake failed" "$D/s.err"
}

@test "p2pseal: -S refuses a peer not in known_peers; a -a listener refuses other keys" {
	run -1 sealed -S bob@rv:1 < /dev/null
	[ "$(cat "$D/c.err")" = "p2pseal: bob@rv:1: not in $P2P_KNOWN, and -S refuses unknown peers" ]
	cut -d' ' -f1 "$D/spub" > "$D/auth"	# the server's own: not the dialler's
	SFLAGS="-a $D/auth"
	pin
	run -1 sealed bob@rv:1 < /dev/null
	[ "$(cat "$D/s.err")" = "p2pseal: key not in $D/auth" ]
	[ "$(lines "$D/c.err")" = 1 ]
	{ echo '# who may dial'; cut -d' ' -f1 "$D/cpub"; } > "$D/auth"
	rm -f "$P2P_KNOWN"
	echo hi | sealed bob@rv:1 > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	[ "$(cat "$D/out")" = hi ]
}

@test "p2pseal: a tampered byte ends the connection with one line" {
	SERVE='head -c 1000000 /dev/zero'
	pin
	MIDDLE="perl -e 'binmode STDIN; binmode STDOUT; \$o = 5000; \$p = 0;
		while ((\$r = sysread(STDIN, \$b, 4096)) > 0) {
			substr(\$b, \$o - \$p, 1) ^= \"\\x01\" if \$o >= \$p && \$o < \$p + \$r;
			\$p += \$r; syswrite(STDOUT, \$b) or exit 0 }'"
	run -1 sealed bob@rv:1 < /dev/null
	cat "$D/c.err"
	[ "$(cat "$D/c.err")" = "p2pseal: bad frame: not authentic" ]
	[ "${#output}" -lt 1000000 ]
}

@test "p2pseal: a stream cut short is told from its end" {
	SERVE='head -c 1000000 /dev/zero'
	MIDDLE='head -c 5000'
	pin
	run -1 sealed bob@rv:1 < /dev/null
	[ "$(cat "$D/c.err")" = "p2pseal: bad frame: cut short" ]
	# XX's second message (2 + 96 bytes) and one whole frame (2 + 5 + 16).
	SERVE='printf hello; sleep 0.5'
	MIDDLE="perl -e '\$n = 121; while (\$n > 0 && (\$r = sysread(STDIN, \$b, \$n)) > 0) {
		syswrite(STDOUT, \$b); \$n -= \$r }'"
	rm -f "$P2P_KNOWN"
	run -1 sealed bob@rv:1 < /dev/null
	[ "$output" = hello ]
	sed -i /pinned/d "$D/c.err"
	[ "$(cat "$D/c.err")" = "p2pseal: connection cut before the peer's end of stream" ]
}

@test "p2pseal: a handshake is bound to its session; replayed into another it fails" {
	sealed bob@rv:1 < /dev/null > /dev/null || { cat "$D/c.err" "$D/s.err"; false; }
	# Different sessions at the two ends: refused.
	CENV="P2PID=aaaa P2PTOKEN=1111" SENV="P2PID=bbbb P2PTOKEN=1111"
	run -1 sealed bob@rv:1 < /dev/null
	grep -q "^p2pseal: handshake failed: message not authentic" "$D/s.err"
	# Same id, another token: refused too.
	CENV="P2PID=aaaa P2PTOKEN=1111" SENV="P2PID=aaaa P2PTOKEN=2222"
	run -1 sealed bob@rv:1 < /dev/null
	# A recorded session of P2PID aaaa...
	CENV="P2PID=aaaa P2PTOKEN=1111" SENV="P2PID=aaaa P2PTOKEN=1111"
	echo secret | sealed bob@rv:1 > "$D/out" || { cat "$D/c.err" "$D/s.err"; false; }
	[ "$(cat "$D/out")" = secret ]
	cp "$D/c2s.rec" "$D/rec"
	# ... replayed into session bbbb: the first message is refused.
	run -1 env P2P_KEY="$SK" P2PID=bbbb P2PTOKEN=1111 p2pseal -s cat < "$D/rec"
	[ "$output" = "p2pseal: handshake failed: message not authentic (another session, or the dialler pinned another key for us)" ]
	# ... and into its own session again: no plain text comes out.
	run -1 --separate-stderr env P2P_KEY="$SK" P2PID=aaaa P2PTOKEN=1111 p2pseal -s cat < "$D/rec"
	[ "$stderr" = "p2pseal: bad frame: not authentic" ]
	[[ $output != *secret* ]]
}

@test "p2pseal: what is not a p2pseal handshake gets one line" {
	export P2P_KEY=$SK
	run -1 --separate-stderr p2pseal -s cat < <(printf 'GET / HTTP/1.0\r\n\r\n')
	[ "$stderr" = "p2pseal: plain bytes before the handshake (an unsealed peer? see p2pdial -u, p2plisten -u)" ]
	run -1 --separate-stderr p2pseal -s cat < <(printf '\000\377Xshort')
	[ "$stderr" = "p2pseal: bad frame before the handshake" ]
	run -1 --separate-stderr p2pseal -s cat < <(printf '\000\005Zxxxx')
	[ "$stderr" = "p2pseal: not a p2pseal handshake" ]
	run -1 --separate-stderr p2pseal -s cat < /dev/null
	[ "$stderr" = "p2pseal: connection closed before the handshake" ]
}

@test "p2pseal: usage errors exit 100" {
	run -100 p2pseal
	run -100 p2pseal -s
	run -100 p2pseal -c
	run -100 p2pseal -c -a x bob@rv:1
	run -100 p2pseal -c bob 6</dev/null 7>/dev/null
	run -100 p2pseal -c bob@rv:1 6<&- 7>&-
	[[ $output == "p2pseal: no connection on fds 6 and 7" ]]
	run -0 p2pseal -h
	[[ $output == usage:* ]]
}

@test "lab: p2pdial and p2plisten seal by default through the relay (dropping NATs, one with random ports): 16 MiB each way, then IK; another key under the name is refused" {
	lab_up
	LAB_IS_UP=1
	lab_mode natB random
	start_rvd_vouched dialer sealed1 -- -R 198.51.100.2:7071
	lab_bg relay relayd -v 198.51.100.2:7071
	lab_wait_port relay 198.51.100.2 7071
	back=$(make_data back 16) sent=$(make_data sent 16)
	lab_bg b1 env P2P_KEY="$SK" p2plisten -v sealed1 serve "$back"
	wait_logged_on sealed1
	out=$D/out errf=$D/err
	for pattern in XX IK; do
		lab a1 env P2P_NAME=dialer P2P_KEY="$CK" timeout 60 p2pdial -v sealed1 \
			< "$sent" > "$out" 2> "$errf" || { cat "$errf"; false; }
		grep -q "p2pdial: connected via relay to 198.51.100.2:7071 as sealed1" "$errf"
		grep -q "p2pdial: sealed with $pattern, peer's fingerprint $(cut -d' ' -f2 "$D/spub")" "$errf"
		grep -q "^via=relay peer=dialer" "$out"
		check_transfer "$out" "$sent" "$back"
	done
	grep -q "p2pseal: sealed with IK, peer's fingerprint $(cut -d' ' -f2 "$D/cpub")" "$LAB_BG_LOG"
	[ "$(cat "$P2P_KNOWN")" = "sealed1@$P2P_RVD $(cut -d' ' -f1 "$D/spub")" ]
	# Whoever else rvd lets answer for the name (here: the secret's holder
	# logs on anew, with a key of its own) cannot pass for the pinned peer.
	P2P_KEY=$D/mkey p2pkey > /dev/null 2>&1
	lab_bg b2 env P2P_KEY="$D/mkey" p2plisten -v sealed1 serve "$back"
	for i in $(seq 50); do
		[ "$(grep -c "listen sealed1 " "$RVD_LOG")" -ge 2 ] && break
		sleep 0.1
	done
	run -1 lab a1 env P2P_NAME=dialer P2P_KEY="$CK" timeout 60 p2pdial sealed1 < /dev/null
	[[ $output == *"p2pdial: sealed1@$P2P_RVD: "*"the peer did not prove the key pinned at $P2P_KNOWN:1 (a changed key?)" ]] ||
		{ echo "$output"; false; }
}

# speaks_first NAME: p2plisten NAME on b1 (sealing, the default), whose
# program speaks first and never reads, so that a look at the dialler's
# first bytes would wait for ever (here: the 20 s handshake time); then
# p2pdial -u NAME from a1, whose output is in $output, and must not have
# been refused or timed out. Sets $log, the listener's.
speaks_first() {
	lab_bg b1 env P2P_KEY="$SK" P2P_TIMEOUT=20 p2plisten -v "$1" \
		sh -c 'echo "hello from $P2PVIA plain=${P2PPLAIN:-}"; sleep 2'
	log=$LAB_BG_LOG
	wait_logged_on "$1"
	run lab a1 env P2P_KEY="$CK" timeout 20 sh -c "sleep 8 | p2pdial -u -v $1"
	echo "$output"
	[ "$status" -eq 0 ]
	! grep -q "p2pseal.*timed out\|refused" "$log"
}

@test "lab: p2pdial -u to a sealing p2plisten whose program speaks first is served plain at once (MSG PLAIN); under -S it is refused at once" {
	lab_up
	LAB_IS_UP=1
	start_rvd -o
	speaks_first first1
	[[ $output == *"hello from "*" plain=1"* ]]
	lab_bg b1 env P2P_KEY="$SK" P2P_TIMEOUT=20 p2plisten -v -S strict1 \
		sh -c 'echo "hello"; sleep 2'
	log=$LAB_BG_LOG
	wait_logged_on strict1
	run lab a1 env P2P_KEY="$CK" timeout 15 sh -c 'sleep 5 | p2pdial -u strict1'
	for i in $(seq 30); do
		grep -q "refused an unsealed dialler (-S)" "$log" && break
		sleep 0.1
	done
	grep -q "refused an unsealed dialler (-S)" "$log" || { cat "$log"; false; }
	[[ $output != *hello* ]]
}

@test "lab: through the relay too, p2pdial -u to a sealing p2plisten whose program speaks first is served plain at once (RELAY ... plain)" {
	lab_up
	LAB_IS_UP=1
	lab_mode natB random
	start_rvd -o -R 198.51.100.2:7071
	lab_bg relay relayd -v 198.51.100.2:7071
	lab_wait_port relay 198.51.100.2 7071
	speaks_first first2
	[[ $output == *"connected via relay"* ]]
	[[ $output == *"hello from relay plain=1"* ]]
}

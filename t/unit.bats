#!/usr/bin/env bats
# Unit tests for lib/ on loopback (through t/unit, a small driver linked with
# lib/libp2p.a), and the tools' usage errors. No root, no namespaces.

bats_require_minimum_version 1.5.0

# P2P_BIN and P2P_UNIT name the build under test (make check sets them to
# the sanitizer build); by default, this tree's, made here if need be.
setup_file() {
	if [ -z "${P2P_UNIT:-}" ]; then
		make -s -C "$BATS_TEST_DIRNAME/.." all >&2
	fi
}

setup() {
	BIN=${P2P_BIN:-$BATS_TEST_DIRNAME/../bin}
	PATH="$BIN:$PATH"
	U=${P2P_UNIT:-$BATS_TEST_DIRNAME/unit}
	ID=00112233445566778899aabbccddeeff
	TOK=0123456789abcdef0123456789abcdef
	unset P2PFD P2P_RVD P2P_NAME P2P_SECRET P2P_TIMEOUT P2P_LADDER P2P_PROXY
	export P2P_CACHE=$BATS_TEST_TMPDIR/cache
	unset https_proxy HTTPS_PROXY all_proxy ALL_PROXY
}

# A ticket's lines, and its blank line.
ticket() {
	printf '%s\n' "$@" ''
}

# ---- tickets ----

@test "ticket: a full ticket reads and writes back unchanged" {
	ticket "peer bob" "rv 198.51.100.1:7070" "relay 198.51.100.2:7071" \
	    "id $ID" "token $TOK" "addr 10.2.0.2:40210" "addr [2001:db8::1]:40210" \
	    "port 443" "port 80" "tried dialdirect 10.2.0.2:40210 timeout" >"$BATS_TEST_TMPDIR/t"
	run "$U" ticket <"$BATS_TEST_TMPDIR/t"
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat "$BATS_TEST_TMPDIR/t")" ]
}

@test "ticket: keys come out in canonical order; a repeated addr is dropped" {
	run "$U" ticket < <(ticket "addr 1.2.3.4:5" "token $TOK" "addr 1.2.3.4:5" "peer bob" "id $ID")
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'peer bob\nid %s\ntoken %s\naddr 1.2.3.4:5\n' $ID $TOK)" ]
}

@test "ticket: blank lines before it are skipped; reading stops at its blank line" {
	run "$U" ticket < <(printf '\n\npeer bob\n\npeer carol\n\n')
	[ "$status" -eq 0 ]
	[ "$output" = "peer bob" ]
}

@test "ticket: end of file with no ticket is nothing to do" {
	run "$U" ticket </dev/null
	[ "$status" -eq 0 ]
	[ "$output" = none ]
	run "$U" ticket < <(printf '\n\n')
	[ "$status" -eq 0 ]
	[ "$output" = none ]
}

@test "ticket: the last line may end at end of file without a blank line" {
	run "$U" ticket < <(printf 'peer bob\naddr 1.2.3.4:5\n')
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "addr 1.2.3.4:5" ]
}

@test "ticket: an addr-only ticket (no peer, no id) is good" {
	run "$U" ticket < <(ticket "addr 127.0.0.1:9")
	[ "$status" -eq 0 ]
	[ "$output" = "addr 127.0.0.1:9" ]
}

@test "ticket: at most 16 candidates are kept" {
	run "$U" ticket < <(for i in $(seq 1 20); do echo "addr 10.0.0.$i:1"; done; echo)
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 16 ]
	[ "${lines[15]}" = "addr 10.0.0.16:1" ]
}

# malformed INPUT... : exit 100 with the one error line EXPECTED.
malformed() {
	local want=$1
	shift
	run "$U" ticket < <(printf '%s\n' "$@")
	echo "got: $output"
	[ "$status" -eq 100 ]
	[ "$output" = "error: malformed ticket: $want" ]
}

@test "ticket: an unknown key is malformed" {
	malformed "unknown key: colour" "peer bob" "colour blue" ""
}

@test "ticket: a key with no value is malformed" {
	malformed "no value: peer" "peer" ""
}

@test "ticket: a bad peer name is malformed" {
	malformed "bad peer name: bo/b" "peer bo/b" ""
	malformed "bad peer name: $(printf 'x%.0s' $(seq 65))" "peer $(printf 'x%.0s' $(seq 65))" ""
}

@test "ticket: a bad id or token is malformed" {
	malformed "bad hex: id" "peer bob" "id ${ID^^}" "token $TOK" ""
	malformed "bad hex: token" "peer bob" "id $ID" "token ${TOK}0" ""
	malformed "bad hex: id" "peer bob" "id ${ID:1}" "token $TOK" ""
}

@test "ticket: an id without a token, or a token without an id, is malformed" {
	malformed "id without token" "peer bob" "id $ID" ""
	malformed "id without token" "peer bob" "token $TOK" ""
}

@test "ticket: a bad address is malformed" {
	malformed "bad address: bob.example:80" "peer bob" "addr bob.example:80" ""
	malformed "bad address: 1.2.3.4" "peer bob" "addr 1.2.3.4" ""
	malformed "bad address: 1.2.3.4:0" "peer bob" "addr 1.2.3.4:0" ""
	malformed "bad address: 2001:db8::1:80" "peer bob" "addr 2001:db8::1:80" ""
	malformed "bad address: a b" "peer bob" "rv a b" ""
}

@test "ticket: a bad port is malformed" {
	malformed "bad port: 0" "peer bob" "port 0" ""
	malformed "bad port: 65536" "peer bob" "port 65536" ""
	malformed "bad port: 443x" "peer bob" "port 443x" ""
}

@test "ticket: a control byte, a CR or a non-ASCII byte is malformed" {
	malformed "bad byte" "peer bob" "$(printf 'tried a\tb')" ""
	malformed "bad byte" "$(printf 'peer bob\r')" ""
	malformed "bad byte" "peer bob" "$(printf 'tried caf\303\251')" ""
}

@test "ticket: neither peer nor addr is malformed" {
	malformed "neither peer nor addr" "port 443" ""
}

@test "ticket: a line over 1024 bytes is malformed" {
	malformed "line too long" "peer bob" "tried $(head -c 1100 /dev/zero | tr '\0' x)" ""
	# 1024 bytes exactly is allowed.
	run "$U" ticket < <(ticket "peer bob" "tried $(head -c 1018 /dev/zero | tr '\0' x)")
	[ "$status" -eq 0 ]
	[ "${#lines[1]}" -eq 1024 ]
}

@test "ticket: a last line cut off without its newline is malformed" {
	run "$U" ticket < <(printf 'peer bob\naddr 1.2.3.4:5')
	[ "$status" -eq 100 ]
	[[ "$output" == "error: malformed ticket: "* ]]
}

# ---- addresses ----

@test "addr: IPv4 and bracketed IPv6 split, parse and format back" {
	run "$U" addr 198.51.100.1:7070 "[2001:db8::1]:443" "[::1]:1" 1.2.3.4:65535
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "split [198.51.100.1] [7070]" ]
	[ "${lines[1]}" = "numeric 198.51.100.1:7070 inet port 7070" ]
	[ "${lines[2]}" = "split [2001:db8::1] [443]" ]
	[ "${lines[3]}" = "numeric [2001:db8::1]:443 inet6 port 443" ]
	[ "${lines[5]}" = "numeric [::1]:1 inet6 port 1" ]
	[ "${lines[7]}" = "numeric 1.2.3.4:65535 inet port 65535" ]
}

@test "addr: a v4-mapped IPv6 address formats as plain IPv4" {
	run "$U" addr "[::ffff:198.51.100.20]:9"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "numeric 198.51.100.20:9 inet6 port 9" ]
}

@test "addr: :PORT splits with an empty host but is no numeric address" {
	run "$U" addr :7070
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "split [] [7070]" ]
	[ "${lines[1]}" = "numeric error" ]
}

@test "addr: names split but are not numeric" {
	run "$U" addr rv.example:7070
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "split [rv.example] [7070]" ]
	[ "${lines[1]}" = "numeric error" ]
}

@test "addr: malformed addresses are refused" {
	for a in 1.2.3.4 1.2.3.4: 2001:db8::1:80 "[::1]" "[::1]80" "[::1" \
	    1.2.3.4:0 1.2.3.4:65536 1.2.3.4:http 1.2.3.4:-1 300.1.1.1:80 ""; do
		run "$U" addr "$a"
		echo "$a -> $output"
		[ "$status" -eq 1 ]
		[ "${lines[1]}" = "numeric error" ]
	done
}

@test "addr: a port with a sign, a space or a leading zero is refused" {
	for a in "1.2.3.4:+80" "1.2.3.4: 80" "1.2.3.4:080"; do
		run "$U" addr "$a"
		echo "$a -> $output"
		[ "$status" -eq 1 ]
	done
}

# ---- line_read ----

@test "line_read: CRLF is stripped and no byte after the newline is consumed" {
	run "$U" line < <(printf 'P2P x y\r\nOK then data')
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "line 7 P2P x y" ]
	[ "${lines[1]}" = "rest OK then data" ]
}

@test "line_read: consecutive lines, one call each" {
	run "$U" line -c 2 < <(printf 'one\ntwo\nthree\n')
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "line 3 one" ]
	[ "${lines[1]}" = "line 3 two" ]
	[ "${lines[2]}" = 'rest three\x0a' ]
}

@test "line_read: a line of 1024 bytes is read; 1025 is EMSGSIZE" {
	run "$U" line < <(head -c 1024 /dev/zero | tr '\0' x; echo)
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "line 1024 xxx"* ]]
	run "$U" line < <(head -c 1025 /dev/zero | tr '\0' x; echo)
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "error EMSGSIZE "* ]]
}

@test "line_read: a line longer than the caller's buffer is EMSGSIZE" {
	run "$U" line -n 8 < <(printf 'abcdefghij\n')
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "error EMSGSIZE "* ]]
	run "$U" line -n 8 < <(printf 'abcdefg\n')
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "line 7 abcdefg" ]
}

@test "line_read: a control, NUL or 8-bit byte is EPROTO" {
	for b in '\001' '\000' '\t' '\200' '\377' '\177'; do
		run "$U" line < <(printf "ab${b}c\n")
		echo "$b -> $output"
		[ "$status" -eq 1 ]
		[[ "${lines[0]}" == "error EPROTO "* ]]
	done
}

@test "line_read: a CR inside a line is EPROTO, as linebuf_next has it" {
	run "$U" line < <(printf 'a\rb\n')
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "error EPROTO "* ]]
}

@test "line_read: a silent peer times out on time" {
	run "$U" line -k -t 300 < <(printf 'half a li')
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" =~ ^"error ETIMEDOUT after "([0-9]+)" ms"$ ]]
	[ "${BASH_REMATCH[1]}" -ge 300 ]
	[ "${BASH_REMATCH[1]}" -lt 700 ]
}

@test "line_read: end of file mid-line is ECONNRESET; before any byte, 0" {
	run "$U" line < <(printf 'half')
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "error ECONNRESET "* ]]
	run "$U" line </dev/null
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = zero ]
}

# ---- linebuf ----

@test "linebuf: several lines in one read come out one by one, CRLF stripped" {
	run "$U" linebuf < <(printf 'PING\r\nMSG a b\nPONG\n')
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'line 4 PING\nline 7 MSG a b\nline 4 PONG\neof (held 0)')" ]
}

@test "linebuf: a line split across reads is joined" {
	run "$U" linebuf -s 3 < <(printf 'WELCOME 1.2.3.4:5 -\nSENT x\n')
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'line 19 WELCOME 1.2.3.4:5 -\nline 6 SENT x\neof (held 0)')" ]
}

@test "linebuf: a partial line at end of file stays held" {
	run "$U" linebuf < <(printf 'one\ntw')
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'line 3 one\neof (held 2)')" ]
}

@test "linebuf: 1024 bytes is a line; 1025 bytes with no newline is refused" {
	run "$U" linebuf -s 100 < <(head -c 1024 /dev/zero | tr '\0' y; echo)
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "line 1024 yyy"* ]]
	run "$U" linebuf -s 100 < <(head -c 3000 /dev/zero | tr '\0' y)
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad (held 1025)" ]]
}

@test "linebuf: a bad byte in a line is refused" {
	run "$U" linebuf < <(printf 'ok\nLOG\001ON x\n')
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "line 2 ok" ]
	[[ "${lines[1]}" == "bad "* ]]
}

@test "line_words: splits at spaces, -1 when there are more than max words" {
	run "$U" words "INVITE bob $ID $TOK 1.2.3.4:5"
	[ "$status" -eq 0 ]
	[ "$output" = "5 [INVITE] [bob] [$ID] [$TOK] [1.2.3.4:5]" ]
	run "$U" words "a b c" 2
	[ "$status" -eq 1 ]
	[ "$output" = "-1" ]
	run "$U" words "a b" 2
	[ "$output" = "2 [a] [b]" ]
	run "$U" words ""
	[ "$output" = "0" ]
}

# ---- fd passing ----

@test "fd_send/fd_recv: the fd arrives working, close-on-exec, with its line" {
	run "$U" fdpass works
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "line [relay 198.51.100.2:7071 bob]" ]
	[ "${lines[1]}" = "data [ping]" ]
	[ "${lines[2]}" = "cloexec 1" ]
	# The caller closed its copy, so the pipe's only writer is gone.
	[ "${lines[3]}" = "eof 1" ]
}

@test "fd_recv: two fds in one message is EPROTO, and both are closed" {
	run "$U" fdpass two
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "fd -1 errno EPROTO" ]
	[ "${lines[1]}" = "closed 1 1" ]
}

@test "fd_recv: a message without an fd is EPROTO" {
	run "$U" fdpass nofd
	[ "$status" -eq 0 ]
	[ "$output" = "fd -1 errno EPROTO" ]
}

@test "fd_recv: end of file is -1 with errno 0" {
	run "$U" fdpass eof
	[ "$status" -eq 0 ]
	[ "$output" = "fd -1 errno 0" ]
}

@test "fd_send: an over-long line is EMSGSIZE; the longest allowed arrives whole" {
	run "$U" fdpass long
	[ "$output" = "send -1 errno EMSGSIZE" ]
	run "$U" fdpass max
	[[ "$output" =~ ^"sent "([0-9]+)" got "([0-9]+)" fd yes"$ ]]
	[ "${BASH_REMATCH[1]}" -eq "${BASH_REMATCH[2]}" ]
	[ "${BASH_REMATCH[1]}" -ge 1000 ]
}

@test "fd_send: on a socket that is not one, an error" {
	run "$U" fdpass notsock
	[ "$output" = "send -1 errno Socket operation on non-socket" ]
}

# ---- hex, names, secrets ----

@test "hex_valid: exactly 32 lowercase hex digits" {
	run "$U" hex valid "$ID"
	[ "$output" = 1 ]
	for bad in "${ID^^}" "${ID:1}" "${ID}0" "${ID:1}g" "" "0x${ID:2}"; do
		run "$U" hex valid "$bad"
		echo "$bad -> $output"
		[ "$output" = 0 ]
	done
	run "$U" hex valid abcd 4
	[ "$output" = 1 ]
}

@test "name_valid: 1 to 64 of [A-Za-z0-9._-]" {
	for good in bob A.b_c-9 "$(printf 'n%.0s' $(seq 64))"; do
		run "$U" hex name "$good"
		echo "$good -> $output"
		[ "$output" = 1 ]
	done
	for bad in "" "bo b" bob/x "bob:1" "$(printf 'n%.0s' $(seq 65))" "$(printf 'caf\303\251')"; do
		run "$U" hex name "$bad"
		echo "$bad -> $output"
		[ "$output" = 0 ]
	done
}

@test "secret_equal: equal only when equal, prefixes and lengths included" {
	run "$U" hex secret hunter2 hunter2
	[ "$output" = 1 ]
	run "$U" hex secret hunter2 hunter3
	[ "$output" = 0 ]
	run "$U" hex secret hunter2 hunter
	[ "$output" = 0 ]
	run "$U" hex secret hunter hunter2
	[ "$output" = 0 ]
	run "$U" hex secret "" ""
	[ "$output" = 1 ]
	run "$U" hex secret "" x
	[ "$output" = 0 ]
}

@test "hex_random: 32 valid hex digits, different each time" {
	run "$U" hex random
	[ "$status" -eq 0 ]
	[ "${#lines[0]}" -eq 32 ]
	[ "${lines[2]}" = "1 1 1" ]
}

# ---- dial_race with the token handshake ----

@test "dial_race: the right token is answered OK; later bytes are not eaten" {
	run "$U" race ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #0" ]
	[ "${lines[1]}" = "data hello from the listener" ]
	[ "${lines[2]}" = "blocking 1" ]
}

@test "dial_race: a wrong token is refused" {
	run "$U" race -w ok
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "failed: #0 "* ]]
}

@test "dial_race: a wrong token is reported as a refused token" {
	run "$U" race -w ok
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 refused our token" ]
}

@test "dial_race: a refused port is reported, and the next candidate wins" {
	run "$U" race refused
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 Connection refused" ]
	run "$U" race refused ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #1" ]
}

@test "dial_race: a server that is no p2p peer, or closes, fails its candidate" {
	run "$U" race garbage
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 not a p2pdial peer" ]
	run "$U" race close
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 closed in the handshake" ]
}

@test "dial_race: a silent candidate times out at the deadline, not before" {
	run "$U" race -t 500 silent
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 timeout" ]
	[[ "${lines[1]}" =~ ^took\ ([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 490 ]
	[ "${BASH_REMATCH[1]}" -lt 900 ]
}

@test "dial_race: a stalled first candidate does not hold up the next (stagger)" {
	run "$U" race -t 2000 -s 100 silent ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #1" ]
	[[ "${lines[3]}" =~ ^took\ ([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 90 ]
	[ "${BASH_REMATCH[1]}" -lt 1000 ]
}

@test "dial_race: each failure is named, in order" {
	run "$U" race -t 600 -w refused junk silent ok
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" =~ ^"failed: #0 Connection refused, #1 bad address, #2 timeout, #3 "[a-z] ]]
}

@test "dial_race: no candidates says so at once" {
	run "$U" race
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: no candidates" ]
}

@test "dial_race: without a handshake, the first to connect wins" {
	run "$U" race -p refused plain
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #1" ]
	[ "${lines[1]}" = "data hello from the listener" ]
}

# ---- copy_loop and env ----

@test "copy_loop: both ways, and the end of stdin is passed on as a half-close" {
	head -c 3000000 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	timeout 10 "$U" copy <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "copy_loop: output appended to a file (>>) arrives" {
	echo first >"$BATS_TEST_TMPDIR/out"
	printf 'hello\n' | timeout 10 "$U" copy >>"$BATS_TEST_TMPDIR/out"
	[ "$(cat "$BATS_TEST_TMPDIR/out")" = "$(printf 'first\nhello')" ]
}

@test "env_timeout_ms: flag, then P2P_TIMEOUT (fractions allowed), then default" {
	run "$U" timeout
	[ "$output" = 3000 ]
	P2P_TIMEOUT=0.5 run "$U" timeout
	[ "$output" = 500 ]
	P2P_TIMEOUT=2 run "$U" timeout 7
	[ "$output" = 7000 ]
	P2P_TIMEOUT=soon run -100 --separate-stderr "$U" timeout
	[ "$output" = "" ]
	[[ "$stderr" == *"bad P2P_TIMEOUT: soon"* ]]
	P2P_TIMEOUT=1e1 run -100 "$U" timeout
}

# ---- the tools' usage errors ----

@test "every tool: a bad flag exits 100 with a usage line" {
	local n=0 b
	for b in "$BIN"/*; do
		run -100 --separate-stderr timeout 5 "$b" -Z </dev/null
		echo "$b: $stderr"
		[[ "$stderr" == *"usage: $(basename "$b") "* ]]
		n=$((n + 1))
	done
	[ "$n" -ge 7 ]
}

@test "every tool that needs arguments: none is a usage error" {
	for b in rvd rvinvite rvlisten p2pcatch p2pdial p2plisten; do
		run -100 --separate-stderr timeout 5 "$b" </dev/null
		echo "$b: $stderr"
		[[ "$stderr" == *"usage: $b "* ]]
	done
}

@test "dialdirect: a malformed ticket exits 100 with one line naming the problem" {
	run -100 --separate-stderr dialdirect < <(ticket "peer bob" "id $ID" "token nothex")
	[ "$output" = "" ]
	[ "$stderr" = "dialdirect: malformed ticket: bad hex: token" ]
}

@test "dialdirect: end of file and no ticket is nothing to do" {
	run -0 dialdirect </dev/null
	[ "$output" = "" ]
}

@test "dialdirect: refusing candidates pass the ticket on with a tried line" {
	run -1 --separate-stderr dialdirect -t 2 < <(ticket "peer bob" "id $ID" "token $TOK" \
	    "addr 127.0.0.1:1" "port 443")
	[ "${lines[0]}" = "peer bob" ]
	[ "${lines[1]}" = "id $ID" ]
	[ "${lines[2]}" = "token $TOK" ]
	[ "${lines[3]}" = "addr 127.0.0.1:1" ]
	[ "${lines[4]}" = "port 443" ]
	[ "${lines[5]}" = "tried dialdirect 127.0.0.1:1 Connection refused" ]
	[ "${#lines[@]}" -eq 6 ]
	# What it wrote is itself a good ticket for the next stage.
	run -0 "$U" ticket <<<"$(dialdirect < <(ticket "peer bob" "addr 127.0.0.1:1"))"
}

@test "dialdirect: earlier tried lines are kept, the new one last" {
	run -1 dialdirect < <(ticket "peer bob" "addr 127.0.0.1:1" "tried rvinvite timeout")
	[ "${lines[2]}" = "tried rvinvite timeout" ]
	[ "${lines[3]}" = "tried dialdirect 127.0.0.1:1 Connection refused" ]
}

@test "dialdirect HOST:PORT: a refused port exits 1 with a one-line error" {
	run -1 --separate-stderr dialdirect 127.0.0.1:1 </dev/null
	[ "$stderr" = "dialdirect: unable to connect to 127.0.0.1:1: Connection refused" ]
}

@test "dialdirect: a bad -t is a usage error" {
	run -100 --separate-stderr dialdirect -t 0 </dev/null
	[ "$stderr" = "dialdirect: bad -t: 0" ]
}

@test "rvinvite and rvlisten: no rendezvous address or a bad name is a usage error" {
	run -100 --separate-stderr rvinvite bob
	[ "$stderr" = "rvinvite: no rendezvous address: set P2P_RVD or use -r" ]
	run -100 --separate-stderr rvinvite -r 127.0.0.1:1 'bo b'
	[ "$stderr" = "rvinvite: bad peer name: bo b" ]
	run -100 --separate-stderr rvlisten -r 127.0.0.1:1 'x/y' cat
	[ "$stderr" = "rvlisten: bad name: x/y" ]
	run -100 --separate-stderr rvlisten -p 0 x cat
	[ "$stderr" = "rvlisten: bad port: 0" ]
}

# built TOOL: fail with a clear message when TOOL is not in the build under test.
built() {
	command -v "$1" >/dev/null || {
		echo "$1 is not in $BIN: is it in the Makefile's TOOLS?"
		return 1
	}
}

@test "dialport: a ticket with no extra ports is passed on at once" {
	built dialport
	run -1 --separate-stderr timeout 5 dialport < <(ticket "peer bob" "addr 127.0.0.1:1")
	[ "${lines[1]}" = "addr 127.0.0.1:1" ]
	[ "${lines[2]}" = "tried dialport peer listens on no extra ports" ]
	run -100 --separate-stderr dialport -p 443,x </dev/null
	[[ "$stderr" == "dialport: bad -p: 443,x"* ]]
}

@test "dialproxy: no proxy configured passes the ticket on; a bad -x is a usage error" {
	built dialproxy
	run -1 --separate-stderr timeout 5 dialproxy < <(ticket "peer bob" "addr 127.0.0.1:1")
	[ "${lines[2]}" = "tried dialproxy no proxy configured" ]
	run -100 --separate-stderr dialproxy -x ftp://proxy:21 </dev/null
	[[ "$stderr" == "dialproxy: bad proxy URL: "* ]]
	run -100 --separate-stderr dialproxy 127.0.0.1:1 </dev/null
	[[ "$stderr" == "dialproxy: no proxy: "* ]]
}

# ---- dial_race with a session commitment (rvlisten's dialers, $P2PCOMMIT) ----

@test "commitment: the first to connect takes it and says GO with its handshake" {
	run "$U" race -c ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #0" ]
	[ "${lines[1]}" = "data hello from the listener" ]
	[ "${lines[4]}" = "go 1" ]
	[ "${lines[5]}" = "commitment held" ]
}

@test "commitment: a candidate that fails after GO gives it back for the next one" {
	run "$U" race -c -s 2000 garbage ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #1" ]
	[ "${lines[4]}" = "go 1" ]
	[ "${lines[5]}" = "commitment held" ]
}

@test "commitment: refused, or closed without a word, after GO: it goes back" {
	run "$U" race -c -w ok
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 refused our token" ]
	[ "${lines[3]}" = "commitment free" ]
	# (close: it reads our line, not the GO after it, so the close is a reset)
	run "$U" race -c close
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 Connection reset by peer" ]
	[ "${lines[3]}" = "commitment free" ]
}

@test "commitment: no answer to our GO: waited for once more, then it stays spent" {
	# The inviter may have taken the GO: giving the commitment back could
	# let the invitee take a second connection. Better none than two.
	run "$U" race -c -t 300 silent
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "failed: #0 timeout" ]
	[[ "${lines[1]}" =~ ^took\ ([0-9]+)$ ]]
	[ "${BASH_REMATCH[1]}" -ge 590 ]
	[ "${lines[3]}" = "commitment held" ]
}

@test "commitment: an OK on another dial waits for the answer to our GO" {
	# #0 took the commitment and said GO; #1 is only offered meanwhile. When
	# #0 comes to nothing and gives the commitment back, #1 is taken.
	run "$U" race -c -s 100 -t 2000 close-late ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #1" ]
	[ "${lines[4]}" = "go 0" ]
	[ "${lines[5]}" = "commitment free" ]
	# And when #0's GO is never answered, #1 is not taken at all.
	run "$U" race -c -s 100 -t 300 silent ok
	[ "$status" -eq 1 ]
	[ "${lines[3]}" = "commitment held" ]
}

@test "commitment: held by someone else, the winner only offers (no GO)" {
	run "$U" race -c -H ok
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "won #0" ]
	[ "${lines[4]}" = "go 0" ]
	[ "${lines[5]}" = "commitment held" ]
}

# ---- the handshake's state machine (lib/handshake.c), for every end ----

# hs PART [FLAGS] < BYTES: the machine as PART, the far end sending BYTES.
hs() {
	run "$U" hs "$@"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "handshake, inviter: OK offers, the invitee's GO takes it; the bytes after it are left" {
	hs inviter < <(printf 'P2P %s %s\nGO\nhello' $ID $TOK)
	[ "${lines[0]}" = "line $ID $TOK" ]
	[ "${lines[1]}" = "done" ]
	[ "${lines[3]}" = 'sent OK\x0a' ]
	[ "${lines[4]}" = "rest hello" ]
}

@test "handshake, inviter: anything but GO after our OK, or a close, is another connection taken" {
	hs inviter < <(printf 'P2P %s %s\nNO\n' $ID $TOK)
	[ "${lines[1]}" = "fail took another connection" ]
	hs inviter < <(printf 'P2P %s %s\n' $ID $TOK)
	[ "${lines[1]}" = "fail took another connection" ]
}

@test "handshake: a CR before the newline is ignored, one elsewhere is a bad line" {
	hs invitee -c -k < <(printf 'P2P %s %s\r\n' $ID $TOK)
	[ "${lines[0]}" = "line $ID $TOK" ]
	[ "${lines[1]}" = "done" ]
	[ "${lines[3]}" = 'sent OK\x0a' ]
	hs inviter < <(printf 'P2P %s %s\r\nGO\r\n' $ID $TOK)
	[ "${lines[1]}" = "done" ]
	hs invitee -k < <(printf 'P2P %s\r %s\n' $ID $TOK)
	[ "${lines[0]}" = "fail bad handshake" ]
	[ "${lines[3]}" = "sent " ]
}

@test "handshake, listener: a malformed line is answered ERR; a bad byte, an over-long line or a close is not" {
	hs invitee -k < <(printf 'P2P %s\n' $ID)
	[ "${lines[0]}" = "fail bad handshake (answered ERR)" ]
	[ "${lines[3]}" = 'sent ERR bad handshake\x0a' ]
	hs invitee -k < <(printf 'P2P %s %s\n' $ID ${TOK^^})
	[ "${lines[0]}" = "fail bad handshake (answered ERR)" ]
	hs inviter < <(printf 'P2P \001 %s\n' $TOK)
	[ "${lines[0]}" = "fail bad handshake" ]
	[ "${lines[3]}" = "sent " ]
	hs inviter < <(head -c 1025 /dev/zero | tr '\0' x; echo)
	[ "${lines[0]}" = "fail bad handshake" ]
	hs inviter < <(printf 'P2P %s' $ID)
	[ "${lines[0]}" = "fail closed in the handshake" ]
	hs inviter -k -t 200 < <(printf 'P2P %s' $ID)
	[ "${lines[0]}" = "fail timeout in the handshake" ]
}

@test "handshake, listener: a wrong token or a taken session is refused, the commitment untouched" {
	hs invitee -c -k -w < <(printf 'P2P %s %s\n' $ID $TOK)
	[ "${lines[1]}" = "fail wrong session or token (answered ERR)" ]
	[ "${lines[3]}" = 'sent ERR bad token\x0a' ]
	[ "${lines[4]}" = "commitment free" ]
	hs invitee -c -k -T < <(printf 'P2P %s %s\n' $ID $TOK)
	[ "${lines[1]}" = "fail session taken (answered ERR)" ]
	[ "${lines[3]}" = 'sent ERR session taken\x0a' ]
	[ "${lines[4]}" = "commitment free" ]
	hs inviter -w < <(printf 'P2P %s %s\n' $ID $TOK)
	[ "${lines[3]}" = 'sent ERR bad token\x0a' ]
}

@test "handshake, invitee: OK takes the commitment; held elsewhere the dialer waits; one that hung up is not answered" {
	hs invitee -c -k < <(printf 'P2P %s %s\nmore' $ID $TOK)
	[ "${lines[1]}" = "done" ]
	[ "${lines[2]}" = "go 1" ]
	[ "${lines[3]}" = 'sent OK\x0a' ]
	[ "${lines[4]}" = "commitment held" ]
	[ "${lines[5]}" = "rest more" ]
	hs invitee -c -H -k < <(printf 'P2P %s %s\n' $ID $TOK)
	[ "${lines[1]}" = "waits" ]
	[ "${lines[4]}" = "sent " ]
	hs invitee -c < <(printf 'P2P %s %s\n' $ID $TOK)
	[ "${lines[1]}" = "fail went away" ]
	[ "${lines[3]}" = "sent " ]
	[ "${lines[4]}" = "commitment free" ]
}

@test "handshake, dialer: the first with the commitment says GO with its line; OK wins, later bytes left" {
	hs dial -c < <(printf 'OK\r\nhello')
	[ "${lines[0]}" = "done" ]
	[ "${lines[1]}" = "go 1" ]
	[ "${lines[2]}" = "sent P2P $ID $TOK\\x0aGO\\x0a" ]
	[ "${lines[3]}" = "commitment held" ]
	[ "${lines[4]}" = "rest hello" ]
	hs dial -c -H < <(printf 'OK\n')
	[ "${lines[0]}" = "done" ]
	[ "${lines[1]}" = "go 0" ]
	[ "${lines[2]}" = "sent P2P $ID $TOK\\x0a" ]
	hs dial < <(printf 'OK\n')
	[ "${lines[2]}" = "sent P2P $ID $TOK\\x0a" ]
}

@test "handshake, dialer: an ERR, a stranger's answer or a close gives the GO back; silence does not" {
	local answer why
	while IFS=/ read -r answer why; do
		hs dial -c < <(printf "$answer")
		[ "${lines[0]}" = "fail $why" ]
		[ "${lines[3]}" = "commitment free" ]
	done <<-'EOF'
		ERR session taken\n/took another connection
		ERR bad token\n/refused our token
		SSH-2.0-OpenSSH_9.2\r\n/not a p2pdial peer
		O\001K\n/not a p2pdial peer
		/closed in the handshake
	EOF
	hs dial -c < <(head -c 64 /dev/zero | tr '\0' x)
	[ "${lines[0]}" = "fail not a p2pdial peer" ]
	# The inviter may have taken the GO: better no connection than two.
	hs dial -c -k -t 200 </dev/null
	[ "${lines[0]}" = "fail timeout in the handshake" ]
	[ "${lines[3]}" = "commitment held" ]
}

@test "handshake: the invitee's GO after an OK takes the commitment, or waits for it" {
	hs go
	[ "${lines[0]}" = "go 0" ]
	[ "${lines[1]}" = 'sent GO\x0a' ]
	[ "${lines[2]}" = "commitment held" ]
	hs go -H
	[ "${lines[0]}" = "go -1" ]
	[ "${lines[1]}" = "sent " ]
}

@test "rvlisten: a dialer's handshake line ending in CRLF is read, not reset" {
	local port=$((10000 + RANDOM % 22000)) i
	rvlisten -r 127.0.0.1:1 -p $port crlf cat 2>"$BATS_TEST_TMPDIR/log" &
	pid=$!
	for i in $(seq 50); do
		(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
		sleep 0.1
	done
	# No invitation comes for it: held a moment, then refused -- in words.
	run timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port;
		printf 'P2P %s %s\r\n' $ID $TOK >&3; cat <&3"
	kill $pid
	wait $pid || true
	cat "$BATS_TEST_TMPDIR/log"
	[ "$output" = "ERR bad token" ]
	grep -q "refused a dialer: wrong session or token" "$BATS_TEST_TMPDIR/log"
}

# connect_proxy PORT: a minimal HTTP CONNECT proxy on 127.0.0.1:PORT, in the background.
connect_proxy() {
	perl -MIO::Socket::INET -MIO::Select -e '
		my $l = IO::Socket::INET->new(Listen => 5, LocalAddr => "127.0.0.1:$ARGV[0]",
			ReuseAddr => 1) or die "listen: $!";
		while (my $c = $l->accept) {
			next if fork;
			my $h = ""; while ($h !~ /\r\n\r\n/) { sysread($c, $h, 1, length $h) or exit }
			my ($dst) = $h =~ /^CONNECT (\S+)/ or exit;
			my $d = IO::Socket::INET->new(PeerAddr => $dst) or exit;
			print $c "HTTP/1.1 200 Connection established\r\n\r\n";
			my $s = IO::Select->new($c, $d);
			while (my @r = $s->can_read) {
				for (@r) { sysread($_, my $b, 65536) or exit; syswrite($_ == $c ? $d : $c, $b) }
			}
			exit;
		}' "$1" 3>&- &
}

@test "dialproxy: the handshake through the tunnel: OK, then a taken session, then a wrong token" {
	local pr=$((10000 + RANDOM % 7000)) px=$((17000 + RANDOM % 7000))
	local pp=$((24000 + RANDOM % 7000)) pids= i
	connect_proxy $pp; pids="$pids $!"
	rvd -o 127.0.0.1:$pr 2>/dev/null & pids="$pids $!"
	rvlisten -r 127.0.0.1:$pr -p $px bob echo hello from bob \
		2>"$BATS_TEST_TMPDIR/log" & pids="$pids $!"
	for i in $(seq 50); do
		grep -q "logged on" "$BATS_TEST_TMPDIR/log" && break
		sleep 0.1
	done
	# A hand-made inviter whose own candidate bob does not dial.
	exec 4<>/dev/tcp/127.0.0.1/$pr
	printf 'LOGON fake\nINVITE bob %s %s 127.0.0.1:1\n' $ID $TOK >&4
	for i in $(seq 50); do
		grep -q "waiting for its dial" "$BATS_TEST_TMPDIR/log" && break
		sleep 0.1
	done
	t() { ticket "peer bob" "id $ID" "token $1" "addr 127.0.0.1:$px"; }
	run timeout 10 dialproxy -x http://127.0.0.1:$pp sh -c 'cat <&6' < <(t $TOK)
	r1=$status o1=$output
	run timeout 10 dialproxy -x http://127.0.0.1:$pp < <(t $TOK)
	r2=$status o2=${lines[4]}
	run timeout 10 dialproxy -x http://127.0.0.1:$pp < <(t $ID)
	exec 4>&-
	kill $pids
	cat "$BATS_TEST_TMPDIR/log"
	[ "$r1" -eq 0 ] && [ "$o1" = "hello from bob" ]
	[ "$r2" -eq 1 ]
	[ "$o2" = "tried dialproxy 127.0.0.1:$px via proxy 127.0.0.1:$pp: took another connection" ]
	[ "$status" -eq 1 ]
	[ "${lines[4]}" = "tried dialproxy 127.0.0.1:$px via proxy 127.0.0.1:$pp: refused our token" ]
}

# ---- racing rungs: -e hands the ticket on early, later rungs wait for the end ----

# silent_port: $port, a loopback port that completes TCP's handshake but never
# answers, for 10 s or until $SILENT_PID is killed.
silent_port() {
	coproc SILENT { exec perl -MIO::Socket::INET -e '$| = 1;
		my $s = IO::Socket::INET->new(Listen => 5, LocalAddr => "127.0.0.1:0") or die;
		print $s->sockport, "\n"; sleep 10' 3>&-; }
	read -r port <&"${SILENT[0]}"
}

@test "dialport: passes its ticket on only when the rung before it has ended, with its late tried lines" {
	run -1 --separate-stderr bash -c '{ printf "peer bob\naddr 127.0.0.1:1\n\n"; sleep 0.5
		printf "tried dialdirect 127.0.0.1:1 timeout\n\n"; } | dialport'
	[ "${lines[0]}" = "peer bob" ]
	[ "${lines[2]}" = "tried dialdirect 127.0.0.1:1 timeout" ]
	[ "${lines[3]}" = "tried dialport peer listens on no extra ports" ]
	[ "${#lines[@]}" -eq 4 ]
}

@test "dialdirect -e: hands the ticket on while it races, and its failure follows it" {
	silent_port
	out=$BATS_TEST_TMPDIR/out
	ticket "peer bob" "id $ID" "token $TOK" "addr 127.0.0.1:$port" > "$BATS_TEST_TMPDIR/t"
	run -1 p2pcatch "P2P_TIMEOUT=1 dialdirect -e < $BATS_TEST_TMPDIR/t > $out" true
	kill "$SILENT_PID" 2>/dev/null || true
	# Two blocks: the ticket as it was when handed on, marked, then the late
	# tried line that takes the mark's place.
	run cat "$out"
	[ "${lines[0]}" = "peer bob" ]
	[ "${lines[3]}" = "addr 127.0.0.1:$port" ]
	[ "${lines[4]}" = "tried dialdirect racing on" ]
	[ "${lines[5]}" = "tried dialdirect 127.0.0.1:$port timeout" ]
	[ "${#lines[@]}" -eq 6 ]
	[ "$(grep -c '^$' "$out")" -eq 2 ]
	[ "$(sed -n 6p "$out")" = "" ]
}

@test "dialdirect -e: without a catcher on P2PFD it does not race" {
	silent_port
	run -1 env P2P_TIMEOUT=0.5 dialdirect -e < <(ticket "peer bob" "id $ID" "token $TOK" \
	    "addr 127.0.0.1:$port")
	kill "$SILENT_PID" 2>/dev/null || true
	[ "${lines[3]}" = "addr 127.0.0.1:$port" ]
	[ "${lines[4]}" = "tried dialdirect 127.0.0.1:$port timeout" ]
	[ "${#lines[@]}" -eq 5 ]
}

@test "dialport -e: with no port to try, hands the ticket on at once" {
	out=$BATS_TEST_TMPDIR/out
	run -1 p2pcatch "{ printf 'peer bob\naddr 127.0.0.1:1\n\n'; sleep 0.5; } | dialport -e > $out" true
	[ "$(sed -n 3p "$out")" = "tried dialport racing on" ]
	[ "$(sed -n 4p "$out")" = "" ]
	[ "$(sed -n 5p "$out")" = "tried dialport peer listens on no extra ports" ]
}

@test "after a rung that raced on: its late lines take its mark's place; connected, it says so" {
	run -1 --separate-stderr bash -c 'printf "peer bob\naddr 127.0.0.1:1\ntried dialdirect racing on\n\ntried dialdirect 127.0.0.1:1 timeout\n\n" | dialport'
	[ "${lines[2]}" = "tried dialdirect 127.0.0.1:1 timeout" ]
	[ "${lines[3]}" = "tried dialport peer listens on no extra ports" ]
	[ "${#lines[@]}" -eq 4 ]
	# Through a rung that raced on itself, the late line still finds its mark.
	out=$BATS_TEST_TMPDIR/out
	run -1 p2pcatch "{ printf 'peer bob\naddr 127.0.0.1:1\ntried dialdirect racing on\n\n'; sleep 0.3
		printf 'tried dialdirect 127.0.0.1:1 timeout\n\n'; } | dialport -e | dialproxy > $out" true
	run cat "$out"
	[ "${lines[2]}" = "tried dialdirect 127.0.0.1:1 timeout" ]
	[ "${lines[3]}" = "tried dialport peer listens on no extra ports" ]
	[ "${lines[4]}" = "tried dialproxy no proxy configured" ]
	[ "${#lines[@]}" -eq 5 ]
	# The rung that raced on says it connected: nothing left to do.
	run -0 --separate-stderr bash -c 'printf "peer bob\naddr 127.0.0.1:1\ntried dialdirect racing on\n\nconnected dialdirect\n\n" | dialport'
	[ -z "$output" ]
	run -0 --separate-stderr bash -c 'printf "peer bob\naddr 127.0.0.1:1\ntried dialdirect racing on\n\nconnected dialdirect\n\n" | relaycat'
	[ -z "$output" ]
	# One that died saying nothing did not connect: the ticket goes on.
	run -1 --separate-stderr bash -c 'printf "peer bob\naddr 127.0.0.1:1\ntried dialdirect racing on\n\n" | dialport'
	[ "${lines[3]}" = "tried dialport peer listens on no extra ports" ]
}

# t/lab.bash: bats helpers for the namespace lab (t/lab). In a .bats file:
#
#   load lab
#   setup_file()    { lab_up; }      # fails the file loudly if namespaces cannot be made
#   teardown_file() { lab_down; }    # runs even when tests fail: the lab always goes away
#
#   lab HOST CMD...                  run CMD in HOST (see t/lab: rv relay proxy pub pub2 six1 six2
#                                    natA natB natC natD fw a1 a2 b1 b2 c1 c2 d1 d2 f1 f2)
#   lab_bg HOST CMD...               same, in the background; log in $LAB_BG_LOG, pid in $LAB_BG_PID
#   lab_wait_port HOST IP PORT [SECS]  wait (default 5 s) until IP:PORT accepts, seen from HOST
#   lab_mode ROUTER MODE             see t/lab
#   lab_delay MS                     see t/lab
#   lab_down

LAB_BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab

lab_up() {
	local err
	# One prefix per test file ($$ is the file's bats process), so files may run in parallel;
	# a $LAB given from outside (LAB=me-) is kept in front, so that whose lab it is shows.
	export LAB="${LAB:-p2p}$$-"
	: > "$BATS_FILE_TMPDIR/lab.pids"
	if ! err=$("$LAB_BIN" up 2>&1); then
		err=${err#lab: }
		echo "lab: cannot make namespaces: ${err#cannot make namespaces: }" >&2
		return 1
	fi
}

lab_down() {
	local p
	# t/lab down kills everything inside the namespaces (TERM, then KILL) and deletes them.
	"$LAB_BIN" down
	# Then any of our background pids that never got inside a namespace.
	if [ -f "$BATS_FILE_TMPDIR/lab.pids" ]; then
		while read -r p; do
			kill -KILL "$p" 2>/dev/null || :   # most are gone already
		done < "$BATS_FILE_TMPDIR/lab.pids"
		: > "$BATS_FILE_TMPDIR/lab.pids"
	fi
	return 0
}

lab() {
	"$LAB_BIN" exec "$@"
}

lab_bg() {
	local host=$1
	LAB_BG_LOG=$(mktemp "$BATS_FILE_TMPDIR/$host.XXXXXX.log")
	# fd 3 closed: bats waits for every holder of its fd 3 before it finishes.
	"$LAB_BIN" exec "$@" </dev/null >"$LAB_BG_LOG" 2>&1 3>&- &
	LAB_BG_PID=$!
	disown "$LAB_BG_PID"            # no "Killed" job notice from bash when lab_down kills it
	echo "$LAB_BG_PID" >> "$BATS_FILE_TMPDIR/lab.pids"
}

lab_wait_port() {
	local host=$1 ip=$2 port=$3 secs=${4:-5} end
	end=$(( $(date +%s%N) / 1000000 + secs * 1000 ))
	# One short connect attempt per round: a dropped SYN must not eat the whole budget.
	until lab "$host" timeout 1 bash -c "exec 5<>/dev/tcp/$ip/$port" 2>/dev/null; do
		if [ $(( $(date +%s%N) / 1000000 )) -ge "$end" ]; then
			echo "lab: $ip:$port not accepting (seen from $host) after ${secs}s" >&2
			return 1
		fi
		sleep 0.1
	done
}

lab_mode() {
	"$LAB_BIN" mode "$@"
}

lab_delay() {
	"$LAB_BIN" delay "$@"
}

# Helpers for t/matrix.bats and bench/matrix: the five kinds of network of
# issue 11 and a second home (issue 12), a dialler and a listener on each, rvd and relayd on port 443 (the
# documented deployment), and real proxies on the proxy host. Needs
# helpers/common (or lab.bash and the tools on PATH) and helpers/rungs (for
# add_proxy_user and open_path) loaded first.
#
#   kind     network (t/lab)                               dialler  listener
#   pub      public addresses, nothing filtered            pub      pub2
#   drop     home NAT: masquerade, drops unsolicited in    a1       a2       natA drop
#   random   NAT with a random public port for every flow  b1       b2       natB random
#   only443  host firewall: tcp 80/443 only, in and out    f1       f2       fw only443
#   proxy    NAT whose only way out is the proxy host      c1       c2       natC proxyonly
#   home2    another home NAT, like drop's                 d1       d2       natD drop
#
# The dialler and the listener of one kind share that network (two devices in
# one home or office), so a pair of one kind meets on its own LAN.
# The listeners run p2plisten, those that a peer can reach on 443 with
# P2P_PORTS=443 (pub2 and f2, as a user would who is told to); the proxy
# network's hosts have P2P_PROXY set, no other host has.
#
#   squid  198.51.100.3:3128  HTTP CONNECT, no credentials         variant squid
#          198.51.100.3:3129  HTTP CONNECT, Basic auth              variant squidauth
#   danted 198.51.100.3:1080  SOCKS5, no authentication             variant dante
#          198.51.100.3:1081  SOCKS5, user/password (system user)   variant danteauth
# Every proxy lets tunnels through to any port (rvd and relayd on 443, the
# peers on theirs), and is given only lab addresses.

MATRIX_KINDS="pub drop random only443 proxy home2"
MATRIX_VARIANTS="squid squidauth dante danteauth"
MATRIX_RVD=198.51.100.1:443
MATRIX_RELAY=198.51.100.2:443
declare -gA MATRIX_DIALLER=([pub]=pub [drop]=a1 [random]=b1 [only443]=f1 [proxy]=c1 [home2]=d1)
declare -gA MATRIX_LISTENER=([pub]=pub2 [drop]=a2 [random]=b2 [only443]=f2 [proxy]=c2 [home2]=d2)

# The cheapest rung that can work for each pair (dialler row, listener column),
# as the dialler names it in P2PVIA; "in|out" where both are direct and race.
#   in     the listener dials the dialler's candidates (through its proxy, for
#          a listener in the proxy network, p2p(7) "Reaching rvd and relayd")
#   out    the dialler dials the listener's usual port
#   port   the dialler dials the listener on 443 (only443 lets nothing else)
#   proxy  the dialler's proxy dials the listener (on its usual port or 443)
#   punch  both sides behind NATs that keep ports and drop (two homes): TCP
#          simultaneous open (issue 12)
#   relay  nothing else can work: a NAT with random ports, a proxy-only
#          network, or only443 meeting a NAT
MATRIX_TABLE='
dialler\listener  pub     drop    random  only443  proxy   home2
pub               in|out  in      in      port     in      in
drop              out     in|out  relay   port     relay   punch
random            out     relay   in|out  port     relay   relay
only443           port    relay   relay   in|out   relay   relay
proxy             proxy   relay   relay   proxy    in|out  relay
home2             out     punch   relay   port     relay   in|out
'
declare -gA MATRIX_EXPECT
matrix_expect_load() {
	local d rest l i
	local -a cols=() row
	while read -r d rest; do
		[ -n "$d" ] || continue
		if [ "$d" = 'dialler\listener' ]; then read -r -a cols <<<"$rest"; continue; fi
		read -r -a row <<<"$rest"
		for i in "${!cols[@]}"; do
			MATRIX_EXPECT[$d>${cols[$i]}]=${row[$i]}
		done
	done <<<"$MATRIX_TABLE"
}
matrix_expect_load

# matrix_proxy_url VARIANT: the P2P_PROXY of the proxy network's hosts.
matrix_proxy_url() {
	case $1 in
	squid)     echo "http://198.51.100.3:3128" ;;
	squidauth) echo "http://$PROXY_USER:$PROXY_PASS_URL@198.51.100.3:3129" ;;
	dante)     echo "socks5://198.51.100.3:1080" ;;
	danteauth) echo "socks5://$PROXY_USER:$PROXY_PASS_URL@198.51.100.3:1081" ;;
	esac
}

# matrix_lname KIND VARIANT: the listener's name (one per proxy variant in
# the proxy network, whose listener logs on through that proxy).
matrix_lname() {
	if [ "$1" = proxy ]; then echo "l-proxy-$2"; else echo "l-$1"; fi
}

# matrix_modes: each router as its kind wants it.
matrix_modes() {
	lab_mode natA drop && lab_mode natB random && lab_mode natC proxyonly &&
		lab_mode natD drop && lab_mode fw only443
}

# matrix_servers: rvd (open names) and relayd on 443, on every address.
matrix_servers() {
	lab_bg rv rvd -v -o -R "$MATRIX_RELAY" 443
	export RVD_LOG=$LAB_BG_LOG
	lab_bg relay relayd -v 443
	lab_wait_port rv 198.51.100.1 443 && lab_wait_port relay 198.51.100.2 443 ||
		{ cat "$RVD_LOG" "$LAB_BG_LOG"; return 1; }
}

# matrix_proxies: squid and dante as in the table above; logs in
# $MATRIX_PROXY_DIR. Needs $PROXY_USER and $PROXY_PASS (add_proxy_user).
matrix_proxies() {
	local d=$BATS_FILE_TMPDIR/proxies port method
	export MATRIX_PROXY_DIR=$d
	# dante checks the password with the system's crypt(3), one at a time: Debian's
	# default yescrypt costs ~100 ms a check here, so a burst of 30 log-ons would queue
	# for seconds. SHA-512 crypt is what many systems still use, and costs ~1 ms.
	printf '%s:%s\n' "$PROXY_USER" "$PROXY_PASS" | chpasswd -c SHA512 || return 1
	mkdir -p "$d"
	open_path "$d"
	printf '%s:%s\n' "$PROXY_USER" "$(openssl passwd -apr1 "$PROXY_PASS")" > "$d/htpasswd"
	cat > "$d/squid.conf" <<-EOF
	# p2pdial matrix squid: CONNECT only, to any port; no cache; lab addresses only.
	http_port 198.51.100.3:3128
	http_port 198.51.100.3:3129 name=authport
	pid_filename $d/squid.pid
	cache_log $d/cache.log
	access_log $d/access.log
	cache_store_log none
	coredump_dir $d
	netdb_filename none
	pinger_enable off
	cache deny all
	cache_mem 8 MB
	dns_nameservers 127.0.0.1
	shutdown_lifetime 1 seconds
	connect_timeout 10 seconds
	auth_param basic program /usr/lib/squid/basic_ncsa_auth $d/htpasswd
	auth_param basic realm p2p
	acl CONNECT method CONNECT
	acl authport myportname authport
	acl authed proxy_auth REQUIRED
	http_access deny !CONNECT
	http_access deny authport !authed
	http_access allow all
	EOF
	chown -R proxy:proxy "$d"
	lab_bg proxy squid -N -f "$d/squid.conf"
	lab_wait_port proxy 198.51.100.3 3128 15 && lab_wait_port proxy 198.51.100.3 3129 5 ||
		{ cat "$LAB_BG_LOG" "$d/cache.log"; return 1; }
	for port in 1080 1081; do
		method=none
		[ "$port" = 1081 ] && method=username
		cat > "$d/$port.conf" <<-EOF
		# p2pdial matrix dante: SOCKS5 CONNECT to any port; lab addresses only.
		logoutput: $d/$port.log
		internal: 198.51.100.3 port = $port
		external: 198.51.100.3
		socksmethod: $method
		clientmethod: none
		user.privileged: root
		user.unprivileged: nobody
		client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
		socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0
			command: connect
			log: error connect }
		EOF
		lab_bg proxy danted -f "$d/$port.conf" -p "$d/$port.pid"
		lab_wait_port proxy 198.51.100.3 "$port" 10 ||
			{ cat "$LAB_BG_LOG" "$d/$port.log"; return 1; }
	done
}

# matrix_listeners: p2plisten (serving echovia) on every listener host, one per
# proxy variant in the proxy network; waits up to 5 s for them all to log on,
# and says which did not (a pair with that listener then fails by itself).
matrix_listeners() {
	local k v h env name i missing
	export MATRIX_LLOG_DIR=$BATS_FILE_TMPDIR/listeners
	mkdir -p "$MATRIX_LLOG_DIR"
	for k in $MATRIX_KINDS; do
		h=${MATRIX_LISTENER[$k]}
		for v in $MATRIX_VARIANTS; do
			env="P2P_RVD=$MATRIX_RVD"
			case $k in pub|only443) env+=" P2P_PORTS=443" ;; esac
			[ "$k" = proxy ] && env+=" P2P_PROXY=$(matrix_proxy_url "$v")"
			name=$(matrix_lname "$k" "$v")
			lab_bg "$h" env $env p2plisten -v "$name" echovia
			ln -sf "$LAB_BG_LOG" "$MATRIX_LLOG_DIR/$name.log"
			[ "$k" = proxy ] || break
		done
	done
	for i in $(seq 50); do
		missing=
		for k in $MATRIX_KINDS; do
			for v in $MATRIX_VARIANTS; do
				name=$(matrix_lname "$k" "$v")
				grep -q "listen $name " "$RVD_LOG" || missing+=" $name"
				[ "$k" = proxy ] || break
			done
		done
		[ -z "$missing" ] && return 0
		sleep 0.1
	done
	echo "matrix: not logged on after 5 s:$missing" >&2
}

# matrix_dial VARIANT DKIND LKIND DATA: one pair, its files in
# $BATS_FILE_TMPDIR/pairs/VARIANT/DKIND-LKIND/: out (what came back), err
# (p2pdial -v), ms (the whole dial and echo, from outside the lab).
matrix_dial() {
	local v=$1 dk=$2 lk=$3 data=$4 dir px= t0
	dir=$BATS_FILE_TMPDIR/pairs/$v/$dk-$lk
	mkdir -p "$dir"
	[ "$dk" = proxy ] && px=$(matrix_proxy_url "$v")
	t0=${EPOCHREALTIME/./}
	"$LAB_BIN" exec "${MATRIX_DIALLER[$dk]}" env P2P_NAME="d-$dk-$lk-$v" \
		P2P_RVD="$MATRIX_RVD" P2P_CACHE="$dir/cache" ${px:+P2P_PROXY=$px} \
		P2P_TIMEOUT="${MATRIX_T:-3}" timeout "${MATRIX_LIMIT:-45}" \
		p2pdial -v "$(matrix_lname "$lk" "$v")" sendback "$data" \
		< /dev/null > "$dir/out" 2> "$dir/err" 3>&-
	echo $? > "$dir/rc"
	echo $(( (${EPOCHREALTIME/./} - t0) / 1000 )) > "$dir/ms"
}

# matrix_run VARIANT DATA PAIR...: dial the PAIRs ("DKIND>LKIND"), $MATRIX_JOBS
# (default 5) at a time: all 36 at once, each a ladder of six processes or
# more, starve one another of CPU on a small machine (worse under the
# sanitizers) until rungs time out and the table says nothing. Then one line
# per pair on stdout ("ok" or "FAIL", pair, expected and got rung, ms, why)
# and success only if every pair echoed DATA byte-exact by its expected rung.
matrix_run() {
	local v=$1 data=$2 p dk lk dir via want rc bad=0 why
	shift 2
	for p in "$@"; do
		while [ "$(jobs -rp | wc -l)" -ge "${MATRIX_JOBS:-5}" ]; do
			wait -n
		done
		matrix_dial "$v" "${p%>*}" "${p#*>}" "$data" &
	done
	wait
	printf '%-4s %-8s %-8s %-8s %-6s %6s  %s\n' "" dialler listener want got ms why
	for p in "$@"; do
		dk=${p%>*} lk=${p#*>}
		dir=$BATS_FILE_TMPDIR/pairs/$v/$dk-$lk
		want=${MATRIX_EXPECT[$p]}
		rc=$(cat "$dir/rc")
		via=$(sed -n 's/^client via=//p' "$dir/err" | head -1)
		why=
		if [ "$rc" != 0 ]; then
			why="exit $rc: $(grep -v '^client via' "$dir/err" | tail -1)"
		elif ! cmp -s "$data" "$dir/out"; then
			why="echo differs ($(wc -c < "$dir/out") of $(wc -c < "$data") bytes)"
		elif ! [[ $via =~ ^($want)$ ]]; then
			why="not the cheapest rung"
		fi
		[ -z "$why" ] || bad=$((bad + 1))
		printf '%-4s %-8s %-8s %-8s %-6s %6s  %s\n' "$([ -z "$why" ] && echo ok || echo FAIL)" \
			"$dk" "$lk" "$want" "${via:--}" "$(cat "$dir/ms")" "$why"
	done
	[ "$bad" = 0 ]
}

# matrix_pairs [KIND]: every "DKIND>LKIND" pair, or those with KIND on either side.
matrix_pairs() {
	local d l
	for d in $MATRIX_KINDS; do
		for l in $MATRIX_KINDS; do
			[ -z "${1:-}" ] || [ "$d" = "$1" ] || [ "$l" = "$1" ] || continue
			echo "$d>$l"
		done
	done
}

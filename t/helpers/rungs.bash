# Helpers for t/rungs.bats: real proxies from Debian's packages, run inside
# the lab's proxy host (198.51.100.3) and given only lab addresses.
#
#   squid  198.51.100.3:3128  HTTP CONNECT, no authentication
#          198.51.100.3:3129  HTTP CONNECT, Basic auth: $PROXY_USER / $PROXY_PASS
#   danted 198.51.100.3:1080  SOCKS5, no authentication
#          198.51.100.3:1081  SOCKS5, RFC 1929 user/password of the system user
#                             $PROXY_USER / $PROXY_PASS (made by add_proxy_user)
#
# Both allow tunnels only to ports 443 and 80, as offices' proxies often do:
# squid answers 403 for any other port, dante "connection not allowed by
# ruleset". $PROXY_PASS holds an '@' and a ':', so a URL must carry it
# percent-encoded ($PROXY_PASS_URL).

PROXY_IP=198.51.100.3

# open_path DIR: let other users (squid runs as uid proxy, its auth helper
# too) reach DIR; bats makes its temporary directories 0700.
open_path() {
	local d=$1 top=${BATS_RUN_TMPDIR:-/tmp}
	while [ "$d" != / ] && [ "$d" != /tmp ]; do
		chmod a+x "$d"
		[ "$d" = "$top" ] && break
		d=$(dirname "$d")
	done
}

# add_proxy_user: a system user for dante's username method (it checks
# passwords with the system's own), removed by del_proxy_user.
add_proxy_user() {
	export PROXY_USER="p2prung$$"
	local hex
	hex=$(openssl rand -hex 4)
	export PROXY_PASS="p@ss:$hex" PROXY_PASS_URL="p%40ss%3A$hex"
	userdel "$PROXY_USER" >/dev/null 2>&1 || :     # left over from a killed run
	useradd -M -s /usr/sbin/nologin "$PROXY_USER" || return 1
	echo "$BATS_FILE_TMPDIR" > "$BATS_FILE_TMPDIR/proxy_user.made"
	printf '%s:%s\n' "$PROXY_USER" "$PROXY_PASS" | chpasswd
}

del_proxy_user() {
	[ -f "$BATS_FILE_TMPDIR/proxy_user.made" ] || return 0
	userdel "$PROXY_USER" && rm -f "$BATS_FILE_TMPDIR/proxy_user.made"
}

# start_squid: squid -N on 3128 (open) and 3129 (Basic auth); its logs in
# $SQUID_DIR (access.log names the user of each tunnel).
start_squid() {
	export SQUID_DIR=$BATS_FILE_TMPDIR/squid
	mkdir -p "$SQUID_DIR"
	open_path "$SQUID_DIR"
	printf '%s:%s\n' "$PROXY_USER" "$(openssl passwd -apr1 "$PROXY_PASS")" > "$SQUID_DIR/htpasswd"
	cat > "$SQUID_DIR/squid.conf" <<-EOF
	# p2pdial test squid: CONNECT only, to 443 and 80 only; no cache; lab addresses only.
	http_port $PROXY_IP:3128
	http_port $PROXY_IP:3129 name=authport
	pid_filename $SQUID_DIR/squid.pid
	cache_log $SQUID_DIR/cache.log
	access_log $SQUID_DIR/access.log
	cache_store_log none
	coredump_dir $SQUID_DIR
	netdb_filename none
	pinger_enable off
	cache deny all
	cache_mem 8 MB
	dns_nameservers 127.0.0.1
	shutdown_lifetime 1 seconds
	connect_timeout 20 seconds
	auth_param basic program /usr/lib/squid/basic_ncsa_auth $SQUID_DIR/htpasswd
	auth_param basic realm p2p
	acl CONNECT method CONNECT
	acl okports port 443 80
	acl authport myportname authport
	acl authed proxy_auth REQUIRED
	# Log-on first, as offices' proxies do: a wrong password is a 407 whatever the port.
	http_access deny !CONNECT
	http_access deny authport !authed
	http_access deny CONNECT !okports
	http_access allow all
	EOF
	chown -R proxy:proxy "$SQUID_DIR"
	lab_bg proxy squid -N -f "$SQUID_DIR/squid.conf"
	lab_wait_port proxy "$PROXY_IP" 3128 15 && lab_wait_port proxy "$PROXY_IP" 3129 5 ||
		{ cat "$LAB_BG_LOG" "$SQUID_DIR/cache.log"; return 1; }
}

# start_dante: danted on 1080 (no authentication) and 1081 (user/password).
start_dante() {
	export DANTE_DIR=$BATS_FILE_TMPDIR/dante
	local port method
	mkdir -p "$DANTE_DIR"
	for port in 1080 1081; do
		method=none
		[ "$port" = 1081 ] && method=username
		cat > "$DANTE_DIR/$port.conf" <<-EOF
		# p2pdial test dante: SOCKS5 CONNECT to 443 and 80 only; lab addresses only.
		logoutput: $DANTE_DIR/$port.log
		internal: $PROXY_IP port = $port
		external: $PROXY_IP
		socksmethod: $method
		clientmethod: none
		user.privileged: root
		user.unprivileged: nobody
		client pass { from: 198.51.100.0/24 to: 0.0.0.0/0 }
		client pass { from: 10.0.0.0/8 to: 0.0.0.0/0 }
		socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 port = 443
			command: connect
			log: error connect }
		socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 port = 80
			command: connect
			log: error connect }
		socks block { from: 0.0.0.0/0 to: 0.0.0.0/0
			log: error connect }
		EOF
		lab_bg proxy danted -f "$DANTE_DIR/$port.conf" -p "$DANTE_DIR/$port.pid"
		lab_wait_port proxy "$PROXY_IP" "$port" 10 ||
			{ cat "$LAB_BG_LOG" "$DANTE_DIR/$port.log"; return 1; }
	done
}

# stamp: each line of stdin with the time it was read (seconds, 6 decimals).
stamp() {
	local l
	while IFS= read -r l; do
		printf '%s %s\n' "$EPOCHREALTIME" "$l"
	done
}

# at FILE ERE: the stamp (see stamp) of the first line matching ERE, in ms.
at() {
	local t
	t=$(grep -m1 -E "^[0-9.]+ .*($2)" "$1" | cut -d' ' -f1)
	[ -n "$t" ] || { echo "no line: $2" >&2; return 1; }
	echo $(( ${t/./} / 1000 ))
}
